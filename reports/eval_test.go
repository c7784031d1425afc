package reports

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/medcad/medcad/stages/metrics"
)

const goodEval = `{"tolerances_mm": [1], "cases": [
 {"case": "c-2", "dice": 0.9, "iou": 0.8182, "hd_mm": 4, "hd95_mm": 2, "assd_mm": 0.5, "masd_mm": 0.5, "nsd": {"1": 0.95, "2": 1}, "truth_voxels": 10, "pred_voxels": 11, "flags": []},
 {"case": "c-1", "dice": 0, "iou": 0, "hd_mm": null, "hd95_mm": null, "assd_mm": null, "masd_mm": null, "nsd": {"1": 0}, "truth_voxels": 10, "pred_voxels": 0, "flags": ["pred_empty"]},
 {"case": "c-3", "error": "c-3.nii.gz: not a label map"}
], "aggregate": []}`

// TestParseEval: the report view holds the metrics of MetricNames by name.
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
	if _, err := ParseEval("eval.json", []byte(`{}`)); err == nil {
		t.Error("accepted a file without cases")
	}
}

// evalFile encodes per-case values as eval.json (tolerance 1 mm).
func evalFile(t *testing.T, cases map[string]caseVals) []byte {
	t.Helper()
	e := &metrics.Eval{TolerancesMM: []float64{1}}
	for _, id := range sortedKeysOf(cases) {
		v := cases[id]
		e.Cases = append(e.Cases, metrics.Case{ID: id, Result: &metrics.Result{Dice: v["dice"], IoU: v["iou"], HD: v["hd_mm"],
			HD95: v["hd95_mm"], ASSD: v["assd_mm"], MASD: v["masd_mm"], NSD: map[string]float64{"1": v["nsd@1"]}}})
	}
	data, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}
