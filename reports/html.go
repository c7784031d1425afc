package reports

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"

	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/stages/metrics"
)

// HTML renders the comparison as one self-contained HTML page (inline
// CSS, plots embedded as data: URIs, no script, nothing fetched). Every
// row is shown; html/template escapes everything a user controls.
func HTML(c *Comparison, plots []Plot) ([]byte, error) {
	v := htmlView{C: c, Failed: c.Verdict.Failed()}
	for _, p := range plots {
		v.Plots = append(v.Plots, htmlPlot{Title: p.Title, Name: p.Name,
			URI: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(p.PNG))})
	}
	var b bytes.Buffer
	if err := htmlTemplate.Execute(&b, v); err != nil {
		return nil, fmt.Errorf("render HTML report: %w", err)
	}
	return b.Bytes(), nil
}

type htmlView struct {
	C      *Comparison
	Failed []GateResult
	Plots  []htmlPlot
}

type caseView struct {
	Title, Primary string
	Metrics        []string
	Rows           []CaseDiff
}

type htmlPlot struct {
	Title, Name string
	URI         template.URL
}

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"num":      func(x Num) string { return fmtNum(float64(x)) },
	"count":    count,
	"signed":   func(x Num) string { return fmtSigned(float64(x)) },
	"p":        func(x Num) string { return fmtP(float64(x)) },
	"mark":     mark,
	"gainmark": func(g Num) string { return markGain(float64(g)) },
	"short":    cas.ShortText,
	"shortRev": shortRev,
	"dash":     orDash,
	"none":     orNone,
	"summary":  summaryCell,
	"delta": func(cd CaseDiff, m string) string {
		return markGain(gain(m, float64(cd.Base[m]), float64(cd.Candidate[m]))) + " " + fmtSigned(float64(cd.Delta[m]))
	},
	"at":    func(m map[string]Num, k string) string { return fmtNum(float64(m[k])) },
	"keys":  sortedKeys,
	"join":  strings.Join,
	"deref": func(s *metrics.Summary) metrics.Summary { return *s },
	"sides": func(c *Comparison) []*Lineage {
		if c.Base == nil {
			return []*Lineage{&c.Candidate}
		}
		return []*Lineage{c.Base, &c.Candidate}
	},
	"cases": func(c *Comparison, title string, rows []CaseDiff) caseView {
		v := caseView{Title: title, Primary: c.Primary, Rows: rows, Metrics: []string{c.Primary}}
		for _, d := range c.Metrics {
			if d.Metric != c.Primary {
				v.Metrics = append(v.Metrics, d.Metric)
			}
		}
		return v
	},
	"lines": func(ls []DiffLine) string {
		var b strings.Builder
		for _, l := range ls {
			b.WriteString(l.Op + l.Text + "\n")
		}
		return b.String()
	},
}).Parse(htmlSource))

