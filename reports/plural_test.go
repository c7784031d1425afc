package reports

import (
	"strings"
	"testing"
)

// TestOneCaseHeadings: a count of one is written "1 case", never "1 cases",
// in the Markdown and HTML reports.
func TestOneCaseHeadings(t *testing.T) {
	c := &Comparison{Primary: "dice", Base: &Lineage{}, OnlyBase: []string{"c-1"}, OnlyCandidate: []string{"c-2", "c-3"}}
	md := Markdown(c, MarkdownOptions{})
	for _, want := range []string{"1 case evaluated by the baseline only", "2 cases evaluated by the candidate only"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	html, err := HTML(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "1 case evaluated by the baseline only") || strings.Contains(string(html), ">1 cases") {
		t.Errorf("HTML: %s", html)
	}
	if strings.Contains(md, "1 cases") {
		t.Errorf("Markdown says 1 cases:\n%s", md)
	}
}
