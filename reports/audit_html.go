package reports

import (
	"bytes"
	"fmt"
	"github.com/medcad/medcad/internal/bytesize"
	"html/template"
	"strings"
)

// AuditHTML renders the audit document as one self-contained HTML page
// (inline CSS, no script, nothing fetched) laid out for printing on A4:
// tables fit the page width, long digests wrap, table headers repeat on
// every page and rows are not split across pages.
func AuditHTML(a *Audit) ([]byte, error) {
	head, rows := auditCaseRows(a.Evaluation, func(s string) string { return s })
	v := auditView{A: a, CaseHead: head}
	for _, r := range rows {
		cells := make([]auditCell, len(r))
		for i, text := range r {
			// case, dataset and split, then the metrics, then the notes
			cells[i] = auditCell{Text: text, Class: map[bool]string{true: "n"}[i >= 3 && i < len(r)-1]}
			if i == 0 {
				cells[i].Class = "id"
			}
		}
		v.CaseRows = append(v.CaseRows, cells)
	}
	for _, h := range a.History {
		v.History = append(v.History, historyRow(h, func(s string) string { return s }, func(s string) string { return s }))
	}
	var b bytes.Buffer
	if err := auditTemplate.Execute(&b, v); err != nil {
		return nil, fmt.Errorf("render HTML audit: %w", err)
	}
	return b.Bytes(), nil
}

type auditView struct {
	A        *Audit
	CaseHead []string
	CaseRows [][]auditCell
	History  [][]string
}

// auditCell is a cell of the case table; Class is its CSS class.
type auditCell struct {
	Text, Class string
}

var auditTemplate = template.Must(template.New("audit").Funcs(template.FuncMap{
	"num":        func(x Num) string { return fmtNum(float64(x)) },
	"count":      count,
	"dash":       orDash,
	"time":       auditTime,
	"bytes":      bytesize.String,
	"short":      shortDigest,
	"shortRev":   shortRev,
	"key":        orKeyNote,
	"join":       strings.Join,
	"baseline":   baselineText,
	"metricKeys": sortedMetricKeys,
	"float":      fmtNum,
	"prBaseline": func(g AuditGates) string {
		return prBaselineText(g, func(s string) string { return s })
	},
	"gate": func(line string) []string {
		name, status, _ := strings.Cut(line, ": ")
		return []string{name, status}
	},
	"kind": func(a *Audit) string {
		if a.Rollback != nil {
			return "rollback"
		}
		return "promotion"
	},
	"total": func(ds []AuditData) int {
		n := 0
		for _, d := range ds {
			n += d.Cases
		}
		return n
	},
}).Parse(auditSource))

