package gitrepo

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/testenv"
)

// history makes a repository in a folder whose main branch (and HEAD)
// has n linear commits, and returns it with the commits, oldest first.
func history(t *testing.T, n int) (string, *git.Repository, []plumbing.Hash) {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: "refs/heads/main"}})
	if err != nil {
		t.Fatal(err)
	}
	var hashes []plumbing.Hash
	var parent *object.Commit
	for i := range n {
		h, _, err := Commit(repo, CommitOptions{Parent: parent, Files: map[string][]byte{"n.txt": {byte('0' + i)}}, Message: "c", When: time.Unix(1e9+int64(i), 0)})
		if err != nil {
			t.Fatal(err)
		}
		if parent, err = repo.CommitObject(h); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	if n > 0 {
		if err := repo.Storer.SetReference(plumbing.NewHashReference("refs/heads/main", hashes[n-1])); err != nil {
			t.Fatal(err)
		}
	}
	return dir, repo, hashes
}

func TestResolve(t *testing.T) {
	t.Parallel()
	_, empty, _ := history(t, 0)
	_, repo, h := history(t, 3)
	if err := Tag(repo, "v1", h[0], "first"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		repo    *git.Repository
		rev     string
		want    plumbing.Hash
		err     error
		message string
	}{
		{repo: empty, rev: "HEAD", err: ErrNoCommit, message: `revision "HEAD": nothing is committed yet: commit medcad.toml and your pointers first`},
		{repo: empty, rev: "HEAD~1", err: ErrNoCommit},
		{repo: empty, rev: "main", err: ErrNoCommit},
		{repo: repo, rev: "HEAD", want: h[2]},
		{repo: repo, rev: "main~2", want: h[0]},
		{repo: repo, rev: "HEAD^^", want: h[0]},
		{repo: repo, rev: "HEAD^1~1", want: h[0]},
		{repo: repo, rev: "HEAD^0", want: h[2]},
		{repo: repo, rev: "v1", want: h[0]}, // annotated tag
		{repo: repo, rev: h[1].String()[:10], want: h[1]},
		{repo: repo, rev: "HEAD~50", err: ErrShortHistory, message: "HEAD~50: the history has only 3 commits"},
		{repo: repo, rev: "HEAD~3", err: ErrShortHistory, message: "HEAD~3: the history has only 3 commits"},
		{repo: repo, rev: "HEAD^^^", err: ErrShortHistory, message: "HEAD^^^: the history has only 3 commits"},
		{repo: repo, rev: "v1~1", err: ErrShortHistory, message: "v1~1: the history has only 1 commit"},
		{repo: repo, rev: "HEAD^2", err: ErrNoRevision},
		{repo: repo, rev: "", err: ErrNoRevision},
		{repo: repo, rev: "@~1", want: h[1]},
		{repo: repo, rev: "nope", err: ErrNoRevision, message: `revision "nope": no such branch, tag or commit`},
		{repo: repo, rev: "nope~1", err: ErrNoRevision},
	}
	for _, tt := range tests {
		c, err := Resolve(tt.repo, tt.rev)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Resolve(%q) = %v, want %v", tt.rev, err, tt.err)
			} else if tt.message != "" && err.Error() != tt.message {
				t.Errorf("Resolve(%q) error %q, want %q", tt.rev, err, tt.message)
			}
			continue
		}
		if err != nil || c.Hash != tt.want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", tt.rev, c, err, tt.want)
		}
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	dir, _, h := history(t, 1)
	sub := filepath.Join(dir, "data", "deep")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	repo, err := Open(sub) // from a subfolder, as git does
	if err != nil {
		t.Fatal(err)
	}
	if c, err := Resolve(repo, "HEAD"); err != nil || c.Hash != h[0] {
		t.Fatalf("HEAD = %v, %v", c, err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrNoRepo) {
		t.Errorf("Open outside a repository: %v, want ErrNoRepo", err)
	}

	// A linked worktree finds the objects of the main repository.
	gitBin := testenv.LookPath(t, "git")
	linked := filepath.Join(t.TempDir(), "linked")
	if out, err := exec.Command(gitBin, "-C", dir, "worktree", "add", "-q", "-b", "other", linked, "main").CombinedOutput(); err != nil {
		t.Fatalf("git worktree add: %v\n%s", err, out)
	}
	wrepo, err := Open(linked)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := Resolve(wrepo, "main"); err != nil || c.Hash != h[0] {
		t.Errorf("main from a linked worktree = %v, %v", c, err)
	}
}

