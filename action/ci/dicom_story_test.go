package ci_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/medcad/medcad/action/ci"
	"github.com/medcad/medcad/action/githubtest"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages"
)

// buildMedcad builds the medcad binary once for a test: the data
// manager's commands and the built-in stage commands run it.
func buildMedcad(t *testing.T) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = testenv.LookPath(t, "go")
	}
	exe := filepath.Join(t.TempDir(), "medcad")
	cmd := exec.Command(goBin, "build", "-o", exe, "github.com/medcad/medcad/cmd/medcad")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build medcad: %v\n%s", err, out)
	}
	return exe
}

// runMedcad runs the medcad binary in dir as the data manager does.
func runMedcad(t *testing.T, exe, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), gitIdentity...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("medcad %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// events collects a repro's events.
type events struct {
	mu  sync.Mutex
	all []stages.Event
}

func (e *events) add(ev stages.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

// cases is the status of each case of a foreach stage.
func (e *events) cases(stage string) map[string]stages.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]stages.Status{}
	for _, ev := range e.all {
		if ev.Stage == stage && ev.Case != "" {
			out[ev.Case] = ev.Status
		}
	}
	return out
}

// heldOut lists the labelled cases of the project's pointers on the
// held-out side.
func heldOut(t *testing.T, dir string) (test []string, labelled int) {
	t.Helper()
	ds, err := gitops.ListDatasets(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		for _, c := range d.Cases {
			if c.Split == "" {
				t.Errorf("%s: case %s has no recorded side", d.Name, c.ID)
			}
			if !c.Label.IsZero() {
				labelled++
			}
			if c.Split == gitops.SplitTest {
				test = append(test, c.ID)
			}
		}
	}
	slices.Sort(test)
	return test, labelled
}

// nnunetTest lists the cases the assembled dataset holds out.
func nnunetTest(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "build", "nnunet", "labelsTs", "*.nii.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range files {
		ids = append(ids, strings.TrimSuffix(filepath.Base(f), ".nii.gz"))
	}
	slices.Sort(ids)
	return ids
}

