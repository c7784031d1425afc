// Package castest is the conformance suite every cas.Backend must pass:
// put, get, stat, list and delete, missing keys, the same object put twice
// at once, a large (multipart) object, corruption detected, and context
// cancellation. Each backend's test calls Run with a factory.
package castest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/gitops/cas"
)

// Options describe what a backend under test can do.
type Options struct {
	// LargeSize is the size of the large-object test; pick it above the
	// backend's multipart threshold. 0 means 12 MiB.
	LargeSize int
	// NoServerChecksum: the backend does not check x-amz-checksum-sha256
	// (gofakes3), so a corrupt PUT cannot be refused.
	NoServerChecksum bool
	// Corrupt, when set, damages the stored object at key so the suite can
	// check that WithVerify detects it.
	Corrupt func(t *testing.T, key string)
}

// Run runs the suite on fresh backends made by newBackend.
func Run(t *testing.T, newBackend func(t *testing.T) cas.Backend, o Options) {
	if o.LargeSize == 0 {
		o.LargeSize = 12 << 20
	}
	ctx := context.Background()
	put := func(t *testing.T, b cas.Backend, data []byte) string {
		t.Helper()
		id := cas.Sum(data)
		key := cas.ObjectKey(id)
		if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), id); err != nil {
			t.Fatalf("Put(%s): %v", key, err)
		}
		return key
	}
	get := func(t *testing.T, b cas.Backend, key string) []byte {
		t.Helper()
		rc, err := b.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%s): %v", key, err)
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("Get(%s): read: %v", key, err)
		}
		return data
	}

	t.Run("PutGetStat", func(t *testing.T) {
		b := newBackend(t)
		for _, size := range []int{0, 1, 1000, 64 << 10} {
			data := randomBytes(size)
			key := put(t, b, data)
			if got := get(t, b, key); !bytes.Equal(got, data) {
				t.Errorf("size %d: Get returned %d bytes that differ from what was put", size, len(got))
			}
			n, err := b.Stat(ctx, key)
			if err != nil || n != int64(size) {
				t.Errorf("Stat = %d, %v; want %d, nil", n, err, size)
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		b := newBackend(t)
		key := cas.ObjectKey(cas.Sum([]byte("never stored")))
		if _, err := b.Stat(ctx, key); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("Stat of a missing key: %v, want ErrNotFound", err)
		}
		if _, err := b.Get(ctx, key); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("Get of a missing key: %v, want ErrNotFound", err)
		}
	})

	t.Run("PutExisting", func(t *testing.T) {
		b := newBackend(t)
		data := []byte("same content")
		key := put(t, b, data)
		id := cas.Sum(data)
		err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), id)
		if err != nil && !errors.Is(err, cas.ErrExists) {
			t.Errorf("second Put: %v, want nil or ErrExists", err)
		}
		if got := get(t, b, key); !bytes.Equal(got, data) {
			t.Errorf("content changed after a second Put")
		}
	})

	t.Run("ConcurrentPutSameObject", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(256 << 10)
		id := cas.Sum(data)
		key := cas.ObjectKey(id)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { errs[i] = b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), id) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil && !errors.Is(err, cas.ErrExists) {
				t.Errorf("put %d: %v, want nil or ErrExists", i, err)
			}
		}
		if got := get(t, b, key); !bytes.Equal(got, data) {
			t.Errorf("content differs after concurrent puts")
		}
	})

	t.Run("List", func(t *testing.T) {
		b := newBackend(t)
		var want []string
		for i := range 5 {
			want = append(want, put(t, b, fmt.Appendf(nil, "object %d", i)))
		}
		other := []byte("marker")
		if err := b.Put(ctx, "complete/x", bytes.NewReader(other), int64(len(other)), sha256.Sum256(other)); err != nil {
			t.Fatal(err)
		}
		var got []string
		err := b.List(ctx, "objects/", func(key string, size int64) error {
			got = append(got, key)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(want)
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("List(objects/) (-want +got):\n%s", diff)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		b := newBackend(t)
		key := put(t, b, []byte("to delete"))
		if err := b.Delete(ctx, key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := b.Stat(ctx, key); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
		}
		if err := b.Delete(ctx, key); err != nil && !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("Delete of a missing key: %v, want nil or ErrNotFound", err)
		}
	})

	t.Run("Large", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(o.LargeSize)
		key := put(t, b, data)
		if got := get(t, b, key); !bytes.Equal(got, data) {
			t.Errorf("large object differs after a round trip (%d bytes back, %d put)", len(got), len(data))
		}
		n, err := b.Stat(ctx, key)
		if err != nil || n != int64(len(data)) {
			t.Errorf("Stat = %d, %v; want %d", n, err, len(data))
		}
	})

	t.Run("CorruptPutRefused", func(t *testing.T) {
		if o.NoServerChecksum {
			t.Skip("this backend does not check checksums on PUT")
		}
		b := newBackend(t)
		data := []byte("the real content")
		id := cas.Sum(data)
		bad := []byte("the fake content")
		key := cas.ObjectKey(id)
		err := b.Put(ctx, key, bytes.NewReader(bad), int64(len(bad)), id)
		if !errors.Is(err, cas.ErrCorrupt) {
			t.Errorf("Put with a wrong checksum: %v, want ErrCorrupt", err)
		}
		if _, err := b.Stat(ctx, key); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("after a refused Put, Stat: %v, want ErrNotFound", err)
		}
	})

	t.Run("CorruptGetDetected", func(t *testing.T) {
		if o.Corrupt == nil {
			t.Skip("no way to damage a stored object of this backend")
		}
		b := cas.WithVerify(newBackend(t))
		key := put(t, b, randomBytes(10000))
		o.Corrupt(t, key)
		rc, err := b.Get(ctx, key)
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if !errors.Is(err, cas.ErrCorrupt) {
			t.Errorf("reading a damaged object: %v, want ErrCorrupt", err)
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		b := newBackend(t)
		key := put(t, b, []byte("present"))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := b.Stat(cctx, key); !errors.Is(err, context.Canceled) {
			t.Errorf("Stat with a canceled context: %v, want context.Canceled", err)
		}
		data := []byte("not stored")
		nkey := cas.ObjectKey(cas.Sum(data))
		if err := b.Put(cctx, nkey, bytes.NewReader(data), int64(len(data)), cas.Sum(data)); !errors.Is(err, context.Canceled) {
			t.Errorf("Put with a canceled context: %v, want context.Canceled", err)
		}
		if _, err := b.Stat(ctx, nkey); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("a canceled Put stored the object: Stat = %v", err)
		}
		if _, err := b.Get(cctx, key); !errors.Is(err, context.Canceled) {
			t.Errorf("Get with a canceled context: %v, want context.Canceled", err)
		}
	})
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
