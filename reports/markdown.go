package reports

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/stages/metrics"
)

// Marker starts every Markdown report, so CI can find and update its own
// PR comment.
const Marker = "<!-- medcad-report -->"

// MaxMarkdown is GitHub's limit on a comment body, in characters.
const MaxMarkdown = 65536

// MarkdownOptions tune the Markdown report.
type MarkdownOptions struct {
	// ImageBase is prepended to each plot's Name to link it (for example a
	// raw URL of the assets branch, or "report-assets/"); empty: no images.
	ImageBase string
	// Plots to link, from Plots(c).
	Plots []Plot
	// Limit is the most characters the report may have (default
	// MaxMarkdown). Long tables are folded in <details> and, when the
	// report would still be too long, shortened with a note that says how
	// many rows were left out and where they are.
	Limit int
}

// Markdown renders the comparison as GitHub-flavoured Markdown for a pull
// request comment. Everything a user controls is escaped.
func Markdown(c *Comparison, opts MarkdownOptions) string {
	limit := opts.Limit
	if limit <= 0 {
		limit = MaxMarkdown
	}
	// Render with every row, then halve the rows of the long tables until
	// the report fits.
	rows := math.MaxInt
	for {
		s := renderMarkdown(c, opts, rows)
		if len([]rune(s)) <= limit || rows == 0 {
			return s
		}
		if rows == math.MaxInt {
			rows = 1024
		} else {
			rows /= 2
		}
	}
}

// mdEscape makes user-controlled text inert in Markdown, also inside table
// cells: HTML is written as entities, Markdown punctuation is
// backslash-escaped, and line breaks become spaces.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		case '\\', '`', '*', '_', '{', '}', '[', ']', '(', ')', '#', '+', '!', '|', '~', ':', '@', '.':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n', '\r', '\t':
			b.WriteByte(' ')
		default:
			if r < 0x20 || r == 0x7f {
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdCode shows a digest or id as inline code; only [0-9a-zA-Z:.-]
// survive, so nothing can close the code span.
func mdCode(s string) string {
	if s == "" {
		return "–"
	}
	clean := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == ':' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return -1
	}, s)
	if clean != s {
		return mdEscape(s)
	}
	return "`" + clean + "`"
}

// mark is ▲ for a change for the better, ▼ for worse.
func mark(change string) string {
	switch change {
	case "better":
		return "▲"
	case "worse":
		return "▼"
	}
	return "="
}

type md struct {
	b    strings.Builder
	rows int
}

func (m *md) p(format string, args ...any) { fmt.Fprintf(&m.b, format, args...) }

// table writes a table; tables longer than fold rows go into <details>,
// and rows beyond m.rows are left out with a note.
// mdTable is a table to write: tables with more rows than fold go into
// <details> with the summary.
type mdTable struct {
	summary string
	fold    int
	head    []string
	rows    [][]string
}

func (m *md) table(t mdTable) {
	summary, fold, head, rows := t.summary, t.fold, t.head, t.rows
	if len(rows) == 0 {
		return
	}
	folded := len(rows) > fold
	if folded {
		m.p("<details><summary>%s</summary>\n\n", summary)
	}
	m.p("| %s |\n|", strings.Join(head, " | "))
	for range head {
		m.p(" --- |")
	}
	m.p("\n")
	shown := min(len(rows), m.rows)
	for _, r := range rows[:shown] {
		m.p("| %s |\n", strings.Join(r, " | "))
	}
	if left := len(rows) - shown; left > 0 {
		rows := "rows are"
		if left == 1 {
			rows = "row is"
		}
		m.p("\n_%d more %s not shown here: a PR comment holds at most %d characters. The HTML and JSON reports (`medcad report --format html|json`) list every row._\n", left, rows, MaxMarkdown)
	}
	if folded {
		m.p("\n</details>\n")
	}
	m.p("\n")
}

// list writes ids as a folded comma-separated list.
func (m *md) list(summary string, ids []string) {
	if len(ids) == 0 {
		return
	}
	shown := min(len(ids), m.rows)
	esc := make([]string, shown)
	for i, id := range ids[:shown] {
		esc[i] = mdEscape(id)
	}
	m.p("<details><summary>%s</summary>\n\n%s", summary, strings.Join(esc, ", "))
	if left := len(ids) - shown; left > 0 {
		m.p(" … and %d more (listed in the HTML and JSON reports)", left)
	}
	m.p("\n\n</details>\n\n")
}

