package cas

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// pushed adds files to a new store, pushes them to a new local remote and
// returns the remote and the manifest.
func pushed(t *testing.T, files map[string]string) (Backend, *AddResult, string) {
	t.Helper()
	ctx := context.Background()
	a, _ := Open(t.TempDir())
	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, src, files)
	res, err := a.AddDir(ctx, src, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	remote := dirRemote(dir)
	if _, err := Push(ctx, a, remote, []ID{res.ID}, TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	return remote, res, dir
}

// pullInto pulls res into a fresh store with out as its target, then
// checks it out as data pull does; it returns both results. Every file
// placed during the pull must be in the index as it was written.
func pullInto(t *testing.T, b Backend, res *AddResult, out string, link LinkMode) (*TransferResult, *CheckoutResult, error) {
	t.Helper()
	ctx := context.Background()
	s, _ := Open(t.TempDir())
	ix := &Index{entries: map[string]indexEntry{}}
	co := CheckoutOptions{Link: link, TreeOptions: TreeOptions{Index: ix, IndexPrefix: "ws"}}
	tr, err := Pull(ctx, s, b, []ID{res.ID}, TransferOptions{Jobs: 8, Targets: []PullTarget{{Manifest: res.ID, Dir: out, Options: co}},
		Retry: RetryPolicy{Attempts: 2, Base: time.Millisecond}})
	if err != nil {
		return tr, nil, err
	}
	known := 0
	for _, e := range res.Manifest.Entries {
		if fi, err := os.Lstat(filepath.Join(out, filepath.FromSlash(e.Path))); err == nil {
			if id, ok := ix.Lookup("ws/"+e.Path, fi); ok && id == e.ID {
				known++
			}
		}
	}
	if known != tr.Placed {
		t.Errorf("%d files in the index after the pull; want the %d placed", known, tr.Placed)
	}
	cr, err := s.Checkout(ctx, res.Manifest, out, co)
	return tr, cr, err
}

// noTemporaries fails when a checkout temporary is left under dir.
func noTemporaries(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), checkoutTemp) {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// TestPullPlaces: a pull with a target writes each object's first file as
// the object arrives; the checkout after it writes the other files of
// the same content and finds the rest in place, known to the index.
func TestPullPlaces(t *testing.T) {
	files := map[string]string{"big/labels.nii": strings.Repeat("L", 3<<20+123), "empty": ""}
	for i := range 120 {
		files[fmt.Sprintf("d%d/f%03d", i%7, i)] = fmt.Sprintf("content %d", i%100)
	}
	remote, res, _ := pushed(t, files)
	distinct := map[ID]bool{}
	for _, e := range res.Manifest.Entries {
		distinct[e.ID] = true
	}
	out := filepath.Join(t.TempDir(), "ws")
	tr, cr, err := pullInto(t, remote, res, out, LinkCopy)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Placed != len(distinct) {
		t.Errorf("placed %d files during the pull; want one per object, %d", tr.Placed, len(distinct))
	}
	if cr.Written != len(files)-tr.Placed || cr.Unchanged != tr.Placed {
		t.Errorf("checkout after the pull: %+v; want %d written, %d unchanged", cr, len(files)-tr.Placed, tr.Placed)
	}
	if diff := cmp.Diff(files, readTree(t, out)); diff != "" {
		t.Errorf("pulled tree (-want +got):\n%s", diff)
	}
	noTemporaries(t, out)
	fi, err := os.Stat(filepath.Join(out, "big", "labels.nii"))
	if err != nil || fi.Mode().Perm() != 0o644 || time.Since(fi.ModTime()) < time.Second {
		t.Errorf("placed file: %v, %v; want mode 0644 and a settled time", fi, err)
	}

	// With hard links the checkout links the cache objects instead.
	tr, _, err = pullInto(t, remote, res, filepath.Join(t.TempDir(), "ws"), LinkHardlink)
	if err != nil || tr.Placed != 0 {
		t.Errorf("hardlink pull: placed %d, %v; want 0", tr.Placed, err)
	}
}

// TestPullPlacesNothingInTheWay: files already in the workspace are left
// for the checkout to judge, and a folder that is a symbolic link is
// never written through.
func TestPullPlacesNothingInTheWay(t *testing.T) {
	files := map[string]string{"a/1": "one", "a/2": "two", "b/3": "three"}
	remote, res, _ := pushed(t, files)

	out := filepath.Join(t.TempDir(), "ws")
	writeTree(t, out, map[string]string{"a/1": "edited"})
	tr, _, err := pullInto(t, remote, res, out, LinkCopy)
	if !errors.Is(err, ErrModified) {
		t.Errorf("checkout over an edited file: %v; want ErrModified", err)
	}
	if tr.Placed != 2 {
		t.Errorf("placed %d; want 2 (not the edited file)", tr.Placed)
	}
	if got := readTree(t, out)["a/1"]; got != "edited" {
		t.Errorf("edited file became %q", got)
	}
	noTemporaries(t, out)

	out = filepath.Join(t.TempDir(), "ws")
	outside := t.TempDir()
	os.MkdirAll(out, 0o755)
	if err := os.Symlink(outside, filepath.Join(out, "b")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pullInto(t, remote, res, out, LinkCopy); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("checkout through a linked folder: %v; want ErrUnsafePath", err)
	}
	if got := readTree(t, outside); len(got) != 0 {
		t.Errorf("files written through the link: %v", got)
	}
}

// TestPullPlacesOnlyVerified: an object that arrives damaged leaves no
// file in the workspace, through the verifying decorator or without it.
func TestPullPlacesOnlyVerified(t *testing.T) {
	files := map[string]string{"a": "content a", "b": "content b"}
	remote, res, dir := pushed(t, files)
	bad := res.Manifest.Entries[0]
	p := filepath.Join(dir, filepath.FromSlash(objectKey(bad.ID)))
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("content A"), 0o444); err != nil { // same size
		t.Fatal(err)
	}
	for _, b := range []Backend{WithVerify(remote), remote} {
		out := filepath.Join(t.TempDir(), "ws")
		_, _, err := pullInto(t, b, res, out, LinkCopy)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("pull of a damaged object: %v; want ErrCorrupt", err)
		}
		if _, err := os.Lstat(filepath.Join(out, bad.Path)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: written from a damaged object (%v)", bad.Path, err)
		}
		noTemporaries(t, out)
	}
}
