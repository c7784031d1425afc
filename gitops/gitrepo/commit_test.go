package gitrepo

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/testenv"
)

// newRepos makes a bare remote with one commit on main and a clone of it.
func newRepos(t *testing.T) (bare string, clone *git.Repository) {
	t.Helper()
	dir := t.TempDir()
	bare = filepath.Join(dir, "remote.git")
	if _, err := git.PlainInit(bare, true); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	repo, err := git.PlainInit(work, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{bare}}); err != nil {
		t.Fatal(err)
	}
	h, _, err := Commit(repo, CommitOptions{Files: map[string][]byte{
		"README.md": []byte("hi\n"), "models/.gitkeep": nil, "models.txt": []byte("x"), "data/a.dataset.toml": []byte("a"),
	}, Message: "init", When: time.Unix(1e9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	repo.Storer.SetReference(plumbing.NewHashReference("refs/heads/main", h))
	if err := Push(context.Background(), repo, Remote{Name: "origin"}, "refs/heads/main:refs/heads/main"); err != nil {
		t.Fatal(err)
	}
	return bare, repo
}

func files(t *testing.T, repo *git.Repository, h plumbing.Hash) map[string]string {
	t.Helper()
	c, err := repo.CommitObject(h)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	iter, _ := c.Files()
	iter.ForEach(func(f *object.File) error {
		s, _ := f.Contents()
		out[f.Name] = s
		return nil
	})
	return out
}

func fsck(t *testing.T, bare string) {
	t.Helper()
	gitBin := testenv.LookPath(t, "git")
	if out, err := exec.Command(gitBin, "-C", bare, "fsck", "--strict", "--no-dangling").CombinedOutput(); err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
}

func TestCommitToBranch(t *testing.T) {
	ctx := context.Background()
	bare, repo := newRepos(t)
	r := Remote{Name: "origin"}
	main, _ := repo.Reference("refs/heads/main", true)
	parent, _ := repo.CommitObject(main.Hash())
	upd := map[string][]byte{"models/bone.model.toml": []byte("name = \"bone\"\n"), "medcad.lock": []byte("lock\n")}
	h, pushed, err := CommitToBranch(ctx, repo, r, "pr-branch", parent, upd, "medcad: candidate model")
	if err != nil || !pushed {
		t.Fatalf("CommitToBranch: pushed %v, %v", pushed, err)
	}
	want := map[string]string{"README.md": "hi\n", "models/.gitkeep": "", "models.txt": "x", "data/a.dataset.toml": "a",
		"models/bone.model.toml": "name = \"bone\"\n", "medcad.lock": "lock\n"}
	if diff := cmp.Diff(want, files(t, repo, h)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	// The remote has the branch, and the objects are well formed.
	remote, _ := git.PlainOpen(bare)
	ref, err := remote.Reference("refs/heads/pr-branch", true)
	if err != nil || ref.Hash() != h {
		t.Fatalf("remote branch = %v, %v; want %s", ref, err, h)
	}
	c, _ := remote.CommitObject(h)
	if c.Author.Name != "github-actions[bot]" || len(c.ParentHashes) != 1 || c.ParentHashes[0] != parent.Hash {
		t.Errorf("commit author %q parents %v", c.Author.Name, c.ParentHashes)
	}
	fsck(t, bare)

	// Same content again: nothing to commit.
	c2, _ := repo.CommitObject(h)
	if h2, pushed, err := CommitToBranch(ctx, repo, r, "pr-branch", c2, upd, "again"); err != nil || pushed || h2 != h {
		t.Errorf("unchanged: %s %v %v", h2, pushed, err)
	}
	// A re-run from the original parent finds the earlier run's commit.
	if h2, pushed, err := CommitToBranch(ctx, repo, r, "pr-branch", parent, upd, "rerun"); err != nil || pushed || h2 != h {
		t.Errorf("re-run: %s %v %v, want %s found", h2, pushed, err, h)
	}
	// A re-run with other content builds on the earlier run's commit.
	h3, pushed, err := CommitToBranch(ctx, repo, r, "pr-branch", parent, map[string][]byte{"medcad.lock": []byte("other\n")}, "rerun 2")
	if c3, _ := repo.CommitObject(h3); err != nil || !pushed || c3 == nil || c3.ParentHashes[0] != h {
		t.Fatalf("re-run with new content: %s %v %v, want a commit on %s", h3, pushed, err, h)
	}
	// A person pushed meanwhile: a run from the old parent is refused
	// rather than forced over their commit.
	c3, _ := repo.CommitObject(h3)
	human, _, _ := Commit(repo, CommitOptions{Parent: c3, Files: map[string][]byte{"README.md": []byte("edited\n")}, Message: "human"})
	hc, _ := repo.CommitObject(human)
	hc.Author.Email, hc.Author.Name = "dev@example.org", "dev"
	hh, _ := store(repo.Storer, hc)
	repo.Storer.SetReference(plumbing.NewHashReference("refs/heads/human", hh))
	if err := Push(ctx, repo, r, "refs/heads/human:refs/heads/pr-branch"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := CommitToBranch(ctx, repo, r, "pr-branch", parent, map[string][]byte{"medcad.lock": []byte("stale\n")}, "stale"); err == nil {
		t.Error("a stale run overwrote a person's commit")
	}

	// An assets branch that does not exist yet starts with a root commit,
	// and later commits build on the remote tip.
	a1, _, err := CommitToBranch(ctx, repo, r, "medcad-assets", nil, map[string][]byte{"pr-7/delta.png": []byte("png1")}, "assets")
	if err != nil {
		t.Fatal(err)
	}
	a2, _, err := CommitToBranch(ctx, repo, r, "medcad-assets", nil, map[string][]byte{"pr-8/delta.png": []byte("png2")}, "assets")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"pr-7/delta.png": "png1", "pr-8/delta.png": "png2"}, files(t, repo, a2)); diff != "" {
		t.Errorf("assets (-want +got):\n%s", diff)
	}
	if c, _ := repo.CommitObject(a2); len(c.ParentHashes) != 1 || c.ParentHashes[0] != a1 {
		t.Errorf("assets commit parents %v, want %s", c.ParentHashes, a1)
	}
	fsck(t, bare)

	for _, bad := range []string{"../x", "/etc/passwd", ".git/config", "a//b", ""} {
		if _, _, err := Commit(repo, CommitOptions{Files: map[string][]byte{bad: nil}}); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
	if _, _, err := CommitToBranch(ctx, repo, r, "bad..name", nil, nil, "x"); err == nil {
		t.Error("bad branch name accepted")
	}
}

func TestTreeOrder(t *testing.T) {
	_, repo := newRepos(t)
	// "a.b" sorts before "a/" and "a-" before "a.b": git's order.
	h, _, err := Commit(repo, CommitOptions{Files: map[string][]byte{"a/x": nil, "a.b": nil, "a-": nil, "b": nil}})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := repo.CommitObject(h)
	tree, _ := c.Tree()
	var names []string
	for _, e := range tree.Entries {
		names = append(names, e.Name)
	}
	if !sort.StringsAreSorted([]string{"a-", "a.b", "a/"}) || !cmp.Equal(names, []string{"a-", "a.b", "a", "b"}) {
		t.Errorf("entries %v", names)
	}
}

func TestTagAndMergeBase(t *testing.T) {
	ctx := context.Background()
	bare, repo := newRepos(t)
	r := Remote{Name: "origin"}
	main, _ := repo.Reference("refs/heads/main", true)
	root, _ := repo.CommitObject(main.Hash())
	b1, _, _ := Commit(repo, CommitOptions{Parent: root, Files: map[string][]byte{"x": []byte("1")}, Message: "b1"})
	b2, _, _ := Commit(repo, CommitOptions{Parent: root, Files: map[string][]byte{"x": []byte("2")}, Message: "b2"})
	c1, _ := repo.CommitObject(b1)
	c2, _ := repo.CommitObject(b2)
	mb, err := MergeBase(c1, c2)
	if err != nil || mb.Hash != root.Hash {
		t.Fatalf("merge base = %v, %v; want %s", mb, err, root.Hash)
	}
	if err := TagAndPush(ctx, repo, r, "models/bone/v1", b1, "promoted v1"); err != nil {
		t.Fatal(err)
	}
	remote, _ := git.PlainOpen(bare)
	tag, err := remote.Tag("models/bone/v1")
	if err != nil {
		t.Fatal(err)
	}
	to, err := remote.TagObject(tag.Hash())
	if err != nil || to.Target != b1 || to.Tagger.Name != "github-actions[bot]" {
		t.Fatalf("tag object %v %v", to, err)
	}
	if err := TagAndPush(ctx, repo, r, "models/bone/v1", b2, "again"); !errors.Is(err, ErrTagExists) {
		t.Errorf("second v1: %v", err)
	}
	// A racing promotion that did not see the tag cannot push it either.
	if err := repo.DeleteTag("models/bone/v1"); err != nil {
		t.Fatal(err)
	}
	if err := TagAndPush(ctx, repo, r, "models/bone/v1", b2, "race"); !errors.Is(err, ErrTagExists) {
		t.Errorf("racing v1: %v", err)
	}
	fsck(t, bare)
}
