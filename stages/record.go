package stages

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
)

// Metrics reads the metrics every stage of the plan wrote into its first
// out (MEDCAD_METRICS), keyed by metric name; a later stage's value of the
// same name wins. Only numbers are kept.
func Metrics(dir string, p *Plan) (map[string]float64, error) {
	return metricsOf(p, func(s *Stage) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, filepath.FromSlash(s.Outs[0]), MetricsFile))
	})
}

// metricsOf is Metrics with each stage's metrics file read by read.
func metricsOf(p *Plan, read func(*Stage) ([]byte, error)) (map[string]float64, error) {
	out := map[string]float64{}
	for _, s := range p.Stages {
		if len(s.Outs) == 0 || filepath.Ext(s.Outs[0]) != "" {
			continue
		}
		b, err := read(s)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("stage %q: %s: not a JSON object: %w", s.Name, MetricsFile, err)
		}
		for k, v := range m {
			if f, ok := v.(float64); ok {
				out[k] = f
			}
		}
	}
	return out, nil
}

// RecordOptions describe a finished repro to record.
type RecordOptions struct {
	Dir      string
	Plan     *Plan
	Lock     *gitops.Lock
	Result   *Result
	Started  time.Time
	Facts    map[string]string
	Datasets Datasets
	Git      GitState // the code the repro started from
	// Resumed: the work was done by an earlier repro that was stopped
	// before it recorded it; the record lists every stage of the lock.
	Resumed bool
	// ReadStored reads file rel of a stored tree: the metrics of stages
	// whose outs a lazy repro left in the store (Result.Pending).
	ReadStored func(digest, rel string) ([]byte, error)
}

// GitState is the commit a run started from and whether the work tree
// differed from it.
type GitState struct {
	Commit string
	Branch string
	Dirty  bool
}

// ReadGitState reads HEAD and the work tree's cleanliness with go-git.
// What a repro writes itself (medcad.lock, model manifests) does not make
// the tree dirty: the flag says whether the code and config differed from
// the commit.
func ReadGitState(repo *git.Repository) GitState {
	var g GitState
	if head, err := repo.Head(); err == nil {
		g.Commit = head.Hash().String()
		if head.Name().IsBranch() {
			g.Branch = head.Name().Short()
		}
	}
	if wt, err := repo.Worktree(); err == nil {
		if st, err := wt.Status(); err == nil {
			for path, fs := range st {
				if path == gitops.LockFile || strings.HasPrefix(path, gitops.ModelDir+"/") {
					continue
				}
				if fs.Worktree != git.Unmodified || fs.Staging != git.Unmodified {
					g.Dirty = true
					break
				}
			}
		}
	}
	return g
}

// NewRun builds the run record of a repro that ran something: what went in
// (commit, params, datasets, env lock) and what came out (metrics, outs).
// It returns nil when every stage was up to date or restored.
func NewRun(o RecordOptions) (*gitops.Run, error) {
	// The stages that ran, in the plan's order: parallel stages finish in
	// any order, and the record must not depend on it.
	didRun := map[string]bool{}
	for _, e := range o.Result.Events {
		if e.Status == Ran {
			didRun[e.Stage] = true
		}
	}
	var ran []string
	for _, st := range o.Plan.Stages {
		if didRun[st.Name] || (o.Resumed && o.Lock.Stages[st.Name] != nil) {
			ran = append(ran, st.Name)
		}
	}
	if len(ran) == 0 {
		return nil, nil
	}
	r := &gitops.Run{
		Stage:    strings.Join(ran, ","),
		Started:  o.Started.UTC().Truncate(time.Second),
		Finished: time.Now().UTC().Truncate(time.Second),
		Params:   map[string]string{},
		Datasets: map[string]cas.ID{},
		Facts:    o.Facts,
	}
	// The key of a run is the digest of the lock it produced.
	r.Key = keyInput{Run: string(o.Lock.Encode())}.key()
	r.ID = gitops.NewRunID(o.Started, r.Key)
	for _, s := range o.Plan.Stages {
		l := o.Lock.Stages[s.Name]
		if l == nil {
			continue
		}
		for k, v := range l.Params {
			r.Params[k] = v
		}
		var err error
		if l.Env != "" {
			if r.Env, err = cas.ParseID(l.Env); err != nil {
				return nil, fmt.Errorf("%s: stage %s: env: %w", gitops.LockFile, s.Name, err)
			}
		}
		if r.Outs, err = gitops.ParseDigest(l.Out); err != nil { // the last stage's outs
			return nil, fmt.Errorf("%s: stage %s: out: %w", gitops.LockFile, s.Name, err)
		}
	}
	var names []string
	for _, s := range o.Plan.Stages {
		names = append(names, o.Plan.DatasetsOf(s)...)
	}
	sort.Strings(names)
	for _, n := range names {
		d, err := o.Datasets.Digest(n)
		if err != nil {
			continue
		}
		if r.Datasets[n], err = cas.ParseID(d); err != nil {
			return nil, fmt.Errorf("dataset %s: manifest: %w", n, err)
		}
	}
	m, err := metricsOf(o.Plan, func(s *Stage) ([]byte, error) {
		if d, ok := o.Result.Pending[s.Name]; ok && o.ReadStored != nil {
			return o.ReadStored(d, path.Join(s.Outs[0], MetricsFile))
		}
		return os.ReadFile(filepath.Join(o.Dir, filepath.FromSlash(s.Outs[0]), MetricsFile))
	})
	if err != nil {
		return nil, err
	}
	r.Metrics = m
	r.Commit, r.Branch, r.Dirty = o.Git.Commit, o.Git.Branch, o.Git.Dirty
	return r, nil
}

// NewModel builds the model manifest of a recorded run: the train stage's
// outs are the artifact, the eval stage's outs the per-case evaluation. It
// returns nil when the plan has no train stage.
func NewModel(cfg gitops.Config, p *Plan, lock *gitops.Lock, run *gitops.Run, data *Pointers) (*gitops.Model, error) {
	train := p.Stage(cfg.Project.TrainStage)
	tl := lock.Stages[cfg.Project.TrainStage]
	if train == nil || tl == nil || tl.Out == "" {
		return nil, nil
	}
	m := &gitops.Model{
		Schema: 1, Name: cfg.Project.Model, Trainer: train.Run,
		Run: run.ID, Commit: run.Commit, EnvLock: run.Env,
		Datasets: run.Datasets, Params: run.Params, Metrics: run.Metrics,
	}
	var err error
	if m.Artifact, err = cas.ParseID(tl.Out); err != nil {
		return nil, fmt.Errorf("%s: stage %s: out: %w", gitops.LockFile, cfg.Project.TrainStage, err)
	}
	if el := lock.Stages[cfg.Project.EvalStage]; el != nil {
		if m.Eval, err = gitops.ParseDigest(el.Out); err != nil {
			return nil, fmt.Errorf("%s: stage %s: out: %w", gitops.LockFile, cfg.Project.EvalStage, err)
		}
	}
	rules := map[string]bool{}
	for name := range run.Datasets {
		if d, err := data.Pointer(name); err == nil && d.LabelRules != "" {
			rules[d.LabelRules] = true
		}
	}
	keys := make([]string, 0, len(rules))
	for r := range rules {
		keys = append(keys, r)
	}
	sort.Strings(keys)
	m.LabelRules = strings.Join(keys, ",")
	return m, nil
}
