package gitops

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/gitops/cas"
)

// id is a well-formed digest named after s.
func id(s string) cas.ID { return cas.Sum([]byte(s)) }

func sampleModel() *Model {
	return &Model{
		Schema: 1, Name: "bone", Artifact: id("artifact"), Trainer: "medcad segment train", Run: "20261126T100000Z-aaaa",
		Commit: "abc", EnvLock: id("env"), Eval: id("eval"), LabelRules: "v2",
		Datasets: map[string]cas.ID{"b2": id("b2"), "b 1": id("b1")},
		Params:   map[string]string{"train.lr": "0.1"},
		Metrics:  map[string]float64{"dice": 0.97, "hd95_mm": 1.25},
		Gate:     Verdict{Result: "pass", Baseline: id("base")},
	}
}

// The encodings written when the digests were strings: signatures cover
// these bytes, so typed digests must not change them.
const (
	sampleModelTOML = `# Model manifest written by medcad; merging it into the default branch promotes the model.
schema = 1
name = "bone"
artifact = "sha256:c7c5c1d70c5dec4416ab6158afd0b223ef40c29b1dc1f97ed9428b94d4cadb1c"
trainer = "medcad segment train"
run = "20261126T100000Z-aaaa"
code_commit = "abc"
env_lock = "sha256:b77349bf1fa9b26d45d545d7d64dad96737e9cfbb3cbb5f5d10fb77b0fcc44ad"
eval = "sha256:1bbd174404efbce95f1af489ef93f4aa0f4d55718f24c3504682216afa7b7fb1"
label_rules = "v2"

[datasets]
  "b 1" = "sha256:7dc96f776c8423e57a2785489a3f9c43fb6e756876d6ad9a9cac4aa4e72ec193"
  b2 = "sha256:4814d92093ac8a0f4a2163ab87dee509ba306a58f5888be0edcb2fcd0712028b"

[params]
  "train.lr" = "0.1"

[metrics]
  dice = 0.97
  hd95_mm = 1.25

[gate]
  result = "pass"
  baseline = "sha256:cae662172fd450bb0cd710a769079c05bfc5d8e35efa6576edc7d0377afdd4a2"

[provenance]
  ci_run_url = ""
`
	minimalModelTOML = `# Model manifest written by medcad; merging it into the default branch promotes the model.
schema = 1
name = "bone"
artifact = "sha256:c7c5c1d70c5dec4416ab6158afd0b223ef40c29b1dc1f97ed9428b94d4cadb1c"
trainer = ""
run = ""
code_commit = ""
eval = ""

[gate]
  result = "fail"
  baseline = ""

[provenance]
  ci_run_url = ""
`
)

// TestLegacySignatureParses: manifests written when the pull request's
// job signed them still read (the signature is kept, never trusted).
func TestLegacySignatureParses(t *testing.T) {
	legacy := strings.Replace(minimalModelTOML, "ci_run_url = \"\"\n", "ci_run_url = \"\"\n  signature = \"hmac-sha256:00\"\n", 1)
	m, err := ParseModel("m.toml", []byte(legacy))
	if err != nil || m.Provenance.Signature != "hmac-sha256:00" {
		t.Fatalf("legacy manifest: %+v, %v", m, err)
	}
}

func TestModelEncodingUnchanged(t *testing.T) {
	minimal := &Model{Schema: 1, Name: "bone", Artifact: id("artifact"), Gate: Verdict{Result: "fail"}}
	for _, tc := range []struct {
		m    *Model
		want string
	}{{sampleModel(), sampleModelTOML}, {minimal, minimalModelTOML}} {
		if got := string(tc.m.Encode()); got != tc.want {
			t.Errorf("encoding changed (-want +got):\n%s", cmp.Diff(tc.want, got))
		}
		back, err := ParseModel("m.toml", []byte(tc.want))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.m, back); diff != "" {
			t.Errorf("parse (-want +got):\n%s", diff)
		}
	}
}

func TestParseModelBadDigest(t *testing.T) {
	for _, tc := range []struct{ old, new, want string }{
		{`artifact = "sha256:c7`, `artifact = "sha256:C7`, `m.toml:4: key "artifact": "sha256:C7`},
		{`eval = "sha256:1b`, `eval = "md5:1b`, `m.toml:9: key "eval": "md5:1b`},
		{`baseline = "sha256:ca`, `baseline = "x`, `m.toml:25: key "gate.baseline": "x`},
		{`b2 = "sha256:48`, `b2 = "sha256:`, `m.toml:14: key "datasets.b2": "sha256:14d9`},
	} {
		doc := strings.Replace(sampleModelTOML, tc.old, tc.new, 1)
		_, err := ParseModel("m.toml", []byte(doc))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), "not an object ID") {
			t.Errorf("%s: error %v, want one starting %q", tc.new, err, tc.want)
		}
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
