package stages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/cas/local"
)

// testDatasets serves cases stored in the real store; it stands in for the
// dataset pointers, which have their own tests.
type testDatasets struct {
	digest string
	cases  []CaseRef
}

func (d *testDatasets) Digest(string) (string, error)                    { return d.digest, nil }
func (d *testDatasets) Cases(string) ([]CaseRef, error)                  { return d.cases, nil }
func (d *testDatasets) Checkout(context.Context, string) (string, error) { return "", nil }

type project struct {
	t     *testing.T
	dir   string
	cfg   gitops.Config
	store *CAS
	data  *testDatasets
}

func newProject(t *testing.T, stagesTOML string) *project {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "medcad.toml", stagesTOML)
	cfg, err := gitops.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cas.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &project{t: t, dir: dir, cfg: cfg, store: NewCAS(s, nil, false, 2), data: &testDatasets{}}
}

func write(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

type ws struct {
	dir      string
	datasets []string
}

func (w ws) IsDataset(n string) bool {
	for _, d := range w.datasets {
		if d == n {
			return true
		}
	}
	return false
}
func (w ws) Datasets() []string { return w.datasets }

func (w ws) PathExists(rel string) bool {
	_, err := os.Stat(filepath.Join(w.dir, rel))
	return err == nil
}

// try runs a repro of the project over the given datasets (default b1)
// and returns what Repro returns; opts.Data defaults to p.data.
func (p *project) try(opts Options, datasets ...string) (*Result, error) {
	p.t.Helper()
	cfg, err := gitops.LoadConfig(p.dir)
	if err != nil {
		p.t.Fatal(err)
	}
	if len(datasets) == 0 {
		datasets = []string{"b1"}
	}
	plan, err := NewPlan(cfg, ws{dir: p.dir, datasets: datasets})
	if err != nil {
		p.t.Fatal(err)
	}
	opts.Dir, opts.Config, opts.Plan, opts.Store, opts.Jobs = p.dir, cfg, plan, p.store, 2
	if opts.Data == nil {
		opts.Data = p.data
	}
	if opts.Version == "" {
		opts.Version = "test"
	}
	return Repro(context.Background(), opts)
}

// repro runs a repro that must succeed and returns each stage's (and
// case's, as stage/case) status.
func (p *project) repro(opts Options) map[string]Status {
	p.t.Helper()
	res, err := p.try(opts)
	if err != nil {
		p.t.Fatal(err)
	}
	got := map[string]Status{}
	for _, e := range res.Events {
		k := e.Stage
		if e.Case != "" {
			k += "/" + e.Case
		}
		got[k] = e.Status
	}
	return got
}

func (p *project) read(rel string) string {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, rel))
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

const twoStages = `
[env]
lock = ["uv.lock"]

[[stage]]
name = "prep"
run = "cat input.txt input.txt > {out}/doubled.txt; echo prep >> log.txt"
deps = ["input.txt"]
outs = ["build/prep"]

[[stage]]
name = "train"
run = "cat {prep.out}/doubled.txt > {out}; echo \"lr=$(grep lr $MEDCAD_PARAMS | tr -d ' ,')\" >> {out}; echo train >> log.txt"
deps = ["prep"]
params = ["train"]
outs = ["build/model.txt"]
env = true

[params.train]
lr = 0.1
`

