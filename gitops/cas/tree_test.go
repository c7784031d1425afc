package cas

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeTree writes files (slash path -> content) under dir with an mtime
// in the past, so that index entries are not racy.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	past := time.Now().Add(-time.Hour)
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(full, past, past)
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	return out
}

var sample = map[string]string{
	"case-1/001.dcm": "slice one",
	"case-1/002.dcm": "slice two",
	"case-2/001.dcm": "slice one", // duplicate content
	"labels/c1.nii":  strings.Repeat("L", 5<<20),
	"empty":          "",
}

func TestAddStatusCheckout(t *testing.T) {
	t.Run("unnamed temp files", func(t *testing.T) { testAddStatusCheckout(t, false) })
	// File systems without O_TMPFILE: named temporary files, renamed.
	t.Run("named temp files", func(t *testing.T) { testAddStatusCheckout(t, true) })
}

func testAddStatusCheckout(t *testing.T, named bool) {
	ctx := context.Background()
	proj := t.TempDir()
	s, err := Open(proj)
	if err != nil {
		t.Fatal(err)
	}
	if named {
		s.probeOnce.Do(func() {})
	} else if s.probeOnce.Do(s.probe); !s.unnamed {
		t.Skip("no O_TMPFILE here")
	}
	defer func() {
		// Nothing left behind: no temporary files in the cache.
		if ents, _ := os.ReadDir(filepath.Join(proj, tmpDir)); len(ents) != 0 {
			t.Errorf("%d files left in the cache's tmp folder", len(ents))
		}
	}()
	work := filepath.Join(proj, "data", "b1")
	writeTree(t, work, sample)
	ix := s.LoadIndex()
	opts := TreeOptions{Index: ix, IndexPrefix: "data/b1"}
	res, err := s.AddDir(ctx, work, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Manifest.Entries) != 5 || res.Hashed != 5 || res.Manifest.Bytes() != int64(5<<20+27) {
		t.Errorf("AddDir: %d entries, %d hashed, %d bytes", len(res.Manifest.Entries), res.Hashed, res.Manifest.Bytes())
	}
	for _, e := range res.Manifest.Entries {
		if err := s.VerifyObject(e.ID); err != nil {
			t.Errorf("%s: %v", e.Path, err)
		}
		if fi, _ := os.Stat(s.Path(e.ID)); fi.Mode().Perm() != 0o444 {
			t.Errorf("cache object %s has mode %v, want read-only", e.ID.Short(), fi.Mode())
		}
	}
	m, err := s.ReadManifest(res.ID)
	if err != nil || m.ID() != res.ID {
		t.Fatalf("ReadManifest: %v", err)
	}
	if err := s.SaveIndex(ix); err != nil {
		t.Fatal(err)
	}

	// A second add with the index reads nothing.
	ix = s.LoadIndex()
	opts.Index = ix
	res2, err := s.AddDir(ctx, work, opts)
	if err != nil || res2.ID != res.ID || res2.Hashed != 0 {
		t.Fatalf("re-add: id %v hashed %d err %v; want same id, 0 hashed", res2.ID, res2.Hashed, err)
	}

	// No change: nothing re-hashed.
	st, err := s.Status(ctx, m, work, opts)
	if err != nil || !st.Clean() || st.Rehashed != 0 {
		t.Fatalf("status of an unchanged folder: %+v, %v", st, err)
	}
	// One file touched (same content): exactly one re-hash, still clean.
	now := time.Now().Add(-time.Minute)
	os.Chtimes(filepath.Join(work, "case-1/001.dcm"), now, now)
	st, err = s.Status(ctx, m, work, opts)
	if err != nil || !st.Clean() || st.Rehashed != 1 {
		t.Fatalf("status after a touch: %+v, %v; want clean with 1 re-hash", st, err)
	}
	// Modified (same size), new, missing.
	writeTree(t, work, map[string]string{"case-1/002.dcm": "slice TWO", "new.txt": "n"})
	os.Remove(filepath.Join(work, "empty"))
	st, err = s.Status(ctx, m, work, opts)
	want := &Status{New: []string{"new.txt"}, Modified: []string{"case-1/002.dcm"}, Missing: []string{"empty"}, Rehashed: 1}
	if diff := cmp.Diff(want, st); diff != "" || err != nil {
		t.Errorf("status (-want +got):\n%s %v", diff, err)
	}

	// Checkout to a fresh folder gives identical files.
	for _, mode := range []LinkMode{LinkAuto, LinkCopy, LinkHardlink} {
		out := filepath.Join(t.TempDir(), "out")
		r, err := s.Checkout(ctx, m, out, CheckoutOptions{Link: mode})
		if err != nil {
			t.Fatalf("checkout %q: %v", mode, err)
		}
		if r.Written != 5 {
			t.Errorf("checkout %q wrote %d files, want 5", mode, r.Written)
		}
		if diff := cmp.Diff(sample, readTree(t, out)); diff != "" {
			t.Errorf("checkout %q (-want +got):\n%s", mode, diff)
		}
		if fi, err := os.Stat(filepath.Join(out, "case-1/001.dcm")); err != nil || (mode != LinkHardlink && fi.Mode().Perm() != 0o644) {
			t.Errorf("checkout %q: mode of a file: %v %v, want 0644", mode, fi.Mode(), err)
		}
	}
	// Checkout over the modified workspace refuses without Force.
	_, err = s.Checkout(ctx, m, work, CheckoutOptions{TreeOptions: opts})
	if !errors.Is(err, ErrModified) || !strings.Contains(err.Error(), "002.dcm") {
		t.Fatalf("checkout over a modified file: %v, want ErrModified naming it", err)
	}
	// (The refused checkout may already have restored the missing file.)
	r, err := s.Checkout(ctx, m, work, CheckoutOptions{TreeOptions: opts, Force: true})
	if err != nil || r.Written < 1 || r.Written > 2 {
		t.Fatalf("forced checkout: %+v %v, want 1 or 2 written", r, err)
	}
	st, err = s.Status(ctx, m, work, opts)
	if err != nil || len(st.Modified)+len(st.Missing) != 0 || st.Rehashed != 0 {
		t.Errorf("status after checkout: %+v %v (files written by checkout must not be re-hashed)", st, err)
	}
}

