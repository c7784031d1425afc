package gitops

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-cmp/cmp"
)

func commitFiles(t *testing.T, repo *git.Repository, dir string, files map[string]string, msg string) plumbing.Hash {
	t.Helper()
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	sig := &object.Signature{Name: "t", Email: "t@example.org", When: time.Unix(1700000000, 0)}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestGitHelpers(t *testing.T) {
	dir := t.TempDir()
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: "refs/heads/main"}})
	if err != nil {
		t.Fatal(err)
	}
	first := commitFiles(t, repo, dir, map[string]string{
		"data/2025-10-batch3.dataset.toml": goodPointer,
		"data/notes.txt":                   "not a pointer",
		"README.md":                        "hello",
	}, "first")
	if _, err := repo.CreateTag("v1", first, &git.CreateTagOptions{Message: "v1", Tagger: &object.Signature{Name: "t", When: time.Unix(1700000000, 0)}}); err != nil {
		t.Fatal(err)
	}
	second := commitFiles(t, repo, dir, map[string]string{"README.md": "changed"}, "second")
	blob := repo.Storer.NewEncodedObject()
	blob.SetType(plumbing.BlobObject)
	w, _ := blob.Writer()
	w.Write([]byte("run record"))
	w.Close()
	bh, err := repo.Storer.SetEncodedObject(blob)
	if err != nil {
		t.Fatal(err)
	}
	repo.Storer.SetReference(plumbing.NewHashReference("refs/medcad/runs/r1", bh))

	sub := filepath.Join(dir, "data")
	r2, err := OpenRepo(sub) // from a subfolder
	if err != nil {
		t.Fatal(err)
	}
	c, err := ResolveCommit(r2, "HEAD~1")
	if err != nil || c.Hash != first {
		t.Fatalf("HEAD~1 = %v, %v; want %v", c, err, first)
	}
	if c, err := ResolveCommit(r2, "v1"); err != nil || c.Hash != first {
		t.Fatalf("annotated tag v1 = %v, %v", c, err)
	}
	if _, err := ResolveCommit(r2, "nope"); err == nil {
		t.Error("unknown revision resolved")
	}
	data, err := ReadFileAt(c, "README.md", 100)
	if err != nil || string(data) != "hello" {
		t.Errorf("ReadFileAt = %q, %v", data, err)
	}
	if _, err := ReadFileAt(c, "missing", 100); !errors.Is(err, ErrNoFile) {
		t.Errorf("missing file: %v, want ErrNoFile", err)
	}
	if _, err := ReadFileAt(c, "README.md", 2); err == nil {
		t.Error("limit not enforced")
	}
	names, err := ListFilesAt(c, "data")
	if diff := cmp.Diff([]string{"2025-10-batch3.dataset.toml", "notes.txt"}, names); diff != "" || err != nil {
		t.Errorf("ListFilesAt (-want +got): %s %v", diff, err)
	}
	if names, err := ListFilesAt(c, "nope"); err != nil || names != nil {
		t.Errorf("ListFilesAt of a missing folder = %v, %v", names, err)
	}
	ds, err := DatasetsAt(c)
	if err != nil || len(ds) != 1 || ds[0].Name != "2025-10-batch3" {
		t.Fatalf("DatasetsAt = %v, %v", ds, err)
	}
	tips, err := RefTips(r2)
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
		"HEAD":                second.String(),
		"refs/heads/main":     second.String(),
		"refs/tags/v1":        first.String(),
		"refs/medcad/runs/r1": "run record",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RefTips (-want +got):\n%s", diff)
	}
}
