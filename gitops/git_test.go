package gitops

import (
	"fmt"
	"github.com/medcad/medcad/gitops/cas"
	"os"
	"path/filepath"
	"slices"
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

func digest(n int) string { return fmt.Sprintf("sha256:%064x", n) }

func TestDatasetsAndReferencedDigests(t *testing.T) {
	dir := t.TempDir()
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: "refs/heads/main"}})
	if err != nil {
		t.Fatal(err)
	}
	first := commitFiles(t, repo, dir, map[string]string{
		"data/2025-10-batch3.dataset.toml": goodPointer,
		"data/notes.txt":                   "not a pointer " + digest(9),
		"models/bone.model.toml":           "artifact = \"" + digest(10) + "\"\n",
	}, "first")
	c, err := repo.CommitObject(first)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := DatasetsAt(c)
	if err != nil || len(ds) != 1 || ds[0].Name != "2025-10-batch3" {
		t.Fatalf("DatasetsAt = %v, %v", ds, err)
	}
	// Overwritten in a later commit, the old model's digest is still
	// referenced by the tag; the working tree and a run record add theirs.
	if _, err := repo.CreateTag("v1", first, nil); err != nil {
		t.Fatal(err)
	}
	commitFiles(t, repo, dir, map[string]string{"models/bone.model.toml": "artifact = \"" + digest(11) + "\"\n"}, "second")
	os.WriteFile(filepath.Join(dir, "medcad.lock"), []byte(digest(12)), 0o644)
	outs, err := cas.ParseID(digest(13))
	if err != nil {
		t.Fatal(err)
	}
	if err := SaveRun(repo, &Run{ID: "20260101T000000Z-abcdef", Outs: outs}); err != nil {
		t.Fatal(err)
	}
	got, err := ReferencedDigests(repo, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"sha256:0000000000000000000000000000000000000000000000000000000000000001",
		"sha256:0000000000000000000000000000000000000000000000000000000000000002",
		"sha256:0000000000000000000000000000000000000000000000000000000000000003",
		"sha256:5f2a91c0aa8b1f3e9d41c7a0e2b6d8f4a3c5e7b9d1f3a5c7e9b1d3f5a7c9e1b3",
		digest(10), digest(11), digest(12), digest(13),
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReferencedDigests (-want +got):\n%s", diff)
	}
}
