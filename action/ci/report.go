package ci

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/reports"
	"github.com/medcad/medcad/stages/metrics"
)

// reportInput is what a pull request's report compares: the model on the
// base branch (nil for the first model) and the candidate in the working
// tree, and where their evaluations are read from.
type reportInput struct {
	dir       string // the project root
	cfg       gitops.Config
	base      *gitops.Model
	baseRev   string // the base branch's revision, e.g. refs/remotes/origin/main
	baseRef   string // how the report names it, e.g. "main@1a2b3c4d5e6f"
	candRef   string
	imageBase string // URL prefix the report's images are linked with ("": no images)
	repo      *git.Repository
	store     *cas.Store
	remote    cas.Backend // nil: evaluations only from the local cache
	cost      string      // a Markdown line on what the run cost ("": none)
}

// reportImage is a PNG the report links; CI commits it to the assets
// branch under its name.
type reportImage struct {
	name string
	png  []byte
}

// prReport is a finished report: the gate verdict and its renderings.
type prReport struct {
	pass     bool
	failed   []string // the gates that failed, one line each
	markdown string
	images   []reportImage
}

// buildReport is the pull request's report from the reports package:
// per-case paired comparison, confidence intervals, gates and plots. A
// pipeline must write its per-case evaluation in medcad eval's JSON.
func buildReport(ctx context.Context, in reportInput) (*prReport, error) {
	l := &reports.Loader{Dir: in.dir, Repo: in.repo, Store: in.store, Remote: in.remote, Config: in.cfg}
	cand, err := l.WorkTree(ctx)
	if err != nil {
		return nil, evalHint(err)
	}
	cand.Ref = in.candRef
	var base *reports.Side
	if in.base != nil {
		base, err = l.Rev(ctx, in.baseRev)
		if err != nil {
			return nil, evalHint(err)
		}
		base.Ref = in.baseRef
	}
	c, err := reports.Compare(ctx, reports.Input{Base: base, Candidate: cand, Promote: in.cfg.Promote})
	if err != nil {
		return nil, err
	}
	rep := &prReport{pass: c.Verdict.Promote}
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
	if in.cost != "" {
		rep.markdown += "\n" + in.cost + "\n"
	}
	return rep, nil
}

// evalHint adds what to do when a model has no per-case evaluation.
func evalHint(err error) error {
	if errors.Is(err, metrics.ErrBadEval) {
		return fmt.Errorf("%w (the evaluate stage must write per-case results as 'medcad eval --truth-dir … --pred-dir … --json' does)", err)
	}
	return err
}
