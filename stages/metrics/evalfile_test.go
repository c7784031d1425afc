package metrics

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/medcad/medcad/stages/volume"
)

const goodEval = `{"tolerances_mm": [1], "cases": [
 {"case": "c-2", "dice": 0.9, "iou": 0.8182, "hd_mm": 4, "hd95_mm": 2, "assd_mm": 0.5, "masd_mm": 0.5, "nsd": {"1": 0.95}, "truth_voxels": 10, "pred_voxels": 11, "flags": []},
 {"case": "c-1", "dice": 0, "iou": 0, "hd_mm": null, "hd95_mm": null, "assd_mm": null, "masd_mm": null, "nsd": {"1": 0}, "truth_voxels": 10, "pred_voxels": 0, "flags": ["pred_empty"]},
 {"case": "c-3", "error": "c-3.nii.gz: not a label map"}
], "aggregate": []}`

func TestParseEval(t *testing.T) {
	t.Parallel()
	e, err := ParseEval("eval.json", []byte(goodEval))
	if err != nil {
		t.Fatal(err)
	}
	inf := math.Inf(1)
	want := &Eval{TolerancesMM: []float64{1}, Aggregate: []NamedSummary{}, Cases: []Case{
		{ID: "c-1", Result: &Result{HD: inf, HD95: inf, ASSD: inf, MASD: inf, NSD: map[string]float64{"1": 0}, TruthVoxels: 10, Flags: []string{"pred_empty"}}},
		{ID: "c-2", Result: &Result{Dice: 0.9, IoU: 0.8182, HD: 4, HD95: 2, ASSD: 0.5, MASD: 0.5, NSD: map[string]float64{"1": 0.95}, TruthVoxels: 10, PredVoxels: 11, Flags: []string{}}},
		{ID: "c-3", Error: "c-3.nii.gz: not a label map"},
	}}
	if d := cmp.Diff(want, e, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestEvalRoundTrip: what Dirs.Evaluate produces (what 'medcad eval
// --truth-dir … --json' writes) parses, and encode → parse → encode gives
// the same bytes.
func TestEvalRoundTrip(t *testing.T) {
	t.Parallel()
	truthDir, predDir := t.TempDir(), t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, name := range []string{"a", "b", "c"} {
		truth, pred := randomPair(rng, [3]int{8, 7, 6}, [3]float64{1, 1, 2}, 1)
		if name == "c" {
			clear(pred.U8) // an empty prediction: infinite distances
		}
		if err := volume.Write(filepath.Join(truthDir, name+".nii.gz"), truth); err != nil {
			t.Fatal(err)
		}
		if err := volume.Write(filepath.Join(predDir, name+".nii"), pred); err != nil {
			t.Fatal(err)
		}
	}
	if err := volume.Write(filepath.Join(truthDir, "d.nii.gz"), volume.New(volume.Uint8, [3]int{2, 2, 2}, volume.Identity([3]float64{1, 1, 1}))); err != nil {
		t.Fatal(err) // no prediction: a case with an error
	}
	dirs, err := PairDirs(truthDir, predDir)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	e, err := dirs.Evaluate(context.Background(), Options{TolerancesMM: []float64{0.5, 1}}, func(c Case) { seen = append(seen, c.ID) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"a", "b", "c", "d"}) || e.Failed() != 1 || len(e.Aggregate) != 8 {
		t.Fatalf("cases %v, %d failed, %d aggregates; want a…d, 1, 8", seen, e.Failed(), len(e.Aggregate))
	}
	enc, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseEval("eval.json", enc)
	if err != nil {
		t.Fatalf("%v\n%s", err, enc)
	}
	enc2, err := back.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Errorf("encode → parse → encode differs:\n%s", cmp.Diff(string(enc), string(enc2)))
	}
	if !strings.Contains(string(enc), `"case": "d",`+"\n      \"error\": ") || !strings.Contains(string(enc), `"hd_mm": null`) {
		t.Errorf("unexpected encoding:\n%s", enc)
	}
}

func TestParseEvalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"not JSON", `{`, "eval.json: bad evaluation: not JSON"},
		{"no cases", `{"tolerances_mm": [1]}`, `no "cases" list`},
		{"aggregate only", `{"dice": 0.9, "hd95_mm": 2}`, `no "cases" list`},
		{"no id", `{"cases": [{"dice": 1}]}`, "case 1 has no id"},
		{"duplicate", `{"cases": [{"case": "a", "error": "x"}, {"case": "a", "error": "y"}]}`, `case "a" is listed twice`},
		{"no metrics", `{"cases": [{"case": "a"}]}`, `case "a" has neither metrics nor an error`},
		{"missing nsd", `{"tolerances_mm": [1], "cases": [{"case": "a", "dice": 1, "iou": 1, "hd_mm": 0, "hd95_mm": 0, "assd_mm": 0, "masd_mm": 0, "nsd": {}}]}`, `case "a" has no nsd@1`},
		{"dice above 1", `{"tolerances_mm": [], "cases": [{"case": "a", "dice": 1.5, "iou": 1, "hd_mm": 0, "hd95_mm": 0, "assd_mm": 0, "masd_mm": 0}]}`, "dice = 1.5 is outside [0, 1]"},
		{"negative distance", `{"tolerances_mm": [], "cases": [{"case": "a", "dice": 1, "iou": 1, "hd_mm": -1, "hd95_mm": 0, "assd_mm": 0, "masd_mm": 0}]}`, "hd_mm = -1 is negative"},
		{"bad tolerance", `{"tolerances_mm": [-1], "cases": []}`, "tolerance -1"},
	}
	for _, tt := range tests {
		_, err := ParseEval("eval.json", []byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrBadEval) {
			t.Errorf("%s: error %v, want one wrapping ErrBadEval containing %q", tt.name, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "eval.json: ") {
			t.Errorf("%s: %q is not one line naming the file", tt.name, err)
		}
	}
}

// FuzzParseEval: the parser never panics, and what it accepts encodes to
// a file that parses back and encodes to the same bytes.
func FuzzParseEval(f *testing.F) {
	f.Add([]byte(goodEval))
	f.Add([]byte(`{"tolerances_mm": [0.5, 2], "cases": []}`))
	f.Add([]byte(`{"cases": [{"case": "x", "error": "e"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEval("f", data)
		if err != nil {
			return
		}
		enc, err := e.Encode()
		if err != nil {
			t.Fatalf("accepted evaluation does not encode: %v", err)
		}
		back, err := ParseEval("f", enc)
		if err != nil {
			t.Fatalf("re-encoded evaluation does not parse: %v\n%s", err, enc)
		}
		enc2, err := back.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encode → parse → encode differs:\n%s", cmp.Diff(string(enc), string(enc2)))
		}
	})
}
