package segment

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode checks that the model decoder never panics, that whatever it
// accepts re-encodes canonically, and that the encoding decodes to the
// same model (a round trip byte for byte after one normalisation).
func FuzzDecode(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("format = \"medcad-bone-model\"\nversion = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("accepted model does not encode: %v", err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("canonical encoding does not decode: %v\n%s", err, enc)
		}
		if d := cmp.Diff(m, m2); d != "" {
			t.Fatalf("round trip changed the model (-first +second):\n%s", d)
		}
		enc2, err := m2.Encode()
		if err != nil || string(enc2) != string(enc) {
			t.Fatalf("encoding is not canonical: %v", err)
		}
	})
}