func TestAddErrors(t *testing.T) {
	ctx := context.Background()
	proj := t.TempDir()
	s, _ := Open(proj)
	dir := filepath.Join(proj, "in")
	writeTree(t, dir, map[string]string{"a": "1", "sub/b": "2"})

	os.Symlink("/etc", filepath.Join(dir, "link"))
	_, err := s.AddDir(ctx, dir, TreeOptions{})
	if err == nil || !strings.Contains(err.Error(), "link: symbolic link") {
		t.Errorf("symlink: %v", err)
	}
	os.Remove(filepath.Join(dir, "link"))

	if os.Getuid() != 0 {
		os.Chmod(filepath.Join(dir, "sub/b"), 0)
		_, err = s.AddDir(ctx, dir, TreeOptions{})
		if err == nil || !strings.Contains(err.Error(), "sub/b") {
			t.Errorf("unreadable file: %v", err)
		}
		os.Chmod(filepath.Join(dir, "sub/b"), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "bad\nname"), nil, 0o644)
	_, err = s.AddDir(ctx, dir, TreeOptions{})
	if !errors.Is(err, ErrUnsafePath) {
		t.Errorf("file name with a newline: %v", err)
	}
	os.Remove(filepath.Join(dir, "bad\nname"))
	n := 0
	s.Each(func(ID, int64) error { n++; return nil })
	if n != 0 {
		t.Errorf("adds that failed while listing files stored %d objects", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.AddDir(cctx, dir, TreeOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled add: %v", err)
	}
}

func TestCheckoutRefusesSymlinks(t *testing.T) {
	ctx := context.Background()
	proj := t.TempDir()
	s, _ := Open(proj)
	src := filepath.Join(proj, "src")
	writeTree(t, src, map[string]string{"sub/f": "x"})
	res, err := s.AddDir(ctx, src, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	victim := t.TempDir()
	out := filepath.Join(proj, "out")
	os.MkdirAll(out, 0o755)
	os.Symlink(victim, filepath.Join(out, "sub"))
	_, err = s.Checkout(ctx, res.Manifest, out, CheckoutOptions{})
	if !errors.Is(err, ErrUnsafePath) {
		t.Errorf("checkout through a symlinked folder: %v, want ErrUnsafePath", err)
	}
	if _, err := os.Stat(filepath.Join(victim, "f")); err == nil {
		t.Error("checkout wrote through a symbolic link")
	}
	// A manifest that is not valid is refused before anything is written.
	bad := &Manifest{Entries: []Entry{{Path: "../escape", Size: 1, Mode: 0o644, ID: Sum([]byte("x"))}}}
	if _, err := s.Checkout(ctx, bad, filepath.Join(proj, "out2"), CheckoutOptions{}); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("checkout of ../escape: %v", err)
	}
}

func TestCorruptCacheDetected(t *testing.T) {
	ctx := context.Background()
	proj := t.TempDir()
	s, _ := Open(proj)
	src := filepath.Join(proj, "src")
	writeTree(t, src, map[string]string{"f": "good content"})
	res, _ := s.AddDir(ctx, src, TreeOptions{})
	id := res.Manifest.Entries[0].ID
	remote := dirRemote(filepath.Join(proj, "remote"))
	if _, err := Push(ctx, s, remote, []ID{res.ID}, TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	p := s.Path(id)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("bad content!"), 0o444)
	if err := s.VerifyObject(id); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("VerifyObject: %v", err)
	}
	for _, link := range []LinkMode{LinkCopy, LinkHardlink} {
		out := filepath.Join(proj, "out-"+string(link))
		_, err := s.Checkout(ctx, res.Manifest, out, CheckoutOptions{Link: link})
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s checkout of a corrupt object: %v, want ErrCorrupt", link, err)
		}
		// Nothing written, not even in part or under a temporary name.
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("%s checkout of a corrupt object left %s", link, ents[0].Name())
		}
	}
	if err := Repair(ctx, s, remote, id, TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyObject(id); err != nil {
		t.Errorf("after repair: %v", err)
	}
}

