package cas

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIndexEncoding(t *testing.T) {
	in := map[string]indexEntry{
		"data/b1/a":   {size: 3, mtime: 1700000000123456789, ino: 42, id: Sum([]byte("abc"))},
		"data/b1/é b": {size: 0, mtime: -1, ino: 0, id: Sum(nil), racy: true},
	}
	out, err := decodeIndex(encodeIndex(in))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out, cmp.AllowUnexported(indexEntry{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, bad := range [][]byte{nil, []byte("medcad-index 1\n"), encodeIndex(in)[:40]} {
		if _, err := decodeIndex(bad); err == nil {
			t.Errorf("decodeIndex(%q) accepted damaged input", bad)
		}
	}
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex(map[string]indexEntry{"a": {size: 1, mtime: 2, ino: 3, id: Sum([]byte("x"))}}))
	f.Add(encodeIndex(map[string]indexEntry{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeIndex(data)
		if err != nil {
			return
		}
		enc := encodeIndex(e)
		e2, err := decodeIndex(enc)
		if err != nil {
			t.Fatalf("re-encoded index does not decode: %v", err)
		}
		if diff := cmp.Diff(e, e2, cmp.AllowUnexported(indexEntry{})); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