// TestStoryAcrossMachines is the data-to-model story on the scaffolded
// pipeline and phantom DICOM, on three machines that share nothing but a
// bare git origin and an S3 bucket (versitygw): the data manager adds and
// pushes a batch of 6 cases, CI (a fresh clone) ingests it from the
// bucket, trains, evaluates and pushes its run cache, and a colleague's
// fresh clone of the merged main restores every stage without running
// one, to the same model artifact. Then a batch of 3 arrives: CI ingests
// only its cases, and every case held out before stays held out, so the
// comparison with the first model pairs them all.
func TestStoryAcrossMachines(t *testing.T) {
	testenv.LookPath(t, "git")
	s3, bucket := versitygwStore(t)
	exe := buildMedcad(t)
	ctx := context.Background()

	f, _ := fakeForge(t, githubtest.Options{})
	root := t.TempDir()
	remote := "s3://" + bucket + "/story"
	s := &story{t: t, f: f, root: root, dev: filepath.Join(root, "dm"), remote: remote}
	repro := stages.ReproOptions{Version: "story-test", Exe: exe, Jobs: 2}

	// (a) The data manager: init, the remote, and the pipeline on main.
	runMedcad(t, exe, root, "init", s.dev)
	cfgFile := filepath.Join(s.dev, gitops.ConfigFile)
	cfg, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.NewReplacer(
		"[remote]\n", fmt.Sprintf("[remote]\nurl = %q\nendpoint = %q\npath_style = true\n", remote, s3.Endpoint),
		"epochs = 6", "epochs = 2", // small and quick
		"# public_key = \"ed25519:…\"", strings.TrimPrefix(strings.TrimSpace(publicKeyConfig(t)), "[promote]\n"),
	).Replace(string(cfg))
	if err := os.WriteFile(cfgFile, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, s.dev, "add", "-A")
	gitCmd(t, s.dev, "commit", "-qm", "medcad init")
	gitCmd(t, s.dev, "push", "-q", f.pushURL, "HEAD:main")

	// addBatch generates a phantom DICOM batch (fake patient identities),
	// adds and pushes it on a new branch and opens a pull request.
	addBatch := func(name string, n int, seed string) int {
		t.Helper()
		gitCmd(t, s.dev, "fetch", "-q", f.pushURL, "main")
		gitCmd(t, s.dev, "checkout", "-qB", name, "FETCH_HEAD")
		in := filepath.Join(root, "incoming", name)
		runMedcad(t, exe, s.dev, "phantom", "--out", in, "--cases", fmt.Sprint(n), "--seed", seed, "--format", "dicom")
		out := runMedcad(t, exe, s.dev, "data", "add", in, "--name", name)
		if !strings.Contains(out, fmt.Sprintf("de-identified %d cases", n)) {
			t.Errorf("data add %s: %s", name, out)
		}
		runMedcad(t, exe, s.dev, "data", "push")
		gitCmd(t, s.dev, "add", "-A")
		gitCmd(t, s.dev, "commit", "-qm", "data: "+name)
		gitCmd(t, s.dev, "push", "-q", f.pushURL, name)
		return f.openPR(t, name)
	}
	// prJob runs CI's pull request job in a fresh clone, no token.
	prJob := func(n int, branch string) (*ciJob, *ci.PRResult, *events, error) {
		t.Helper()
		j := s.job(branch, "pull_request", nil, false)
		j.opts.Repro = repro
		ev := &events{}
		j.opts.Repro.OnEvent = ev.add
		j.job.Event = prEvent(t, "pull_request.json", n, branch, gitCmd(t, j.p.Root, "rev-parse", "HEAD"))
		res, err := ci.PR(ctx, j.p, j.job, j.opts)
		return j, res, ev, err
	}

	n1 := addBatch("batch1", 6, "101")
	test1, labelled := heldOut(t, s.dev)
	if labelled != 6 || len(test1) < 3 {
		t.Fatalf("batch1: %d of %d labelled cases held out (%v), want at least 3", len(test1), labelled, test1)
	}

	// (b) CI: a fresh clone ingests from the bucket, trains, evaluates and
	// pushes its run cache.
	j1, res1, ev1, err := prJob(n1, "batch1")
	if err != nil {
		t.Fatalf("ci pr batch1: %v\n%s", err, j1.log)
	}
	if res1.Verdict != "pass" || !strings.HasPrefix(res1.Artifact, "sha256:") || res1.Baseline != "" || res1.Commit == "" {
		t.Fatalf("ci pr batch1: %+v\n%s", res1, j1.log)
	}
	ing1 := ev1.cases("ingest")
	if len(ing1) != 6 {
		t.Errorf("batch1 ingest events %v, want 6 cases", ing1)
	}
	for id, st := range ing1 {
		if st != stages.Ran {
			t.Errorf("batch1: ingest %s %s, want ran", id, st)
		}
	}
	if got := nnunetTest(t, j1.p.Root); !slices.Equal(got, test1) {
		t.Errorf("batch1: the dataset holds out %v, the pointer records %v", got, test1)
	}

	// Merged and promoted: production v1 is the baseline of what follows.
	f.merge(t, n1, "batch1", "squash")
	if jm, err := s.main(); err != nil || !jm.res.Promoted || jm.res.Record.Version != 1 {
		t.Fatalf("promotion after the squash merge: %+v, %v\n%s", jm.res, err, jm.log)
	}

	// (c′) A lazy repro in a fresh clone of main runs nothing, so it
	// checks nothing out and fetches no data: only run-cache entries and
	// case manifests.
	lazy := filepath.Join(root, "lazy")
	gitCmd(t, root, "clone", "-q", "-b", "main", f.cloneURL, lazy)
	lr := repro
	lr.Lazy, lr.Measure = true, true
	lout, err := stages.Reproduce(ctx, s.open(lazy), lr)
	if err != nil {
		t.Fatalf("lazy repro: %v", err)
	}
	if lout.Ran() {
		t.Errorf("lazy repro ran something: %+v", lout.Events)
	}
	for _, out := range []string{"cases", "nnunet", "model", "predictions", "eval", "surfaces"} {
		if _, err := os.Stat(filepath.Join(lazy, "build", out)); !os.IsNotExist(err) {
			t.Errorf("lazy repro checked out build/%s, which no stage that ran reads (%v)", out, err)
		}
	}
	b1 := closure(t, s.dev, "batch1")
	if lout.Fetched > b1.bytes/20 {
		t.Errorf("lazy repro with nothing to run fetched %d bytes (batch1 is %d)", lout.Fetched, b1.bytes)
	}
	if st := gitCmd(t, lazy, "status", "--porcelain", "--", gitops.ConfigFile, "medcad.lock", "models", "data"); st != "" {
		t.Errorf("lazy repro changed committed files:\n%s", st)
	}

	// (c) A colleague's fresh clone of main restores every stage from the
	// bucket and runs none, to the same model.
	col := filepath.Join(root, "colleague")
	gitCmd(t, root, "clone", "-q", "-b", "main", f.cloneURL, col)
	evc := &events{}
	rc := repro
	rc.OnEvent = evc.add
	out, err := stages.Reproduce(ctx, s.open(col), rc)
	if err != nil {
		t.Fatalf("colleague repro: %v", err)
	}
	if out.Ran() || out.Run != nil {
		t.Errorf("colleague repro ran something: %+v", evc.all)
	}
	// Per-case stages are up to date from the lock (their results are in
	// the store); the others' outs are restored from the bucket.
	status := map[string]stages.Status{}
	for _, ev := range evc.all {
		if ev.Case == "" {
			status[ev.Stage] = ev.Status
		}
	}
	for st, want := range map[string]stages.Status{"ingest": stages.UpToDate, "dataset": stages.Restored, "train": stages.Restored,
		"predict": stages.UpToDate, "evaluate": stages.Restored, "surface": stages.UpToDate} {
		if status[st] != want {
			t.Errorf("colleague: stage %s %q, want %q", st, status[st], want)
		}
	}
	if _, err := os.Stat(filepath.Join(col, "build", "model", "model.toml")); err != nil {
		t.Errorf("colleague: the model is not restored: %v", err)
	}
	m, err := gitops.ReadModel(col, "bone")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := gitops.ReadLock(col)
	if err != nil {
		t.Fatal(err)
	}
	if got := gitops.DigestText(m.Artifact); got != res1.Artifact || lock.Stages["train"].Out != res1.Artifact {
		t.Errorf("colleague: model %s, lock's train out %s; CI trained %s", got, lock.Stages["train"].Out, res1.Artifact)
	}
	if st := gitCmd(t, col, "status", "--porcelain", "--", gitops.ConfigFile, "medcad.lock", "models", "data"); st != "" {
		t.Errorf("colleague's repro changed committed files:\n%s", st)
	}

	// Batch 2 (3 cases) arrives: CI ingests only its cases, and every
	// case held out before stays held out.
	n2 := addBatch("batch2", 3, "202")
	test2, labelled := heldOut(t, s.dev)
	if labelled != 9 || len(test2) < 3 {
		t.Fatalf("after batch2: %d of %d held out", len(test2), labelled)
	}
	for _, id := range test1 {
		if !slices.Contains(test2, id) {
			t.Errorf("after batch2: %s is no longer held out (held out: %v)", id, test2)
		}
	}
	j2, res2, ev2, err := prJob(n2, "batch2")
	if err != nil && !errors.Is(err, ci.ErrGatesFailed) {
		t.Fatalf("ci pr batch2: %v\n%s", err, j2.log)
	}
	if res2 == nil || res2.Baseline != res1.Artifact {
		t.Fatalf("ci pr batch2: %+v, want baseline %s", res2, res1.Artifact)
	}
	b2, err := gitops.ReadDataset(j2.p.Root, "batch2")
	if err != nil {
		t.Fatal(err)
	}
	fresh := map[string]bool{}
	for _, c := range b2.Cases {
		fresh[c.ID] = true
	}
	ing2 := ev2.cases("ingest")
	if len(ing2) != 9 {
		t.Errorf("batch2 ingest events %v, want 9 cases", ing2)
	}
	for id, st := range ing2 {
		switch {
		case fresh[id] && st != stages.Ran:
			t.Errorf("batch2: new case %s %s, want ran", id, st)
		case !fresh[id] && st != stages.UpToDate && st != stages.Restored:
			t.Errorf("batch2: earlier case %s %s, want up to date or restored", id, st)
		}
	}
	if got := nnunetTest(t, j2.p.Root); !slices.Equal(got, test2) {
		t.Errorf("batch2: the dataset holds out %v, the pointers record %v", got, test2)
	}
	// CI fetched batch2's objects, the ingest outs of batch1's cases that
	// the dataset stage reads, and no object of batch1's images.
	c2 := closure(t, s.dev, "batch2")
	for id := range c2.objects {
		if !j2.p.Store.Has(id) && id != c2.manifest { // its label maps are fetched, not the manifest listing them
			t.Errorf("batch2: object %s of the new batch was not fetched", id.Short())
		}
	}
	read, readObjects := ingestOuts(t, j2.p, b1)
	for id := range b1.objects {
		if j2.p.Store.Has(id) && !c2.objects[id] && !readObjects[id] { // a label map is also an ingest out
			t.Errorf("batch2: object %s of batch1's data was fetched", id.Short())
		}
	}
	if res2.BytesFetched <= c2.bytes || res2.BytesFetched > (c2.bytes+read)*3/2 {
		t.Errorf("batch2: fetched %d bytes; the new batch is %d, the ingest outs of batch1 %d: want more than the batch, at most 1.5× both", res2.BytesFetched, c2.bytes, read)
	}
	t.Logf("batch2: fetched %d bytes (new batch %d, batch1's ingest outs %d; batch1 is %d), peak disk %d", res2.BytesFetched, c2.bytes, read, b1.bytes, res2.PeakDisk)
	if res2.PeakDisk <= 0 {
		t.Errorf("batch2: peak disk %d", res2.PeakDisk)
	}
	report, err := os.ReadFile(j2.p.Path(res2.Report))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("on %d paired cases", len(test1)); !strings.Contains(string(report), want) {
		t.Errorf("batch2 report does not say %q:\n%s", want, report)
	}
	if strings.Contains(string(report), "No case was evaluated by both models") {
		t.Errorf("batch2 report has nothing paired:\n%s", report)
	}
}

