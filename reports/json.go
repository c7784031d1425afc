package reports

import "encoding/json"

// JSON renders the comparison for machines: every field of Comparison,
// numbers that are not finite (no value, an infinite distance) as null.
func JSON(c *Comparison) ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
