package ci_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/action/ci"
	"github.com/medcad/medcad/action/githubtest"
	"github.com/medcad/medcad/action/promote"
	"github.com/medcad/medcad/action/runner"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas/local"
	"github.com/medcad/medcad/gitops/gitrepo"
	"github.com/medcad/medcad/stages"
)

// quality is the edit of medcad.toml that trains the toy model at q.
func quality(q int) func(string) string {
	return func(cfg string) string {
		i := strings.Index(cfg, "quality = ")
		j := i + strings.IndexByte(cfg[i:], '\n')
		return cfg[:i] + fmt.Sprintf("quality = %d", q) + cfg[j:]
	}
}

// passPR opens a pull request of branch, runs its job and wants it to pass.
func (s *story) passPR(branch string, edit func(string) string, batches ...string) (int, *ci.PRResult) {
	t := s.t
	t.Helper()
	n := s.branch(branch, edit, batches...)
	j, res, err := s.pr("pull_request.json", n, branch, true)
	if err != nil || res.Verdict != "pass" {
		t.Fatalf("ci pr %s: %+v, %v\n%s", branch, res, err, j.log)
	}
	return n, res
}

// promoted runs the promotion job and wants version v, promoted from
// pull request n merged as sha.
func (s *story) promoted(v, n int, sha string) *promote.Record {
	t := s.t
	t.Helper()
	j, err := s.main()
	if err != nil || !j.res.Promoted {
		t.Fatalf("main after #%d: %+v, %v\n%s", n, j.res, err, j.log)
	}
	r := j.res.Record
	if r.Version != v || r.PR != n || r.Commit != sha || r.MergedBy == "" {
		t.Errorf("record of #%d: v%d pr %d commit %.12s merged by %q; want v%d, #%d, %.12s", n, r.Version, r.PR, r.Commit, r.MergedBy, v, n, sha)
	}
	if tag := s.remoteRef("refs/tags/" + promote.Tag("bone", v)); tag == "" {
		t.Errorf("no tag %s on the origin", promote.Tag("bone", v))
	}
	// Exactly once: the job again promotes nothing.
	if j, err := s.main(); err != nil || j.res.Promoted {
		t.Errorf("second main after #%d: %+v, %v\n%s", n, j.res, err, j.log)
	}
	return r
}

// runMergeMethods merges three pull requests, one each way; each is
// promoted exactly once, with its pull request and merge commit. No
// commit CI made carries a skip marker.
func runMergeMethods(t *testing.T, s *story) {
	for i, style := range []string{"merge", "squash", "rebase"} {
		var batches []string
		if i == 0 {
			batches = []string{"batch1"}
		}
		branch := "pr-" + style
		n, res := s.passPR(branch, quality(90+i), batches...)
		if res.BaselineVersion != i {
			t.Errorf("%s: compared with v%d, want v%d (production)", style, res.BaselineVersion, i)
		}
		s.showRemote("refs/heads/"+branch, gitops.ModelPath("bone")) // fetched as refs/inspect
		if msg := gitCmd(t, filepath.Join(s.root, "inspect"), "log", "-1", "--format=%B", "refs/inspect"); res.Commit == "" || strings.Contains(strings.ToLower(msg), "skip ci") {
			t.Errorf("candidate commit message holds a skip marker:\n%s", msg)
		}
		sha := s.f.merge(t, n, branch, style)
		s.promoted(i+1, n, sha)
	}
}

func TestMergeMethods(t *testing.T) {
	t.Parallel()
	f, _ := fakeForge(t, githubtest.Options{})
	runMergeMethods(t, newStory(t, f, "", ""))
}

// TestDeadlock: an admin merges a pull request past its failing gate; the
// promotion refuses it and production stays; the next good pull request is
// compared with production (not with main's manifest) and promoted.
func TestDeadlock(t *testing.T) {
	t.Parallel()
	f, _ := fakeForge(t, githubtest.Options{})
	s := newStory(t, f, "", "")
	n1, res1 := s.passPR("first", nil, "batch1")
	s.promoted(1, n1, s.f.merge(t, n1, "first", "merge"))

	n2 := s.branch("worse", quality(40))
	if j, _, err := s.pr("pull_request.json", n2, "worse", true); !errors.Is(err, ci.ErrGatesFailed) {
		t.Fatalf("worse: %v\n%s", err, j.log)
	}
	s.f.merge(t, n2, "worse", "merge") // past the failing check
	j, err := s.main()
	var re *promote.RefusedError
	if !errors.As(err, &re) || !errors.Is(err, promote.ErrGateFailed) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("promotion of the admin merge: %v, want a one-line gate refusal\n%s", err, j.log)
	}

	n3, res3 := s.passPR("better", quality(95))
	if res3.BaselineVersion != 1 || res3.Baseline != res1.Artifact {
		t.Errorf("good PR compared with %s (v%d), want production v1 %s", res3.Baseline, res3.BaselineVersion, res1.Artifact)
	}
	r := s.promoted(2, n3, s.f.merge(t, n3, "better", "squash"))
	if r.Gate.Baseline != 1 || r.Gate.Result != "pass" {
		t.Errorf("v2 gates: %+v", r.Gate)
	}
}

