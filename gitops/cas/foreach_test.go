package cas

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// stuckRemote is a backend whose first Put fails and whose other Puts
// wait until their context is cancelled.
type stuckRemote struct {
	Backend
	started, returned atomic.Int32
}

var errRefused = errors.New("first upload refused")

func (r *stuckRemote) Stat(context.Context, string) (int64, error) { return 0, ErrNotFound }

func (r *stuckRemote) Put(ctx context.Context, _ string, _ io.ReadSeeker, _ int64, _ [sha256.Size]byte) error {
	defer r.returned.Add(1)
	if r.started.Add(1) == 1 {
		return errRefused
	}
	<-ctx.Done()
	return ctx.Err()
}

func (r *stuckRemote) String() string { return "stuck" }

// TestPushStopsAtFirstFailure: the first failed upload cancels the ones in
// flight and starts no other; Push returns that failure promptly.
func TestPushStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	proj := t.TempDir()
	src := filepath.Join(proj, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%03d", i)), fmt.Appendf(nil, "file %d", i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(proj)
	if err != nil {
		t.Fatal(err)
	}
	added, err := s.AddDir(context.Background(), src, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const jobs = 4
	r := &stuckRemote{}
	got := make(chan error, 1)
	go func() {
		_, err := Push(context.Background(), s, r, []ID{added.ID}, TransferOptions{Jobs: jobs})
		got <- err
	}()
	select {
	case err := <-got:
		if !errors.Is(err, errRefused) {
			t.Fatalf("push: %v, want the first failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("push still running 10 s after its first upload failed")
	}
	if n := r.started.Load(); n > jobs {
		t.Errorf("%d uploads started, want at most %d (the workers)", n, jobs)
	}
	if s, ret := r.started.Load(), r.returned.Load(); s != ret {
		t.Errorf("%d uploads started, %d returned: Push returned with uploads in flight", s, ret)
	}
}
