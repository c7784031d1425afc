package reports

import (
	"fmt"
	"github.com/medcad/medcad/internal/bytesize"
	"slices"
	"strings"
	"time"
)

// AuditMarkdown renders the audit document as Markdown (GitHub-flavoured
// tables). Every row is shown; everything a user controls is escaped.
func AuditMarkdown(a *Audit) string {
	m := &md{rows: len(a.Evaluation.Cases) + len(a.Env.Packages) + len(a.History) + 1000}
	kind := "promotion"
	if a.Rollback != nil {
		kind = "rollback"
	}
	m.p("# Audit record: %s v%d\n\n", mdEscape(a.Model), a.Version)
	m.p("Lineage of model %s version %d (tag %s, %s), %s. Cases are named by pseudonymous ids only; the document holds no patient data.\n\n",
		mdEscape(a.Model), a.Version, mdLiteral(a.Tag), mdEscape(a.Status), kind)
	if rb := a.Rollback; rb != nil {
		m.p("> [!IMPORTANT]\n> **This version is a rollback to v%d** (%s): it restores v%d's artifact, promoted %s. Rolled back by %s. Reason: %s. Gates do not apply to a rollback; the evidence below is v%d's.\n\n",
			rb.Of, mdLiteral(rb.OfTag), rb.Of, auditTime(rb.Original.PromotedAt), mdEscape(orDash(rb.By)), mdEscape(orDash(rb.Reason)), rb.Of)
	}
	for _, w := range a.Warnings {
		m.p("> [!WARNING]\n> %s\n\n", mdEscape(w))
	}

	r := a.Record
	m.p("## Summary\n\n")
	m.kv([][2]string{
		{"model", mdEscape(a.Model)},
		{"version", fmt.Sprintf("v%d (%s)", a.Version, mdEscape(a.Status))},
		{"tag", mdLiteral(a.Tag)},
		{"kind", kind},
		{"promoted at", auditTime(r.PromotedAt)},
		{"artifact", mdCode(r.Artifact)},
		{"evaluation", mdCode(r.Eval)},
		{"manifest", mdCode(r.Manifest) + " at " + mdCode(shortRev(r.ManifestCommit))},
		{"record digest", mdCode(r.Digest)},
		{"previous record", mdCode(orDash(r.Prev))},
		{"signature", mdLiteral(r.Signature)},
		{"verified with", mdLiteral(orKeyNote(a.Chain.PublicKey)) + " (" + count(a.Chain.Versions, "version") + " read from " + mdEscape(orDash(a.Chain.Source)) + ")"},
	})

	m.p("## Approval\n\n")
	pr := "–"
	if a.Code.PR > 0 {
		pr = fmt.Sprintf("#%d", a.Code.PR)
	}
	approval := [][2]string{
		{"pull request", pr},
		{"merged by", mdEscape(orDash(a.Code.MergedBy))},
		{"approved by", mdEscape(orDash(strings.Join(a.Code.Approvers, ", ")))},
	}
	if rb := a.Rollback; rb != nil {
		approval = append(approval, [2]string{"rolled back by", mdEscape(orDash(rb.By))}, [2]string{"reason", mdEscape(orDash(rb.Reason))})
	}
	m.kv(append(approval, [][2]string{
		{"promoted commit", mdCode(a.Code.Commit)},
		{"CI run", mdEscape(orDash(a.Code.CIRunURL))},
	}...))

	m.p("## Code\n\n")
	m.kv([][2]string{
		{"code commit", mdCode(a.Code.CodeCommit)},
		{"subject", mdEscape(orDash(a.Code.Subject))},
		{"trainer", mdEscape(orDash(a.Code.Trainer))},
		{"run", mdCode(a.Code.Run)},
		{"manifest commit", mdCode(a.Code.ManifestCommit)},
	})

	m.p("## Datasets\n\n")
	if len(a.Datasets) == 0 {
		m.p("The manifest names no dataset.\n\n")
	} else {
		var rows [][]string
		total := 0
		for _, d := range a.Datasets {
			total += d.Cases
			rows = append(rows, []string{mdEscape(d.Name), fmt.Sprint(d.Cases), fmt.Sprint(d.Labelled), fmt.Sprintf("%d / %d", d.Train, d.Test),
				fmt.Sprint(d.Files), bytesize.String(d.Bytes), mdEscape(orDash(d.LabelRules)), mdEscape(orDash(d.DeidProfile))})
		}
		m.table(mdTable{"Datasets", 1 << 30, []string{"dataset", "cases", "labelled", "train / test", "files", "bytes", "label rules", "de-identification"}, rows})
		m.p("%s in %s.\n\n", count(total, "case"), count(len(a.Datasets), "dataset"))
		rows = nil
		for _, d := range a.Datasets {
			rows = append(rows, []string{mdEscape(d.Name), mdCode(d.Manifest), mdCode(orDash(d.Pointer))})
		}
		m.table(mdTable{"Dataset digests", 1 << 30, []string{"dataset", "manifest digest", "pointer digest (SHA-256 of data/NAME.dataset.toml)"}, rows})
	}

	m.p("## Environment\n\n")
	if a.Env.Digest == "" {
		m.p("No environment lock recorded.\n\n")
	} else {
		m.p("Environment lock %s", mdCode(a.Env.Digest))
		if a.Env.File != "" {
			m.p(" (%s, %s)", mdCode(a.Env.File), count(len(a.Env.Packages), "package"))
		}
		m.p(".\n\n")
		var rows [][]string
		for _, p := range a.Env.Packages {
			rows = append(rows, []string{mdEscape(p.Name), mdEscape(p.Version), mdEscape(orDash(p.Source))})
		}
		m.table(mdTable{"Packages", 1 << 30, []string{"package", "version", "source"}, rows})
	}

	m.p("## Params\n\n")
	if len(a.Params) == 0 {
		m.p("No params.\n\n")
	} else {
		var rows [][]string
		for _, p := range a.Params {
			rows = append(rows, []string{mdEscape(p.Key), mdCode(p.Value)})
		}
		m.table(mdTable{"Params", 1 << 30, []string{"param", "value"}, rows})
	}

	e := a.Evaluation
	m.p("## Evaluation\n\n")
	m.p("Evaluation %s: %s evaluated", mdCode(e.Digest), count(e.Evaluated, "case"))
	if e.Failed > 0 {
		m.p(", %d failed", e.Failed)
	}
	m.p(". Mean with its 95%% percentile-bootstrap interval (10,000 resamples, fixed seed) over the evaluated cases.\n\n")
	var rows [][]string
	for _, s := range e.Metrics {
		n := fmt.Sprint(s.N)
		if s.NonFinite > 0 {
			n += fmt.Sprintf(" (+%d inf)", s.NonFinite)
		}
		rows = append(rows, []string{mdEscape(s.Metric), s.Better.String(), n, fmtNum(float64(s.Mean)),
			fmt.Sprintf("[%s, %s]", fmtNum(float64(s.CILow)), fmtNum(float64(s.CIHigh))), fmtNum(float64(s.Median)),
			fmtNum(float64(s.Min)), fmtNum(float64(s.Max))})
	}
	m.table(mdTable{"Metrics", 1 << 30, []string{"metric", "better", "n", "mean", "95% CI", "median", "min", "max"}, rows})
	if names := sortedMetricKeys(a.Record.Metrics); len(names) > 0 {
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = mdEscape(n) + " " + fmtNum(a.Record.Metrics[n])
		}
		m.p("Metrics in the signed record (the training run's): %s.\n\n", strings.Join(parts, ", "))
	}
	m.p("### Cases\n\n")
	head, rows := auditCaseRows(e, mdEscape)
	for i := range head {
		head[i] = mdEscape(head[i])
	}
	m.table(mdTable{"Cases", 1 << 30, head, rows})

	g := a.Gates
	m.p("## Gates\n\n")
	m.p("Promotion job's verdict: **%s** against %s.\n\n", mdEscape(orDash(g.Result)), mdEscape(baselineText(g)))
	if len(g.Gates) > 0 {
		var rows [][]string
		for _, line := range g.Gates {
			name, status, _ := strings.Cut(line, ": ")
			rows = append(rows, []string{mdEscape(name), mdEscape(status)})
		}
		m.table(mdTable{"Gates", 1 << 30, []string{"gate", "result"}, rows})
	}
	if g.PRResult != "" {
		m.p("The pull request's job recorded %s against %s in the manifest.\n\n", mdEscape(g.PRResult), prBaselineText(g, mdCode))
	}

	m.p("## History\n\n")
	rows = nil
	for _, v := range a.History {
		rows = append(rows, historyRow(v, mdCode, mdEscape))
	}
	m.table(mdTable{"History", 1 << 30, []string{"version", "", "promoted", "artifact", "PR", "by", "gates"}, rows})
	m.p("<sub>medcad audit · generated %s · every production record verified (Ed25519 signature, chained by digest) before this document was written.</sub>\n", auditTime(a.Generated))
	return m.b.String()
}

