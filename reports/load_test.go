package reports

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/cas/local"
)

type project struct {
	dir   string
	repo  *git.Repository
	store *cas.Store
	evals []cas.ID // the eval manifests stored, in order
	objs  []cas.ID // every object stored
}

func newProject(t *testing.T) *project {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cas.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &project{dir: dir, repo: repo, store: s}
}

// model stores an evaluation with the given dice per case and writes a
// manifest naming it into the working tree.
func (p *project) model(t *testing.T, dice ...float64) {
	t.Helper()
	cases := map[string]caseVals{}
	for i, d := range dice {
		cases["c-"+string(rune('a'+i))] = caseVals{"dice": d, "iou": d, "hd_mm": 1, "hd95_mm": 1, "assd_mm": 1, "masd_mm": 1, "nsd@1": d}
	}
	data := evalFile(t, cases)
	id, err := p.store.PutBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	m := &cas.Manifest{Entries: []cas.Entry{{Path: "build/eval/eval.json", Size: int64(len(data)), Mode: 0o644, ID: id}}}
	mid, err := p.store.PutBytes(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	p.evals = append(p.evals, mid)
	p.objs = append(p.objs, id, mid)
	model := &gitops.Model{Schema: 1, Name: "bone", Eval: mid, Params: map[string]string{}}
	if err := model.Write(p.dir); err != nil {
		t.Fatal(err)
	}
}

func (p *project) commit(t *testing.T, msg string) plumbing.Hash {
	t.Helper()
	wt, err := p.repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddGlob("models/*"); err != nil && !errors.Is(err, git.ErrGlobNoMatches) {
		t.Fatal(err)
	}
	h, err := wt.Commit(msg, &git.CommitOptions{AllowEmptyCommits: true,
		Author: &object.Signature{Name: "t", Email: "t@example.org", When: time.Unix(1700000000, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (p *project) loader() *Loader {
	return &Loader{Dir: p.dir, Repo: p.repo, Store: p.store, Config: gitops.Default()}
}

func TestLoaderRevAndWorkTree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProject(t)
	empty := p.commit(t, "pipeline")
	p.model(t, 0.9, 0.8)
	p.commit(t, "model v1\n\nbody")
	if err := p.repo.Storer.SetReference(plumbing.NewHashReference("refs/heads/feature", empty)); err != nil {
		t.Fatal(err)
	}
	p.model(t, 0.95, 0.85, 0.7) // uncommitted candidate
	l := p.loader()

	base, err := l.Rev(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base.Ref, "main@") || len(base.Eval.Cases) != 2 {
		t.Errorf("base %s with %d cases, want main@… with 2", base.Ref, len(base.Eval.Cases))
	}
	cand, err := l.WorkTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cand.Ref != WorkTree || len(cand.Eval.Cases) != 3 {
		t.Errorf("candidate %s with %d cases", cand.Ref, len(cand.Eval.Cases))
	}
	// A revision without a manifest: the first model.
	if _, err := l.Rev(ctx, "feature"); !errors.Is(err, gitops.ErrNoModel) {
		t.Errorf("feature: %v, want ErrNoModel", err)
	}
	if _, err := l.Rev(ctx, "nope"); err == nil || !strings.Contains(err.Error(), `revision "nope"`) {
		t.Errorf("unknown revision: %v", err)
	}
	// A manifest file.
	f := filepath.Join(p.dir, "models", "bone.model.toml")
	if s, err := l.File(ctx, f); err != nil || len(s.Eval.Cases) != 3 {
		t.Errorf("File: %v", err)
	}
}

func TestLoaderFetchesFromRemote(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProject(t)
	p.model(t, 0.9)
	remote, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l := p.loader()
	for _, id := range p.objs {
		if err := p.store.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	// No remote: the error says what is missing and what to do.
	_, err = l.WorkTree(ctx)
	if !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "medcad data pull") {
		t.Fatalf("no remote: %v", err)
	}
	// A remote without the objects.
	l.Remote = remote
	if _, err := l.WorkTree(ctx); !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "nor on the remote") {
		t.Fatalf("empty remote: %v", err)
	}
	// Put them there (as 'medcad data push' would): they are fetched.
	p2 := newProject(t)
	p2.model(t, 0.9)
	if _, err := cas.Push(ctx, p2.store, remote, p2.evals, cas.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := l.WorkTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Eval.Cases) != 1 || !p.store.Has(p.evals[0]) {
		t.Errorf("fetched %d cases; cached %v", len(s.Eval.Cases), p.store.Has(p.evals[0]))
	}
}

func TestDefaultBase(t *testing.T) {
	t.Parallel()
	p := newProject(t)
	p.model(t, 0.9)
	v1 := p.commit(t, "v1")
	// HEAD moves on (a feature branch); main stays at v1.
	if err := p.repo.Storer.SetReference(plumbing.NewHashReference("refs/heads/main", v1)); err != nil {
		t.Fatal(err)
	}
	wt, _ := p.repo.Worktree()
	if err := wt.Checkout(&git.CheckoutOptions{Branch: "refs/heads/feature", Create: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "models", "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.commit(t, "feature work")
	got, err := p.loader().DefaultBase()
	if err != nil {
		t.Fatal(err)
	}
	if got != v1.String() {
		t.Errorf("merge base %s, want %s", got, v1)
	}
	l := p.loader()
	l.Config.Project.DefaultBranch = "trunk"
	if _, err := l.DefaultBase(); err == nil || !strings.Contains(err.Error(), `default branch "trunk" not found`) {
		t.Errorf("missing default branch: %v", err)
	}
}
