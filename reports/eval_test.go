package reports

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
	want := &Eval{TolerancesMM: []float64{1}, Cases: []Case{
		{ID: "c-1", Values: map[string]float64{"dice": 0, "iou": 0, "hd_mm": inf, "hd95_mm": inf, "assd_mm": inf, "masd_mm": inf, "nsd@1": 0}, Flags: []string{"pred_empty"}},
		{ID: "c-2", Values: map[string]float64{"dice": 0.9, "iou": 0.8182, "hd_mm": 4, "hd95_mm": 2, "assd_mm": 0.5, "masd_mm": 0.5, "nsd@1": 0.95}, Flags: []string{}},
		{ID: "c-3", Error: "c-3.nii.gz: not a label map"},
	}}
	if d := cmp.Diff(want, e, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("(-want +got):\n%s", d)
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
// a file that parses back to the same evaluation.
func FuzzParseEval(f *testing.F) {
	f.Add([]byte(goodEval))
	f.Add([]byte(`{"tolerances_mm": [0.5, 2], "cases": []}`))
	f.Add([]byte(`{"cases": [{"case": "x", "error": "e"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEval("f", data)
		if err != nil {
			return
		}
		back, err := ParseEval("f", e.Encode())
		if err != nil {
			t.Fatalf("re-encoded evaluation does not parse: %v\n%s", err, e.Encode())
		}
		if d := cmp.Diff(e, back, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}
