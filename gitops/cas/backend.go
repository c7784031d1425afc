package cas

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Backend is a remote object store. Keys are slash-separated
// ("objects/ab/cdef…", "complete/<hex>"). Implementations translate their
// errors to the sentinel errors of this package (ErrNotFound, ErrExists,
// ErrCorrupt, ErrThrottled, ErrPermission, ErrUnsupported) so errors.Is
// works the same for every backend.
type Backend interface {
	// Stat returns the size of the object at key, or ErrNotFound.
	Stat(ctx context.Context, key string) (int64, error)
	// Get opens the object at key, or returns ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Put stores size bytes of body, whose SHA-256 is sum, at key. It
	// never replaces an existing object: it returns nil or ErrExists when
	// the key is taken (content-addressed keys make both a success). A
	// body that does not match sum is refused with ErrCorrupt and nothing
	// is stored.
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, sum [sha256.Size]byte) error
	// List calls fn for every key under prefix, in no particular order.
	List(ctx context.Context, prefix string, fn func(key string, size int64) error) error
	// Delete removes the object at key, or returns ErrNotFound
	// (ErrUnsupported where the remote cannot delete).
	Delete(ctx context.Context, key string) error
	// String names the remote for messages (no credentials).
	String() string
}

// permanent reports whether retrying err cannot help, or was done
// already: an error that spent a policy's attempts (a retrying backend
// inside a retried fetch) is not tried again.
func permanent(err error) bool {
	for _, e := range []error{ErrNotFound, ErrExists, ErrCorrupt, ErrPermission, ErrUnsupported, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ex exhausted
	return errors.As(err, &ex)
}

// exhausted is the last error of a RetryPolicy that spent its attempts.
type exhausted struct {
	attempts int
	err      error
}

func (e exhausted) Error() string { return fmt.Sprintf("after %d attempts: %v", e.attempts, e.err) }
func (e exhausted) Unwrap() error { return e.err }

// RetryPolicy is exponential backoff with full jitter.
type RetryPolicy struct {
	Attempts int           // total tries; 0 means 6
	Base     time.Duration // first backoff; 0 means 50 ms
	Max      time.Duration // longest backoff; 0 means 5 s
}

// Do runs fn until it succeeds, fails permanently, the attempts are spent
// or ctx is done. Throttling (ErrThrottled) backs off four times longer.
func (p RetryPolicy) Do(ctx context.Context, fn func() error) error {
	attempts, base, maxWait := p.Attempts, p.Base, p.Max
	if attempts <= 0 {
		attempts = 6
	}
	if base <= 0 {
		base = 50 * time.Millisecond
	}
	if maxWait <= 0 {
		maxWait = 5 * time.Second
	}
	var err error
	for i := range attempts {
		if err = fn(); err == nil || permanent(err) || ctx.Err() != nil {
			return err
		}
		if i == attempts-1 {
			break
		}
		wait := min(maxWait, base<<i)
		if errors.Is(err, ErrThrottled) {
			wait = min(maxWait, 4*wait)
		}
		wait = time.Duration(rand.Int64N(int64(wait)) + 1) // full jitter
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return exhausted{attempts, err}
}

// WithRetry wraps b so that transient failures are retried.
func WithRetry(b Backend, p RetryPolicy) Backend { return &retrying{b: b, p: p} }

type retrying struct {
	b Backend
	p RetryPolicy
}

func (r *retrying) String() string { return r.b.String() }

func (r *retrying) Stat(ctx context.Context, key string) (n int64, err error) {
	err = r.p.Do(ctx, func() error { n, err = r.b.Stat(ctx, key); return err })
	return n, err
}

func (r *retrying) Get(ctx context.Context, key string) (rc io.ReadCloser, err error) {
	err = r.p.Do(ctx, func() error { rc, err = r.b.Get(ctx, key); return err })
	return rc, err
}

func (r *retrying) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, sum [sha256.Size]byte) error {
	return r.p.Do(ctx, func() error {
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("rewind %s: %w", key, ErrUnsupported)
		}
		return r.b.Put(ctx, key, body, size, sum)
	})
}

func (r *retrying) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	// A listing restarted after a failure repeats keys; fn must be
	// idempotent (it is for every caller here).
	return r.p.Do(ctx, func() error { return r.b.List(ctx, prefix, fn) })
}

func (r *retrying) Delete(ctx context.Context, key string) error {
	return r.p.Do(ctx, func() error { return r.b.Delete(ctx, key) })
}

// WithVerify wraps b so that every object read from objects/… is hashed
// while it is read; a reader whose content does not match the key fails
// at EOF with ErrCorrupt.
func WithVerify(b Backend) Backend { return &verifying{Backend: b} }

type verifying struct{ Backend }

func (v *verifying) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := v.Backend.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	id, ok := parseObjectKey(key)
	if !ok {
		return rc, nil
	}
	return &verifyReader{rc: rc, want: id, h: sha256.New()}, nil
}

type verifyReader struct {
	rc   io.ReadCloser
	want ID
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (r *verifyReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.h.Write(p[:n])
	if errors.Is(err, io.EOF) && ID(r.h.Sum(nil)) != r.want {
		return n, fmt.Errorf("remote object %s: %w", r.want.Short(), ErrCorrupt)
	}
	return n, err
}

func (r *verifyReader) Close() error { return r.rc.Close() }

// verifies names the object whose digest the reader checks at EOF.
func (r *verifyReader) verifies() ID { return r.want }

// Counter counts what a backend wrapped by WithCounter read: requests
// for objects (Get) and the bytes they returned. Safe for concurrent use.
type Counter struct {
	gets, bytes atomic.Int64
}

// Gets is the number of Get requests that found their object.
func (c *Counter) Gets() int64 { return c.gets.Load() }

// Bytes is the number of bytes read from the objects Get returned.
func (c *Counter) Bytes() int64 { return c.bytes.Load() }

// WithCounter wraps b so that c counts every object read from it.
func WithCounter(b Backend, c *Counter) Backend { return &counting{Backend: b, c: c} }

type counting struct {
	Backend
	c *Counter
}

func (b *counting) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := b.Backend.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	b.c.gets.Add(1)
	return &countReader{rc: rc, c: b.c}, nil
}

type countReader struct {
	rc io.ReadCloser
	c  *Counter
}

func (r *countReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.c.bytes.Add(int64(n))
	return n, err
}

func (r *countReader) Close() error { return r.rc.Close() }
