package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/internal/procgroup"
	"golang.org/x/sync/errgroup"
)

// Store is what the runner needs of the content-addressed store.
type Store interface {
	// Snapshot stores the files under root/rel for each rel and returns the
	// digest of the resulting tree (paths relative to root). It is also how
	// deps are hashed: storing is idempotent and the stat index spares
	// reading unchanged files.
	Snapshot(ctx context.Context, root string, rels []string) (string, error)
	// Restore materialises a tree digest under root, replacing what is there
	// at the tree's top-level paths.
	Restore(ctx context.Context, digest, root string) error
	// Lookup and Remember are the run cache: cache key → outs digest, local
	// first, then the remote.
	Lookup(ctx context.Context, key string) (string, bool, error)
	Remember(ctx context.Context, key, digest string) error
}

// Datasets is what the runner needs of the dataset pointers.
type Datasets interface {
	// Digest identifies the dataset's content.
	Digest(name string) (string, error)
	// Cases lists the dataset's cases.
	Cases(name string) ([]CaseRef, error)
	// Checkout makes the dataset's files present and returns their folder.
	Checkout(ctx context.Context, name string) (string, error)
}

// CaseRef is one case of a dataset.
type CaseRef struct {
	ID    string
	Image string // digest of the case's image tree (de-identified DICOM)
	Label string // digest of the case's label tree, "" when unlabelled
	// Split is the case's side of the held-out split ("train", "test"),
	// "" when unlabelled; {case.split}, MEDCAD_CASE_SPLIT.
	Split string
}

// Status says what happened to a stage or case.
type Status string

// MetricsFile is the name of the metrics a stage writes into its first
// (folder) out through MEDCAD_METRICS: a JSON object of numbers.
const MetricsFile = "metrics.json"

// Statuses, in the order a user cares about.
const (
	UpToDate Status = "up to date"
	Restored Status = "restored from cache"
	Ran      Status = "ran"
	WouldRun Status = "would run"
	Skipped  Status = "skipped (shard)"
)

// Event reports progress; the CLI prints it.
type Event struct {
	Stage  string `json:"stage"`
	Case   string `json:"case,omitempty"` // "" for the stage as a whole
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"` // why it is stale
	// Cases counts the cases of a foreach stage by status, on the event
	// that closes the stage (Case == "").
	Cases map[Status]int `json:"cases,omitempty"`
	// Env names the environment variables the stage's command receives
	// (names only: values can be secrets), on a dry run's stage events.
	Env []string `json:"env,omitempty"`
	Err error    `json:"-"`
}

// Options configure a repro.
type Options struct {
	Dir     string // project root
	Config  gitops.Config
	Plan    *Plan
	Store   Store
	Data    Datasets
	Version string // medcad's build, the key of built-in commands that Algorithm does not name
	// Algorithm names what a built-in command computes ("medcad segment
	// train 1"): its stages' keys hold that, so the same commit built by
	// go run, go install or the Action keys alike, and a medcad change
	// that leaves a command's results alone leaves its cache valid.
	Algorithm func(run string) string
	Exe       string // the medcad executable that runs built-in commands
	Jobs      int
	Force     bool
	DryRun    bool
	ShardI    int // with ShardN > 0, only cases whose index % ShardN == ShardI run
	ShardN    int
	Stages    []string // empty: all
	OnEvent   func(Event)
	Stdout    io.Writer // stage commands' output
	// CheckpointDir, when set, is where stages keep what they resume from
	// after an interruption (a spot notice on a GPU runner): each stage gets
	// MEDCAD_CHECKPOINT_DIR=<CheckpointDir>/<stage>.
	CheckpointDir string
	EnvFacts      map[string]string
	// Lazy materialises outs only where a stage that runs reads them: a
	// stage that is up to date, or whose result the run cache has, gets
	// its lock entry and its outs stay in the store (fetched from the
	// remote, and checked out, when a downstream stage runs). Per-case
	// stages get their case, not whole datasets checked out into data/.
	// A per-case stage whose cases come through an upstream per-case
	// stage and whose command names neither {case.image} nor {case.label}
	// (nor MEDCAD_CASE_IMAGE, MEDCAD_CASE_LABEL) is not given them either.
	// A fresh clone (CI) then fetches only what the stages that run need.
	Lazy bool
}

// Result is what a repro did.
type Result struct {
	Lock   *gitops.Lock
	Events []Event
	// Pending names the stages (→ outs digest) whose outs Lazy left in
	// the store: no stage that ran read them.
	Pending map[string]string
}

// Ran reports whether any stage or case ran its command.
func (r *Result) Ran() bool {
	for _, e := range r.Events {
		if e.Status == Ran {
			return true
		}
	}
	return false
}

