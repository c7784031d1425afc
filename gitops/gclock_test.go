package gitops

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// writeFiles writes files (slash path → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for rel, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGCRacingAdd: a gc that runs while an in-place data add is under
// way, whichever starts first, loses nothing: neither the objects the
// add writes nor the old, unreferenced ones it finds in the cache and
// reuses. The add and the gc use two Projects (two opens of the store
// lock), as two commands would. Without the lock both orders lose
// objects in the first round.
func TestGCRacingAdd(t *testing.T) {
	const reused, fresh, garbage = 200, 100, 200
	rounds := 20
	if testing.Short() {
		rounds = 4
	}
	for _, gcFirst := range []bool{true, false} {
		name := map[bool]string{true: "gc first", false: "add first"}[gcFirst]
		t.Run(name, func(t *testing.T) {
			for round := range rounds {
				ctx := context.Background()
				pa := newProject(t, "file://"+t.TempDir())
				pg, err := Open(ctx, pa.Root, OpenOptions{Getenv: func(string) string { return "" }})
				if err != nil {
					t.Fatal(err)
				}
				// An old dataset whose pointer is gone: its objects are
				// garbage, and the new add reuses some of them.
				old := map[string][]byte{}
				for i := range reused + garbage {
					old[fmt.Sprintf("c%02d/f%03d.bin", i%10, i)] = fmt.Appendf(nil, "round %d shared %d", round, i)
				}
				writeFiles(t, pa.Path("data/old"), old)
				if _, err := pa.AddData(ctx, AddOptions{Path: pa.Path("data/old"), Name: "old"}); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(pa.Path(DatasetPath("old"))); err != nil {
					t.Fatal(err)
				}
				src := map[string][]byte{}
				for i := range reused {
					src[fmt.Sprintf("r/f%03d.bin", i)] = fmt.Appendf(nil, "round %d shared %d", round, i)
				}
				for i := range fresh {
					src[fmt.Sprintf("n/f%03d.bin", i)] = fmt.Appendf(nil, "round %d fresh %d", round, i)
				}
				work := pa.Path("data/new")
				writeFiles(t, work, src)

				var wg sync.WaitGroup
				var addErr, gcErr error
				add := func() { _, addErr = pa.AddData(ctx, AddOptions{Path: work, Name: "new"}) }
				gc := func() { _, gcErr = pg.GC(ctx, false, false) }
				first, second := add, gc
				if gcFirst {
					first, second = gc, add
				}
				wg.Go(first)
				time.Sleep(time.Duration(round%5) * time.Millisecond)
				wg.Go(second)
				wg.Wait()
				if addErr != nil || gcErr != nil {
					t.Fatalf("round %d: add: %v; gc: %v", round, addErr, gcErr)
				}

				d, err := ReadDataset(pa.Root, "new")
				if err != nil {
					t.Fatal(err)
				}
				m, err := pa.Store.ReadManifest(d.Manifest)
				if err != nil {
					t.Fatalf("round %d: manifest: %v", round, err)
				}
				lost := 0
				for _, e := range m.Entries {
					if err := pa.Store.VerifyObject(e.ID); err != nil {
						lost++
					}
				}
				if lost > 0 {
					t.Fatalf("round %d: %d of the %d objects of the new pointer lost or bad", round, lost, len(m.Entries))
				}
				rep, err := pa.VerifyData(ctx, false, 0)
				if err != nil || rep.Failed() {
					t.Fatalf("round %d: verify: %v, %+v", round, err, rep)
				}
				if err := os.RemoveAll(work); err != nil {
					t.Fatal(err)
				}
				if _, _, err := pa.CheckoutData(ctx, CheckoutOptions{Names: []string{"new"}}); err != nil {
					t.Fatalf("round %d: checkout: %v", round, err)
				}
				for rel, want := range src {
					got, err := os.ReadFile(filepath.Join(work, filepath.FromSlash(rel)))
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("round %d: %s after checkout: %q, %v; want %q", round, rel, got, err, want)
					}
				}
			}
		})
	}
}
