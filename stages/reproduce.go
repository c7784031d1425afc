package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
)

// ReproOptions configure Reproduce: a repro of a whole project that
// records the run and writes the model manifest.
type ReproOptions struct {
	Version   string                  // medcad's build: the key of built-in commands without an algorithm version
	Algorithm func(run string) string // what a built-in command computes (see Options.Algorithm)
	Exe       string                  // the medcad executable that runs built-in commands
	Python    string                  // the interpreter whose version the run record notes
	Jobs      int                     // 0: number of CPUs, at least 2
	Force     bool
	DryRun    bool
	ShardI    int
	ShardN    int
	Stages    []string
	Push      bool // send new results and run-cache entries to the remote
	Lazy      bool // materialise outs only where a stage that runs reads them (Options.Lazy)
	Measure   bool // fill Outcome.Fetched and PeakDisk
	// CacheNamespace keeps the run-cache entries this repro writes apart
	// from the trusted ones ("pr-12" for a pull request's job; see CAS).
	CacheNamespace string
	OnEvent        func(Event) // one call at a time, in the order of Result.Events
	Stdout         io.Writer   // stage commands' output
	CheckpointDir  string      // see Options.CheckpointDir
}

// Outcome is what Reproduce did.
type Outcome struct {
	*Result
	Run   *gitops.Run   // the run recorded (or found again when resumed); nil when nothing ran
	Saved bool          // Run was written now (false: an interrupted repro had saved it)
	Model *gitops.Model // the model manifest written; nil when the pipeline trains none
	// With Measure: the bytes read from the remote, and the most bytes the
	// project folder (work tree and cache, .git aside) grew by, sampled
	// as each stage finished.
	Fetched  int64
	PeakDisk int64
}

// Reproduce brings project p's pipeline up to date and, when something ran
// (or an interrupted repro did the work but was stopped before recording
// it), records the run in git and writes the model manifest. It holds the
// store's lock shared throughout, so a gc waits for it.
func Reproduce(ctx context.Context, p *gitops.Project, o ReproOptions) (*Outcome, error) {
	remote, err := p.Remote(ctx)
	switch {
	case err != nil && o.Push:
		return nil, fmt.Errorf("repro --push: %w", err)
	case err != nil:
		p.Log.Debug("remote unavailable; run cache is local only", "err", err)
		remote = nil
	case o.Push && !o.DryRun:
		// Find out now, not after hours of training, that results cannot
		// be pushed.
		if err := reachable(ctx, remote); err != nil {
			return nil, fmt.Errorf("repro --push: %w", err)
		}
	}
	jobs := o.Jobs
	if jobs == 0 {
		jobs = max(2, runtime.NumCPU())
	}
	// Shared for the whole run: outs are stored, and cached results
	// reused, before medcad.lock and the run record name them.
	unlock, err := p.LockStore(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	store := NewCAS(p.Store, remote, o.Push, o.Jobs)
	store.Namespace = o.CacheNamespace
	store.Meter = p.Meter
	defer store.Close()
	data := NewPointers(p.Root, store)
	data.Holdout = p.Config.Data.Holdout
	plan, err := NewPlan(p.Config, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gitops.ConfigFile, err)
	}
	started := time.Now()
	onEvent := o.OnEvent
	var disk *DiskPeak
	fetched := p.Fetched().Bytes()
	if o.Measure {
		disk = NewDiskPeak(p.Root)
		onEvent = func(e Event) {
			if e.Case == "" {
				disk.Sample()
			}
			if o.OnEvent != nil {
				o.OnEvent(e)
			}
		}
	}
	res, err := Repro(ctx, Options{
		Dir: p.Root, Config: p.Config, Plan: plan, Store: store, Data: data,
		Version: o.Version, Algorithm: o.Algorithm, Exe: o.Exe, Jobs: jobs,
		Force: o.Force, DryRun: o.DryRun, ShardI: o.ShardI, ShardN: o.ShardN, Stages: o.Stages,
		OnEvent: onEvent, Stdout: o.Stdout, Lazy: o.Lazy, CheckpointDir: o.CheckpointDir,
	})
	out := &Outcome{Result: res}
	defer func() {
		if o.Measure {
			out.Fetched, out.PeakDisk = p.Fetched().Bytes()-fetched, disk.Sample()
		}
	}()
	if err != nil || o.DryRun || o.ShardN > 0 {
		return out, err
	}
	readStored := func(digest, rel string) ([]byte, error) { return store.ReadFile(ctx, digest, rel, 1<<20) }
	r := recorder{p: p, plan: plan, data: data, res: res, started: started, python: o.Python, readStored: readStored}
	switch {
	case res.Ran():
		err = r.record(ctx, out, false)
	case r.modelBehind():
		// An earlier repro did the work but was stopped before it
		// recorded the run and wrote the model manifest.
		err = r.record(ctx, out, true)
	}
	return out, err
}