// TestRollback: v1 and v2 promoted, a dispatch rolls back to v1: v3
// serves v1's artifact, says so, and a later push does not promote v2
// again.
func TestRollback(t *testing.T) {
	t.Parallel()
	f, _ := fakeForge(t, githubtest.Options{})
	s := newStory(t, f, "", "")
	n1, res1 := s.passPR("first", nil, "batch1")
	s.promoted(1, n1, s.f.merge(t, n1, "first", "merge"))
	n2, res2 := s.passPR("second", quality(95))
	s.promoted(2, n2, s.f.merge(t, n2, "second", "rebase"))

	rollback := func(inputs map[string]any, actor string) (*ciJob, error) {
		j := s.job("main", "workflow_dispatch", &action.Event{Inputs: inputs}, true)
		j.job.Env.Ref = "refs/heads/main"
		j.opts.Getenv = func(k string) string {
			if k == "GITHUB_ACTOR" {
				return actor
			}
			return s.mainEnv(k)
		}
		var err error
		j.res, err = ci.Main(context.Background(), j.p, j.job, j.opts)
		return j, err
	}
	if _, err := rollback(map[string]any{"rollback": "v1"}, "qa-lead"); !errors.Is(err, promote.ErrNoReason) {
		t.Errorf("rollback without a reason: %v", err)
	}
	if _, err := rollback(map[string]any{"rollback": "v7", "reason": "x"}, "qa-lead"); !errors.Is(err, promote.ErrRollbackTarget) {
		t.Errorf("rollback to a version that does not exist: %v", err)
	}
	j, err := rollback(map[string]any{"rollback": "v1", "reason": "false positives on site B's scanner"}, "qa-lead")
	if err != nil || !j.res.Promoted {
		t.Fatalf("rollback: %+v, %v\n%s", j.res, err, j.log)
	}
	r := j.res.Record
	if r.Version != 3 || r.Artifact.String() != res1.Artifact || r.Rollback == nil || r.Rollback.Of != 1 || r.Rollback.By != "qa-lead" || !strings.Contains(r.Rollback.Reason, "site B") {
		t.Fatalf("rollback record: %+v", r)
	}

	// A fresh clone gets production: v1's bytes, verified.
	dir := filepath.Join(s.root, "consumer")
	gitCmd(t, s.root, "clone", "-q", s.f.cloneURL, dir)
	p := s.open(dir)
	chain, err := promote.ReadChain(context.Background(), p, "", "")
	if err != nil {
		t.Fatal(err)
	}
	prod, err := chain.Resolve("production")
	if err != nil || prod.Version != 3 {
		t.Fatalf("production = %+v, %v", prod, err)
	}
	got, err := promote.Get(context.Background(), p, prod, filepath.Join(s.root, "served"))
	if err != nil {
		t.Fatal(err)
	}
	model, err := os.ReadFile(filepath.Join(got.Dir, "model.txt"))
	if err != nil || !strings.HasPrefix(string(model), "90 ") {
		t.Errorf("production's model.txt = %q, %v; want v1's (quality 90)", model, err)
	}
	if res2.Artifact == res1.Artifact {
		t.Fatal("v1 and v2 are the same model")
	}

	// Main still holds v2's manifest: a later push does not promote it again.
	jm, err := s.main()
	if err != nil || jm.res.Promoted || !strings.Contains(jm.log.String(), "not promoted again") {
		t.Errorf("push after the rollback: %+v, %v\n%s", jm.res, err, jm.log)
	}
	// The git mirror holds the same chain, production included.
	fromGit, err := promote.LoadChainFromGit(mustRepo(t, s.root, s.f.cloneURL), "bone", mustKey(t))
	if err != nil || len(fromGit.Records) != 3 || fromGit.Production().Rollback == nil {
		t.Errorf("chain from the git tags: %+v, %v", fromGit, err)
	}
	if ref := s.remoteRef(promote.ProdRef("bone")); ref == "" {
		t.Errorf("no %s on the origin", promote.ProdRef("bone"))
	}
}