const auditSource = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>medcad audit: {{.A.Model}} v{{.A.Version}}</title>
<style>
@page{size:A4;margin:14mm 12mm}
*{box-sizing:border-box}
body{font:10pt/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;background:#fff;max-width:186mm;margin:1em auto;padding:0}
h1{font-size:16pt;margin:0 0 .3em}
h2{font-size:12.5pt;border-bottom:1px solid #d0d7de;padding-bottom:.15em;margin:1.2em 0 .4em;break-after:avoid;page-break-after:avoid}
h3{font-size:11pt;margin:.9em 0 .3em;break-after:avoid;page-break-after:avoid}
p{margin:.4em 0}
table{border-collapse:collapse;margin:.4em 0;width:100%}
th,td{border:1px solid #d0d7de;padding:.15em .4em;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f6f8fa}
thead{display:table-header-group}
tr{break-inside:avoid;page-break-inside:avoid}
td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:36mm}
table.cases{font-size:7.5pt}
table.cases th,table.cases td{overflow-wrap:normal;padding:.1em .25em}
table.cases th,table.cases td.n,table.cases td.id{white-space:nowrap}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:8.5pt;overflow-wrap:anywhere;word-break:break-all}
.rollback{border-left:4px solid #8250df;background:#fbefff;padding:.5em .8em;margin:.6em 0;font-weight:bold;break-inside:avoid}
.warn{border-left:4px solid #bf8700;background:#fff8c5;padding:.4em .8em;margin:.5em 0;break-inside:avoid}
.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:bold}
footer{margin-top:1.5em;color:#656d76;font-size:8pt}
@media print{body{margin:0;max-width:none}a{color:inherit;text-decoration:none}}
</style>
</head>
<body>
<h1>Audit record: {{.A.Model}} v{{.A.Version}}</h1>
<p>Lineage of model <b>{{.A.Model}}</b> version {{.A.Version}} (tag <code>{{.A.Tag}}</code>, {{.A.Status}}), {{kind .A}}. Cases are named by pseudonymous ids only; the document holds no patient data.</p>
{{with .A.Rollback}}<div class="rollback">This version is a rollback to v{{.Of}} (<code>{{.OfTag}}</code>): it restores v{{.Of}}'s artifact, promoted {{time .Original.PromotedAt}}. Rolled back by {{dash .By}}. Reason: {{dash .Reason}}. Gates do not apply to a rollback; the evidence below is v{{.Of}}'s.</div>{{end}}
{{range .A.Warnings}}<div class="warn">{{.}}</div>
{{end}}
{{$r := .A.Record}}
<h2>Summary</h2>
<table class="kv">
<tr><th>model</th><td>{{.A.Model}}</td></tr>
<tr><th>version</th><td>v{{.A.Version}} ({{.A.Status}})</td></tr>
<tr><th>tag</th><td><code>{{.A.Tag}}</code></td></tr>
<tr><th>kind</th><td>{{kind .A}}</td></tr>
<tr><th>promoted at</th><td>{{time $r.PromotedAt}}</td></tr>
<tr><th>artifact</th><td><code>{{$r.Artifact}}</code></td></tr>
<tr><th>evaluation</th><td><code>{{dash $r.Eval}}</code></td></tr>
<tr><th>manifest</th><td><code>{{$r.Manifest}}</code> at <code>{{shortRev $r.ManifestCommit}}</code></td></tr>
<tr><th>record digest</th><td><code>{{dash $r.Digest}}</code></td></tr>
<tr><th>previous record</th><td><code>{{dash $r.Prev}}</code></td></tr>
<tr><th>signature</th><td><code>{{dash $r.Signature}}</code></td></tr>
<tr><th>verified with</th><td><code>{{key .A.Chain.PublicKey}}</code> ({{count .A.Chain.Versions "version"}} read from {{dash .A.Chain.Source}})</td></tr>
</table>

<h2>Approval</h2>
<table class="kv">
<tr><th>pull request</th><td>{{if .A.Code.PR}}#{{.A.Code.PR}}{{else}}–{{end}}</td></tr>
<tr><th>merged by</th><td>{{dash .A.Code.MergedBy}}</td></tr>
<tr><th>approved by</th><td>{{dash (join .A.Code.Approvers ", ")}}</td></tr>
{{with .A.Rollback}}<tr><th>rolled back by</th><td>{{dash .By}}</td></tr>
<tr><th>reason</th><td>{{dash .Reason}}</td></tr>{{end}}
<tr><th>promoted commit</th><td><code>{{dash .A.Code.Commit}}</code></td></tr>
<tr><th>CI run</th><td>{{dash .A.Code.CIRunURL}}</td></tr>
</table>

<h2>Code</h2>
<table class="kv">
<tr><th>code commit</th><td><code>{{dash .A.Code.CodeCommit}}</code></td></tr>
<tr><th>subject</th><td>{{dash .A.Code.Subject}}</td></tr>
<tr><th>trainer</th><td>{{dash .A.Code.Trainer}}</td></tr>
<tr><th>run</th><td><code>{{dash .A.Code.Run}}</code></td></tr>
<tr><th>manifest commit</th><td><code>{{dash .A.Code.ManifestCommit}}</code></td></tr>
</table>

<h2>Datasets</h2>
{{if .A.Datasets}}<table>
<thead><tr><th>dataset</th><th>cases</th><th>labelled</th><th>train / test</th><th>files</th><th>bytes</th><th>label rules</th><th>de-identification</th></tr></thead>
{{range .A.Datasets}}<tr><td>{{.Name}}</td><td class="n">{{.Cases}}</td><td class="n">{{.Labelled}}</td><td class="n">{{.Train}} / {{.Test}}</td><td class="n">{{.Files}}</td><td class="n">{{bytes .Bytes}}</td><td>{{dash .LabelRules}}</td><td>{{dash .DeidProfile}}</td></tr>
{{end}}</table>
<p>{{count (total .A.Datasets) "case"}} in {{count (len .A.Datasets) "dataset"}}.</p>
<table>
<thead><tr><th>dataset</th><th>manifest digest</th><th>pointer digest (SHA-256 of data/NAME.dataset.toml)</th></tr></thead>
{{range .A.Datasets}}<tr><td>{{.Name}}</td><td><code>{{.Manifest}}</code></td><td><code>{{dash .Pointer}}</code></td></tr>
{{end}}</table>
{{else}}<p>The manifest names no dataset.</p>{{end}}

<h2>Environment</h2>
{{if .A.Env.Digest}}<p>Environment lock <code>{{.A.Env.Digest}}</code>{{if .A.Env.File}} (<code>{{.A.Env.File}}</code>, {{count (len .A.Env.Packages) "package"}}){{end}}.</p>
{{if .A.Env.Packages}}<table>
<thead><tr><th>package</th><th>version</th><th>source</th></tr></thead>
{{range .A.Env.Packages}}<tr><td>{{.Name}}</td><td>{{.Version}}</td><td>{{dash .Source}}</td></tr>
{{end}}</table>{{end}}
{{else}}<p>No environment lock recorded.</p>{{end}}

<h2>Params</h2>
{{if .A.Params}}<table class="kv">
<thead><tr><th>param</th><th>value</th></tr></thead>
{{range .A.Params}}<tr><th>{{.Key}}</th><td><code>{{.Value}}</code></td></tr>
{{end}}</table>
{{else}}<p>No params.</p>{{end}}

{{$e := .A.Evaluation}}
<h2>Evaluation</h2>
<p>Evaluation <code>{{dash $e.Digest}}</code>: {{count $e.Evaluated "case"}} evaluated{{if $e.Failed}}, {{$e.Failed}} failed{{end}}. Mean with its 95% percentile-bootstrap interval (10,000 resamples, fixed seed) over the evaluated cases.</p>
<table>
<thead><tr><th>metric</th><th>better</th><th>n</th><th>mean</th><th>95% CI</th><th>median</th><th>min</th><th>max</th></tr></thead>
{{range $e.Metrics}}<tr><td>{{.Metric}}</td><td>{{.Better}}</td><td class="n">{{.N}}{{if .NonFinite}} (+{{.NonFinite}} inf){{end}}</td><td class="n">{{num .Mean}}</td><td class="n">[{{num .CILow}}, {{num .CIHigh}}]</td><td class="n">{{num .Median}}</td><td class="n">{{num .Min}}</td><td class="n">{{num .Max}}</td></tr>
{{end}}</table>
{{with .A.Record.Metrics}}<p>Metrics in the signed record (the training run's): {{range $i, $k := metricKeys .}}{{if $i}}, {{end}}{{$k}} {{index $.A.Record.Metrics $k | float}}{{end}}.</p>{{end}}
<h3>Cases</h3>
<table class="cases">
<thead><tr>{{range .CaseHead}}<th>{{.}}</th>{{end}}</tr></thead>
{{range .CaseRows}}<tr>{{range .}}<td{{with .Class}} class="{{.}}"{{end}}>{{.Text}}</td>{{end}}</tr>
{{end}}</table>

{{$g := .A.Gates}}
<h2>Gates</h2>
<p>Promotion job's verdict: <b>{{dash $g.Result}}</b> against {{baseline $g}}.</p>
{{if $g.Gates}}<table>
<thead><tr><th>gate</th><th>result</th></tr></thead>
{{range $g.Gates}}{{$l := gate .}}<tr><td>{{index $l 0}}</td><td class="{{index $l 1}}">{{index $l 1}}</td></tr>
{{end}}</table>{{end}}
{{if $g.PRResult}}<p>The pull request's job recorded {{$g.PRResult}} against {{prBaseline $g}} in the manifest.</p>{{end}}

<h2>History</h2>
<table>
<thead><tr><th>version</th><th></th><th>promoted</th><th>artifact</th><th>PR</th><th>by</th><th>gates</th></tr></thead>
{{range .History}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
<footer>medcad audit · generated {{time .A.Generated}} · every production record verified (Ed25519 signature, chained by digest) before this document was written.</footer>
</body>
</html>
`
