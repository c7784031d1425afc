package reports

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
)

// samples returns the test inputs: exact-size, approximate-size, with
// zeros and with ties.
func samples() map[string][]float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func(n int, shift float64, round float64) []float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = rng.NormFloat64()*0.02 + shift
			if round > 0 {
				x[i] = math.Round(x[i]/round) * round
			}
		}
		return x
	}
	withZeros := gen(40, 0.003, 0)
	for i := 0; i < 40; i += 7 {
		withZeros[i] = 0
	}
	return map[string][]float64{
		"n5":          {0.01, -0.02, 0.03, 0.04, 0.05},
		"n12 shifted": gen(12, 0.01, 0),
		"n30":         gen(30, 0, 0),
		"n50":         gen(50, 0.004, 0),
		"n51":         gen(51, 0.004, 0),
		"n200":        gen(200, -0.002, 0),
		"zeros":       withZeros,
		"ties n80":    gen(80, 0.002, 0.005),
		"all same":    {0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01},
	}
}

const scipyScript = `
import json, sys, warnings
import numpy as np
from scipy import stats
warnings.simplefilter("ignore")
data = json.load(sys.stdin)
out = {}
for name, d in data.items():
    d = np.array(d)
    res = stats.wilcoxon(d)
    q = {s: float(np.percentile(d, p)) for s, p in (("p05", 5), ("median", 50), ("p95", 95))}
    q.update(mean=float(np.mean(d)), min=float(np.min(d)), max=float(np.max(d)))
    out[name] = {"p": float(res.pvalue), "stat": float(res.statistic), "q": q}
json.dump(out, sys.stdout)
`

// TestSignedRankScipy checks the Wilcoxon p-value and the gate statistics
// against scipy.stats.wilcoxon and numpy from Debian.
func TestSignedRankScipy(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t, "scipy")
	in := samples()
	js, _ := json.Marshal(in)
	cmd := exec.Command(py, "-c", scipyScript)
	cmd.Stdin = strings.NewReader(string(js))
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("scipy: %v", err)
	}
	var ref map[string]struct {
		P    float64            `json:"p"`
		Stat float64            `json:"stat"`
		Q    map[string]float64 `json:"q"`
	}
	if err := json.Unmarshal(outb, &ref); err != nil {
		t.Fatal(err)
	}
	for name, d := range in {
		w := SignedRank(d)
		r := ref[name]
		if math.Abs(w.P-r.P) > 1e-9*math.Max(1, r.P) && math.Abs(w.P-r.P) > 1e-12 {
			t.Errorf("%s: p = %.12g, scipy %.12g (exact %v, n %d, zeros %d)", name, w.P, r.P, w.Exact, w.N, w.Zeros)
		}
		if got := min(w.WPlus, w.WMinus); math.Abs(got-r.Stat) > 1e-9 {
			t.Errorf("%s: statistic = %g, scipy %g", name, got, r.Stat)
		}
		for stat, want := range r.Q {
			if got := statOf(d, stat); math.Abs(got-want) > 1e-12 {
				t.Errorf("%s: %s = %.15g, numpy %.15g", name, stat, got, want)
			}
		}
	}
}

func TestSignedRankEdges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		d     []float64
		wantP float64
	}{
		{"empty", nil, 1},
		{"all zero", []float64{0, 0, 0}, 1},
		{"infinite left out", []float64{math.Inf(1), math.NaN()}, 1},
		{"one positive", []float64{0.1}, 1},                 // exact: P(W+ ≥ 1) = 1/2, two-sided 1
		{"five positive", []float64{1, 2, 3, 4, 5}, 0.0625}, // 2 × 1/32
	}
	for _, tt := range tests {
		if got := SignedRank(tt.d).P; math.Abs(got-tt.wantP) > 1e-12 {
			t.Errorf("%s: p = %g, want %g", tt.name, got, tt.wantP)
		}
	}
}

func TestStatOfInfinite(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	x := []float64{1, 2, inf}
	for stat, want := range map[string]float64{"mean": inf, "max": inf, "min": 1, "median": 2, "p95": inf} {
		if got := statOf(x, stat); got != want {
			t.Errorf("%s = %g, want %g", stat, got, want)
		}
	}
	if got := statOf(nil, "mean"); !math.IsNaN(got) {
		t.Errorf("mean of nothing = %g, want NaN", got)
	}
}
