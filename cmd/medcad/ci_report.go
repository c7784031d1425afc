package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/reports"
)

// reportInput is what a pull request's report compares: the model on the
// base branch (nil for the first model) and the candidate in the working
// tree, and where their evaluations are read from.
type reportInput struct {
	cfg       gitops.Config
	base      *gitops.Model
	baseRev   string // the base branch's revision, e.g. refs/remotes/origin/main
	baseRef   string // how the report names it, e.g. "main@1a2b3c4d5e6f"
	cand      *gitops.Model
	candRef   string
	imageBase string // URL prefix the report's images are linked with ("": no images)
	repo      *git.Repository
	store     *cas.Store
	remote    cas.Backend // nil: evaluations only from the local cache
}

// reportImage is a PNG the report links; CI commits it to the assets
// branch under its name.
type reportImage struct {
	name string
	png  []byte
}

// ciReport is a finished report: the gate verdict and its renderings.
type ciReport struct {
	pass     bool
	failed   []string // the gates that failed, one line each
	markdown string
	images   []reportImage
}

// reporter builds the report of a pull request. The reports package
// (medcad report / gate) plugs in here; gateReporter is the built-in one
// that compares the manifests' aggregate metrics.
type reporter interface {
	report(ctx context.Context, in reportInput) (*ciReport, error)
}

// compareReporter is the full report of the reports package: per-case
// paired comparison, confidence intervals, gates, plots. Pipelines whose
// evaluate stage does not write a per-case evaluation (medcad eval's
// JSON) get gateReporter's report on the aggregate metrics instead.
type compareReporter struct{}

func (compareReporter) report(ctx context.Context, in reportInput) (*ciReport, error) {
	l := &reports.Loader{Dir: ".", Repo: in.repo, Store: in.store, Remote: in.remote, Config: in.cfg}
	cand, err := l.WorkTree(ctx)
	if errors.Is(err, reports.ErrBadEval) {
		return fallbackReport(ctx, in, err)
	}
	if err != nil {
		return nil, err
	}
	cand.Ref = in.candRef
	var base *reports.Side
	if in.base != nil {
		base, err = l.Rev(ctx, in.baseRev)
		if errors.Is(err, reports.ErrBadEval) {
			return fallbackReport(ctx, in, err)
		}
		if err != nil {
			return nil, err
		}
		base.Ref = in.baseRef
	}
	c, err := reports.Compare(ctx, reports.Input{Base: base, Candidate: cand, Promote: in.cfg.Promote})
	if err != nil {
		return nil, err
	}
	rep := &ciReport{pass: c.Verdict.Promote}
	for _, g := range c.Verdict.Failed() {
		rep.failed = append(rep.failed, g.Name+": "+g.Message)
	}
	opts := reports.MarkdownOptions{Limit: reports.MaxMarkdown - 2000} // room for the marker and the run link
	if in.imageBase != "" {
		plots, err := reports.Plots(c)
		if err != nil {
			return nil, err
		}
		opts.ImageBase, opts.Plots = in.imageBase, plots
		for _, p := range plots {
			rep.images = append(rep.images, reportImage{name: p.Name, png: p.PNG})
		}
	}
	rep.markdown = reports.Markdown(c, opts)
	return rep, nil
}

// fallbackReport is gateReporter's report with a note why.
func fallbackReport(ctx context.Context, in reportInput, why error) (*ciReport, error) {
	rep, err := gateReporter{}.report(ctx, in)
	if err != nil {
		return nil, err
	}
	rep.markdown += "\n> No per-case evaluation (" + mdEscape(why.Error()) + "): the gates were applied to the aggregate metrics of the manifests.\n"
	return rep, nil
}

// gateReporter applies the promotion gates of medcad.toml to the
// aggregate metrics recorded in the two manifests.
type gateReporter struct{}

// lowerIsBetter reports whether a smaller value of the metric is better:
// the surface distances (HD, HD95, ASSD, MASD, anything in mm).
func lowerIsBetter(metric string) bool {
	m := strings.ToLower(metric)
	return strings.HasPrefix(m, "hd") || strings.HasPrefix(m, "assd") || strings.HasPrefix(m, "masd") || strings.HasSuffix(m, "_mm")
}

// metricValue finds gate metric/stat in a manifest's metrics: the mean is
// recorded under the metric's name, other statistics as metric_stat.
func metricValue(m map[string]float64, metric, stat string) (float64, bool) {
	if stat != "" && stat != "mean" {
		v, ok := m[metric+"_"+stat]
		return v, ok
	}
	v, ok := m[metric]
	return v, ok
}