func TestReproCachesAndInvalidatesExactly(t *testing.T) {
	p := newProject(t, twoStages)
	write(t, p.dir, "input.txt", "a\n")
	write(t, p.dir, "uv.lock", "version = 1\n")

	got := p.repro(Options{})
	want := map[string]Status{"prep": Ran, "train": Ran}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("first repro (-want +got):\n%s", diff)
	}
	if m := p.read("build/model.txt"); m != "a\na\nlr=\"lr\":0.1\n" {
		t.Fatalf("model = %q", m)
	}
	lock1 := p.read("medcad.lock")

	// Nothing changed: nothing runs, and the lock is byte-identical.
	got = p.repro(Options{})
	if diff := cmp.Diff(map[string]Status{"prep": UpToDate, "train": UpToDate}, got); diff != "" {
		t.Fatalf("second repro (-want +got):\n%s", diff)
	}
	if p.read("medcad.lock") != lock1 {
		t.Error("lock changed on a no-op repro")
	}
	if log := p.read("log.txt"); log != "prep\ntrain\n" {
		t.Errorf("commands ran again: %q", log)
	}

	// A param change invalidates only the stage that uses it.
	cfg := strings.Replace(p.read("medcad.toml"), "lr = 0.1", "lr = 0.05", 1)
	write(t, p.dir, "medcad.toml", cfg)
	got = p.repro(Options{})
	if diff := cmp.Diff(map[string]Status{"prep": UpToDate, "train": Ran}, got); diff != "" {
		t.Errorf("after param change (-want +got):\n%s", diff)
	}
	// Going back restores the earlier model from the run cache, running nothing.
	write(t, p.dir, "medcad.toml", strings.Replace(cfg, "lr = 0.05", "lr = 0.1", 1))
	got = p.repro(Options{})
	if diff := cmp.Diff(map[string]Status{"prep": UpToDate, "train": Restored}, got); diff != "" {
		t.Errorf("after param revert (-want +got):\n%s", diff)
	}
	if p.read("medcad.lock") != lock1 {
		t.Error("lock differs after returning to the first inputs")
	}

	// An env lock change invalidates env = true stages only.
	write(t, p.dir, "uv.lock", "version = 1\n# changed\n")
	got = p.repro(Options{})
	if diff := cmp.Diff(map[string]Status{"prep": UpToDate, "train": Ran}, got); diff != "" {
		t.Errorf("after env lock change (-want +got):\n%s", diff)
	}

	// A dep change reruns the chain; a deleted out is restored, not rerun.
	write(t, p.dir, "input.txt", "b\n")
	got = p.repro(Options{})
	if diff := cmp.Diff(map[string]Status{"prep": Ran, "train": Ran}, got); diff != "" {
		t.Errorf("after dep change (-want +got):\n%s", diff)
	}
	os.RemoveAll(filepath.Join(p.dir, "build"))
	got = p.repro(Options{})
	if diff := cmp.Diff(map[string]Status{"prep": Restored, "train": Restored}, got); diff != "" {
		t.Errorf("after deleting outs (-want +got):\n%s", diff)
	}
	if m := p.read("build/model.txt"); !strings.HasPrefix(m, "b\nb\n") {
		t.Errorf("restored model = %q", m)
	}
	// Dry run reports without running.
	write(t, p.dir, "input.txt", "c\n")
	got = p.repro(Options{DryRun: true})
	if got["prep"] != WouldRun {
		t.Errorf("dry run: %v", got)
	}
	if p.read("input.txt") != "c\n" || !strings.HasPrefix(p.read("build/model.txt"), "b\n") {
		t.Error("dry run changed the workspace")
	}
}

func TestReproExternalContract(t *testing.T) {
	p := newProject(t, `
[[stage]]
name = "ext"
run = "sh contract.sh {params.toml}"
deps = ["contract.sh", "prep"]
params = ["p"]
outs = ["out/ext"]

[[stage]]
name = "prep"
run = "echo hi > {out}/x"
outs = ["out/prep"]

[params.p]
k = "v"
`)
	write(t, p.dir, "contract.sh", `set -e
test "$MEDCAD_STAGE" = ext
grep -q '^k = "v"$' "$1"
grep -q '"k": "v"' "$MEDCAD_PARAMS"
test -f "$MEDCAD_INPUT_PREP/x"
echo '{"dice": 0.9}' > "$MEDCAD_METRICS"
echo done > "$MEDCAD_OUT/result"
`)
	got := p.repro(Options{})
	if got["ext"] != Ran {
		t.Fatalf("ext: %v", got)
	}
	if p.read("out/ext/result") != "done\n" {
		t.Error("MEDCAD_OUT not filled")
	}
}

