// Package stages is medcad's pipeline engine: the stage graph declared in
// medcad.toml, cache keys, the runner that restores or runs each stage (per
// case for foreach stages), and the lock that records the result.
package stages

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/medcad/medcad/gitops"
)

// Stage is a validated stage with its deps sorted by kind.
type Stage struct {
	gitops.Stage
	Upstream []string // stages it depends on, by name or through a path under their outs
	Datasets []string // dataset names (data/<name>.dataset.toml)
	Named    []string // the datasets its deps name one by one (not through data/*)
	Paths    []string // workspace files or folders
}

// Plan is a validated stage graph in a deterministic topological order.
type Plan struct {
	Stages []*Stage
	byName map[string]*Stage
}

// Stage returns the named stage, or nil.
func (p *Plan) Stage(name string) *Stage { return p.byName[name] }

// Workspace answers what a dep names; the planner never touches disk.
type Workspace interface {
	IsDataset(name string) bool
	Datasets() []string // every dataset, sorted
	PathExists(rel string) bool
}

// AllDatasets is the dep that names every dataset of the project, so a
// new data batch joins the pipeline without editing medcad.toml.
const AllDatasets = "data/*"

// PlanError is a validation problem of one stage.
type PlanError struct {
	Stage string
	Msg   string
}

func (e *PlanError) Error() string {
	if e.Stage == "" {
		return "pipeline: " + e.Msg
	}
	return fmt.Sprintf("stage %q: %s", e.Stage, e.Msg)
}

var placeholderRE = regexp.MustCompile(`\{([^{}\s]*)\}`)

// NewPlan validates the stages of cfg: unknown deps, outs claimed by two
// stages, placeholders that name undeclared outs or deps, foreach stages
// without cases, and cycles are errors naming the stage. It returns the
// first problem; [Check] returns them all.
func NewPlan(cfg gitops.Config, ws Workspace) (*Plan, error) {
	p, problems := newPlan(cfg, ws)
	if len(problems) > 0 {
		return nil, problems[0].Err
	}
	return p, nil
}

// Problem is one validation error of medcad.toml, with where it is: the
// index of the [[stage]] table and its key ("deps", "outs", "run",
// "foreach"), so that a caller holding the file can name the line.
type Problem struct {
	Stage int    // index into cfg.Stages; -1 for the pipeline as a whole
	Key   string // the stage's key, or a full key such as "params.train.epochs" when Stage is -1
	Err   error
}

