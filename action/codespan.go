package action

import "strings"

// CodeSpan makes text safe inside a Markdown `code span`: backticks, line
// breaks and pipes (which end a table cell even in code) are replaced, and
// angle brackets are written as look-alikes so no HTML comment can close.
func CodeSpan(s string) string {
	return strings.NewReplacer("`", "'", "\n", " ", "\r", " ", "|", "¦", "<", "‹", ">", "›").Replace(s)
}
