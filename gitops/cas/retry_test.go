package cas

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var quick = RetryPolicy{Attempts: 3, Base: time.Millisecond}

func TestRetryPolicy(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := quick.Do(ctx, func() error {
		if calls++; calls < 3 {
			return errors.New("connection reset")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("flaky twice: %v after %d calls; want success on the third", err, calls)
	}
	calls = 0
	err = quick.Do(ctx, func() error { calls++; return ErrNotFound })
	if !errors.Is(err, ErrNotFound) || calls != 1 {
		t.Errorf("not found: %v after %d calls; want it at once", err, calls)
	}
	calls = 0
	down := errors.New("connection refused")
	err = quick.Do(ctx, func() error { calls++; return down })
	if !errors.Is(err, down) || calls != 3 || err.Error() != "after 3 attempts: connection refused" {
		t.Errorf("always down: %q after %d calls", err, calls)
	}
	// A policy around a policy does not try again what the inner one gave up on.
	calls = 0
	err = quick.Do(ctx, func() error { return quick.Do(ctx, func() error { calls++; return down }) })
	if calls != 3 || strings.Count(err.Error(), "after") != 1 {
		t.Errorf("nested policies: %q after %d calls; want 3 calls, one report", err, calls)
	}
}

// flaky is a backend whose Get fails as told, counting calls.
type flaky struct {
	Backend
	gets atomic.Int32
	fail func(n int32, rc io.ReadCloser) (io.ReadCloser, error) // n: 1 for the first Get
}

func (f *flaky) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := f.Backend.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return f.fail(f.gets.Add(1), rc)
}

// cutReader fails after a few bytes, as a dropped connection does.
type cutReader struct{ io.ReadCloser }

func (c cutReader) Read(p []byte) (int, error) {
	n, _ := c.ReadCloser.Read(p[:min(len(p), 3)])
	return n, io.ErrUnexpectedEOF
}

// TestFetchRetries: a body cut short is fetched again; a remote that stays
// down is tried as often as the retrying backend says, not that many
// times over again by the fetch.
func TestFetchRetries(t *testing.T) {
	ctx := context.Background()
	remote, res, _ := pushed(t, map[string]string{"a": "content a"})
	e := res.Manifest.Entries[0]

	cut := &flaky{Backend: remote, fail: func(n int32, rc io.ReadCloser) (io.ReadCloser, error) {
		if n == 1 {
			return cutReader{rc}, nil
		}
		return rc, nil
	}}
	s, _ := Open(t.TempDir())
	if _, err := Fetch(ctx, s, WithRetry(cut, quick), []Entry{e}, TransferOptions{Retry: quick}); err != nil || !s.Has(e.ID) {
		t.Errorf("fetch after a cut body: %v, cached %v; want it fetched", err, s.Has(e.ID))
	}
	if n := cut.gets.Load(); n != 2 {
		t.Errorf("%d GETs for one cut body; want 2", n)
	}

	down := &flaky{Backend: remote, fail: func(_ int32, rc io.ReadCloser) (io.ReadCloser, error) {
		rc.Close()
		return nil, errors.New("connection refused")
	}}
	s, _ = Open(t.TempDir())
	_, err := Fetch(ctx, s, WithRetry(down, quick), []Entry{e}, TransferOptions{Retry: quick})
	if err == nil || strings.Count(err.Error(), "after 3 attempts") != 1 {
		t.Errorf("fetch from a remote that is down: %v; want one 'after 3 attempts'", err)
	}
	if n := down.gets.Load(); n != 3 {
		t.Errorf("%d GETs to a remote that is down; want 3 (the backend's retries only)", n)
	}
}
