// Package plural writes counts with their nouns, "1 case" and "2 cases",
// for every message that prints a count.
package plural

import "strconv"

// Of returns n and noun, with an s unless n is 1: "1 case", "0 cases".
// Nouns whose plural is not noun+"s" need their own words.
func Of[N ~int | ~int64](n N, noun string) string {
	s := strconv.FormatInt(int64(n), 10) + " " + noun
	if n != 1 {
		s += "s"
	}
	return s
}

// Noun returns noun, with an s unless n is 1, for counts written apart
// from their noun ("1 of 3 cases").
func Noun[N ~int | ~int64](n N, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}
