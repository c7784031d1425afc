package reports

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/medcad/medcad/gitops"
)

// TestGateRules checks each rule, in both metric directions, at and
// around its bound, with infinite distances and without a baseline.
func TestGateRules(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	mk := func(dice, hd95 []float64) map[string]caseVals {
		out := map[string]caseVals{}
		for i := range dice {
			out[string(rune('a'+i))] = caseVals{"dice": dice[i], "iou": dice[i], "hd_mm": hd95[i], "hd95_mm": hd95[i],
				"assd_mm": 1, "masd_mm": 1, "nsd@1": 0.9}
		}
		return out
	}
	base := mk([]float64{0.90, 0.80, 0.70}, []float64{2, 3, 4}) // mean dice 0.8, mean hd95 3
	tests := []struct {
		name     string
		gate     gitops.Gate
		cand     map[string]caseVals
		noBase   bool
		want     string
		wantText string
	}{
		{"no-worse within tolerance", gitops.Gate{Metric: "dice", Stat: "mean", Rule: "no-worse", Tolerance: 0.01},
			mk([]float64{0.89, 0.80, 0.70}, []float64{2, 3, 4}), false, Pass, "must be ≥ 0.79"},
		{"no-worse beyond tolerance", gitops.Gate{Metric: "dice", Stat: "mean", Rule: "no-worse", Tolerance: 0.01},
			mk([]float64{0.85, 0.78, 0.70}, []float64{2, 3, 4}), false, Fail, "dice mean 0.8 → 0.7767"},
		{"no-worse distance: lower is better", gitops.Gate{Metric: "hd95", Stat: "mean", Rule: "no-worse", Tolerance: 0.5},
			mk([]float64{0.9, 0.8, 0.7}, []float64{2, 3, 5.4}), false, Pass, "must be ≤ 3.5"},
		{"no-worse distance fails", gitops.Gate{Metric: "hd95_mm", Stat: "mean", Rule: "no-worse", Tolerance: 0.5},
			mk([]float64{0.9, 0.8, 0.7}, []float64{2, 3, 5.6}), false, Fail, "hd95_mm mean 3 → 3.533"},
		{"empty prediction: infinite mean fails", gitops.Gate{Metric: "hd95", Stat: "mean", Rule: "no-worse", Tolerance: 100},
			mk([]float64{0.9, 0.8, 0}, []float64{2, 3, inf}), false, Fail, "→ inf"},
		{"better needs more than the tolerance", gitops.Gate{Metric: "dice", Stat: "median", Rule: "better", Tolerance: 0.01},
			mk([]float64{0.91, 0.81, 0.71}, []float64{2, 3, 4}), false, Fail, "must be > 0.81"},
		{"better passes", gitops.Gate{Metric: "dice", Stat: "median", Rule: "better", Tolerance: 0.01},
			mk([]float64{0.92, 0.82, 0.72}, []float64{2, 3, 4}), false, Pass, "dice median 0.8 → 0.82"},
		{"at-least on min", gitops.Gate{Metric: "dice", Stat: "min", Rule: "at-least", Value: 0.7},
			mk([]float64{0.9, 0.8, 0.7}, []float64{2, 3, 4}), false, Pass, "dice min = 0.7, must be at least 0.7"},
		{"at-least fails", gitops.Gate{Metric: "dice", Stat: "min", Rule: "at-least", Value: 0.75},
			mk([]float64{0.9, 0.8, 0.7}, []float64{2, 3, 4}), false, Fail, "dice min = 0.7, must be at least 0.75"},
		{"at-most p95", gitops.Gate{Metric: "hd95", Stat: "p95", Rule: "at-most", Value: 3.8},
			mk([]float64{0.9, 0.8, 0.7}, []float64{2, 3, 4}), false, Fail, "hd95_mm p95 = 3.9"},
		{"at-most applies to the first model", gitops.Gate{Metric: "hd95", Stat: "max", Rule: "at-most", Value: 4},
			mk([]float64{0.9, 0.8, 0.7}, []float64{2, 3, 4}), true, Pass, "hd95_mm max = 4"},
		{"relative gate skipped without a baseline", gitops.Gate{Metric: "dice", Stat: "mean", Rule: "no-worse"},
			mk([]float64{0.1, 0.1, 0.1}, []float64{2, 3, 4}), true, Skipped, "no baseline"},
		{"unknown metric fails", gitops.Gate{Metric: "dcie", Stat: "mean", Rule: "at-least", Value: 0.5},
			mk([]float64{0.9, 0.8, 0.7}, []float64{2, 3, 4}), false, Fail, "dcie is not a metric of the evaluation (have dice, iou"},
		{"nsd alias", gitops.Gate{Metric: "nsd", Stat: "mean", Rule: "at-least", Value: 0.9},
			mk([]float64{0.9, 0.8, 0.7}, []float64{2, 3, 4}), false, Pass, "nsd@1 mean = 0.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := Input{Candidate: sideSpec{ref: "c", cases: tt.cand}.side(), Promote: gitops.Promote{Gates: []gitops.Gate{tt.gate}}}
			if !tt.noBase {
				in.Base = sideSpec{ref: "b", cases: base}.side()
			}
			c, err := Compare(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			g := c.Verdict.Gates[0]
			if g.Status != tt.want || !strings.Contains(g.Message, tt.wantText) {
				t.Errorf("%s: %s, want %s with %q", g.Name, g.Status+": "+g.Message, tt.want, tt.wantText)
			}
			if c.Verdict.Promote != (tt.want != Fail) {
				t.Errorf("promote = %v with a gate %s", c.Verdict.Promote, g.Status)
			}
		})
	}
}

func TestCaseDropRule(t *testing.T) {
	t.Parallel()
	b := map[string]caseVals{"a": {"dice": 0.9}, "b": {"dice": 0.8}, "c": {"dice": 0.7}}
	k := map[string]caseVals{"a": {"dice": 0.86}, "b": {"dice": 0.74}, "c": {"dice": 0.75}}
	e := func(m map[string]caseVals) *Eval {
		ev := evalOf(m)
		ev.TolerancesMM = nil
		for i := range ev.Cases {
			for _, n := range []string{"iou", "hd_mm", "hd95_mm", "assd_mm", "masd_mm"} {
				ev.Cases[i].Values[n] = 1
			}
		}
		return ev
	}
	bs, cs := sideSpec{ref: "b"}.side(), sideSpec{ref: "c"}.side()
	bs.Eval, cs.Eval = e(b), e(k)
	for _, tt := range []struct {
		max    float64
		status string
		cases  []string
	}{{0.05, Fail, []string{"b"}}, {0.06, Pass, nil}, {0, "", nil}} {
		c, err := Compare(context.Background(), Input{Base: bs, Candidate: cs, Promote: gitops.Promote{MaxCaseDrop: map[string]float64{"dice": tt.max}}})
		if err != nil {
			t.Fatal(err)
		}
		if tt.status == "" {
			if len(c.Verdict.Gates) != 0 {
				t.Errorf("max_case_drop 0 should disable the rule, got %+v", c.Verdict.Gates)
			}
			continue
		}
		g := c.Verdict.Gates[0]
		if g.Status != tt.status || strings.Join(g.Cases, ",") != strings.Join(tt.cases, ",") {
			t.Errorf("max %g: %s %v (%s), want %s %v", tt.max, g.Status, g.Cases, g.Message, tt.status, tt.cases)
		}
	}
}
