package volume

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzDecode: any input either fails with an error or decodes to a valid
// volume no larger than the input can hold, which re-encodes and decodes to
// the same volume.
func FuzzDecode(f *testing.F) {
	for _, aff := range testAffines() {
		for _, dt := range []DType{Int16, Uint8, Float32} {
			var b bytes.Buffer
			if err := Encode(&b, testVolume(dt, [3]int{3, 2, 2}, aff)); err != nil {
				f.Fatal(err)
			}
			f.Add(b.Bytes())
		}
	}
	f.Add(rawHeader([3]int16{2, 1, 1}, codeUint16, 16, 1, -1024))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decode(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if err := v.Check(); err != nil {
			t.Fatalf("decoded an invalid volume: %v", err)
		}
		if v.Len() > len(data)*maxDeflateRatio {
			t.Fatalf("%d voxels from %d bytes", v.Len(), len(data))
		}
		var b bytes.Buffer
		if err := Encode(&b, v); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		w, err := Decode(&b)
		if err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		if diff := cmp.Diff(v, w, cmpopts.EquateApprox(1e-5, 1e-3), cmpopts.EquateNaNs()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
