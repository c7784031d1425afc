package gitops

import (
	"regexp"
	"strings"
)

// keyLine returns the 1-based line on which the dotted key (as BurntSushi
// writes it, without array indexes) is first defined in a TOML document, or
// 0 when it cannot be found. The TOML library reports positions only for
// syntax errors, so unknown keys and invalid values are located here.
func keyLine(data []byte, key string) int {
	var table string
	depth := 0    // open brackets/braces of a multi-line value
	inMulti := "" // the delimiter of an open multi-line string
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		if inMulti != "" {
			if strings.Contains(line, inMulti) {
				inMulti = ""
			}
			continue
		}
		if depth > 0 {
			depth = max(depth+bracketDelta(line), 0)
			continue
		}
		s := strings.TrimSpace(stripComment(line))
		if s == "" {
			continue
		}
		if strings.HasPrefix(s, "[") {
			name := strings.Trim(s, "[] \t")
			table = normalizeKey(name)
			if table == key {
				return i + 1
			}
			continue
		}
		eq := strings.Index(s, "=")
		if eq < 0 {
			continue
		}
		k := normalizeKey(s[:eq])
		full := k
		if table != "" {
			full = table + "." + k
		}
		if full == key || strings.HasPrefix(key, full+".") {
			return i + 1
		}
		value := strings.TrimSpace(s[eq+1:])
		for _, d := range []string{`"""`, `'''`} {
			if strings.HasPrefix(value, d) && !strings.Contains(value[3:], d) {
				inMulti = d
			}
		}
		if inMulti == "" {
			depth = max(bracketDelta(value), 0)
		}
	}
	return 0
}

// normalizeKey turns `a . "b c"` into `a.b c`.
func normalizeKey(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

// stripComment removes a trailing # comment that is not inside a string.
func stripComment(line string) string {
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '#':
			return line[:i]
		}
	}
	return line
}

// bracketDelta returns opening minus closing brackets and braces outside
// strings and comments.
func bracketDelta(s string) int {
	n := 0
	var quote rune
	for _, r := range stripComment(s) {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '[' || r == '{':
			n++
		case r == ']' || r == '}':
			n--
		}
	}
	return n
}

// KeyLine returns the 1-based line of a dotted key ("params.train.lr") in
// a config file, or 0 when it is not found.
func KeyLine(data []byte, key string) int { return keyLine(data, key) }

var stageHeaderRE = regexp.MustCompile(`^\s*\[\[\s*stage\s*\]\]\s*(#.*)?$`)

// StageLine returns the 1-based line of key in the i-th [[stage]] table
// of a config file: the line of the key, or of the table's header when
// the key is not set there; 0 when there is no such table.
func StageLine(data []byte, i int, key string) int {
	lines := strings.Split(string(data), "\n")
	var headers []int // 0-based line of every [[stage]] header
	for n, l := range lines {
		if stageHeaderRE.MatchString(l) {
			headers = append(headers, n)
		}
	}
	if i < 0 || i >= len(headers) {
		return 0
	}
	start := headers[i]
	end := len(lines)
	if i+1 < len(headers) {
		end = headers[i+1]
	}
	if n := keyLine([]byte(strings.Join(lines[start:end], "\n")), "stage."+key); n > 0 {
		return start + n
	}
	return start + 1
}
