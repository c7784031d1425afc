package reports

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/gitops"
)

// Sides names the two models of a comparison as a user gives them.
type Sides struct {
	Base      string // REV; "" = the default
	Candidate string // REV or manifest FILE; "" = the working tree
	// MergeBase: with no base given, use the merge base with the default
	// branch (report, gate); otherwise HEAD (metrics diff).
	MergeBase bool
}

// Compared is a comparison and what it was made from.
type Compared struct {
	*Comparison
	In     Input
	Loader *Loader
	// FirstModel is set when the base revision holds no model: the
	// candidate was compared as the first model (absolute gates only).
	FirstModel error
}

// CompareSides loads both models of project p and compares them; gates
// come from the baseline's medcad.toml so a branch cannot loosen its own
// rules.
func CompareSides(ctx context.Context, p *gitops.Project, s Sides) (*Compared, error) {
	cfg := p.Config
	var repo *git.Repository
	if r, err := p.Repo(); err == nil {
		repo = r
	}
	l := &Loader{Dir: p.Root, Repo: repo, Store: p.Store, Config: cfg}
	if remote, err := p.Remote(ctx); err == nil {
		l.Remote = remote
	} else {
		p.Log.Debug("no remote", "err", err)
	}

	var cand *Side
	var err error
	switch {
	case s.Candidate == "":
		cand, err = l.WorkTree(ctx)
	case isFile(s.Candidate):
		cand, err = l.File(ctx, s.Candidate)
	default:
		cand, err = l.Rev(ctx, s.Candidate)
	}
	if err != nil {
		return nil, fmt.Errorf("candidate: %w", err)
	}

	out := &Compared{Loader: l}
	baseRev, baseNote := s.Base, ""
	if baseRev == "" && repo != nil {
		if s.MergeBase {
			if baseRev, err = l.DefaultBase(); err != nil {
				return nil, err
			}
			baseNote = " (merge base with " + cfg.Project.DefaultBranch + ")"
		} else {
			baseRev = "HEAD"
		}
	}
	in := Input{Candidate: cand, Promote: cfg.Promote, GatesFrom: gitops.ConfigFile + " in the working tree"}
	if baseRev != "" {
		base, err := l.Rev(ctx, baseRev)
		switch {
		case errors.Is(err, gitops.ErrNoModel):
			out.FirstModel = err
		case err != nil:
			return nil, fmt.Errorf("baseline: %w", err)
		default:
			in.Base = base
		}
		if pr, err := l.PromoteAt(baseRev); err == nil {
			in.Promote, in.GatesFrom = pr, gitops.ConfigFile+" at "+shortRev(baseRev)+baseNote
		} else {
			p.Log.Debug("gates from the working tree", "err", err)
		}
	}
	c, err := Compare(ctx, in)
	if err != nil {
		return nil, err
	}
	out.Comparison, out.In = c, in
	return out, nil
}

// Plots draws the charts and the slices of the three worst cases.
func (c *Compared) Plots(ctx context.Context) ([]Plot, error) {
	plots, err := Plots(c.Comparison)
	if err != nil {
		return nil, err
	}
	slices, err := c.Loader.CaseSlices(ctx, c.In, c.Comparison, 3)
	if err != nil {
		return nil, err
	}
	return append(plots, slices...), nil
}

// shortRev shortens a full git commit hash to 12 digits.
func shortRev(rev string) string {
	if len(rev) == 40 {
		return rev[:12]
	}
	return rev
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