func (gateReporter) report(_ context.Context, in reportInput) (*ciReport, error) {
	if in.cand == nil {
		return nil, fmt.Errorf("no candidate model to report on")
	}
	rep := &ciReport{pass: true}
	type row struct{ name, rule, base, cand, status string }
	var gates []row
	for _, g := range in.cfg.Promote.Gates {
		stat := g.Stat
		if stat == "" {
			stat = "mean"
		}
		name := fmt.Sprintf("%s %s %s", g.Metric, stat, g.Rule)
		r := row{name: name, base: "—", cand: "—"}
		c, okC := metricValue(in.cand.Metrics, g.Metric, stat)
		if okC {
			r.cand = fmtNum(c)
		}
		var b float64
		okB := false
		if in.base != nil {
			b, okB = metricValue(in.base.Metrics, g.Metric, stat)
			if okB {
				r.base = fmtNum(b)
			}
		}
		dir := 1.0
		if lowerIsBetter(g.Metric) {
			dir = -1
		}
		pass, why := false, ""
		switch {
		case !okC:
			why = "the candidate does not report it"
		case g.Rule == "at-least":
			pass, why = c >= g.Value, fmt.Sprintf("must be ≥ %s", fmtNum(g.Value))
		case g.Rule == "at-most":
			pass, why = c <= g.Value, fmt.Sprintf("must be ≤ %s", fmtNum(g.Value))
		case in.base == nil:
			r.status = "skipped (no baseline)"
			gates = append(gates, r)
			continue
		case !okB:
			pass, why = true, "baseline does not report it"
		case g.Rule == "no-worse":
			pass, why = dir*(c-b) >= -g.Tolerance, fmt.Sprintf("may lose at most %s", fmtNum(g.Tolerance))
		case g.Rule == "better":
			pass, why = dir*(c-b) > g.Tolerance, fmt.Sprintf("must gain more than %s", fmtNum(g.Tolerance))
		default:
			why = fmt.Sprintf("unknown rule %q", g.Rule)
		}
		r.rule = why
		if pass {
			r.status = "✅ pass"
		} else {
			r.status = "❌ fail"
			rep.pass = false
			rep.failed = append(rep.failed, fmt.Sprintf("%s: %s → %s (%s)", name, r.base, r.cand, why))
		}
		gates = append(gates, r)
	}

	var b strings.Builder
	verdict := "✅ gates passed: merging promotes this model"
	if !rep.pass {
		verdict = "❌ gates failed: this model must not be promoted"
	}
	fmt.Fprintf(&b, "## medcad report: model `%s`\n\n**%s**\n\n", mdCode(in.cand.Name), verdict)
	fmt.Fprintf(&b, "Candidate: %s, run `%s`. Baseline: %s.\n\n", mdEscape(in.candRef), mdCode(in.cand.Run), mdEscape(baseName(in)))
	if len(gates) > 0 {
		b.WriteString("| gate | rule | baseline | candidate | result |\n|---|---|---:|---:|---|\n")
		for _, g := range gates {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", mdEscape(g.name), mdEscape(g.rule), g.base, g.cand, g.status)
		}
		b.WriteString("\n")
	} else {
		b.WriteString("No promotion gates are configured ([promote.gate] in medcad.toml).\n\n")
	}

	names := map[string]bool{}
	for k := range in.cand.Metrics {
		names[k] = true
	}
	if in.base != nil {
		for k := range in.base.Metrics {
			names[k] = true
		}
	}
	keys := sortedKeys(names)
	if len(keys) > 0 {
		b.WriteString("### Metrics\n\n| metric | baseline | candidate | change |\n|---|---:|---:|---|\n")
		for _, k := range keys {
			c, okC := in.cand.Metrics[k]
			var bv float64
			okB := false
			if in.base != nil {
				bv, okB = in.base.Metrics[k]
			}
			cs, bs, change := "—", "—", ""
			if okC {
				cs = fmtNum(c)
			}
			if okB {
				bs = fmtNum(bv)
			}
			if okB && okC {
				d := c - bv
				better := d > 0
				if lowerIsBetter(k) {
					better = d < 0
				}
				switch {
				case math.Abs(d) < 1e-12:
					change = "="
				case better:
					change = fmt.Sprintf("▲ %+.4g (improvement)", d)
				default:
					change = fmt.Sprintf("▼ %+.4g (regression)", d)
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdEscape(k), bs, cs, change)
		}
		b.WriteString("\n")
	}

	b.WriteString("### Data and parameters\n\n")
	for _, n := range sortedKeys(in.cand.Datasets) {
		state := "unchanged"
		switch {
		case in.base == nil || in.base.Datasets[n] == "":
			state = "**added**"
		case in.base.Datasets[n] != in.cand.Datasets[n]:
			state = "**changed**"
		}
		fmt.Fprintf(&b, "- dataset `%s` %s\n", mdCode(n), state)
	}
	if in.base != nil {
		for _, n := range sortedKeys(in.base.Datasets) {
			if _, ok := in.cand.Datasets[n]; !ok {
				fmt.Fprintf(&b, "- dataset `%s` **removed**\n", mdCode(n))
			}
		}
	}
	for _, k := range sortedKeys(in.cand.Params) {
		old := ""
		if in.base != nil {
			old = in.base.Params[k]
		}
		if old != in.cand.Params[k] {
			fmt.Fprintf(&b, "- param `%s`: `%s` → `%s`\n", mdCode(k), mdCode(old), mdCode(in.cand.Params[k]))
		}
	}
	fmt.Fprintf(&b, "\nArtifact `%s`, code commit `%.12s`.\n", mdCode(in.cand.Artifact), mdCode(in.cand.Commit))
	rep.markdown = b.String()
	return rep, nil
}

func baseName(in reportInput) string {
	if in.base == nil {
		return "none (first model)"
	}
	return in.baseRef + ", run " + in.base.Run
}

func fmtNum(v float64) string {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.4f", v)
}

// mdEscape makes text a user controls (dataset, metric and param names,
// refs) inert in Markdown, also inside a table cell: HTML is written as
// entities, Markdown punctuation is backslash-escaped and line breaks
// become spaces, so it can neither end the comment's hidden marker nor
// start a link, an image or a new table row.
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
		case '\n', '\r', '\t':
			b.WriteByte(' ')
		case '\\', '`', '*', '_', '{', '}', '[', ']', '(', ')', '#', '+', '-', '.', '!', '|', '~', '$', '@', ':':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			if r < 0x20 || r == 0x7f {
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdCode makes text safe inside a `code span`: backticks, line breaks and
// pipes (which end a table cell even in code) are replaced, and angle
// brackets are written as entities so no HTML comment can close.
func mdCode(s string) string {
	return strings.NewReplacer("`", "'", "\n", " ", "\r", " ", "|", "¦", "<", "‹", ">", "›").Replace(s)
}
