package action

import (
	"strings"
	"testing"
)

func TestCodeSpan(t *testing.T) {
	tests := []struct{ in, want string }{
		{"batch1", "batch1"},
		{"a|b", "a¦b"},
		{"<!-- x -->", "‹!-- x --›"},
		{"`x`", "'x'"},
		{"two\nlines", "two lines"},
	}
	for _, tc := range tests {
		if got := CodeSpan(tc.in); got != tc.want {
			t.Errorf("CodeSpan(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzCodeSpan(f *testing.F) {
	f.Add("x --> <img src=x onerror=alert(1)> | y")
	f.Add("`code` ![i](u) \r\n")
	f.Fuzz(func(t *testing.T, s string) {
		if c := CodeSpan(s); strings.ContainsAny(c, "`<>|\n\r") {
			t.Fatalf("CodeSpan(%q) = %q leaves markup", s, c)
		}
	})
}
