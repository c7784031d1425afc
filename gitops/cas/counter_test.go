package cas_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/cas/local"
)

// TestCounterCountsWhatIsRead: a Get that finds its object counts one,
// the bytes read from it count, and a miss counts nothing.
func TestCounterCountsWhatIsRead(t *testing.T) {
	ctx := context.Background()
	l, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("medcad "), 1000)
	key := cas.ObjectKey(cas.Sum(body))
	if err := l.Put(ctx, key, bytes.NewReader(body), int64(len(body)), cas.Sum(body)); err != nil {
		t.Fatal(err)
	}
	var c cas.Counter
	b := cas.WithVerify(cas.WithCounter(l, &c))
	rc, err := b.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if _, err := b.Get(ctx, cas.ObjectKey(cas.Sum([]byte("absent")))); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("absent object: %v", err)
	}
	if c.Gets() != 1 || c.Bytes() != int64(len(body)) {
		t.Errorf("counted %d gets, %d bytes; want 1, %d", c.Gets(), c.Bytes(), len(body))
	}
}
