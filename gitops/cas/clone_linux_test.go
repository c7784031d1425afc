package cas

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/testenv"
	"golang.org/x/sys/unix"
)

// usedBytes is the space in use on the file system of dir.
func usedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	unix.Sync()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// randomTree writes n files of size bytes of random data under dir.
func randomTree(t *testing.T, dir string, n, size int) map[string]string {
	t.Helper()
	files := map[string]string{}
	for i := range n {
		b := make([]byte, size)
		rand.Read(b)
		files[fmt.Sprintf("case-%d/%03d.dcm", i%4, i)] = string(b)
	}
	writeTree(t, dir, files)
	return files
}

// On a file system with reflinks, an add (copying, not adopting) clones
// files into the cache and a checkout clones them out: no data is
// written, and the copies stay independent (copy on write).
func TestAddCheckoutClone(t *testing.T) {
	ctx := context.Background()
	disk := testenv.ReflinkDir(t)
	proj := filepath.Join(disk, "proj")
	work := filepath.Join(proj, "data", "b1")
	files := randomTree(t, work, 32, 1<<20)
	files["empty"], files["small"] = "", "a few bytes"
	writeTree(t, work, map[string]string{"empty": "", "small": "a few bytes"})
	s, err := Open(proj)
	if err != nil {
		t.Fatal(err)
	}
	before := usedBytes(t, disk)
	res, err := s.AddDir(ctx, work, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if grew := usedBytes(t, disk) - before; grew > 4<<20 {
		t.Errorf("adding 32 MiB took %d more bytes of disk: the files were copied, not cloned", grew)
	}
	if !s.cloned.Load() || s.noClone.Load() {
		t.Errorf("cloned %v, noClone %v: want a clone and no fallback", s.cloned.Load(), s.noClone.Load())
	}
	for _, e := range res.Manifest.Entries {
		if err := s.VerifyObject(e.ID); err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		if fi, _ := os.Stat(s.Path(e.ID)); fi.Mode().Perm()&0o222 != 0 {
			t.Errorf("%s: cache object writable (%v)", e.Path, fi.Mode())
		}
	}
	// An in-place write to a workspace file leaves its object alone.
	f, err := os.OpenFile(filepath.Join(work, "case-0/000.dcm"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("overwritten in place"), 100)
	f.Close()
	for _, e := range res.Manifest.Entries {
		if err := s.VerifyObject(e.ID); err != nil {
			t.Errorf("%s after an in-place write to its workspace file: %v", e.Path, err)
		}
	}
	// A checkout elsewhere clones the objects out.
	before = usedBytes(t, disk)
	out := filepath.Join(proj, "data", "b2")
	if _, err := s.Checkout(ctx, res.Manifest, out, CheckoutOptions{Link: LinkReflink}); err != nil {
		t.Fatal(err)
	}
	if grew := usedBytes(t, disk) - before; grew > 4<<20 {
		t.Errorf("checking out 32 MiB took %d more bytes of disk: not cloned", grew)
	}
	if diff := cmp.Diff(files, readTree(t, out)); diff != "" {
		t.Errorf("checked-out files differ (-want +got):\n%s", diff)
	}
}

// A file that changes between the stat an add starts from and the end of
// its hashing is refused, and nothing is stored for it.
func TestCloneChangedFile(t *testing.T) {
	disk := testenv.ReflinkDir(t)
	s, err := Open(filepath.Join(disk, "proj"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(disk, "scan.dcm")
	writeTree(t, disk, map[string]string{"scan.dcm": "first version"})
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// Past a coarse clock tick: before Linux 6.13, writes within one tick
	// of the stat may leave the file's times as they were.
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(p, []byte("other version"), 0o644); err != nil { // same size
		t.Fatal(err)
	}
	w := s.NewWriter()
	_, _, ok, err := w.cloneFile(context.Background(), f, fi, p)
	if cerr := w.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if !ok || err == nil || !strings.Contains(err.Error(), "changed while it was being added") {
		t.Fatalf("clone of a changed file: ok %v, err %v", ok, err)
	}
	for _, c := range []string{"first version", "other version"} {
		if s.Has(Sum([]byte(c))) {
			t.Errorf("%q stored", c)
		}
	}
}

// Files on another file system than the cache are copied: the clone
// fails once, and the store stops trying.
func TestAddCloneFallsBack(t *testing.T) {
	ctx := context.Background()
	disk := testenv.ReflinkDir(t)
	s, err := Open(filepath.Join(disk, "proj"))
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir() // not on the XFS image
	files := randomTree(t, src, 8, 64<<10)
	res, err := s.AddDir(ctx, src, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.cloned.Load() || !s.noClone.Load() {
		t.Errorf("cloned %v, noClone %v: want no clone and a fallback", s.cloned.Load(), s.noClone.Load())
	}
	out := filepath.Join(disk, "out")
	if _, err := s.Checkout(ctx, res.Manifest, out, CheckoutOptions{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(files, readTree(t, out)); diff != "" {
		t.Errorf("checked-out files differ (-want +got):\n%s", diff)
	}
}
