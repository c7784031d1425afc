package main

import (
	"context"
	"fmt"
	pl "github.com/medcad/medcad/internal/plural"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/medcad/medcad/gitops"
	"github.com/spf13/cobra"
)

type demoOptions struct {
	dir   string
	keep  bool
	cases int
}

func newDemoCmd(a *app) *cobra.Command {
	var opts demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the medcad lifecycle on synthetic CT in a scratch project",
		Long: `Run the whole medcad lifecycle on synthetic CT phantoms, on this machine,
with no GPU and no cloud account:

  1. medcad init a project (a git repository with medcad.toml and the pipeline)
  2. generate three hospital batches of phantom CT as DICOM with labels
     (the third labelled with rules v2, the first two with v1)
  3. data add the first two batches (de-identified, validated, versioned)
  4. repro: ingest → nnU-Net dataset → train → predict → evaluate → surfaces
  5. repro again: every stage is cached
  6. add the third batch: only its cases are ingested, then the model retrains
  7. the promotion gates and the baseline-comparison report against the
     model before the third batch (report.md is the PR comment, report.html)
  8. the run list and a metrics diff between the two runs

The project is left in --dir (default: a temporary folder, removed unless
--keep).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().StringVar(&opts.dir, "dir", "", "project folder (default: a new temporary folder)")
	cmd.Flags().BoolVar(&opts.keep, "keep", false, "keep the temporary project folder")
	cmd.Flags().IntVar(&opts.cases, "cases", 4, "cases per batch")
	return cmd
}

// demo runs medcad commands in-process against one project, as a user
// would type them, and narrates.
type demo struct {
	ctx   context.Context
	a     *app
	dir   string
	start time.Time
}

// step prints a heading: the command a user would type.
func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.a.err, "\n\033[1m==> %s\033[0m\n", fmt.Sprintf(format, args...))
}

// medcad runs one medcad command in the project; its output goes where the
// demo's goes.
func (d *demo) medcad(args ...string) error {
	full := append([]string{"-C", d.dir}, args...)
	if code := run(d.ctx, full, d.a.streams); code != exitOK {
		return fmt.Errorf("medcad %s: exit status %d", strings.Join(args, " "), code)
	}
	return nil
}

func runDemo(ctx context.Context, a *app, opts demoOptions) error {
	if opts.cases < 1 {
		return usagef("demo: --cases %d: want at least 1", opts.cases)
	}
	dir := opts.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "medcad-demo-")
		if err != nil {
			return err
		}
		dir = tmp
		if !opts.keep {
			defer os.RemoveAll(tmp)
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	d := &demo{ctx: ctx, a: a, dir: dir, start: time.Now()}
	if !a.colour(a.err) {
		d.a = &app{streams: streams{in: a.in, out: a.out, err: stripANSI{a.err}, terminal: a.terminal}, log: a.log}
	}
	incoming := filepath.Join(dir, ".medcad", "incoming") // hospital deliveries, outside the versioned tree

	d.step("medcad init %s", dir)
	if err := d.medcad("init", dir); err != nil {
		return err
	}
	if err := d.commit("medcad init"); err != nil {
		return err
	}
	d.step("three hospital batches of synthetic CT (DICOM with fake patient identities) and labels")
	batches := []struct{ name, rules, seed string }{{"batch1", "v1", "101"}, {"batch2", "v1", "202"}, {"batch3", "v2", "303"}}
	for _, b := range batches {
		if err := d.medcad("phantom", "--out", filepath.Join(incoming, b.name), "--cases", fmt.Sprint(opts.cases),
			"--seed", b.seed, "--label-rules", b.rules, "--format", "dicom"); err != nil {
			return err
		}
	}
	for _, b := range batches[:2] {
		d.step("medcad data add %s --name %s --label-rules %s", filepath.Join(".medcad", "incoming", b.name), b.name, b.rules)
		if err := d.medcad("data", "add", filepath.Join(incoming, b.name), "--name", b.name, "--label-rules", b.rules); err != nil {
			return err
		}
	}
	if err := d.commit("data: batch1 and batch2"); err != nil {
		return err
	}
	d.step("medcad repro   # ingest → dataset → train → predict → evaluate → surface")
	if err := d.medcad("repro"); err != nil {
		return err
	}
	if err := d.metrics(); err != nil {
		return err
	}
	if err := d.commit("model trained on batch1 and batch2"); err != nil {
		return err
	}
	d.step("medcad repro   # nothing changed: every stage is cached")
	if err := d.medcad("repro"); err != nil {
		return err
	}
	b := batches[2]
	d.step("medcad data add %s --name %s --label-rules %s   # a new batch arrives", filepath.Join(".medcad", "incoming", b.name), b.name, b.rules)
	if err := d.medcad("data", "add", filepath.Join(incoming, b.name), "--name", b.name, "--label-rules", b.rules); err != nil {
		return err
	}
	if err := d.commit("data: batch3"); err != nil {
		return err
	}
	d.step("medcad status")
	if err := d.medcad("status"); err != nil {
		return err
	}
	d.step("medcad repro   # only the new cases are ingested; the model retrains")
	if err := d.medcad("repro"); err != nil {
		return err
	}
	if err := d.metrics(); err != nil {
		return err
	}
	d.step("medcad gate --base HEAD~1   # the promotion gates against the model committed before batch3")
	if err := d.gate(); err != nil {
		return err
	}
	d.step("medcad report --base HEAD~1 --format html --out report.html")
	if err := d.medcad("report", "--base", "HEAD~1", "--format", "html", "--out", filepath.Join(d.dir, "report.html")); err != nil {
		return err
	}
	if err := d.medcad("report", "--base", "HEAD~1", "--format", "md", "--out", filepath.Join(d.dir, "report.md")); err != nil {
		return err
	}
	fmt.Fprintf(d.a.err, "the pull-request comment: %s\nthe HTML report:        %s\n", filepath.Join(d.dir, "report.md"), filepath.Join(d.dir, "report.html"))
	if err := d.commit("retrained with batch3"); err != nil {
		return err
	}
	d.step("medcad runs list")
	if err := d.medcad("runs", "list"); err != nil {
		return err
	}
	ids, err := d.runIDs()
	if err != nil {
		return err
	}
	if len(ids) >= 2 {
		d.step("medcad runs diff %s %s", ids[len(ids)-2], ids[len(ids)-1])
		if err := d.medcad("runs", "diff", ids[len(ids)-2], ids[len(ids)-1]); err != nil {
			return err
		}
	}
	d.summary(opts.keep || opts.dir != "")
	return nil
}

// commit records the project's committed files with go-git.
func (d *demo) commit(msg string) error {
	repo, err := git.PlainOpen(d.dir)
	if err != nil {
		return err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return err
	}
	_, err = wt.Commit(msg, &git.CommitOptions{AllowEmptyCommits: true, Author: demoSignature()})
	return err
}

// gate runs medcad gate; a blocked verdict (exit 3) is part of the story,
// not a failure of the demo.
func (d *demo) gate() error {
	full := []string{"-C", d.dir, "gate", "--base", "HEAD~1"}
	switch code := run(d.ctx, full, d.a.streams); code {
	case exitOK:
		return nil
	case exitCheckFailed:
		fmt.Fprintln(d.a.err, "(blocked: the third batch follows labelling rules v2, so the ground truth changed; the report says so)")
		return nil
	default:
		return fmt.Errorf("medcad gate: exit status %d", code)
	}
}

// metrics prints the evaluation of the current model as a table.
func (d *demo) metrics() error {
	m, err := gitops.ReadModel(d.dir, gitops.Default().Project.Model)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.a.out, "\nmodel %s on %s (label rules %s), run %s\n", m.Artifact.Short(), plural(len(m.Datasets), "dataset"), m.LabelRules, m.Run)
	tw := tabwriter.NewWriter(d.a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tmean over cases")
	keys := sortedKeys(m.Metrics)
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%.4f\n", k, m.Metrics[k])
	}
	return tw.Flush()
}

func (d *demo) runIDs() ([]string, error) {
	repo, err := git.PlainOpen(d.dir)
	if err != nil {
		return nil, err
	}
	runs, err := gitops.ListRuns(repo)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return ids, nil
}

func (d *demo) summary(kept bool) {
	fmt.Fprintf(d.a.err, "\ndemo finished in %s.\n", time.Since(d.start).Round(100*time.Millisecond))
	if kept {
		fmt.Fprintf(d.a.err, "project: %s\n  data/*.dataset.toml   dataset pointers (committed)\n  models/bone.model.toml model manifest (committed)\n  medcad.lock            pipeline state (committed)\n  build/eval/eval.json   per-case metrics\n  build/surfaces/*.stl   bone surfaces\n", d.dir)
	} else {
		fmt.Fprintln(d.a.err, "(run with --keep or --dir DIR to keep the project)")
	}
}

// stripANSI drops the bold escape sequences of step headings when colour is
// off (a pipe or NO_COLOR).
type stripANSI struct{ w io.Writer }

func (s stripANSI) Write(p []byte) (int, error) {
	clean := strings.NewReplacer("\033[1m", "", "\033[0m", "").Replace(string(p))
	if _, err := io.WriteString(s.w, clean); err != nil {
		return 0, err
	}
	return len(p), nil
}

func demoSignature() *object.Signature {
	return &object.Signature{Name: "medcad demo", Email: "demo@medcad.invalid", When: time.Now()}
}

// plural writes a count with its noun: "1 case", "2 cases".
func plural[N int | int64](n N, noun string) string { return pl.Of(n, noun) }