func renderMarkdown(c *Comparison, opts MarkdownOptions, rows int) string {
	m := &md{rows: rows}
	m.p("%s\n", Marker)
	failed := c.Verdict.Failed()
	if c.Verdict.Promote {
		m.p("## ✅ medcad: promote %s\n\n", mdEscape(c.Model))
	} else {
		names := make([]string, len(failed))
		for i, g := range failed {
			names[i] = mdEscape(g.Name)
		}
		m.p("## ❌ medcad: blocked %s — failing: %s\n\n", mdEscape(c.Model), strings.Join(names, "; "))
	}
	if c.Base != nil {
		m.p("Candidate %s compared with baseline %s on %s.\n\n", mdEscape(c.Candidate.Ref), mdEscape(c.Base.Ref), count(len(c.Cases), "paired case"))
	} else {
		m.p("Candidate %s, %s; no baseline.\n\n", mdEscape(c.Candidate.Ref), count(c.Candidate.Cases, "case"))
	}
	for _, w := range c.Warnings {
		kind, text := "WARNING", w.Text
		if w.Caution() {
			kind, text = "CAUTION", "**"+text+"**"
		}
		m.p("> [!%s]\n> %s\n\n", kind, mdEscapeKeepBold(text))
	}

	if len(c.Verdict.Gates) > 0 {
		m.p("### Gates\n\n")
		var r [][]string
		for _, g := range c.Verdict.Gates {
			icon := map[string]string{Pass: "✅ pass", Fail: "❌ fail", Skipped: "➖ skipped"}[g.Status]
			r = append(r, []string{mdEscape(g.Name), icon, mdEscape(g.Message)})
		}
		m.table(mdTable{"Gates", 50, []string{"gate", "result", "numbers"}, r})
		if c.Verdict.Source != "" {
			m.p("Gates from %s.\n\n", mdEscape(c.Verdict.Source))
		}
	} else {
		m.p("_No promotion gates are configured ([[promote.gate]] in medcad.toml): the verdict is promote._\n\n")
	}

	m.p("### Metrics\n\n")
	var r [][]string
	for _, d := range c.Metrics {
		row := []string{mdEscape(d.Metric), d.Direction.String()}
		if d.Base != nil {
			row = append(row, summaryCell(*d.Base))
		} else {
			row = append(row, "–")
		}
		row = append(row, summaryCell(d.Candidate))
		if c.Base != nil {
			ds := mark(d.Change) + " " + fmtSigned(float64(d.Delta))
			if d.Significant {
				ds = "**" + ds + "**"
			}
			row = append(row, ds, fmt.Sprintf("[%s, %s]", fmtSigned(float64(d.CILow)), fmtSigned(float64(d.CIHigh))),
				fmtP(float64(d.P)), fmt.Sprintf("%d / %d / %d", d.Better, d.Worse, d.Same))
		}
		r = append(r, row)
	}
	head := []string{"metric", "better", "baseline mean (n)", "candidate mean (n)"}
	if c.Base != nil {
		head = append(head, "Δ mean (paired)", "95% CI of Δ", "p (Wilcoxon)", "cases ▲ / ▼ / =")
	}
	m.table(mdTable{"Metrics", 100, head, r})
	if c.Base != nil {
		m.p("Δ = candidate − baseline over the %s both evaluated; ▲ better, ▼ worse in the metric's direction; **bold**: the 95%% bootstrap interval excludes 0 and p < 0.05. Pairs with an infinite distance are counted in ▲/▼/= but left out of Δ, CI and p.", count(len(c.Cases), "case"))
		if len(c.OnlyBase) > 0 || len(c.OnlyCandidate) > 0 {
			m.p(" **The two models evaluated different cases**: each mean is over its own model's cases; compare Δ, which pairs them.")
		}
		m.p("\n\n")
	}

	if c.Base != nil {
		m.p("### Cases (by %s)\n\n", mdEscape(c.Primary))
		m.caseTable(c, "Worst regressions", c.Regressions)
		m.caseTable(c, "Best improvements", c.Improvements)
		if len(c.Regressions) == 0 && len(c.Improvements) == 0 && len(c.Cases) > 0 {
			m.p("No case changed its %s.\n\n", mdEscape(c.Primary))
		}
		m.list(count(len(c.OnlyBase), "case")+" evaluated by the baseline only", c.OnlyBase)
		m.list(count(len(c.OnlyCandidate), "case")+" evaluated by the candidate only", c.OnlyCandidate)
		if head, rows := caseRows(c, c.Cases); len(rows) > 0 {
			m.table(mdTable{"All " + count(len(c.Cases), "paired case"), 0, head, rows})
		}
	}
	if len(c.NotEvaluated) > 0 {
		var r [][]string
		for _, e := range c.NotEvaluated {
			r = append(r, []string{e.Side, mdEscape(e.Case), mdEscape(e.Error)})
		}
		m.table(mdTable{fmt.Sprintf("%d failed case evaluations", len(c.NotEvaluated)), 0, []string{"model", "case", "error"}, r})
	}

	if c.Base != nil {
		m.p("### Data\n\n")
		if c.Data.LabelRulesDiffer {
			m.p("**⚠️ Labelling rules changed: %s → %s. The ground truth differs between the two evaluations; metric differences are not comparable.**\n\n",
				mdEscape(orNone(c.Data.BaseLabelRules)), mdEscape(orNone(c.Data.CandidateLabelRules)))
		}
		if len(c.Data.Datasets) == 0 {
			m.p("No dataset changed.\n\n")
		} else {
			var r [][]string
			for _, d := range c.Data.Datasets {
				rules := mdEscape(d.BaseLabelRules)
				if d.BaseLabelRules != d.CandidateLabelRules {
					rules = fmt.Sprintf("%s → %s", mdEscape(orNone(d.BaseLabelRules)), mdEscape(orNone(d.CandidateLabelRules)))
					if d.Status == Changed {
						rules = "**" + rules + "** ⚠️"
					}
				}
				cases := "–"
				if d.Detail {
					cases = fmt.Sprintf("+%d −%d ~%d", len(d.CasesAdded), len(d.CasesRemoved), len(d.CasesChanged))
				}
				r = append(r, []string{mdEscape(d.Name), d.Status, cases,
					fmt.Sprintf("%d → %d", d.BaseFiles, d.CandidateFiles), rules,
					mdCode(cas.ShortText(d.BaseDigest)) + " → " + mdCode(cas.ShortText(d.CandidateDigest))})
			}
			m.table(mdTable{"Datasets", 50, []string{"dataset", "change", "cases +added −removed ~changed", "files", "label rules", "digest"}, r})
			for _, d := range c.Data.Datasets {
				for _, l := range []struct {
					what string
					ids  []string
				}{{"added", d.CasesAdded}, {"removed", d.CasesRemoved}, {"changed", d.CasesChanged}} {
					m.list(fmt.Sprintf("%s: %s %s", mdEscape(d.Name), count(len(l.ids), "case"), l.what), l.ids)
				}
			}
		}

		m.p("### Params\n\n")
		if len(c.Params.Changes) == 0 {
			m.p("No param changed.\n\n")
		} else {
			var r [][]string
			for _, p := range c.Params.Changes {
				r = append(r, []string{mdEscape(p.Key), p.Status, mdEscape(orDash(p.Base)), mdEscape(orDash(p.Candidate))})
			}
			m.table(mdTable{"Params", 30, []string{"param", "change", "baseline", "candidate"}, r})
			var d strings.Builder
			for _, l := range c.Params.Lines {
				d.WriteString(l.Op + l.Text + "\n")
			}
			fence := fenceFor(d.String())
			m.p("<details><summary>canonical TOML diff</summary>\n\n%sdiff\n%s%s\n\n</details>\n\n", fence, d.String(), fence)
		}

		m.p("### Environment\n\n")
		switch {
		case !c.Env.Changed:
			m.p("Environment lock unchanged (%s).\n\n", mdCode(cas.ShortText(c.Env.Candidate)))
		case !c.Env.Detail:
			m.p("Environment lock changed: %s → %s (package lists not available).\n\n", mdCode(cas.ShortText(c.Env.Base)), mdCode(cas.ShortText(c.Env.Candidate)))
		default:
			m.p("Environment lock changed: %s → %s, %s.\n\n", mdCode(cas.ShortText(c.Env.Base)), mdCode(cas.ShortText(c.Env.Candidate)), count(len(c.Env.Packages), "package"))
			var r [][]string
			for _, p := range c.Env.Packages {
				r = append(r, []string{mdEscape(p.Name), p.Status, mdEscape(orDash(p.Base)), mdEscape(orDash(p.Candidate))})
			}
			m.table(mdTable{"Packages", 30, []string{"package", "change", "baseline", "candidate"}, r})
		}
	}

	m.p("### Lineage\n\n")
	m.lineage(c)

	if opts.ImageBase != "" && len(opts.Plots) > 0 {
		m.p("### Plots\n\n")
		for _, p := range opts.Plots {
			m.p("![%s](%s%s)\n\n", mdEscape(p.Title), opts.ImageBase, p.Name)
		}
	}
	m.p("<sub>medcad report · statistics: 95%% percentile bootstrap of the mean paired difference (10,000 resamples, fixed seed), two-sided Wilcoxon signed-rank test.</sub>\n")
	return m.b.String()
}

