package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/medcad/medcad/internal/atomicfile"
	"github.com/medcad/medcad/reports"
	"github.com/spf13/cobra"
)

// comparison compares the two models the command line names, noting on
// stderr when the baseline has no model.
func comparison(ctx context.Context, a *app, s reports.Sides) (*reports.Compared, error) {
	p, err := a.project(ctx)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(a.path(s.Candidate)); s.Candidate != "" && err == nil && fi.Mode().IsRegular() {
		s.Candidate = a.path(s.Candidate) // a manifest file, not a revision
	}
	c, err := reports.CompareSides(ctx, p, s)
	if err == nil && c.FirstModel != nil {
		fmt.Fprintf(a.err, "medcad: %v: comparing as the first model (absolute gates only)\n", c.FirstModel)
	}
	return c, err
}

type reportOptions struct {
	reports.Sides
	format string
	out    string
	assets string
}

func newReportCmd(a *app) *cobra.Command {
	opts := reportOptions{Sides: reports.Sides{MergeBase: true}}
	cmd := &cobra.Command{
		Use:   "report [--base REV] [--candidate REV|FILE] [--format md|html|json] [--out FILE]",
		Short: "Compare the candidate model with its baseline: verdict, metrics with CIs, cases, data/params/env changes",
		Long: `Compare a candidate model with the baseline model and apply the promotion
gates of the baseline's medcad.toml.

The baseline is the model manifest at --base (default: the merge base of
HEAD with the default branch); the candidate is the manifest in the working
tree, at --candidate REV, or in the file --candidate FILE. Each model's
per-case evaluation is read from the store (fetched from the remote when it
is not cached).

The report holds, in order: the verdict and the gates with their numbers;
per metric the baseline and candidate means and the paired difference with
a 95% bootstrap interval and a Wilcoxon p-value; the worst regressions and
best improvements per case and the cases only one model evaluated; dataset,
labelling-rule, params and environment-lock changes; lineage; plots.

--format md (default) is GitHub Markdown for a PR comment (at most 65,536
characters); html is one self-contained page with the plots; json is for
machines (--json is the same as --format json). --assets DIR writes the
plots as PNG files into DIR and links them from the Markdown.

The report's exit status is 0 whatever the verdict; 'medcad gate' exits 3
when the candidate is blocked. See docs/reports.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReport(cmd.Context(), a, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Base, "base", "", "baseline `REV` (default: merge base with the default branch)")
	f.StringVar(&opts.Candidate, "candidate", "", "candidate `REV` or manifest FILE (default: the working tree)")
	f.StringVar(&opts.format, "format", "md", "md, html or json")
	f.StringVar(&opts.out, "out", "", "write the report to `FILE` (atomically) instead of stdout")
	f.StringVar(&opts.assets, "assets", "", "write the plots as PNG into `DIR` and link them from the Markdown")
	return cmd
}

func runReport(ctx context.Context, a *app, opts reportOptions) error {
	if a.json {
		opts.format = "json"
	}
	switch opts.format {
	case "md", "html", "json":
	default:
		return usagef("report: --format %q: want md, html or json", opts.format)
	}
	if opts.assets != "" && opts.format != "md" {
		return usagef("report: --assets is for --format md (html embeds the plots)")
	}
	c, err := comparison(ctx, a, opts.Sides)
	if err != nil {
		return err
	}
	var body []byte
	switch opts.format {
	case "json":
		body, err = reports.JSON(c.Comparison)
	case "html":
		var plots []reports.Plot
		if plots, err = c.Plots(ctx); err == nil {
			body, err = reports.HTML(c.Comparison, plots)
		}
	default:
		mo := reports.MarkdownOptions{}
		if opts.assets != "" {
			if mo.Plots, err = c.Plots(ctx); err != nil {
				return err
			}
			if err := writePlots(opts.assets, mo.Plots); err != nil {
				return err
			}
			mo.ImageBase = assetLink(opts.out, opts.assets)
		}
		body = []byte(reports.Markdown(c.Comparison, mo))
	}
	if err != nil {
		return err
	}
	if opts.out == "" {
		_, err = a.out.Write(body)
		return err
	}
	if err := atomicfile.WriteFile(opts.out, body, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintf(a.err, "wrote %s (%s)\n", opts.out, verdictWord(c.Verdict))
	return nil
}

// assetLink is the link prefix of the plots in DIR, relative to the
// report file's folder.
func assetLink(out, dir string) string {
	from := "."
	if out != "" {
		from = filepath.Dir(out)
	}
	rel, err := filepath.Rel(from, dir)
	if err != nil {
		rel = dir
	}
	return filepath.ToSlash(rel) + "/"
}

func writePlots(dir string, plots []reports.Plot) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range plots {
		if err := atomicfile.WriteFile(filepath.Join(dir, p.Name), p.PNG, 0o644); err != nil {
			return fmt.Errorf("plot %s: %w", p.Name, err)
		}
	}
	return nil
}

func verdictWord(v reports.Verdict) string {
	if v.Promote {
		return "promote"
	}
	return "blocked"
}

type gateOptions struct{ reports.Sides }

func newGateCmd(a *app) *cobra.Command {
	opts := gateOptions{reports.Sides{MergeBase: true}}
	cmd := &cobra.Command{
		Use:   "gate [--base REV] [--candidate REV|FILE]",
		Short: "Apply the promotion gates to the candidate model; exit 3 when blocked",
		Long: `Apply the promotion gates ([[promote.gate]] and max_case_drop in the
baseline's medcad.toml) to the candidate model, as 'medcad report' does, and
print one line per gate with its numbers. With no baseline model (the first
model) only absolute gates (at-least, at-most) apply.

Exit status: 0 when the candidate may be promoted, 3 when a gate failed (the
message names the failing gates and their numbers), 1 on other errors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGate(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().StringVar(&opts.Base, "base", "", "baseline `REV` (default: merge base with the default branch)")
	cmd.Flags().StringVar(&opts.Candidate, "candidate", "", "candidate `REV` or manifest FILE (default: the working tree)")
	return cmd
}

func runGate(ctx context.Context, a *app, opts gateOptions) error {
	c, err := comparison(ctx, a, opts.Sides)
	if err != nil {
		return err
	}
	v := c.Verdict
	for _, w := range c.Warnings {
		if w.Kind == reports.FewPaired || w.Kind == reports.NothingPaired {
			fmt.Fprintf(a.err, "medcad: warning: %s\n", w.Text)
		}
	}
	if a.json {
		if err := a.printJSON(v); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
		for _, g := range v.Gates {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Status, g.Name, g.Message)
		}
		if len(v.Gates) == 0 {
			fmt.Fprintln(tw, "no promotion gates configured")
		}
		if c.Base != nil {
			fmt.Fprintf(tw, "paired\t%d\tcases evaluated by both models\n", v.Paired)
		}
		fmt.Fprintf(tw, "verdict\t%s\t%s\n", verdictWord(v), v.Source)
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if v.Promote {
		return nil
	}
	var msgs []string
	for _, g := range v.Failed() {
		msgs = append(msgs, g.Name+": "+g.Message)
	}
	return fmt.Errorf("blocked by %s: %w", strings.Join(msgs, "; "), errCheckFailed)
}

type metricsDiffOptions struct {
	md bool
}

func newMetricsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Compare model metrics between revisions",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var opts metricsDiffOptions
	diff := &cobra.Command{
		Use:   "diff [REV1 [REV2]] [--md|--json]",
		Short: "Per-metric means of two models with the paired Δ, its 95% CI and p-value",
		Long: `Compare the metrics of the model at REV1 (default HEAD) with the model at
REV2 (default: the working tree), pairing the cases both evaluated: baseline
and candidate means, mean paired difference, its 95% bootstrap interval and
the Wilcoxon signed-rank p-value. --md prints a Markdown table, --json the
rows as JSON. No gates are applied (see 'medcad gate').`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var s reports.Sides
			if len(args) > 0 {
				s.Base = args[0]
			}
			if len(args) > 1 {
				s.Candidate = args[1]
			}
			return runMetricsDiff(cmd.Context(), a, s, opts)
		},
	}
	diff.Flags().BoolVar(&opts.md, "md", false, "Markdown table")
	cmd.AddCommand(diff)
	return cmd
}

func runMetricsDiff(ctx context.Context, a *app, s reports.Sides, opts metricsDiffOptions) error {
	if opts.md && a.json {
		return usagef("metrics diff: --md and --json exclude each other")
	}
	c, err := comparison(ctx, a, s)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(struct {
			Base      string               `json:"base"`
			Candidate string               `json:"candidate"`
			Paired    int                  `json:"paired"`
			Metrics   []reports.MetricDiff `json:"metrics"`
		}{c.BaseRef(), c.Candidate.Ref, len(c.Cases), c.Metrics})
	}
	return reports.WriteMetricsTable(a.out, c.Comparison, opts.md)
}