func TestForeachRunsOnlyNewCases(t *testing.T) {
	p := newProject(t, `
[[stage]]
name = "ingest"
run = "ls {case.image} > {out}/{case}.txt; echo {case} >> ran.txt"
deps = ["b1"]
outs = ["build/ingest"]
foreach = "case"

[[stage]]
name = "count"
run = "ls {ingest.out} | wc -l > {out}"
deps = ["ingest"]
outs = ["build/count.txt"]
`)
	mkCase := func(id, file string) CaseRef {
		d := t.TempDir()
		write(t, d, "img/"+file, id)
		digest, err := p.store.Snapshot(context.Background(), d, []string{"img"})
		if err != nil {
			t.Fatal(err)
		}
		return CaseRef{ID: id, Image: digest}
	}
	p.data.cases = []CaseRef{mkCase("c-1", "a.dcm"), mkCase("c-2", "b.dcm")}
	p.data.digest = "sha256:1"
	got := p.repro(Options{})
	want := map[string]Status{"ingest": Ran, "ingest/c-1": Ran, "ingest/c-2": Ran, "count": Ran}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("first (-want +got):\n%s", diff)
	}
	if strings.TrimSpace(p.read("build/count.txt")) != "2" {
		t.Errorf("count = %q", p.read("build/count.txt"))
	}
	p.data.cases = append(p.data.cases, mkCase("c-3", "c.dcm"))
	p.data.digest = "sha256:2"
	got = p.repro(Options{})
	want = map[string]Status{"ingest": Ran, "ingest/c-1": UpToDate, "ingest/c-2": UpToDate, "ingest/c-3": Ran, "count": Ran}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after a new case (-want +got):\n%s", diff)
	}
	ran := strings.Fields(p.read("ran.txt"))
	sort.Strings(ran)
	if diff := cmp.Diff([]string{"c-1", "c-2", "c-3"}, ran); diff != "" {
		t.Errorf("cases run (-want +got):\n%s", diff)
	}
	if strings.TrimSpace(p.read("build/count.txt")) != "3" {
		t.Errorf("count = %q", p.read("build/count.txt"))
	}
	lock, _ := gitops.ReadLock(p.dir)
	if n := len(lock.Stages["ingest"].Cases); n != 3 {
		t.Errorf("lock has %d cases", n)
	}
}

// TestCaseSplitKeysTheCase: {case.split} reaches the command and
// MEDCAD_CASE_SPLIT, and a case's side is part of its key: changing one
// case's side re-runs that case only.
func TestCaseSplitKeysTheCase(t *testing.T) {
	p := newProject(t, `
[[stage]]
name = "ingest"
run = "echo {case.split} $MEDCAD_CASE_SPLIT > {out}/{case}.txt"
deps = ["b1"]
outs = ["build/ingest"]
foreach = "case"
`)
	mkCase := func(id, split string) CaseRef {
		d := t.TempDir()
		write(t, d, "img/"+id, id)
		digest, err := p.store.Snapshot(context.Background(), d, []string{"img"})
		if err != nil {
			t.Fatal(err)
		}
		return CaseRef{ID: id, Image: digest, Split: split}
	}
	p.data.cases = []CaseRef{mkCase("c-1", "test"), mkCase("c-2", "train")}
	p.data.digest = "sha256:1"
	p.repro(Options{})
	if got := p.read("build/ingest/c-1.txt"); got != "test test\n" {
		t.Errorf("c-1 got %q", got)
	}
	p.data.cases[1].Split = "test"
	p.data.digest = "sha256:2"
	got := p.repro(Options{})
	want := map[string]Status{"ingest": Ran, "ingest/c-1": UpToDate, "ingest/c-2": Ran}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after c-2 changed side (-want +got):\n%s", diff)
	}
}