func newPlan(cfg gitops.Config, ws Workspace) (*Plan, []Problem) {
	p := &Plan{byName: map[string]*Stage{}}
	index := map[string]int{}
	for i, s := range cfg.Stages {
		p.byName[s.Name] = &Stage{Stage: s}
		p.Stages = append(p.Stages, p.byName[s.Name])
		index[s.Name] = i
	}
	var problems []Problem
	fail := func(s *Stage, key, format string, args ...any) {
		problems = append(problems, Problem{index[s.Name], key, &PlanError{s.Name, fmt.Sprintf(format, args...)}})
	}
	owner := map[string]string{} // out path → stage
	for _, s := range p.Stages {
	outs:
		for _, o := range s.Outs {
			if err := checkRelPath(o); err != nil {
				fail(s, "outs", "out %q: %v", o, err)
				continue
			}
			for other, st := range owner {
				if other == o || isUnder(o, other) || isUnder(other, o) {
					fail(s, "outs", "output %q is also claimed by stage %q (%q)", o, st, other)
					continue outs
				}
			}
			owner[o] = s.Name
		}
	}
	for _, s := range p.Stages {
		for _, d := range s.Deps {
			switch {
			case d == AllDatasets:
				for _, n := range ws.Datasets() {
					s.Datasets = appendUnique(s.Datasets, n)
				}
			case p.byName[d] != nil:
				if d == s.Name {
					fail(s, "deps", "depends on itself")
					continue
				}
				s.Upstream = appendUnique(s.Upstream, d)
			case ws.IsDataset(strings.TrimPrefix(d, "data/")):
				s.Datasets = appendUnique(s.Datasets, strings.TrimPrefix(d, "data/"))
				s.Named = appendUnique(s.Named, strings.TrimPrefix(d, "data/"))
			default:
				if err := checkRelPath(d); err != nil {
					fail(s, "deps", "dep %q is not a stage, a dataset or a workspace path", d)
					continue
				}
				if up := ownerOf(owner, d); up != "" {
					if up == s.Name {
						fail(s, "deps", "dep %q is its own output", d)
						continue
					}
					s.Upstream = appendUnique(s.Upstream, up)
					continue
				}
				if !ws.PathExists(d) {
					fail(s, "deps", "dep %q is not a stage, a dataset or a workspace path", d)
					continue
				}
				s.Paths = appendUnique(s.Paths, d)
			}
		}
		for _, msg := range p.checkPlaceholders(s) {
			fail(s, "run", "%s", msg)
		}
	}
	if cyc := p.sort(); cyc != nil {
		fail(p.byName[cyc[0]], "deps", "dependency cycle among stages %s", strings.Join(cyc, ", "))
		return nil, problems
	}
	for _, s := range p.Stages {
		if s.Foreach == "case" && len(p.DatasetsOf(s)) == 0 && !p.reachesAllData(s) {
			fail(s, "foreach", `foreach = "case" but no dataset among its deps`)
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return p, nil
}

// checkPlaceholders validates the {…} references of a stage's run command
// and returns a message per bad one.
func (p *Plan) checkPlaceholders(s *Stage) []string {
	var bad []string
	for _, m := range placeholderRE.FindAllStringSubmatch(s.Run, -1) {
		ref := m[1]
		switch {
		case ref == "out":
			if len(s.Outs) == 0 {
				bad = append(bad, "uses {out} but declares no outs")
			}
		case ref == "params" || ref == "params.toml":
		case ref == "case" || ref == "case.image" || ref == "case.label" || ref == "case.split":
			if s.Foreach != "case" {
				bad = append(bad, fmt.Sprintf("uses {%s} but is not a foreach = \"case\" stage", ref))
			}
		case strings.HasPrefix(ref, "data."):
			name := strings.TrimPrefix(ref, "data.")
			if !slices.Contains(s.Datasets, name) {
				bad = append(bad, fmt.Sprintf("uses {%s} but dataset %q is not among its deps", ref, name))
			}
		case strings.HasSuffix(ref, ".out"):
			up := strings.TrimSuffix(ref, ".out")
			switch {
			case p.byName[up] == nil:
				bad = append(bad, fmt.Sprintf("uses {%s} but there is no stage %q", ref, up))
			case !slices.Contains(s.Upstream, up):
				bad = append(bad, fmt.Sprintf("uses {%s} but %q is not among its deps", ref, up))
			case len(p.byName[up].Outs) == 0:
				bad = append(bad, fmt.Sprintf("uses {%s} but stage %q declares no outs", ref, up))
			}
		default:
			bad = append(bad, fmt.Sprintf("unknown placeholder {%s} (want {out}, {params}, {params.toml}, {STAGE.out}, {data.NAME}, {case}, {case.image}, {case.label}, {case.split})", ref))
		}
	}
	return bad
}

// sort orders stages topologically, ties broken by declaration order; on
// a cycle it returns the stages on or behind it, in declaration order.
func (p *Plan) sort() []string {
	indeg := map[string]int{}
	down := map[string][]string{}
	for _, s := range p.Stages {
		indeg[s.Name] += 0
		for _, u := range s.Upstream {
			indeg[s.Name]++
			down[u] = append(down[u], s.Name)
		}
	}
	pos := map[string]int{}
	for i, s := range p.Stages {
		pos[s.Name] = i
	}
	var ready, order []string
	for _, s := range p.Stages {
		if indeg[s.Name] == 0 {
			ready = append(ready, s.Name)
		}
	}
	for len(ready) > 0 {
		sort.Slice(ready, func(i, j int) bool { return pos[ready[i]] < pos[ready[j]] })
		n := ready[0]
		ready = ready[1:]
		order = append(order, n)
		for _, d := range down[n] {
			if indeg[d]--; indeg[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	if len(order) < len(p.Stages) {
		var cyc []string
		for _, s := range p.Stages {
			if indeg[s.Name] > 0 {
				cyc = append(cyc, s.Name)
			}
		}
		return cyc
	}
	sorted := make([]*Stage, len(order))
	for i, n := range order {
		sorted[i] = p.byName[n]
	}
	p.Stages = sorted
	return nil
}

// reachesAllData reports whether s depends on data/* directly or upstream:
// such a stage simply has no cases while the project has no dataset.
func (p *Plan) reachesAllData(s *Stage) bool {
	if slices.Contains(s.Deps, AllDatasets) {
		return true
	}
	for _, u := range s.Upstream {
		if p.reachesAllData(p.byName[u]) {
			return true
		}
	}
	return false
}

// DatasetsOf returns the datasets a stage reaches through its deps,
// directly or through upstream stages, sorted.
func (p *Plan) DatasetsOf(s *Stage) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(st *Stage)
	visited := map[string]bool{}
	walk = func(st *Stage) {
		if visited[st.Name] {
			return
		}
		visited[st.Name] = true
		for _, d := range st.Datasets {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
		for _, u := range st.Upstream {
			walk(p.byName[u])
		}
	}
	walk(s)
	sort.Strings(out)
	return out
}

// Names reports whether dataset d reaches s through a dep that names it
// (s's or an upstream stage's), not only through data/*.
func (p *Plan) Names(s *Stage, d string) bool {
	if slices.Contains(s.Named, d) {
		return true
	}
	for _, u := range s.Upstream {
		if p.Names(p.byName[u], d) {
			return true
		}
	}
	return false
}

// Select returns the named stages and everything upstream of them, in run
// order; no names selects every stage.
func (p *Plan) Select(names []string) ([]*Stage, error) {
	if len(names) == 0 {
		return p.Stages, nil
	}
	want := map[string]bool{}
	var mark func(n string)
	mark = func(n string) {
		if want[n] {
			return
		}
		want[n] = true
		for _, u := range p.byName[n].Upstream {
			mark(u)
		}
	}
	for _, n := range names {
		if p.byName[n] == nil {
			return nil, &PlanError{"", fmt.Sprintf("no stage %q in medcad.toml", n)}
		}
		mark(n)
	}
	var out []*Stage
	for _, s := range p.Stages {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out, nil
}

// checkRelPath accepts only clean, relative, non-escaping slash paths.
func checkRelPath(p string) error {
	switch {
	case p == "" || p == ".":
		return fmt.Errorf("empty path")
	case strings.HasPrefix(p, "/") || strings.Contains(p, `\`):
		return fmt.Errorf("not a relative slash path")
	case path.Clean(p) != p:
		return fmt.Errorf("not a clean path")
	case p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("escapes the project")
	}
	return nil
}

// isUnder reports whether p is inside folder dir.
func isUnder(p, dir string) bool { return strings.HasPrefix(p, dir+"/") }

// ownerOf returns the stage whose out is p or holds p.
func ownerOf(owner map[string]string, p string) string {
	for o, s := range owner {
		if o == p || isUnder(p, o) {
			return s
		}
	}
	return ""
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