// mdEscapeKeepBold escapes w but keeps a ** … ** wrapper of our own.
func mdEscapeKeepBold(w string) string {
	if inner, ok := strings.CutPrefix(w, "**"); ok {
		if inner, ok := strings.CutSuffix(inner, "**"); ok {
			return "**" + mdEscape(inner) + "**"
		}
	}
	return mdEscape(w)
}

// caseTable writes a titled table of cases (the worst or best).
func (m *md) caseTable(c *Comparison, title string, cases []CaseDiff) {
	head, rows := caseRows(c, cases)
	if len(rows) == 0 {
		return
	}
	m.p("**%s**\n\n", title)
	m.table(mdTable{title, 1000, head, rows})
}

// caseRows are the rows of a case table: the primary metric of both
// models, its Δ, and the Δ of HD95 and the first NSD beside it.
func caseRows(c *Comparison, cases []CaseDiff) ([]string, [][]string) {
	p := c.Primary
	head := []string{"case", p + " baseline", p + " candidate", "Δ " + p}
	others := []string{}
	for _, d := range c.Metrics {
		if d.Metric != p && (d.Metric == "hd95_mm" || strings.HasPrefix(d.Metric, "nsd@") && len(others) < 2) {
			others = append(others, d.Metric)
			head = append(head, "Δ "+d.Metric)
		}
	}
	for i := range head {
		head[i] = mdEscape(head[i])
	}
	var r [][]string
	for _, cd := range cases {
		g := float64(cd.Gain)
		row := []string{mdEscape(cd.Case), fmtNum(float64(cd.Base[p])), fmtNum(float64(cd.Candidate[p])), markGain(g) + " " + fmtSigned(float64(cd.Delta[p]))}
		for _, o := range others {
			row = append(row, markGain(gain(o, float64(cd.Base[o]), float64(cd.Candidate[o])))+" "+fmtSigned(float64(cd.Delta[o])))
		}
		r = append(r, row)
	}
	return head, r
}