const htmlSource = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>medcad report: {{.C.Model}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;background:#fff;max-width:1100px;margin:2em auto;padding:0 1em}
h1{font-size:1.6em;padding:.5em .7em;border-radius:6px;color:#fff}
h1.promote{background:#1a7f37}h1.blocked{background:#cf222e}
h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.better{color:#1a7f37}.worse{color:#cf222e}.sig{font-weight:bold}
.warn{border-left:4px solid #bf8700;background:#fff8c5;padding:.5em .8em;margin:.6em 0}
.caution{border-left:4px solid #cf222e;background:#ffebe9;padding:.5em .8em;margin:.6em 0;font-weight:bold}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
pre{background:#f6f8fa;padding:.6em;overflow:auto}
img{max-width:100%;border:1px solid #d0d7de;margin:.4em 0}
.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:bold}.skipped{color:#656d76}
</style>
</head>
<body>
{{if .C.Verdict.Promote}}<h1 class="promote">✓ promote {{.C.Model}}</h1>
{{else}}<h1 class="blocked">✗ blocked {{.C.Model}}: failing {{range $i, $g := .Failed}}{{if $i}}; {{end}}{{$g.Name}}{{end}}</h1>
{{end}}
{{if .C.Base}}<p>Candidate <b>{{.C.Candidate.Ref}}</b> compared with baseline <b>{{.C.Base.Ref}}</b> on {{count (len .C.Cases) "paired case"}}.</p>
{{else}}<p>Candidate <b>{{.C.Candidate.Ref}}</b>, {{count .C.Candidate.Cases "case"}}; no baseline.</p>{{end}}
{{range .C.Warnings}}<div class="{{if .Caution}}caution{{else}}warn{{end}}">{{.Text}}</div>
{{end}}
<h2>Gates</h2>
{{if .C.Verdict.Gates}}<table><tr><th>gate</th><th>result</th><th>numbers</th></tr>
{{range .C.Verdict.Gates}}<tr><td>{{.Name}}</td><td class="{{.Status}}">{{.Status}}</td><td>{{.Message}}{{if .Cases}}<br>cases: {{join .Cases ", "}}{{end}}</td></tr>
{{end}}</table>
{{if .C.Verdict.Source}}<p>Gates from {{.C.Verdict.Source}}.</p>{{end}}
{{else}}<p>No promotion gates are configured: the verdict is promote.</p>{{end}}

<h2>Metrics</h2>
<table><tr><th>metric</th><th>better</th><th>baseline mean (n)</th><th>candidate mean (n)</th>{{if .C.Base}}<th>Δ mean (paired)</th><th>95% CI of Δ</th><th>p (Wilcoxon)</th><th>cases ▲ / ▼ / =</th>{{end}}</tr>
{{range .C.Metrics}}<tr><td>{{.Metric}}</td><td>{{.Direction}}</td><td class="n">{{if .Base}}{{summary (deref .Base)}}{{else}}–{{end}}</td><td class="n">{{summary .Candidate}}</td>
{{- if $.C.Base}}<td class="n{{if .Significant}} {{.Change}} sig{{end}}">{{mark .Change}} {{signed .Delta}}</td><td class="n">[{{signed .CILow}}, {{signed .CIHigh}}]</td><td class="n">{{p .P}}</td><td class="n">{{.Better}} / {{.Worse}} / {{.Same}}</td>{{end}}</tr>
{{end}}</table>
{{if .C.Base}}<p>Δ = candidate − baseline over the cases both evaluated; ▲ better, ▼ worse in the metric's direction; coloured and bold: the 95% bootstrap interval excludes 0 and p &lt; 0.05.{{if or .C.OnlyBase .C.OnlyCandidate}} <b>The two models evaluated different cases</b>: each mean is over its own model's cases; compare Δ, which pairs them.{{end}}</p>

<h2>Cases (by {{.C.Primary}})</h2>
{{template "cases" (cases .C "Worst regressions" .C.Regressions)}}
{{template "cases" (cases .C "Best improvements" .C.Improvements)}}
{{if .C.OnlyBase}}<p><b>{{count (len .C.OnlyBase) "case"}} evaluated by the baseline only:</b> {{join .C.OnlyBase ", "}}</p>{{end}}
{{if .C.OnlyCandidate}}<p><b>{{count (len .C.OnlyCandidate) "case"}} evaluated by the candidate only:</b> {{join .C.OnlyCandidate ", "}}</p>{{end}}
<details><summary>All {{count (len .C.Cases) "paired case"}}</summary>
{{template "cases" (cases .C "" .C.Cases)}}
</details>
{{end}}
{{if .C.NotEvaluated}}<h3>Failed case evaluations</h3><table><tr><th>model</th><th>case</th><th>error</th></tr>
{{range .C.NotEvaluated}}<tr><td>{{.Side}}</td><td>{{.Case}}</td><td>{{.Error}}</td></tr>{{end}}</table>{{end}}

{{if .C.Base}}<h2>Data</h2>
{{if .C.Data.LabelRulesDiffer}}<div class="caution">⚠ Labelling rules changed: {{none .C.Data.BaseLabelRules}} → {{none .C.Data.CandidateLabelRules}}. The ground truth differs between the two evaluations; metric differences are not comparable.</div>{{end}}
{{if .C.Data.Datasets}}<table><tr><th>dataset</th><th>change</th><th>cases added / removed / changed</th><th>files</th><th>label rules</th><th>digest</th></tr>
{{range .C.Data.Datasets}}<tr><td>{{.Name}}</td><td>{{.Status}}</td><td>{{if .Detail}}{{len .CasesAdded}} / {{len .CasesRemoved}} / {{len .CasesChanged}}{{else}}–{{end}}</td><td class="n">{{.BaseFiles}} → {{.CandidateFiles}}</td><td>{{dash .BaseLabelRules}} → {{dash .CandidateLabelRules}}</td><td><code>{{short .BaseDigest}}</code> → <code>{{short .CandidateDigest}}</code></td></tr>
{{end}}</table>
{{range .C.Data.Datasets}}{{if .CasesAdded}}<p>{{.Name}}: cases added: {{join .CasesAdded ", "}}</p>{{end}}{{if .CasesRemoved}}<p>{{.Name}}: cases removed: {{join .CasesRemoved ", "}}</p>{{end}}{{if .CasesChanged}}<p>{{.Name}}: cases changed: {{join .CasesChanged ", "}}</p>{{end}}{{end}}
{{else}}<p>No dataset changed.</p>{{end}}

<h2>Params</h2>
{{if .C.Params.Changes}}<table><tr><th>param</th><th>change</th><th>baseline</th><th>candidate</th></tr>
{{range .C.Params.Changes}}<tr><td>{{.Key}}</td><td>{{.Status}}</td><td><code>{{dash .Base}}</code></td><td><code>{{dash .Candidate}}</code></td></tr>
{{end}}</table>
<pre>{{lines .C.Params.Lines}}</pre>
{{else}}<p>No param changed.</p>{{end}}

<h2>Environment</h2>
{{if not .C.Env.Changed}}<p>Environment lock unchanged (<code>{{short .C.Env.Candidate}}</code>).</p>
{{else}}<p>Environment lock changed: <code>{{short .C.Env.Base}}</code> → <code>{{short .C.Env.Candidate}}</code>{{if not .C.Env.Detail}} (package lists not available){{end}}.</p>
{{if .C.Env.Packages}}<table><tr><th>package</th><th>change</th><th>baseline</th><th>candidate</th></tr>
{{range .C.Env.Packages}}<tr><td>{{.Name}}</td><td>{{.Status}}</td><td>{{dash .Base}}</td><td>{{dash .Candidate}}</td></tr>
{{end}}</table>{{end}}{{end}}
{{end}}
<h2>Lineage</h2>
<table><tr><th></th>{{if .C.Base}}<th>baseline</th>{{end}}<th>candidate</th></tr>
{{$sides := sides .C}}
<tr><td>ref</td>{{range $sides}}<td>{{.Ref}}</td>{{end}}</tr>
<tr><td>code commit</td>{{range $sides}}<td><code>{{shortRev .Commit}}</code> {{.CommitSubject}}</td>{{end}}</tr>
<tr><td>run</td>{{range $sides}}<td><code>{{dash .Run}}</code></td>{{end}}</tr>
<tr><td>artifact</td>{{range $sides}}<td><code>{{short .Artifact}}</code></td>{{end}}</tr>
<tr><td>evaluation</td>{{range $sides}}<td><code>{{short .Eval}}</code></td>{{end}}</tr>
<tr><td>env lock</td>{{range $sides}}<td><code>{{short .EnvLock}}</code></td>{{end}}</tr>
<tr><td>label rules</td>{{range $sides}}<td>{{dash .LabelRules}}</td>{{end}}</tr>
<tr><td>datasets</td>{{range $sides}}<td>{{$ds := .Datasets}}{{range $i, $k := keys .Datasets}}{{if $i}}<br>{{end}}{{$k}} <code>{{short (index $ds $k)}}</code>{{end}}</td>{{end}}</tr>
<tr><td>cases evaluated</td>{{range $sides}}<td class="n">{{.Cases}}</td>{{end}}</tr>
<tr><td>CI run</td>{{range $sides}}<td>{{dash .CIRunURL}}</td>{{end}}</tr>
</table>
{{if .Plots}}<h2>Plots</h2>
{{range .Plots}}<figure><img src="{{.URI}}" alt="{{.Title}}"><figcaption>{{.Title}}</figcaption></figure>
{{end}}{{end}}
<p><small>medcad report · statistics: 95% percentile bootstrap of the mean paired difference (10,000 resamples, fixed seed), two-sided Wilcoxon signed-rank test.</small></p>
</body>
</html>
{{define "cases"}}{{if .Rows}}{{if .Title}}<h3>{{.Title}}</h3>{{end}}
<table><tr><th>case</th><th>{{.Primary}} baseline</th><th>{{.Primary}} candidate</th>{{range .Metrics}}<th>Δ {{.}}</th>{{end}}</tr>
{{$m := .Metrics}}{{range .Rows}}<tr><td>{{.Case}}</td><td class="n">{{at .Base $.Primary}}</td><td class="n">{{at .Candidate $.Primary}}</td>{{$cd := .}}{{range $m}}<td class="n">{{delta $cd .}}</td>{{end}}</tr>
{{end}}</table>{{end}}{{end}}
`