// Repro brings the selected stages up to date: each stage (or case) whose
// cache key is unchanged is left alone, a key seen before is restored from
// the store, and only the rest run. The lock is written after every stage,
// so an interrupted repro resumes where it stopped.
func Repro(ctx context.Context, o Options) (*Result, error) {
	if o.Jobs < 1 {
		o.Jobs = 1
	}
	sel, err := o.Plan.Select(o.Stages)
	if err != nil {
		return nil, err
	}
	lock, err := gitops.ReadLock(o.Dir)
	if err != nil {
		return nil, err
	}
	r := &runner{o: o, lock: lock, res: &Result{Lock: lock}, stale: map[string]bool{}, paths: map[string]string{}, pending: map[string]*pendingOuts{}}
	envDigest, err := r.envDigest(ctx)
	if err != nil {
		return nil, err
	}
	r.env = envDigest
	err = r.all(ctx, sel)
	for name, p := range r.pending {
		if !p.done.Load() {
			if r.res.Pending == nil {
				r.res.Pending = map[string]string{}
			}
			r.res.Pending[name] = p.digest
		}
	}
	return r.res, err
}

// all runs the selected stages, each as soon as its upstream stages are
// done, at most Jobs at a time; the lock is written after every stage,
// also when one fails, so a rerun starts from there.
func (r *runner) all(ctx context.Context, sel []*Stage) error {
	done := map[string]chan struct{}{}
	for _, s := range sel {
		done[s.Name] = make(chan struct{})
	}
	g, gctx := errgroup.WithContext(ctx)
	slots := make(chan struct{}, r.o.Jobs)
	for _, s := range sel {
		g.Go(func() error {
			for _, u := range s.Upstream {
				if ch, ok := done[u]; ok {
					select {
					case <-ch:
					case <-gctx.Done():
						return gctx.Err()
					}
				}
			}
			if r.o.ShardN > 0 && s.Foreach != "case" {
				close(done[s.Name]) // sharded runs do per-case work only; a full repro joins them
				return nil
			}
			select {
			case slots <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			err := r.stage(gctx, s)
			<-slots
			if werr := r.writeLock(); werr != nil {
				err = errors.Join(err, werr)
			}
			if err != nil {
				return err
			}
			close(done[s.Name])
			return nil
		})
	}
	return g.Wait()
}

// writeLock writes medcad.lock (not in dry or sharded runs).
func (r *runner) writeLock() error {
	if r.o.DryRun || r.o.ShardN > 0 {
		return nil
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.Lock()
	data := r.lock.Encode()
	r.mu.Unlock()
	return gitops.WriteLockBytes(r.o.Dir, data)
}

func (r *runner) entry(name string) *gitops.StageLock {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lock.Stages[name]
}

func (r *runner) setEntry(name string, e *gitops.StageLock) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lock.Stages[name] = e
}

func (r *runner) markStale(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stale[name] = true
}

func (r *runner) isStale(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stale[name]
}

type runner struct {
	o       Options
	paths   map[string]string // workspace dep → digest, hashed once per repro
	lock    *gitops.Lock
	env     string
	mu      sync.Mutex // guards lock.Stages, stale and res.Events
	writeMu sync.Mutex // serialises lock file writes
	eventMu sync.Mutex // serialises OnEvent: stages run in parallel, lines must not interleave
	res     *Result
	stale   map[string]bool         // stages a dry run would run
	pending map[string]*pendingOuts // Lazy: stages whose outs are in the store only
}

func (r *runner) emit(e Event) {
	if s := r.o.Plan.Stage(e.Stage); r.o.DryRun && e.Case == "" && e.Err == nil && s != nil {
		e.Env = r.envNames(s)
	}
	r.eventMu.Lock()
	defer r.eventMu.Unlock()
	r.mu.Lock()
	r.res.Events = append(r.res.Events, e)
	r.mu.Unlock()
	if r.o.OnEvent != nil {
		r.o.OnEvent(e)
	}
}

// envNames are the names of the variables stage s's command gets: the
// contract's and those stageEnv passes from medcad's environment.
func (r *runner) envNames(s *Stage) []string {
	contract := []string{"MEDCAD_STAGE=", "MEDCAD_PARAMS=", "MEDCAD_OUT=", "MEDCAD_METRICS="}
	if r.o.CheckpointDir != "" {
		contract = append(contract, "MEDCAD_CHECKPOINT_DIR=")
	}
	for _, u := range s.Upstream {
		if up := r.o.Plan.Stage(u); up != nil && len(up.Outs) > 0 {
			contract = append(contract, "MEDCAD_INPUT_"+envName(u)+"=")
		}
	}
	for _, d := range r.o.Plan.DatasetsOf(s) {
		if slices.Contains(s.Datasets, d) {
			contract = append(contract, "MEDCAD_INPUT_"+envName(d)+"=")
		}
	}
	if s.Foreach == "case" {
		contract = append(contract, "MEDCAD_CASE=", "MEDCAD_CASE_IMAGE=", "MEDCAD_CASE_LABEL=", "MEDCAD_CASE_SPLIT=")
	}
	var names []string
	for _, kv := range stageEnv(runtime.GOOS, os.Environ(), slices.Concat(r.o.Config.Env.Pass, s.EnvPass), contract) {
		names = append(names, envKey(kv))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// envDigest is the digest over the environment lock files.
func (r *runner) envDigest(ctx context.Context) (string, error) {
	return EnvDigest(ctx, r.o.Store, r.o.Dir, r.o.Config.Env.Lock)
}

// EnvDigest is the digest over the environment lock files under dir, as
// run records and manifests hold it ("" without lock files).
func EnvDigest(ctx context.Context, s Store, dir string, locks []string) (string, error) {
	if len(locks) == 0 {
		return "", nil
	}
	parts := make([]string, 0, len(locks))
	for _, f := range locks {
		d, err := s.Snapshot(ctx, dir, []string{f})
		if err != nil {
			return "", fmt.Errorf("env lock %s: %w", f, err)
		}
		parts = append(parts, f+"="+d)
	}
	return keyInput{Run: strings.Join(parts, "\n")}.key(), nil
}

// inputs computes a stage's dep digests and params.
func (r *runner) inputs(ctx context.Context, s *Stage) (map[string]string, map[string]string, error) {
	deps := map[string]string{}
	for _, u := range s.Upstream {
		l := r.entry(u)
		switch {
		case r.o.DryRun && (r.isStale(u) || l == nil):
			deps[u] = "(pending)" // a dry run did not produce it
		case l == nil || l.Out == "":
			return nil, nil, &PlanError{s.Name, fmt.Sprintf("upstream stage %q has no output yet", u)}
		default:
			deps[u] = l.Out
		}
	}
	for _, d := range s.Datasets {
		dg, err := r.o.Data.Digest(d)
		if err != nil {
			return nil, nil, fmt.Errorf("stage %q: dataset %s: %w", s.Name, d, err)
		}
		deps["data/"+d] = dg
	}
	for _, p := range s.Paths {
		dg, err := r.pathDigest(ctx, p)
		if err != nil {
			return nil, nil, fmt.Errorf("stage %q: dep %s: %w", s.Name, p, err)
		}
		deps[p] = dg
	}
	params, err := flattenParams(r.o.Config.Params, s.Params)
	if err != nil {
		return nil, nil, &PlanError{s.Name, err.Error()}
	}
	return deps, params, nil
}

// pathDigest hashes a workspace dep once per repro: deps are not outs of
// any stage, so nothing in the repro changes them.
func (r *runner) pathDigest(ctx context.Context, p string) (string, error) {
	r.mu.Lock()
	d, ok := r.paths[p]
	r.mu.Unlock()
	if ok {
		return d, nil
	}
	d, err := r.o.Store.Snapshot(ctx, r.o.Dir, []string{p})
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.paths[p] = d
	r.mu.Unlock()
	return d, nil
}

func (r *runner) baseKey(s *Stage, deps, params map[string]string) keyInput {
	k := keyInput{Run: s.Run, Outs: s.Outs, Foreach: s.Foreach, Deps: deps, Params: params}
	if s.Env {
		k.Env = r.env
	}
	if isBuiltin(s.Run) {
		if r.o.Algorithm != nil {
			k.Algorithm = r.o.Algorithm(s.Run)
		}
		if k.Algorithm == "" {
			k.Algorithm = "build " + r.o.Version
		}
	}
	return k
}

// stage brings one stage up to date.
func (r *runner) stage(ctx context.Context, s *Stage) error {
	deps, params, err := r.inputs(ctx, s)
	if err != nil {
		return err
	}
	base := r.baseKey(s, deps, params)
	if s.Foreach == "case" {
		return r.foreach(ctx, s, base)
	}
	key := base.key()
	prev := r.entry(s.Name)
	entry := &gitops.StageLock{Key: key, Deps: deps, Params: params}
	if s.Env {
		entry.Env = r.env
	}
	reason := r.why(s, prev, entry, key)
	if reason == "" && !r.outsIntact(ctx, s, prev.Out) {
		reason = outsMissing
		if r.o.Lazy && !r.o.DryRun {
			if d, ok, err := r.o.Store.Lookup(ctx, key); err == nil && ok {
				// Up to date; its outs are checked out if a stage that
				// runs reads them.
				if err := r.defer_(s, d); err != nil {
					return err
				}
				entry.Out = d
				r.setEntry(s.Name, entry)
				r.emit(Event{Stage: s.Name, Status: UpToDate})
				return nil
			}
		}
	}
	if reason == "" {
		entry.Out = prev.Out
		r.setEntry(s.Name, entry)
		r.emit(Event{Stage: s.Name, Status: UpToDate})
		return nil
	}
	if r.o.DryRun {
		r.markStale(s.Name)
		if reason == outsMissing && !r.restorable(ctx, key) {
			reason = "outputs no longer in the store"
		}
		r.emit(Event{Stage: s.Name, Status: WouldRun, Reason: reason})
		return nil
	}
	out, status, err := r.produce(ctx, s, key, "", r.o.Dir, s.Outs)
	if err != nil {
		r.emit(Event{Stage: s.Name, Err: err})
		return err
	}
	entry.Out = out
	r.setEntry(s.Name, entry)
	r.emit(Event{Stage: s.Name, Status: status, Reason: reason})
	return nil
}

// why says why a stage is stale compared with its previous lock entry, or
// "" when it is up to date.
func (r *runner) why(s *Stage, prev, cur *gitops.StageLock, key string) string {
	var up []string
	for _, u := range s.Upstream {
		if r.isStale(u) {
			up = append(up, u)
		}
	}
	switch {
	case r.o.Force:
		return "forced"
	case len(up) > 0:
		return "upstream stale: " + strings.Join(up, ", ")
	case prev == nil:
		return "not run before"
	case prev.Key == key:
		return ""
	}
	var parts []string
	if d := changedKeys(prev.Deps, cur.Deps); len(d) > 0 {
		parts = append(parts, "deps changed: "+strings.Join(d, ", "))
	}
	var pc []string
	for _, k := range changedKeys(prev.Params, cur.Params) {
		pc = append(pc, fmt.Sprintf("%s %s → %s", k, orNone(prev.Params[k]), orNone(cur.Params[k])))
	}
	if len(pc) > 0 {
		parts = append(parts, "params changed: "+strings.Join(pc, ", "))
	}
	if prev.Env != cur.Env {
		parts = append(parts, "env lock changed")
	}
	if len(parts) == 0 {
		parts = append(parts, "command or medcad version changed")
	}
	return strings.Join(parts, "; ")
}

// changedKeys lists the keys whose values differ between a and b, sorted.
func changedKeys(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// outsMissing is why a stage whose inputs did not change is stale.
const outsMissing = "outs missing or modified"

// restorable reports whether the run cache can restore the outs of key.
func (r *runner) restorable(ctx context.Context, key string) bool {
	_, ok, err := r.o.Store.Lookup(ctx, key)
	return err == nil && ok
}

// outsIntact reports whether the workspace outs still hash to digest.
func (r *runner) outsIntact(ctx context.Context, s *Stage, digest string) bool {
	if len(s.Outs) == 0 {
		return true
	}
	got, err := r.o.Store.Snapshot(ctx, r.o.Dir, s.Outs)
	return err == nil && got == digest
}

// produce restores the outs for key from the run cache or runs the command,
// then records the result. root/outs are where the outs live.
func (r *runner) produce(ctx context.Context, s *Stage, key, caseID, root string, outs []string) (string, Status, error) {
	if !r.o.Force {
		if d, ok, err := r.o.Store.Lookup(ctx, key); err != nil {
			return "", "", err
		} else if ok {
			if r.o.Lazy {
				// A case's result is laid out by its stage's union; a
				// stage's when a stage that runs reads it.
				if caseID != "" {
					return d, Restored, nil
				}
				return d, Restored, r.defer_(s, d)
			}
			if err := r.clearOuts(root, outs); err != nil {
				return "", "", err
			}
			if err := r.o.Store.Restore(ctx, d, root); err != nil {
				return "", "", fmt.Errorf("stage %q: restore %s: %w", s.Name, d, err)
			}
			return d, Restored, nil
		}
	}
	if err := r.clearOuts(root, outs); err != nil {
		return "", "", err
	}
	if err := r.materialiseUpstream(ctx, s); err != nil {
		return "", "", err
	}
	if err := r.exec(ctx, s, caseID, root, outs); err != nil {
		return "", "", err
	}
	for _, o := range outs {
		if _, err := os.Lstat(filepath.Join(root, o)); err != nil {
			return "", "", &PlanError{s.Name, fmt.Sprintf("declared out %q was not produced", o)}
		}
	}
	d, err := r.o.Store.Snapshot(ctx, root, outs)
	if err != nil {
		return "", "", fmt.Errorf("stage %q: store outs: %w", s.Name, err)
	}
	if err := r.o.Store.Remember(ctx, key, d); err != nil {
		return "", "", err
	}
	if r.o.Lazy && caseID != "" {
		// Stored: the union lays it out from the store; the case's work
		// folder (its out, its checked-out image) would be a second copy.
		if err := os.RemoveAll(root); err != nil {
			return "", "", err
		}
	}
	return d, Ran, nil
}

func (r *runner) clearOuts(root string, outs []string) error {
	for _, o := range outs {
		p := filepath.Join(root, filepath.FromSlash(o))
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// foreach runs a per-case stage: only new or changed cases run, the others
// keep their lock entry; the stage's out is the union of the case trees.
func (r *runner) foreach(ctx context.Context, s *Stage, base keyInput) error {
	cases, err := r.casesOf(s)
	if err != nil {
		return err
	}
	prev := r.entry(s.Name)
	entry := &gitops.StageLock{Deps: base.Deps, Params: base.Params, Cases: map[string]*gitops.Case{}}
	if s.Env {
		entry.Env = r.env
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.o.Jobs)
	for i, c := range cases {
		if r.o.ShardN > 0 && i%r.o.ShardN != r.o.ShardI {
			continue
		}
		k := base
		k.Case = c.ID
		k.Deps = r.caseDeps(s, c, base.Deps)
		key := k.key()
		if r.o.DryRun && r.upstreamStale(s) {
			r.markStale(s.Name)
			r.emit(Event{Stage: s.Name, Case: c.ID, Status: WouldRun, Reason: "upstream stale"})
			continue
		}
		if !r.o.Force && prev != nil && prev.Cases[c.ID] != nil && prev.Cases[c.ID].Key == key {
			entry.Cases[c.ID] = prev.Cases[c.ID]
			r.emit(Event{Stage: s.Name, Case: c.ID, Status: UpToDate})
			continue
		}
		if r.o.DryRun {
			r.markStale(s.Name)
			reason := "new case"
			if prev != nil && prev.Cases[c.ID] != nil {
				reason = "case inputs changed"
			}
			r.emit(Event{Stage: s.Name, Case: c.ID, Status: WouldRun, Reason: reason})
			continue
		}
		g.Go(func() error {
			root := filepath.Join(r.o.Dir, ".medcad", "work", s.Name, c.ID)
			d, status, err := r.produce(gctx, s, key, c.ID, root, []string{"out"})
			if err != nil {
				err = fmt.Errorf("case %s: %w", c.ID, err)
				r.emit(Event{Stage: s.Name, Case: c.ID, Err: err})
				return err
			}
			mu.Lock()
			entry.Cases[c.ID] = &gitops.Case{Key: key, Out: d}
			mu.Unlock()
			r.emit(Event{Stage: s.Name, Case: c.ID, Status: status})
			return nil
		})
	}
	err = g.Wait()
	defer func() { r.emit(Event{Stage: s.Name, Status: summaryStatus(r.caseCounts(s)), Cases: r.caseCounts(s)}) }()
	if r.o.DryRun {
		if prev == nil || len(prev.Cases) != len(entry.Cases)+r.caseCounts(s)[WouldRun] {
			r.markStale(s.Name) // cases were removed
		}
		return err
	}
	if r.o.ShardN > 0 {
		return err
	}
	if err != nil {
		// Keep what finished: the lock is written even on failure, so a
		// rerun starts from there. What was not recomputed (the stage's
		// key and outs, the cases that did not finish) stays as it was.
		r.setEntry(s.Name, keepFinished(prev, entry))
		return err
	}
	entry.Key = unionKey(entry.Cases)
	if !r.o.Force && prev != nil && prev.Key == entry.Key && r.outsIntact(ctx, s, prev.Out) {
		entry.Out = prev.Out
		r.setEntry(s.Name, entry)
		return nil
	}
	var out string
	if m, ok := r.o.Store.(merger); ok && r.o.Lazy {
		// The union's manifest now, its files when a stage that runs
		// reads them.
		if out, err = m.Merge(ctx, caseOuts(entry.Cases), s.Outs); err == nil {
			err = r.defer_(s, out)
		}
	} else {
		out, err = r.union(ctx, s, entry.Cases)
	}
	if err != nil {
		return err
	}
	entry.Out = out
	r.setEntry(s.Name, entry)
	return nil
}

// caseCounts counts the case events of a foreach stage by status.
func (r *runner) caseCounts(s *Stage) map[Status]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[Status]int{}
	for _, e := range r.res.Events {
		if e.Stage == s.Name && e.Case != "" && e.Err == nil {
			n[e.Status]++
		}
	}
	return n
}

// keepFinished is the lock entry of a foreach stage that failed: the
// previous entry with the cases that finished now, or, when the stage has
// no previous entry, those cases alone.
func keepFinished(prev, finished *gitops.StageLock) *gitops.StageLock {
	if prev == nil {
		return finished
	}
	kept := *prev
	kept.Cases = maps.Clone(prev.Cases)
	if kept.Cases == nil {
		kept.Cases = map[string]*gitops.Case{}
	}
	maps.Copy(kept.Cases, finished.Cases)
	return &kept
}

// summaryStatus is a foreach stage's status: the most work any case needed.
func summaryStatus(n map[Status]int) Status {
	for _, st := range []Status{Ran, WouldRun, Restored, Skipped} {
		if n[st] > 0 {
			return st
		}
	}
	return UpToDate
}

// upstreamStale reports whether a dry run marked an upstream stage stale.
func (r *runner) upstreamStale(s *Stage) bool {
	for _, u := range s.Upstream {
		if r.isStale(u) {
			return true
		}
	}
	return false
}

// merger is a Store that can lay out a foreach stage's union as a
// manifest without writing its files: the case trees' "out/…" entries
// under outs[0].
type merger interface {
	Merge(ctx context.Context, cases []string, outs []string) (string, error)
}

// caseOuts lists the outs digests of cases, by case id.
func caseOuts(cases map[string]*gitops.Case) []string {
	ids := slices.Sorted(maps.Keys(cases))
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = cases[id].Out
	}
	return out
}

// pendingOuts are a stage's outs that Lazy left in the store; once
// checks them out.
type pendingOuts struct {
	digest string
	once   sync.Once
	err    error
	done   atomic.Bool // checked out
}

// defer_ clears the workspace outs of s, whose result is digest, and
// leaves them to be checked out when a stage that runs reads them.
func (r *runner) defer_(s *Stage, digest string) error {
	if len(s.Outs) == 0 {
		return nil
	}
	for _, o := range s.Outs {
		if err := os.RemoveAll(filepath.Join(r.o.Dir, filepath.FromSlash(o))); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.pending[s.Name] = &pendingOuts{digest: digest}
	r.mu.Unlock()
	return nil
}

// materialiseUpstream checks out the deferred outs of the stages s reads.
func (r *runner) materialiseUpstream(ctx context.Context, s *Stage) error {
	for _, u := range s.Upstream {
		r.mu.Lock()
		p := r.pending[u]
		r.mu.Unlock()
		if p == nil {
			continue
		}
		p.once.Do(func() {
			if err := r.o.Store.Restore(ctx, p.digest, r.o.Dir); err != nil {
				p.err = fmt.Errorf("stage %q: restore %s: %w", u, p.digest, err)
				return
			}
			p.done.Store(true)
		})
		if p.err != nil {
			return p.err
		}
	}
	return nil
}

// unionKey identifies the set of case results.
func unionKey(cases map[string]*gitops.Case) string {
	deps := map[string]string{}
	for id, c := range cases {
		deps[id] = c.Out
	}
	return keyInput{Foreach: "case", Deps: deps}.key()
}

// casesOf lists the cases of the datasets a foreach stage reaches, sorted
// by id; an id in two datasets is an error.
func (r *runner) casesOf(s *Stage) ([]caseInput, error) {
	var all []caseInput
	seen := map[string]string{}
	for _, d := range r.o.Plan.DatasetsOf(s) {
		cs, err := r.o.Data.Cases(d)
		if errors.Is(err, ErrNoCases) && !r.o.Plan.Names(s, d) {
			continue // data/* reaches every dataset; a per-case stage takes those with cases
		}
		if err != nil {
			return nil, fmt.Errorf("stage %q: dataset %s: %w", s.Name, d, err)
		}
		for _, c := range cs {
			if other, dup := seen[c.ID]; dup {
				return nil, &PlanError{s.Name, fmt.Sprintf("case %s is in datasets %s and %s", c.ID, other, d)}
			}
			seen[c.ID] = d
			all = append(all, caseInput{CaseRef: c, Dataset: d})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	return all, nil
}

type caseInput struct {
	CaseRef
	Dataset string
}

// caseDeps narrows a foreach stage's deps to what one case depends on: its
// own image and label instead of whole datasets, and its own result of
// upstream foreach stages instead of their union.
func (r *runner) caseDeps(s *Stage, c caseInput, deps map[string]string) map[string]string {
	out := map[string]string{"case.image": c.Image, "case.label": c.Label}
	if c.Split != "" {
		out["case.split"] = c.Split // the side decides where the case's data goes
	}
	for k, v := range deps {
		if strings.HasPrefix(k, "data/") {
			continue
		}
		if up := r.o.Plan.Stage(k); up != nil && up.Foreach == "case" {
			if l := r.entry(k); l != nil && l.Cases[c.ID] != nil {
				out[k] = l.Cases[c.ID].Out
			}
			continue
		}
		out[k] = v
	}
	return out
}

// union lays the case trees side by side in the stage's first out folder.
func (r *runner) union(ctx context.Context, s *Stage, cases map[string]*gitops.Case) (string, error) {
	if len(s.Outs) == 0 {
		return "", nil
	}
	if err := r.clearOuts(r.o.Dir, s.Outs); err != nil {
		return "", err
	}
	staging := filepath.Join(r.o.Dir, ".medcad", "work", s.Name, ".union")
	if err := os.RemoveAll(staging); err != nil {
		return "", err
	}
	defer os.RemoveAll(staging)
	dest := filepath.Join(r.o.Dir, filepath.FromSlash(s.Outs[0]))
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return "", err
	}
	ids := make([]string, 0, len(cases))
	for id := range cases {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		caseRoot := filepath.Join(staging, id)
		if err := r.o.Store.Restore(ctx, cases[id].Out, caseRoot); err != nil {
			return "", fmt.Errorf("stage %q: case %s: %w", s.Name, id, err)
		}
		if err := mergeTree(filepath.Join(caseRoot, "out"), dest); err != nil {
			return "", &PlanError{s.Name, fmt.Sprintf("case %s: %v", id, err)}
		}
	}
	return r.o.Store.Snapshot(ctx, r.o.Dir, s.Outs)
}

// mergeTree moves every file under src to the same place under dst; a file
// that already exists there is an error (two cases wrote the same path).
func mergeTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if _, err := os.Lstat(target); err == nil {
			return fmt.Errorf("two cases wrote %s", filepath.ToSlash(rel))
		}
		return os.Rename(p, target)
	})
}

// ErrInterrupted means the machine announced that it is being taken away
// (a spot interruption or rebalance notice on a GPU runner) while a stage
// ran. Whatever the stage's exit status, its outputs are then not
// recorded: a trainer that checkpoints and exits 0 has not finished, and
// the next attempt resumes from its checkpoint.
var ErrInterrupted = errors.New("the machine is being interrupted")

// InterruptedMarker is the file beside checkpointDir that the GPU runner's
// agent writes, holding the notice, before it signals the stages.
func InterruptedMarker(checkpointDir string) string {
	return filepath.Clean(checkpointDir) + ".interrupted"
}

// interrupted returns ErrInterrupted, naming stage and the notice, once
// the agent has written the marker beside the checkpoint folder.
func (r *runner) interrupted(stage string) error {
	if r.o.CheckpointDir == "" {
		return nil
	}
	f, err := os.Open(InterruptedMarker(r.o.CheckpointDir))
	if err != nil {
		return nil
	}
	defer f.Close()
	notice := make([]byte, 200)
	n, _ := io.ReadFull(f, notice)
	return fmt.Errorf("stage %q: %w (%s): not recorded; its checkpoint is kept for the next attempt",
		stage, ErrInterrupted, strings.Join(strings.Fields(string(notice[:n])), " "))
}

// stopGrace is how long a cancelled stage has between SIGTERM and SIGKILL,
// and how long its output may stay open after its command exits.
const stopGrace = 5 * time.Second

// exec runs the stage command with the environment of stageEnv, in a
// process group of its own that does not outlive it (DESIGN §5, §7).
func (r *runner) exec(ctx context.Context, s *Stage, caseID, root string, outs []string) error {
	work := filepath.Join(r.o.Dir, ".medcad", "work", s.Name)
	if caseID != "" {
		work = filepath.Join(work, caseID)
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	pj, err := paramsJSON(r.o.Config.Params, s.Params)
	if err != nil {
		return err
	}
	paramsFile := filepath.Join(work, "params.json")
	if err := os.WriteFile(paramsFile, pj, 0o644); err != nil {
		return err
	}
	pt, err := paramsTOML(r.o.Config.Params, s.Params)
	if err != nil {
		return err
	}
	paramsTOMLFile := filepath.Join(work, "params.toml")
	if err := os.WriteFile(paramsTOMLFile, pt, 0o644); err != nil {
		return err
	}
	vars := map[string]string{"params": paramsFile, "params.toml": paramsTOMLFile}
	outDir := ""
	if len(outs) > 0 {
		// {out} is a folder to fill unless the out is named like a file.
		outDir = filepath.Join(root, filepath.FromSlash(outs[0]))
		if filepath.Ext(outs[0]) == "" {
			if err := os.MkdirAll(outDir, 0o755); err != nil {
				return err
			}
		}
		vars["out"] = outDir
	}
	// Metrics written into a folder out are stored and restored with it,
	// so a cached stage still reports its metrics.
	metricsFile := filepath.Join(work, "metrics.json")
	if outDir != "" && filepath.Ext(outs[0]) == "" {
		metricsFile = filepath.Join(outDir, MetricsFile)
	}
	env := []string{
		"MEDCAD_STAGE=" + s.Name,
		"MEDCAD_PARAMS=" + paramsFile,
		"MEDCAD_OUT=" + outDir,
		"MEDCAD_METRICS=" + metricsFile,
	}
	if r.o.CheckpointDir != "" {
		dir := filepath.Join(r.o.CheckpointDir, s.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		env = append(env, "MEDCAD_CHECKPOINT_DIR="+dir)
	}
	for _, u := range s.Upstream {
		up := r.o.Plan.Stage(u)
		if len(up.Outs) == 0 {
			continue
		}
		p := filepath.Join(r.o.Dir, filepath.FromSlash(up.Outs[0]))
		vars[u+".out"] = p
		env = append(env, "MEDCAD_INPUT_"+envName(u)+"="+p)
	}
	for _, d := range r.o.Plan.DatasetsOf(s) {
		if !slices.Contains(s.Datasets, d) || (r.o.Lazy && caseID != "") {
			continue // a lazy per-case stage reads its case (its key covers no more)
		}
		p, err := r.o.Data.Checkout(ctx, d)
		if err != nil {
			return fmt.Errorf("stage %q: dataset %s: %w", s.Name, d, err)
		}
		vars["data."+d] = p
		env = append(env, "MEDCAD_INPUT_"+envName(d)+"="+p)
	}
	if caseID != "" {
		vars["case"] = caseID
		caseDir := filepath.Join(work, "input")
		if err := r.caseInputs(ctx, s, caseID, caseDir, vars); err != nil {
			return err
		}
		env = append(env, "MEDCAD_CASE="+caseID, "MEDCAD_CASE_IMAGE="+vars["case.image"], "MEDCAD_CASE_LABEL="+vars["case.label"], "MEDCAD_CASE_SPLIT="+vars["case.split"])
	}
	line := expand(s.Run, vars)
	if isBuiltin(s.Run) && r.o.Exe != "" {
		line = shellQuote(r.o.Exe) + strings.TrimPrefix(strings.TrimSpace(line), "medcad")
	}
	if err := r.interrupted(s.Name); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	cmd.Dir = r.o.Dir
	cmd.Env = stageEnv(runtime.GOOS, os.Environ(), slices.Concat(r.o.Config.Env.Pass, s.EnvPass), env)
	end := procgroup.Set(cmd, stopGrace)
	var tail tailBuffer
	cmd.Stdout = io.MultiWriter(&tail, orDiscard(r.o.Stdout))
	cmd.Stderr = io.MultiWriter(&tail, orDiscard(r.o.Stdout))
	err = cmd.Run()
	end()
	if ierr := r.interrupted(s.Name); ierr != nil {
		return ierr
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, exec.ErrWaitDelay) {
			return fmt.Errorf("stage %q: command exited, but processes it started kept its output open for %v and were killed", s.Name, stopGrace)
		}
		return fmt.Errorf("stage %q: command failed: %v%s", s.Name, err, tail.lastLine())
	}
	return nil
}

// caseInputs materialises a case's image and label for a foreach stage.
func (r *runner) caseInputs(ctx context.Context, s *Stage, caseID, dir string, vars map[string]string) error {
	cases, err := r.casesOf(s)
	if err != nil {
		return err
	}
	for _, c := range cases {
		if c.ID != caseID {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		img := filepath.Join(dir, "image")
		vars["case.image"] = img
		vars["case.label"] = ""
		vars["case.split"] = c.Split
		if r.o.Lazy && !readsCase(s) {
			return nil // its case's data reaches it through an upstream stage
		}
		if err := r.o.Store.Restore(ctx, c.Image, img); err != nil {
			return fmt.Errorf("case %s image: %w", caseID, err)
		}
		if c.Label != "" {
			lbl := filepath.Join(dir, "label")
			if err := r.o.Store.Restore(ctx, c.Label, lbl); err != nil {
				return fmt.Errorf("case %s label: %w", caseID, err)
			}
			vars["case.label"] = lbl
		}
		return nil
	}
	return fmt.Errorf("case %s not found", caseID)
}

// readsCase reports whether a per-case stage may read its case's image
// and label: its deps name a dataset itself, or its command names them.
// A stage whose cases come through an upstream per-case stage (predict
// after ingest) and names neither is not given them under Lazy.
func readsCase(s *Stage) bool {
	if len(s.Datasets) > 0 {
		return true
	}
	for _, w := range []string{"{case.image}", "{case.label}", "MEDCAD_CASE_IMAGE", "MEDCAD_CASE_LABEL"} {
		if strings.Contains(s.Run, w) {
			return true
		}
	}
	return false
}

// expand substitutes {name} placeholders with shell-quoted values.
func expand(run string, vars map[string]string) string {
	return placeholderRE.ReplaceAllStringFunc(run, func(m string) string {
		v, ok := vars[m[1:len(m)-1]]
		if !ok {
			return m
		}
		return shellQuote(v)
	})
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// envName turns a stage or dataset name into an environment variable suffix.
func envName(n string) string {
	b := []byte(strings.ToUpper(n))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// tailBuffer keeps the last line a failing command printed, for its error.
type tailBuffer struct {
	mu   sync.Mutex
	last []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last = append(t.last, p...)
	if len(t.last) > 4096 {
		t.last = t.last[len(t.last)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) lastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	// The last line is the command's verdict, unless it is medcad's usage
	// hint: then the error line before it.
	lines := strings.Split(strings.TrimSpace(string(t.last)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "Run 'medcad --help'") {
			return ": " + l
		}
	}
	return ""
}