// reachable asks remote for an object that does not exist: anything but
// "not found" means it cannot be used.
func reachable(ctx context.Context, remote cas.Backend) error {
	_, err := remote.Stat(ctx, "runcache/.probe")
	if err == nil || errors.Is(err, cas.ErrNotFound) {
		return nil
	}
	return fmt.Errorf("remote %s: %w", remote, err)
}

// recorder writes the run record and model manifest of one repro.
type recorder struct {
	p       *gitops.Project
	plan    *Plan
	data    *Pointers
	res     *Result
	started time.Time
	python  string
	// readStored reads a file of a stored tree (metrics of outs left in
	// the store).
	readStored func(digest, rel string) ([]byte, error)
}

// modelBehind reports whether the lock holds a trained model that the
// model manifest does not name (missing, or naming another artifact).
func (r recorder) modelBehind() bool {
	cfg := r.p.Config
	tl := r.res.Lock.Stages[cfg.Project.TrainStage]
	if tl == nil || tl.Out == "" {
		return false
	}
	m, err := gitops.ReadModel(r.p.Root, cfg.Project.Model)
	return err != nil || gitops.DigestText(m.Artifact) != tl.Out
}

// record writes the run record into git (refs/medcad/runs/<id>) and, when
// the pipeline trains a model, the model manifest. resumed: the work was
// done by an earlier, interrupted repro; its run record is reused when it
// was saved.
func (r recorder) record(ctx context.Context, out *Outcome, resumed bool) error {
	repo, err := r.p.Repo()
	if err != nil {
		return err
	}
	run, err := NewRun(RecordOptions{
		Dir: r.p.Root, Plan: r.plan, Lock: r.res.Lock, Result: r.res, Started: r.started,
		Facts: EnvFacts(ctx, r.python), Datasets: r.data, Git: ReadGitState(repo),
		Resumed: resumed, ReadStored: r.readStored,
	})
	if err != nil || run == nil {
		return err
	}
	saved := false // the interrupted repro saved its run record
	if resumed {
		if prev := savedRun(repo, run.Key); prev != nil {
			run, saved = prev, true
		}
	}
	model, err := NewModel(r.p.Config, r.plan, r.res.Lock, run, r.data)
	if err != nil {
		return err
	}
	out.Run = run
	if !saved {
		if model != nil {
			run.Artifact, run.Eval = model.Artifact, model.Eval
		}
		if err := gitops.SaveRun(repo, run); err != nil {
			return err
		}
		out.Saved = true
	}
	if model == nil {
		return nil
	}
	if err := model.Write(r.p.Root); err != nil {
		return err
	}
	out.Model = model
	return nil
}

// savedRun is the run record of the given key, or nil.
func savedRun(repo *git.Repository, key string) *gitops.Run {
	runs, err := gitops.ListRuns(repo)
	if err != nil {
		return nil
	}
	for _, r := range runs {
		if r.Key == key {
			return r
		}
	}
	return nil
}
