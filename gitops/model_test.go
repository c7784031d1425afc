package gitops

import (
	"bytes"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sampleModel() *Model {
	return &Model{
		Schema: 1, Name: "bone", Artifact: "sha256:aa", Trainer: "medcad segment train", Run: "20261126T100000Z-aaaa",
		Commit: "abc", EnvLock: "sha256:ee", Eval: "sha256:ff", LabelRules: "v2",
		Datasets: map[string]string{"b2": "sha256:2", "b1": "sha256:1"},
		Params:   map[string]string{"train.lr": "0.1"},
		Metrics:  map[string]float64{"dice": 0.97, "hd95_mm": 1.25},
		Gate:     Verdict{Result: "pass", Baseline: "sha256:bb"},
	}
}

func TestModelRoundTrip(t *testing.T) {
	m := sampleModel()
	enc := m.Encode()
	got, err := ParseModel("models/bone.model.toml", enc)
	if err != nil {
		t.Fatalf("%v\n%s", err, enc)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !bytes.Equal(got.Encode(), enc) {
		t.Error("encoding not canonical")
	}
}

func TestParseModelRejects(t *testing.T) {
	for _, doc := range []string{
		"schema = 1\nname = \"bone\"\nartefact = \"x\"\n",
		"schema = 2\nname = \"bone\"\n",
		"schema = 1\nname = \"../x\"\n",
		"schema = 1\nname = \"bone\"\n[metrics]\ndice = \"high\"\n",
	} {
		if _, err := ParseModel("m.toml", []byte(doc)); err == nil {
			t.Errorf("accepted %q", doc)
		}
	}
}

func FuzzParseModel(f *testing.F) {
	f.Add(sampleModel().Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseModel("m.toml", data)
		if err != nil {
			return
		}
		for _, v := range m.Metrics {
			if math.IsNaN(v) {
				return // NaN never compares equal; nothing to round-trip
			}
		}
		again, err := ParseModel("m.toml", m.Encode())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if diff := cmp.Diff(m, again); diff != "" {
			t.Fatalf("round trip:\n%s", diff)
		}
	})
}