// TestIndependentStagesRunInParallel holds two stages that can only finish
// when the other has started: they pass only if they run at the same time.
func TestIndependentStagesRunInParallel(t *testing.T) {
	p := newProject(t, `
[[stage]]
name = "a"
run = "touch a.started; for i in $(seq 100); do [ -f b.started ] && echo a > {out} && exit 0; sleep 0.05; done; exit 1"
outs = ["build/a.txt"]

[[stage]]
name = "b"
run = "touch b.started; for i in $(seq 100); do [ -f a.started ] && echo b > {out} && exit 0; sleep 0.05; done; exit 1"
outs = ["build/b.txt"]

[[stage]]
name = "c"
run = "cat {a.out} {b.out} > {out}"
deps = ["a", "b"]
outs = ["build/c.txt"]
`)
	got := p.repro(Options{})
	if diff := cmp.Diff(map[string]Status{"a": Ran, "b": Ran, "c": Ran}, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if c := p.read("build/c.txt"); c != "a\nb\n" {
		t.Errorf("c = %q", c)
	}
}

// TestFileOutWithPrivateMode stores and restores a file out whose mode is
// not 644 (a model written with umask 077).
func TestFileOutWithPrivateMode(t *testing.T) {
	p := newProject(t, `
[[stage]]
name = "a"
run = "echo secret > {out}; chmod 600 {out}"
outs = ["build/model.bin"]
`)
	if got := p.repro(Options{}); got["a"] != Ran {
		t.Fatalf("first: %v", got)
	}
	os.Remove(filepath.Join(p.dir, "build/model.bin"))
	if got := p.repro(Options{}); got["a"] != Restored {
		t.Fatalf("after removing the out: %v", got)
	}
	if p.read("build/model.bin") != "secret\n" {
		t.Error("restored content differs")
	}
}

// TestRunCacheMissWhenOutsCollected: a run-cache entry whose outs are no
// longer in the store (collected by gc, never pushed) is a miss: status
// says why and repro runs the stage instead of failing to restore.
func TestRunCacheMissWhenOutsCollected(t *testing.T) {
	p := newProject(t, twoStages)
	remote, err := local.New(t.TempDir()) // configured, but never pushed to
	if err != nil {
		t.Fatal(err)
	}
	p.store.Remote = remote
	write(t, p.dir, "input.txt", "a\n")
	write(t, p.dir, "uv.lock", "version = 1\n")
	p.repro(Options{})
	if err := os.RemoveAll(filepath.Join(p.dir, "build")); err != nil {
		t.Fatal(err)
	}
	// What gc does to outs nothing references any more.
	if _, err := cas.CollectGarbage(context.Background(), p.store.Store, map[cas.ID]bool{}, false); err != nil {
		t.Fatal(err)
	}
	res, err := p.try(Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if e := res.Events[0]; e.Stage != "prep" || e.Status != WouldRun || e.Reason != "outputs no longer in the store" {
		t.Errorf("status after gc: %+v", e)
	}
	got := p.repro(Options{})
	if diff := cmp.Diff(map[string]Status{"prep": Ran, "train": Ran}, got); diff != "" {
		t.Errorf("repro after gc (-want +got):\n%s", diff)
	}
	if m := p.read("build/model.txt"); !strings.HasPrefix(m, "a\na\n") {
		t.Errorf("model = %q", m)
	}
}

// TestBuiltinKeysFollowTheAlgorithm: a built-in stage's key holds what its
// command computes, not medcad's build: two builds of the same commit
// (go run says "(devel)", the Action's tarball build another version)
// restore each other's results, and only a new algorithm version reruns.
func TestBuiltinKeysFollowTheAlgorithm(t *testing.T) {
	p := newProject(t, `
[[stage]]
name = "train"
run = "medcad segment train > {out}"
deps = ["input.txt"]
outs = ["build/model.txt"]
`)
	write(t, p.dir, "input.txt", "a\n")
	algo := "medcad segment train 1"
	opts := func(build string) Options {
		return Options{Exe: "/bin/echo", Version: build, Algorithm: func(string) string { return algo }}
	}
	// The built-in command runs as `$Exe segment train …`: echo writes its
	// arguments where the out file goes.
	if got := p.repro(opts("(devel)+abc")); got["train"] != Ran {
		t.Fatalf("first repro: %v", got)
	}
	lock := p.read("medcad.lock")
	if got := p.repro(opts("v0.4.0+abc")); got["train"] != UpToDate {
		t.Errorf("another build of the same algorithm: %v", got)
	}
	if p.read("medcad.lock") != lock {
		t.Error("another build changed the lock")
	}
	algo = "medcad segment train 2"
	if got := p.repro(opts("v0.4.0+abc")); got["train"] != Ran {
		t.Errorf("a new algorithm version: %v", got)
	}
	// Without an algorithm version the build decides, as before.
	algo = ""
	p.repro(opts("b1"))
	if got := p.repro(opts("b2")); got["train"] != Ran {
		t.Errorf("unversioned command across builds: %v", got)
	}
}

// notesAndCases is a project with a DICOM dataset b1 and a dataset of
// plain files, notes, that has no cases.
type notesAndCases struct{ *testDatasets }

func (d notesAndCases) Cases(name string) ([]CaseRef, error) {
	if name == "notes" {
		return nil, fmt.Errorf("data/notes.dataset.toml %w", ErrNoCases)
	}
	return d.testDatasets.Cases(name)
}

// TestForeachSkipsDatasetsWithoutCases: a per-case stage that reaches
// every dataset through data/* takes the ones with cases; a dataset it
// names one by one must have cases.
func TestForeachSkipsDatasetsWithoutCases(t *testing.T) {
	for _, tc := range []struct {
		deps, wantErr string
	}{
		{deps: `["data/*"]`},
		{deps: `["notes"]`, wantErr: "data/notes.dataset.toml has no [[case]] tables"},
	} {
		p := newProject(t, `
[[stage]]
name = "ingest"
run = "echo {case} > {out}/{case}.txt"
deps = `+tc.deps+`
outs = ["build/ingest"]
foreach = "case"
`)
		d := t.TempDir()
		write(t, d, "img/a.dcm", "a")
		digest, err := p.store.Snapshot(context.Background(), d, []string{"img"})
		if err != nil {
			t.Fatal(err)
		}
		p.data.cases, p.data.digest = []CaseRef{{ID: "c-1", Image: digest}}, "sha256:1"
		_, err = p.try(Options{Data: notesAndCases{p.data}}, "b1", "notes")
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("deps %s: %v", tc.deps, err)
		case tc.wantErr == "" && p.read("build/ingest/c-1.txt") != "c-1\n":
			t.Errorf("deps %s: case not run", tc.deps)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("deps %s: error %v, want %q", tc.deps, err, tc.wantErr)
		}
	}
}

// TestFailedForeachKeepsLock: a per-case stage that fails keeps the lock
// entries it did not recompute (its key, its outs, the other cases) and
// records the cases that finished; nothing is blanked or dropped.
func TestFailedForeachKeepsLock(t *testing.T) {
	p := newProject(t, `
[[stage]]
name = "ingest"
run = "test {case} != c-4 && echo {case} > {out}/{case}.txt"
deps = ["b1"]
outs = ["build/ingest"]
foreach = "case"
`)
	mkCase := func(id string) CaseRef {
		d := t.TempDir()
		write(t, d, "img/"+id+".dcm", id)
		digest, err := p.store.Snapshot(context.Background(), d, []string{"img"})
		if err != nil {
			t.Fatal(err)
		}
		return CaseRef{ID: id, Image: digest}
	}
	p.data.cases, p.data.digest = []CaseRef{mkCase("c-1"), mkCase("c-2"), mkCase("c-3")}, "sha256:1"
	p.repro(Options{})
	before, err := gitops.ReadLock(p.dir)
	if err != nil {
		t.Fatal(err)
	}
	p.data.cases, p.data.digest = append(p.data.cases, mkCase("c-4")), "sha256:2"
	if _, err := p.try(Options{}); err == nil {
		t.Fatal("the failing case did not fail the repro")
	}
	after, err := gitops.ReadLock(p.dir)
	if err != nil {
		t.Fatal(err)
	}
	b, a := before.Stages["ingest"], after.Stages["ingest"]
	if a.Key != b.Key || a.Out != b.Out || a.Key == "" {
		t.Errorf("stage key/out rewritten: %q/%q, was %q/%q", a.Key, a.Out, b.Key, b.Out)
	}
	if diff := cmp.Diff(b.Cases, a.Cases); diff != "" {
		t.Errorf("cases (-before +after):\n%s", diff)
	}
}
