package gitops

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/gitops/cas"
)

// Run records as written when their digests were strings: CI signs these
// bytes, so typed digests must not change them.
const (
	fullRunJSON = `{
  "id": "20261126T100000Z-abcdef12",
  "stage": "train,eval",
  "started": "2026-11-26T10:00:00Z",
  "finished": "2026-11-26T10:01:00Z",
  "commit": "abc",
  "dirty": true,
  "branch": "main",
  "key": "sha256:2c70e12b7a0646f92279f427c7b38e7334d8e5389cff167a1dc30e73f826b683",
  "params": {
    "train.lr": "0.1"
  },
  "datasets": {
    "b1": "sha256:7dc96f776c8423e57a2785489a3f9c43fb6e756876d6ad9a9cac4aa4e72ec193",
    "b\u003c2\u003e": "sha256:4814d92093ac8a0f4a2163ab87dee509ba306a58f5888be0edcb2fcd0712028b"
  },
  "env_lock": "sha256:b77349bf1fa9b26d45d545d7d64dad96737e9cfbb3cbb5f5d10fb77b0fcc44ad",
  "facts": {
    "go": "go1.26"
  },
  "metrics": {
    "dice": 0.97
  },
  "outs": "sha256:5094f8ca664f482deccb6453d714b79725d2915aa93ef57df4b129ede498fe87",
  "eval": "sha256:1bbd174404efbce95f1af489ef93f4aa0f4d55718f24c3504682216afa7b7fb1",
  "artifact": "sha256:c7c5c1d70c5dec4416ab6158afd0b223ef40c29b1dc1f97ed9428b94d4cadb1c",
  "signature": "sig"
}`
	minimalRunJSON = `{
  "id": "20261126T100000Z-abcdef12",
  "stage": "",
  "started": "2026-11-26T10:00:00Z",
  "finished": "0001-01-01T00:00:00Z",
  "commit": "",
  "dirty": false,
  "branch": "",
  "key": "",
  "params": null,
  "datasets": null,
  "facts": null,
  "metrics": null,
  "outs": ""
}`
	compactRunJSON = `{"id":"20261126T100000Z-abcdef12","stage":"train,eval","started":"2026-11-26T10:00:00Z","finished":"2026-11-26T10:01:00Z","commit":"abc","dirty":true,"branch":"main","key":"sha256:2c70e12b7a0646f92279f427c7b38e7334d8e5389cff167a1dc30e73f826b683","params":{"train.lr":"0.1"},"datasets":{"b1":"sha256:7dc96f776c8423e57a2785489a3f9c43fb6e756876d6ad9a9cac4aa4e72ec193","b\u003c2\u003e":"sha256:4814d92093ac8a0f4a2163ab87dee509ba306a58f5888be0edcb2fcd0712028b"},"env_lock":"sha256:b77349bf1fa9b26d45d545d7d64dad96737e9cfbb3cbb5f5d10fb77b0fcc44ad","facts":{"go":"go1.26"},"metrics":{"dice":0.97},"outs":"sha256:5094f8ca664f482deccb6453d714b79725d2915aa93ef57df4b129ede498fe87","eval":"sha256:1bbd174404efbce95f1af489ef93f4aa0f4d55718f24c3504682216afa7b7fb1","artifact":"sha256:c7c5c1d70c5dec4416ab6158afd0b223ef40c29b1dc1f97ed9428b94d4cadb1c","signature":"sig"}`
)

func TestRunJSONUnchanged(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	full := &Run{ID: "20261126T100000Z-abcdef12", Stage: "train,eval", Started: t0, Finished: t0.Add(time.Minute), Commit: "abc", Dirty: true,
		Branch: "main", Key: cas.Sum([]byte("key")).String(), Params: map[string]string{"train.lr": "0.1"},
		Datasets: map[string]cas.ID{"b1": id("b1"), "b<2>": id("b2")}, Env: id("env"), Facts: map[string]string{"go": "go1.26"},
		Metrics: map[string]float64{"dice": 0.97}, Outs: id("outs"), Eval: id("eval"), Artifact: id("artifact"), Signature: "sig"}
	minimal := &Run{ID: "20261126T100000Z-abcdef12", Started: t0}
	for _, tc := range []struct {
		r      *Run
		indent bool
		want   string
	}{{full, true, fullRunJSON}, {minimal, true, minimalRunJSON}, {full, false, compactRunJSON}} {
		var got []byte
		var err error
		if tc.indent {
			got, err = json.MarshalIndent(tc.r, "", "  ")
		} else {
			got, err = json.Marshal(tc.r)
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("encoding changed (-want +got):\n%s", cmp.Diff(tc.want, string(got)))
		}
		var back Run
		if err := json.Unmarshal([]byte(tc.want), &back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.r, &back); diff != "" {
			t.Errorf("decode (-want +got):\n%s", diff)
		}
	}
}

func TestRunJSONRejects(t *testing.T) {
	for _, doc := range []string{
		`{"id": "x", "outs": "sha256:22"}`,
		`{"id": "x", "datasets": {"b": ""}}`,
		`{"id": "x", "unknown": 1}`,
	} {
		var r Run
		if err := json.Unmarshal([]byte(doc), &r); err == nil {
			t.Errorf("accepted %s", doc)
		}
	}
}
