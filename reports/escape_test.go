package reports

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/medcad/medcad/gitops"
)

// hostile are names a user controls that must render as text.
var hostile = []string{
	`<img src=x onerror=alert(1)>`,
	`](javascript:alert(1))`,
	"a|b`c`` d",
	`<script>alert(2)</script>`,
	`[click](https://evil.example/)`,
	"**bold** _em_ # head\nnext line",
}

func hostileInput() Input {
	b := baseCases(6, 3)
	ids := sortedKeysOf(b)
	cases := map[string]caseVals{}
	for i, id := range ids {
		name := id
		if i < len(hostile) {
			name = hostile[i]
		}
		cases[name] = b[id]
	}
	base := sideSpec{ref: "main@<b>x</b>", rules: "v2", commit: "1111aaaa2222bbbb3333cccc4444dddd5555eeee",
		subject: hostile[0] + " " + hostile[1], params: map[string]string{"train.note": `"` + hostile[2] + `"`},
		env: []gitops.Package{{Name: hostile[3], Version: "1"}}, envDigest: digest("a"), cases: cases,
		datasets: []*gitops.Dataset{dataset(hostile[0], "v2", hostile[1]), dataset(hostile[2], "v2", hostile[3])}}
	cand := base
	cand.ref, cand.rules, cand.commit = WorkTree, hostile[4], "2222aaaa2222bbbb3333cccc4444dddd5555eeee"
	cand.params = map[string]string{"train.note": `"` + hostile[5] + `"`, "train.`x`": "1"}
	cand.env, cand.envDigest = []gitops.Package{{Name: hostile[3], Version: "2 " + hostile[0]}}, digest("b")
	cand.datasets = []*gitops.Dataset{dataset(hostile[0], hostile[4], hostile[1], hostile[5])}
	cand.cases = shifted(cases, func(i int) float64 { return 0.01 * float64(i%3-1) })
	p := gitops.Promote{Gates: []gitops.Gate{{Metric: hostile[0], Stat: "mean", Rule: "at-least", Value: 1}}}
	return Input{Base: base.side(), Candidate: cand.side(), Promote: p}
}

// TestEscaping: every user-controlled string renders as text in Markdown
// and HTML.
func TestEscaping(t *testing.T) {
	t.Parallel()
	c, err := Compare(context.Background(), hostileInput())
	if err != nil {
		t.Fatal(err)
	}
	md := Markdown(c, MarkdownOptions{})
	h, err := HTML(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Inside the fenced params diff text is literal; outside it nothing
	// may be markup. The fence must outrun the params' backticks.
	fenced := regexp.MustCompile("(?s)\n(`{3,})diff\n(.*?)\n(`{3,})\n").FindStringSubmatch(md)
	if fenced == nil || fenced[1] != fenced[3] || strings.Contains(fenced[2], fenced[1]) {
		t.Fatalf("params diff fence broken: %q", fenced)
	}
	prose := strings.Replace(md, fenced[0], "\n", 1)
	for _, bad := range []string{"<img", "<script", "](javascript", "](https", "[click]", "**bold** _em_", "<b>x"} {
		if strings.Contains(prose, bad) {
			t.Errorf("Markdown holds %q unescaped", bad)
		}
	}
	for _, bad := range []string{"<img", "<script", "<b>x"} {
		if strings.Contains(string(h), bad) {
			t.Errorf("HTML holds %q unescaped", bad)
		}
	}
	// Table rows keep their column count: no user text adds a cell.
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := len(regexp.MustCompile(`(^|[^\\])\|`).FindAllString(line, -1))
		if cells < 2 {
			t.Errorf("odd table row %q", line)
		}
	}
	rowCells := map[string]int{}
	header := ""
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			header = ""
			continue
		}
		n := len(regexp.MustCompile(`(^|[^\\])\|`).FindAllString(line, -1))
		if header == "" {
			header = line
			rowCells[header] = n
			continue
		}
		if n != rowCells[header] {
			t.Errorf("row %q has %d cell borders, its header %q has %d", line, n, header, rowCells[header])
		}
	}
	// The hostile text is still there, as text.
	if !strings.Contains(string(h), "&lt;img src=x onerror=alert(1)&gt;") {
		t.Error("HTML lost the dataset name")
	}
	if !strings.Contains(md, mdEscape(hostile[0])) {
		t.Errorf("Markdown lost the dataset name; want %s", mdEscape(hostile[0]))
	}
}

func TestMDEscape(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"c-5f2a91", "c-5f2a91"},
		{"<img src=x>", "&lt;img src=x&gt;"},
		{"](javascript:x)", `\]\(javascript\:x\)`},
		{"a|b", `a\|b`},
		{"`x`", "\\`x\\`"},
		{"a\nb\tc", "a b c"},
		{"ctl\x00\x1b", "ctl"},
		{`back\slash`, `back\\slash`},
	}
	for _, tt := range tests {
		if got := mdEscape(tt.in); got != tt.want {
			t.Errorf("mdEscape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestMarkdownLimit: a large comparison stays under GitHub's limit and says
// what it left out.
func TestMarkdownLimit(t *testing.T) {
	t.Parallel()
	b := baseCases(1500, 9)
	base := sideSpec{ref: "main", rules: "v2", commit: "1111aaaa2222bbbb3333cccc4444dddd5555eeee", cases: b,
		params: map[string]string{}, envDigest: digest("e")}
	cand := base
	cand.ref = WorkTree
	cand.cases = shifted(b, func(i int) float64 { return 0.001 * float64(i%11-5) })
	c, err := Compare(context.Background(), Input{Base: base.side(), Candidate: cand.side()})
	if err != nil {
		t.Fatal(err)
	}
	md := Markdown(c, MarkdownOptions{})
	if n := len([]rune(md)); n > MaxMarkdown {
		t.Fatalf("Markdown has %d characters, over %d", n, MaxMarkdown)
	}
	m := regexp.MustCompile(`_(\d+) more rows are not shown here`).FindStringSubmatch(md)
	if m == nil {
		t.Fatal("the shortened table does not say how many rows it left out")
	}
	shown := strings.Count(md, "| c-") - 20 // minus the worst and best tables
	if fmt.Sprint(1500-shown) != m[1] {
		t.Errorf("says %s rows left out, but shows %d of 1500", m[1], shown)
	}
	// The HTML keeps every row.
	h, err := HTML(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(h), "<tr><td>c-"); got != 1500+20 {
		t.Errorf("HTML has %d case rows, want 1520", got)
	}
}

// FuzzMDEscape: escaped text holds no HTML, no line break, and no
// Markdown punctuation that is not backslash-escaped.
func FuzzMDEscape(f *testing.F) {
	for _, h := range hostile {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := mdEscape(s)
		if strings.ContainsAny(out, "<>\n\r\"") {
			t.Fatalf("mdEscape(%q) = %q holds HTML or a line break", s, out)
		}
		escaped := false
		for _, r := range out {
			if escaped {
				escaped = false
				continue
			}
			switch r {
			case '\\':
				escaped = true
			case '`', '*', '_', '[', ']', '(', ')', '|', '!', '#', '~', '{', '}', '+', ':', '@', '.':
				t.Fatalf("mdEscape(%q) = %q: %q is not escaped", s, out, r)
			}
		}
		if escaped {
			t.Fatalf("mdEscape(%q) = %q ends in a lone backslash", s, out)
		}
	})
}