// kv writes a two-column table of names and values.
func (m *md) kv(rows [][2]string) {
	r := make([][]string, len(rows))
	for i, row := range rows {
		r[i] = []string{row[0], row[1]}
	}
	m.table(mdTable{"", 1 << 30, []string{"field", "value"}, r})
}

// auditCaseRows is the per-case table: case, dataset, split, one column
// per metric, flags or error. esc escapes text for the output format.
func auditCaseRows(e AuditEval, esc func(string) string) ([]string, [][]string) {
	head := []string{"case", "dataset", "split"}
	for _, s := range e.Metrics {
		head = append(head, s.Metric)
	}
	head = append(head, "notes")
	var rows [][]string
	for _, c := range e.Cases {
		row := []string{esc(c.Case), esc(orDash(c.Dataset)), esc(orDash(c.Split))}
		for _, s := range e.Metrics {
			v, ok := c.Values[s.Metric]
			switch {
			case !ok:
				row = append(row, "–")
			case DirectionOf(s.Metric) == LowerIsBetter && isNaN(v):
				row = append(row, "inf") // an infinite distance, null in JSON
			default:
				row = append(row, fmtNum(float64(v)))
			}
		}
		note := strings.Join(c.Flags, ", ")
		if c.Error != "" {
			note = "not evaluated: " + c.Error
		}
		rows = append(rows, append(row, esc(note)))
	}
	return head, rows
}

