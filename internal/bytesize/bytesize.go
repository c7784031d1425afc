// Package bytesize writes byte counts for people: 512 B, 3.2 MiB.
package bytesize

import "fmt"

// String writes n in binary units with one decimal.
func String(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