// TestPromotionRefusals: a forged production record, a manifest copied
// from an unmerged branch, and a dispatch on another branch are each
// refused with one line naming what.
func TestPromotionRefusals(t *testing.T) {
	t.Parallel()
	f, _ := fakeForge(t, githubtest.Options{})
	s := newStory(t, f, "", "")
	n1, _ := s.passPR("first", nil, "batch1")
	s.promoted(1, n1, s.f.merge(t, n1, "first", "merge"))

	// A dispatch of another branch promotes nothing.
	j := s.job("main", "workflow_dispatch", &action.Event{}, true)
	j.job.Env.Ref = "refs/heads/first"
	j.opts.Getenv = s.mainEnv
	if _, err := ci.Main(context.Background(), j.p, j.job, j.opts); !errors.Is(err, promote.ErrNotDefault) || !errors.As(err, new(*promote.RefusedError)) {
		t.Errorf("dispatch on a branch: %v", err)
	}

	// A manifest (with its lock and config) copied from a branch that was
	// never merged, onto main through another pull request.
	s.passPR("unmerged", quality(97))
	// First pushed straight to main: no pull request was merged.
	mainBefore := s.remoteRef("refs/heads/main")
	gitCmd(t, s.dev, "fetch", "-q", s.f.pushURL, "main", "unmerged")
	gitCmd(t, s.dev, "push", "-q", s.f.pushURL, s.remoteRef("refs/heads/unmerged")+":refs/heads/main")
	if j, err := s.main(); !errors.Is(err, promote.ErrNoPullRequest) {
		t.Fatalf("a direct push to main: %v\n%s", err, j.log)
	}
	gitCmd(t, s.dev, "push", "-q", "--force", s.f.pushURL, mainBefore+":refs/heads/main")
	gitCmd(t, s.dev, "fetch", "-q", s.f.pushURL, "main")
	gitCmd(t, s.dev, "checkout", "-qB", "copycat", "FETCH_HEAD")
	for _, f := range []string{gitops.ModelPath("bone"), gitops.LockFile, gitops.ConfigFile} {
		data := s.showRemote("refs/heads/unmerged", f)
		if err := os.WriteFile(filepath.Join(s.dev, f), []byte(data+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitCmd(t, s.dev, "commit", "-qam", "copy the unmerged model")
	gitCmd(t, s.dev, "push", "-q", s.f.pushURL, "copycat")
	n3 := s.f.openPR(t, "copycat")
	s.f.merge(t, n3, "copycat", "merge")
	jm, err := s.main()
	if !errors.Is(err, promote.ErrNotMerged) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("copied manifest: %v\n%s", err, jm.log)
	}

	// A production record written without the key (a PR job's role could
	// write the bucket): every reader refuses the chain, naming the record.
	ctx := context.Background()
	store, err := local.New(filepath.Join(s.root, "store"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := store.Get(ctx, promote.RecordKey("bone", 1))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(v1, []byte(`"version": 1`), []byte(`"version": 2`), 1)
	if err := store.Put(ctx, promote.RecordKey("bone", 2), bytes.NewReader(forged), int64(len(forged)), sha256.Sum256(forged)); err != nil {
		t.Fatal(err)
	}
	_, err = s.main()
	var rec *promote.RecordError
	if !errors.As(err, &rec) || !strings.HasPrefix(err.Error(), "aliases/bone/v2.json on ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("forged v2, promotion: %v", err)
	}
	n4 := s.branch("after-forgery", quality(99))
	if _, _, err := s.pr("pull_request.json", n4, "after-forgery", true); !errors.As(err, &rec) {
		t.Errorf("forged v2, ci pr: %v", err)
	}
}

// mustRepo is a fresh clone of url, its tags included.
func mustRepo(t *testing.T, root, url string) *git.Repository {
	t.Helper()
	dir, err := os.MkdirTemp(root, "clone")
	if err != nil {
		t.Fatal(err)
	}
	gitCmd(t, root, "clone", "-q", url, dir)
	repo, err := gitrepo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// mustKey is the public key of the story's signing key.
func mustKey(t *testing.T) promote.PublicKey {
	t.Helper()
	s, err := promote.NewSigner(signingKey)
	if err != nil {
		t.Fatal(err)
	}
	return s.Public()
}

// TestMergeQueue: a merge_group event evaluates the queue's commit and
// sets the check on it, which the queue waits for; it commits and
// comments nothing.
func TestMergeQueue(t *testing.T) {
	t.Parallel()
	f, gh := fakeForge(t, githubtest.Options{})
	s := newStory(t, f, "", "")
	n, _ := s.passPR("queued", nil, "batch1")
	comments := len(gh.Comments(n))
	// The queue's commit: the pull request merged onto main, on its branch.
	work := filepath.Join(s.root, "queue")
	gitCmd(t, s.root, "clone", "-q", s.f.pushURL, work)
	gitCmd(t, work, "merge", "-q", "--no-ff", "origin/queued", "-m", "Merge queue")
	sha := gitCmd(t, work, "rev-parse", "HEAD")
	ref := fmt.Sprintf("refs/heads/gh-readonly-queue/main/pr-%d-%s", n, sha)
	gitCmd(t, work, "push", "-q", "origin", "HEAD:"+ref)

	j := s.job(strings.TrimPrefix(ref, "refs/heads/"), "merge_group", nil, true)
	payload := fmt.Sprintf(`{"merge_group": {"head_sha": %q, "head_ref": %q, "base_sha": "", "base_ref": "refs/heads/main"}}`, sha, ref)
	ev, err := action.ParseEvent("merge_group", []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	j.job.Event = ev
	res, err := ci.PR(context.Background(), j.p, j.job, j.opts)
	if err != nil || res.Verdict != "pass" || res.Commit != "" || res.Comment != "" {
		t.Fatalf("merge group: %+v, %v\n%s", res, err, j.log)
	}
	if got := s.f.checks(t, sha); len(got) != 1 || got[0] != "success" {
		t.Errorf("checks on the queue's commit: %q", got)
	}
	if s.remoteRef(ref) != sha {
		t.Error("the queue's branch moved")
	}
	if len(gh.Comments(n)) != comments {
		t.Error("the merge group commented")
	}
	if _, err := action.ParseEvent("merge_group", []byte(`{"merge_group": {"head_sha": "abc", "head_ref": "refs/heads/other", "base_ref": "refs/heads/main"}}`)); err == nil {
		t.Error("a merge group on a branch that names no pull request parsed")
	}
}

// TestRunCachePoisoning: a pull request's job writes its run-cache
// entries in its own namespace; a trusted reader with the very same keys
// (a clone of the branch before it is merged) never restores them, while
// after the merge the promotion adopts the merged lock and clones of main
// restore it.
func TestRunCachePoisoning(t *testing.T) {
	t.Parallel()
	f, _ := fakeForge(t, githubtest.Options{})
	s := newStory(t, f, "", "")
	n, _ := s.passPR("first", nil, "batch1")
	store, err := local.New(filepath.Join(s.root, "store"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	count := func(prefix string) int {
		n := 0
		store.List(ctx, prefix, func(string, int64) error { n++; return nil })
		return n
	}
	if got := count(stages.NamespacePrefix(fmt.Sprintf("pr-%d", n))); got == 0 {
		t.Fatal("the pull request's job wrote no run-cache entries in its namespace")
	}
	if got := count("runcache/"); got != 0 {
		t.Fatalf("the pull request's job wrote %d trusted run-cache entries", got)
	}
	repro := func(branch string) map[string]stages.Status {
		t.Helper()
		dir, err := os.MkdirTemp(s.root, "reader")
		if err != nil {
			t.Fatal(err)
		}
		gitCmd(t, s.root, "clone", "-q", "-b", branch, s.f.cloneURL, dir)
		st := map[string]stages.Status{}
		o := stages.ReproOptions{Exe: "medcad", Jobs: 2, OnEvent: func(e stages.Event) {
			if e.Case == "" && e.Err == nil {
				st[e.Stage] = e.Status
			}
		}}
		p := s.open(dir)
		if _, err := p.PullData(ctx, gitops.TransferOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := stages.Reproduce(ctx, p, o); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := repro("first"); st["train"] != stages.Ran {
		t.Errorf("a trusted clone of the unmerged branch: train %q, want ran (never restored from the PR's entries)", st["train"])
	}
	s.promoted(1, n, s.f.merge(t, n, "first", "merge"))
	if st := repro("main"); st["train"] != stages.UpToDate && st["train"] != stages.Restored {
		t.Errorf("a clone of main after the promotion: train %q, want restored from the adopted entries", st["train"])
	}
}

// TestCostLine: the GPU runner's cost line, as 'medcad runner stop'
// writes it, ends the pull request's sticky comment.
func TestCostLine(t *testing.T) {
	t.Parallel()
	f, _ := fakeForge(t, githubtest.Options{})
	s := newStory(t, f, "", "")
	n := s.branch("gpu", nil, "batch1")
	j := s.job("gpu", "pull_request", nil, true)
	j.job.Event = prEvent(t, "pull_request.json", n, "gpu", gitCmd(t, j.p.Root, "rev-parse", "HEAD"))
	line := runner.CostLine([]runner.Cost{{Instance: "i-0abc", Type: "g5.xlarge", Market: runner.OnDemand, USDPerHour: 1.006, Minutes: 42, USD: 1.006 * 42 / 60}})
	j.opts.Cost = line
	if _, err := ci.PR(context.Background(), j.p, j.job, j.opts); err != nil {
		t.Fatalf("%v\n%s", err, j.log)
	}
	ours := medcadComments(s.f.comments(t, n))
	if len(ours) != 1 || !strings.Contains(ours[0], "\n"+line+"\n") || !strings.HasPrefix(line, "**GPU cost:** $0.70") {
		t.Errorf("cost line %q; comments %q", line, ours)
	}
}
