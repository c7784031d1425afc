package cas

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestLockExcludes: two Stores of one project (two opens of the lock
// file, as two processes would make) share a shared lock, and an
// exclusive one waits for both to be released, giving up when ctx ends.
func TestLockExcludes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ua, err := a.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	ub, err := b.Lock(ctx, false)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if unlock, ok, err := b.TryLock(true); err != nil || ok {
		if ok {
			unlock()
		}
		t.Fatalf("TryLock exclusive while shared locks are held: ok %v, %v; want false, nil", ok, err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(short, true); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), LockFile) {
		t.Fatalf("exclusive lock while shared ones are held: %v, want a deadline error naming %s", err, LockFile)
	}
	got := make(chan error, 1)
	go func() {
		unlock, err := a.Lock(ctx, true)
		if err == nil {
			err = unlock()
		}
		got <- err
	}()
	if err := ua(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		t.Fatalf("exclusive lock taken while a shared one is held (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := ub(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("exclusive lock not taken after every shared one was released")
	}
}