func TestPushPull(t *testing.T) {
	ctx := context.Background()
	a, _ := Open(t.TempDir())
	src := filepath.Join(t.TempDir(), "src")
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("d%d/f%03d", i%7, i)] = fmt.Sprintf("content %d", i%150)
	}
	writeTree(t, src, files)
	res, err := a.AddDir(ctx, src, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	remote := dirRemote(t.TempDir())
	if ok, _ := IsComplete(ctx, remote, res.ID); ok {
		t.Fatal("complete before push")
	}
	r, err := Push(ctx, a, remote, []ID{res.ID}, TransferOptions{Jobs: 8})
	if err != nil {
		t.Fatal(err)
	}
	if r.Objects != 151 { // 150 distinct contents + the manifest
		t.Errorf("pushed %d objects, want 151", r.Objects)
	}
	if ok, err := IsComplete(ctx, remote, res.ID); !ok || err != nil {
		t.Errorf("IsComplete after push = %v, %v", ok, err)
	}
	r, err = Push(ctx, a, remote, []ID{res.ID}, TransferOptions{})
	if err != nil || r.Complete != 1 || r.Objects != 0 {
		t.Errorf("second push: %+v %v; want 1 complete, nothing sent", r, err)
	}
	b, _ := Open(t.TempDir())
	r, err = Pull(ctx, b, remote, []ID{res.ID}, TransferOptions{Jobs: 8})
	if err != nil || r.Objects != 151 {
		t.Fatalf("pull: %+v %v", r, err)
	}
	m, err := b.ReadManifest(res.ID)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := b.Checkout(ctx, m, out, CheckoutOptions{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(files, readTree(t, out)); diff != "" {
		t.Errorf("pulled tree (-want +got):\n%s", diff)
	}
	// Pull of an unknown manifest names it.
	_, err = Pull(ctx, b, remote, []ID{Sum([]byte("nope"))}, TransferOptions{})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("pull of a missing manifest: %v", err)
	}
}

func TestIndexRacyAndDamaged(t *testing.T) {
	proj := t.TempDir()
	s, _ := Open(proj)
	f := filepath.Join(proj, "f")
	os.WriteFile(f, []byte("x"), 0o644)
	fi, _ := os.Stat(f)
	ix := s.LoadIndex()
	ix.Record("f", fi, Sum([]byte("x")), time.Now()) // mtime is now: racy
	if _, ok := ix.Lookup("f", fi); ok {
		t.Error("racy entry trusted")
	}
	ix.Record("f", fi, Sum([]byte("x")), time.Now().Add(time.Second))
	if id, ok := ix.Lookup("f", fi); !ok || id != Sum([]byte("x")) {
		t.Error("settled entry not trusted")
	}
	if err := s.SaveIndex(ix); err != nil {
		t.Fatal(err)
	}
	if got := s.LoadIndex(); got.Len() != 1 {
		t.Errorf("reloaded index has %d entries", got.Len())
	}
	// A damaged index is an empty one.
	p := filepath.Join(proj, indexFile)
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 1
	os.WriteFile(p, data, 0o644)
	if got := s.LoadIndex(); got.Len() != 0 {
		t.Errorf("damaged index loaded %d entries", got.Len())
	}
}

func TestAddAdopt(t *testing.T) {
	// Files are linked by descriptor where the kernel allows it (root),
	// else by name: both ways.
	for _, byName := range []bool{false, true} {
		t.Run(fmt.Sprintf("byName=%v", byName), func(t *testing.T) { testAddAdopt(t, byName) })
	}
}

func testAddAdopt(t *testing.T, byName bool) {
	if runtime.GOOS == "windows" {
		t.Skip("adoption copies on Windows")
	}
	ctx := context.Background()
	proj := t.TempDir()
	s, _ := Open(proj)
	s.noEmptyPath.Store(byName)
	work := filepath.Join(proj, "data", "b1")
	writeTree(t, work, sample)
	res, err := s.AddDir(ctx, work, TreeOptions{Adopt: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Manifest.Entries {
		wfi, _ := os.Stat(filepath.Join(work, e.Path))
		if _, err := os.Stat(s.Path(e.ID)); err != nil {
			t.Fatalf("%s: not in the cache: %v", e.Path, err)
		}
		ofi, _ := os.Stat(s.Path(e.ID))
		// A file is linked, read-only, unless its content was already in
		// the cache (a duplicate), when it stays an independent file.
		if os.SameFile(wfi, ofi) && wfi.Mode().Perm()&0o222 != 0 {
			t.Errorf("%s: adopted file still writable (%v)", e.Path, wfi.Mode())
		}
		if err := s.VerifyObject(e.ID); err != nil {
			t.Errorf("%s: %v", e.Path, err)
		}
	}
	// Identical content is stored once; the first file of it is linked.
	a, _ := os.Stat(filepath.Join(work, "case-1/001.dcm"))
	b, _ := os.Stat(filepath.Join(work, "case-2/001.dcm"))
	o, _ := os.Stat(s.Path(Sum([]byte("slice one"))))
	if !os.SameFile(a, o) && !os.SameFile(b, o) {
		t.Error("no workspace file shares the cache object's inode")
	}
	dup := a
	if os.SameFile(a, o) {
		dup = b
	}
	if dup.Mode().Perm() != 0o644 {
		t.Errorf("duplicate file not linked has mode %v, want it left 0644", dup.Mode())
	}
	// Adopting again (no index) keeps every cache object read-only.
	if _, err := s.AddDir(ctx, work, TreeOptions{Adopt: true}); err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Manifest.Entries {
		if fi, _ := os.Stat(s.Path(e.ID)); fi.Mode().Perm()&0o222 != 0 {
			t.Errorf("%s: cache object writable (%v) after a second add", e.Path, fi.Mode())
		}
	}
	m, _ := s.ReadManifest(res.ID)
	if diff := cmp.Diff(res.Manifest, m); diff != "" {
		t.Errorf("manifest (-want +got):\n%s", diff)
	}
}

func TestFolderBatches(t *testing.T) {
	var in []Entry
	for _, p := range []string{"a/1", "a/2", "a/3", "a/4", "a/5", "b/1", "c/1", "c/2"} {
		in = append(in, Entry{Path: p})
	}
	// Large files: a batch holds at most batchBytes, or one larger file.
	in = append(in, Entry{Path: "d/1", Size: 5 << 20}, Entry{Path: "d/2", Size: 5 << 20},
		Entry{Path: "d/3", Size: 1 << 10}, Entry{Path: "d/4", Size: 9 << 20}, Entry{Path: "top"})
	var got [][]string
	for _, b := range folderBatches(in, entryFile, 2) {
		var names []string
		for _, e := range b {
			names = append(names, e.Path)
		}
		got = append(got, names)
	}
	want := [][]string{{"a/1", "a/2"}, {"b/1"}, {"c/1", "c/2"}, {"d/1"}, {"top"}, {"a/3", "a/4"}, {"d/2", "d/3"}, {"a/5"}, {"d/4"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
}

// A remote object damaged after the push is refused on pull, whether or
// not the remote is wrapped by WithVerify, and never enters the cache.
func TestPullCorruptRemote(t *testing.T) {
	ctx := context.Background()
	remote, res, dir := pushed(t, map[string]string{"a": "content a", "b": "content b"})
	bad := res.Manifest.Entries[0].ID
	p := filepath.Join(dir, filepath.FromSlash(objectKey(bad)))
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("content A"), 0o444); err != nil { // same size
		t.Fatal(err)
	}
	for _, b := range []Backend{WithVerify(remote), remote} {
		s, _ := Open(t.TempDir())
		_, err := Pull(ctx, s, b, []ID{res.ID}, TransferOptions{Retry: RetryPolicy{Attempts: 2, Base: time.Millisecond}})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), bad.Short()) {
			t.Errorf("pull of a damaged object: %v, want ErrCorrupt naming %s", err, bad.Short())
		}
		if s.Has(bad) {
			t.Errorf("damaged object %s entered the cache", bad.Short())
		}
	}
}

// More objects than one sync batch, written by parallel workers: every one
// is named and good after Close, and nothing is left in tmp.
func TestWriterBatches(t *testing.T) {
	// Unnamed files are linked by descriptor where the kernel allows it
	// (root), else through /proc/self/fd: both ways.
	for _, viaProc := range []bool{false, true} {
		t.Run(fmt.Sprintf("viaProc=%v", viaProc), func(t *testing.T) {
			proj := t.TempDir()
			s, _ := Open(proj)
			s.noEmptyPath.Store(viaProc)
			w := s.NewWriter()
			n := 2*syncBatchFiles + 77
			ids := make([]ID, n)
			err := forEach(context.Background(), 8, ids, func(_ context.Context, i int, _ ID) error {
				id, err := w.PutBytes([]byte(fmt.Sprintf("object %d", i)))
				ids[i] = id
				return err
			})
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				if err := s.VerifyObject(id); err != nil {
					t.Fatalf("object %d: %v", i, err)
				}
			}
			if ents, _ := os.ReadDir(filepath.Join(proj, tmpDir)); len(ents) != 0 {
				t.Errorf("%d files left in tmp", len(ents))
			}
			if _, err := w.PutBytes([]byte("late")); err == nil {
				t.Error("PutBytes after Close succeeded")
			}
		})
	}
}
