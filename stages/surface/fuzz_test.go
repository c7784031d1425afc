package surface

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeSTL: any input either fails with ErrSTL or decodes to a mesh
// that survives a binary and an ASCII round trip unchanged.
func FuzzDecodeSTL(f *testing.F) {
	f.Add([]byte("solid t\n facet normal 0 0 1\n  outer loop\n   vertex 0 0 0\n   vertex 1 0 0\n   vertex 0 1 0\n  endloop\n endfacet\nendsolid t\n"))
	bin := make([]byte, 84+50)
	bin[80] = 1
	bin[84+12+12+3] = 0x3f // vertex 2 x = 0.5
	f.Add(bin)
	f.Add(make([]byte, 84))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeSTL(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, ascii := range []bool{false, true} {
			var buf bytes.Buffer
			if err := EncodeSTL(&buf, m, ascii); err != nil {
				t.Fatal(err)
			}
			back, err := DecodeSTL(&buf)
			if err != nil {
				t.Fatalf("ascii=%v: re-decoding: %v", ascii, err)
			}
			if diff := cmp.Diff(m, back); diff != "" {
				t.Fatalf("ascii=%v: round trip changed the mesh (-first +second):\n%s", ascii, diff)
			}
		}
	})
}