func TestResolveShallow(t *testing.T) {
	t.Parallel()
	gitBin := testenv.LookPath(t, "git")
	dir, _, h := history(t, 3)
	clone := filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command(gitBin, "clone", "-q", "--depth", "1", "file://"+dir, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone --depth 1: %v\n%s", err, out)
	}
	repo, err := Open(clone)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := Resolve(repo, "HEAD"); err != nil || c.Hash != h[2] {
		t.Fatalf("HEAD = %v, %v", c, err)
	}
	_, err = Resolve(repo, "HEAD~1")
	if !errors.Is(err, ErrShortHistory) || !strings.Contains(err.Error(), "shallow") {
		t.Errorf("HEAD~1 in a shallow clone: %v, want ErrShortHistory saying it is shallow", err)
	}
}

func TestReadAndList(t *testing.T) {
	t.Parallel()
	_, repo, _ := history(t, 0)
	h, _, err := Commit(repo, CommitOptions{Files: map[string][]byte{
		"README.md": []byte("hello"), "data/b.toml": nil, "data/a.toml": nil, "data/sub/x": nil,
	}})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := repo.CommitObject(h)
	if data, err := ReadFile(c, "README.md", 100); err != nil || string(data) != "hello" {
		t.Errorf("ReadFile = %q, %v", data, err)
	}
	if _, err := ReadFile(c, "missing", 100); !errors.Is(err, ErrNoFile) {
		t.Errorf("missing file: %v, want ErrNoFile", err)
	}
	if _, err := ReadFile(c, "README.md", 2); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v, want ErrTooLarge", err)
	}
	names, err := ListFiles(c, "data")
	if diff := cmp.Diff([]string{"a.toml", "b.toml"}, names); diff != "" || err != nil {
		t.Errorf("ListFiles (-want +got): %s %v", diff, err)
	}
	if names, err := ListFiles(c, "nope"); err != nil || names != nil {
		t.Errorf("ListFiles of a missing folder = %v, %v", names, err)
	}
}

func TestTipsAndRefs(t *testing.T) {
	t.Parallel()
	_, repo, h := history(t, 2)
	if err := Tag(repo, "v1", h[0], "v1"); err != nil {
		t.Fatal(err)
	}
	if err := Tag(repo, "v1", h[1], "again"); !errors.Is(err, ErrTagExists) {
		t.Errorf("second tag v1: %v, want ErrTagExists", err)
	}
	bh, err := WriteBlob(repo, []byte("run record"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"refs/medcad/runs/r2", "refs/medcad/runs/r1"} {
		repo.Storer.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(name), bh))
	}
	tips, err := Tips(repo)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tip := range tips {
		switch {
		case tip.Commit != nil:
			got[tip.Name] = tip.Commit.Hash.String()
		case tip.Blob != nil:
			data, _ := ReadBlob(tip.Blob, 100)
			got[tip.Name] = string(data)
		}
	}
	want := map[string]string{
		"HEAD":                h[1].String(),
		"refs/heads/main":     h[1].String(),
		"refs/tags/v1":        h[0].String(),
		"refs/medcad/runs/r1": "run record",
		"refs/medcad/runs/r2": "run record",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Tips (-want +got):\n%s", diff)
	}
	refs, err := Refs(repo, "refs/medcad/runs/")
	if err != nil || len(refs) != 2 || refs[0].Name() != "refs/medcad/runs/r1" {
		t.Errorf("Refs = %v, %v", refs, err)
	}
	blob, err := repo.BlobObject(bh)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBlob(blob, 3); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadBlob over the limit: %v", err)
	}
}

func TestMergeBaseUnrelated(t *testing.T) {
	t.Parallel()
	_, repo, h := history(t, 1)
	other, _, err := Commit(repo, CommitOptions{Files: map[string][]byte{"x": nil}, Message: "orphan"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := repo.CommitObject(h[0])
	b, _ := repo.CommitObject(other)
	if _, err := MergeBase(a, b); !errors.Is(err, ErrUnrelated) {
		t.Errorf("MergeBase of unrelated commits: %v, want ErrUnrelated", err)
	}
}