// datasetClosure is the objects a dataset's pointer reaches and their bytes.
type datasetClosure struct {
	manifest cas.ID
	cases    []string
	objects  map[cas.ID]bool
	bytes    int64
}

// closure reads dataset name's closure from the store of the project in dir.
func closure(t *testing.T, dir, name string) datasetClosure {
	t.Helper()
	d, err := gitops.ReadDataset(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := cas.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := datasetClosure{manifest: d.Manifest, objects: map[cas.ID]bool{}}
	for _, cs := range d.Cases {
		c.cases = append(c.cases, cs.ID)
	}
	for _, root := range d.Roots() {
		m, err := st.ReadManifest(root)
		if err != nil {
			t.Fatal(err)
		}
		c.objects[root] = true
		c.bytes += int64(len(m.Encode()))
		for _, e := range m.Entries {
			if !c.objects[e.ID] {
				c.objects[e.ID] = true
				c.bytes += e.Size
			}
		}
	}
	return c
}

// ingestOuts is the bytes and objects of the ingest outs of the cases of b
// in p's lock.
func ingestOuts(t *testing.T, p *gitops.Project, b datasetClosure) (int64, map[cas.ID]bool) {
	t.Helper()
	objects := map[cas.ID]bool{}
	lock, err := gitops.ReadLock(p.Root)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, id := range b.cases {
		c := lock.Stages["ingest"].Cases[id]
		if c == nil {
			t.Fatalf("the lock has no ingest entry for %s", id)
		}
		mid, err := cas.ParseID(c.Out)
		if err != nil {
			t.Fatal(err)
		}
		m, err := p.Store.ReadManifest(mid)
		if err != nil {
			t.Fatal(err)
		}
		n += int64(len(m.Encode()))
		for _, e := range m.Entries {
			n += e.Size
			objects[e.ID] = true
		}
	}
	return n, objects
}