func isNaN(n Num) bool { return n != n }

func historyRow(v AuditVersion, code, esc func(string) string) []string {
	var marks []string
	if v.This {
		marks = append(marks, "this document")
	}
	if v.Production {
		marks = append(marks, "production")
	}
	if v.RollbackOf > 0 {
		marks = append(marks, fmt.Sprintf("rollback to v%d", v.RollbackOf))
	}
	pr := "–"
	if v.PR > 0 {
		pr = fmt.Sprintf("#%d", v.PR)
	}
	return []string{fmt.Sprintf("v%d", v.Version), esc(strings.Join(marks, ", ")), auditTime(v.PromotedAt), code(shortDigest(v.Artifact)), pr, esc(orDash(v.By)), esc(orDash(v.Gate))}
}

func baselineText(g AuditGates) string {
	if g.Baseline == 0 {
		if strings.HasPrefix(g.Result, "skipped") {
			return "no baseline (a rollback is not gated)"
		}
		return "no baseline (the first version: absolute gates only)"
	}
	return fmt.Sprintf("baseline v%d (%s, artifact %s)", g.Baseline, g.BaselineTag, shortDigest(g.BaselineArtifact))
}

func prBaselineText(g AuditGates, code func(string) string) string {
	if g.PRBaseline == "" {
		return "no baseline"
	}
	return "baseline artifact " + code(shortDigest(g.PRBaseline))
}

// shortDigest is a digest held as text, shortened to 12 hex digits.
func shortDigest(s string) string {
	if s == "" {
		return "–"
	}
	if h, ok := strings.CutPrefix(s, "sha256:"); ok && len(h) > 12 {
		return "sha256:" + h[:12]
	}
	return s
}

func auditTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func orKeyNote(k string) string {
	if k == "" {
		return "key derived from the signing secret"
	}
	return k
}

// mdLiteral shows a key or signature (base64) as inline code; text that
// could close the span or the table cell is escaped instead.
func mdLiteral(s string) string {
	if s == "" || strings.ContainsAny(s, "`|<>&\\\n\r ") {
		return mdEscape(orDash(s))
	}
	return "`" + s + "`"
}

// sortedMetricKeys are the names of a record's metrics, sorted.
func sortedMetricKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