func markGain(g float64) string {
	switch {
	case g > 0:
		return "▲"
	case g < 0:
		return "▼"
	}
	return "="
}

func (m *md) lineage(c *Comparison) {
	type row struct {
		name string
		get  func(l *Lineage) string
	}
	rowsDef := []row{
		{"ref", func(l *Lineage) string { return mdEscape(l.Ref) }},
		{"code commit", func(l *Lineage) string {
			s := mdCode(shortRev(l.Commit))
			if l.CommitSubject != "" {
				s += " " + mdEscape(l.CommitSubject)
			}
			return s
		}},
		{"run", func(l *Lineage) string { return mdCode(l.Run) }},
		{"artifact", func(l *Lineage) string { return mdCode(cas.ShortText(l.Artifact)) }},
		{"evaluation", func(l *Lineage) string { return mdCode(cas.ShortText(l.Eval)) }},
		{"env lock", func(l *Lineage) string { return mdCode(cas.ShortText(l.EnvLock)) }},
		{"label rules", func(l *Lineage) string { return mdEscape(orDash(l.LabelRules)) }},
		{"datasets", func(l *Lineage) string { return datasetsCell(l.Datasets) }},
		{"cases evaluated", func(l *Lineage) string { return fmt.Sprint(l.Cases) }},
		{"CI run", func(l *Lineage) string { return mdEscape(orDash(l.CIRunURL)) }},
	}
	var r [][]string
	for _, d := range rowsDef {
		row := []string{d.name}
		if c.Base != nil {
			row = append(row, d.get(c.Base))
		}
		row = append(row, d.get(&c.Candidate))
		r = append(r, row)
	}
	head := []string{"", "candidate"}
	if c.Base != nil {
		head = []string{"", "baseline", "candidate"}
	}
	m.table(mdTable{"Lineage", 100, head, r})
}

func datasetsCell(ds map[string]string) string {
	names := sortedKeys(ds)
	if len(names) == 0 {
		return "–"
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = mdEscape(n) + " " + mdCode(cas.ShortText(ds[n]))
	}
	return strings.Join(parts, "<br>")
}

// summaryCell shows a mean with its case count and the infinite values
// left out of it.
func summaryCell(s metrics.Summary) string {
	out := fmt.Sprintf("%s (%d)", fmtNum(s.Mean), s.N)
	if s.NonFinite > 0 {
		out += fmt.Sprintf(", %d inf", s.NonFinite)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func fmtP(p float64) string {
	switch {
	case math.IsNaN(p):
		return "–"
	case p < 0.001:
		return "<0.001"
	}
	return fmt.Sprintf("%.3f", p)
}

// fenceFor returns a code fence longer than any backtick run in s.
func fenceFor(s string) string {
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}
