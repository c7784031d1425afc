package segment

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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

// FuzzParseParams checks that the params parser never panics, that what it
// accepts is valid, and that the params survive a TOML round trip.
func FuzzParseParams(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("hidden = 8\nmean_radii_mm = [1.0, 4.5]\n"))
	f.Add([]byte("epochs = 0\n"))
	f.Add([]byte("[x]\ny = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseParams(data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted invalid params: %v", err)
		}
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(p); err != nil {
			t.Fatal(err)
		}
		p2, err := ParseParams(b.Bytes())
		if err != nil {
			t.Fatalf("encoded params do not parse: %v\n%s", err, b.Bytes())
		}
		if d := cmp.Diff(p, p2, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("round trip changed the params:\n%s", d)
		}
	})
}

// FuzzDatasetJSON checks that dataset.json parsing never panics, gives
// one-line errors, and that what it accepts re-encodes to the same meta.
func FuzzDatasetJSON(f *testing.F) {
	f.Add([]byte(`{"channel_names": {"0": "CT"}, "labels": {"background": 0, "bone": 1}, "numTraining": 12, "file_ending": ".nii.gz"}`))
	f.Add([]byte(`{"channel_names": {"0": "CT", "1": "PET"}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, err := parseDatasetJSON(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
			return
		}
		b, err := json.Marshal(meta)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseDatasetJSON(b)
		if err != nil {
			t.Fatalf("re-encoded meta rejected: %v\n%s", err, b)
		}
		if d := cmp.Diff(meta, again, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("round trip changed the meta:\n%s", d)
		}
	})
}
