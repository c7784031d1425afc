package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/medcad/medcad/stages/volume"
)

var taus = []float64{0.5, 1, 2, 5}

// randomPair returns two overlapping random label maps on one grid.
func randomPair(rng *rand.Rand, dim [3]int, sp [3]float64, labels int) (*volume.Volume, *volume.Volume) {
	a := volume.New(volume.Uint8, dim, volume.Identity(sp))
	b := volume.New(volume.Uint8, dim, volume.Identity(sp))
	// Random boxes give connected, bone-like regions with flat and edge borders.
	for _, v := range []*volume.Volume{a, b} {
		for range 1 + rng.IntN(4) {
			var lo, hi [3]int
			for ax := range 3 {
				lo[ax] = rng.IntN(dim[ax])
				hi[ax] = lo[ax] + 1 + rng.IntN(dim[ax]-lo[ax])
			}
			l := uint8(1 + rng.IntN(labels))
			for k := lo[2]; k < hi[2]; k++ {
				for j := lo[1]; j < hi[1]; j++ {
					for i := lo[0]; i < hi[0]; i++ {
						v.U8[v.Index(i, j, k)] = l
					}
				}
			}
		}
	}
	return a, b
}

func eval(t *testing.T, truth, pred *volume.Volume, opts Options) Result {
	t.Helper()
	r, err := Evaluate(context.Background(), truth, pred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var approx = cmpopts.EquateApprox(1e-12, 1e-12)

// TestSymmetry: every metric is symmetric in truth and prediction; only
// the voxel counts and the empty flags swap.
func TestSymmetry(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	for range 60 {
		dim := [3]int{2 + rng.IntN(12), 2 + rng.IntN(12), 2 + rng.IntN(8)}
		sp := [3]float64{0.5 + rng.Float64(), 0.5 + rng.Float64(), 1 + 2*rng.Float64()}
		a, b := randomPair(rng, dim, sp, 1)
		ab := eval(t, a, b, Options{TolerancesMM: taus})
		ba := eval(t, b, a, Options{TolerancesMM: taus})
		ba.TruthVoxels, ba.PredVoxels = ba.PredVoxels, ba.TruthVoxels
		ba.TruthBorder, ba.PredBorder = ba.PredBorder, ba.TruthBorder
		if diff := cmp.Diff(ab, ba, approx, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("dim %v: metrics not symmetric (-ab +ba):\n%s", dim, diff)
		}
	}
}

// TestSelf: a mask against itself is perfect.
func TestSelf(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	for range 30 {
		dim := [3]int{1 + rng.IntN(10), 1 + rng.IntN(10), 1 + rng.IntN(10)}
		a, _ := randomPair(rng, dim, [3]float64{0.7, 0.8, 2.5}, 1)
		r := eval(t, a, a, Options{TolerancesMM: taus})
		want := Result{Dice: 1, IoU: 1, NSD: map[string]float64{"0.5": 1, "1": 1, "2": 1, "5": 1},
			TruthVoxels: r.TruthVoxels, PredVoxels: r.TruthVoxels, TruthBorder: r.TruthBorder, PredBorder: r.TruthBorder}
		if diff := cmp.Diff(want, r, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("self comparison (-want +got):\n%s", diff)
		}
	}
}

// TestInvariants: ranges and orderings that hold for any pair.
func TestInvariants(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 10))
	for range 100 {
		dim := [3]int{1 + rng.IntN(14), 1 + rng.IntN(14), 1 + rng.IntN(9)}
		a, b := randomPair(rng, dim, [3]float64{0.3 + rng.Float64(), 0.3 + rng.Float64(), 0.3 + 3*rng.Float64()}, 1)
		r := eval(t, a, b, Options{TolerancesMM: taus})
		switch {
		case r.Dice < 0 || r.Dice > 1 || r.IoU < 0 || r.IoU > r.Dice:
			t.Fatalf("dice %v iou %v out of range", r.Dice, r.IoU)
		case math.Abs(r.Dice-2*r.IoU/(1+r.IoU)) > 1e-12:
			t.Fatalf("dice %v and iou %v disagree", r.Dice, r.IoU)
		case !(0 <= r.HD95 && r.HD95 <= r.HD && 0 <= r.ASSD && r.ASSD <= r.HD && 0 <= r.MASD && r.MASD <= r.HD):
			t.Fatalf("distances out of order: %+v", r)
		}
		prev := 0.0
		for _, tau := range taus {
			n := r.NSD[ToleranceKey(tau)]
			if n < prev || n > 1 {
				t.Fatalf("nsd %v at τ=%v after %v", n, tau, prev)
			}
			prev = n
		}
	}
}

// TestCropInvariance: embedding both masks in a larger background volume
// (the masks may touch the small volume's faces) changes nothing, since
// outside voxels count as background.
func TestCropInvariance(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 12))
	for range 20 {
		dim := [3]int{2 + rng.IntN(9), 2 + rng.IntN(9), 2 + rng.IntN(9)}
		sp := [3]float64{0.9, 1.3, 2}
		a, b := randomPair(rng, dim, sp, 1)
		big := [3]int{dim[0] + 7, dim[1] + 5, dim[2] + 3}
		off := [3]int{3, 1, 2}
		embed := func(v *volume.Volume) *volume.Volume {
			w := volume.New(volume.Uint8, big, volume.Identity(sp))
			for k := range dim[2] {
				for j := range dim[1] {
					for i := range dim[0] {
						w.U8[w.Index(i+off[0], j+off[1], k+off[2])] = v.U8[v.Index(i, j, k)]
					}
				}
			}
			return w
		}
		want := eval(t, a, b, Options{TolerancesMM: taus})
		got := eval(t, embed(a), embed(b), Options{TolerancesMM: taus})
		if diff := cmp.Diff(want, got, approx, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("embedding changed metrics (-small +big):\n%s", diff)
		}
	}
}

// TestKnownValues checks small cases computed by hand.
func TestKnownValues(t *testing.T) {
	t.Parallel()
	sp := [3]float64{1, 2, 3}
	mk := func(set ...[3]int) *volume.Volume {
		v := volume.New(volume.Uint8, [3]int{6, 4, 3}, volume.Identity(sp))
		for _, p := range set {
			v.U8[v.Index(p[0], p[1], p[2])] = 1
		}
		return v
	}
	inf := math.Inf(1)
	tests := []struct {
		name        string
		truth, pred *volume.Volume
		want        Result
	}{{
		name:  "two voxels apart",
		truth: mk([3]int{0, 0, 0}), pred: mk([3]int{3, 2, 1}),
		// distance sqrt(3² + 4² + 3²) = sqrt(34)
		want: Result{HD: math.Sqrt(34), HD95: math.Sqrt(34), ASSD: math.Sqrt(34), MASD: math.Sqrt(34),
			NSD: map[string]float64{"1": 0, "6": 1}, TruthVoxels: 1, PredVoxels: 1, TruthBorder: 1, PredBorder: 1},
	}, {
		name:  "one voxel of two",
		truth: mk([3]int{1, 1, 1}, [3]int{2, 1, 1}), pred: mk([3]int{1, 1, 1}),
		// d(P→G) = {0}; d(G→P) = {0, 1}: HD 1, HD95 max(0, 0.95), ASSD 1/3, MASD (0 + 0.5)/2
		want: Result{Dice: 2.0 / 3, IoU: 0.5, HD: 1, HD95: 0.95, ASSD: 1.0 / 3, MASD: 0.25,
			NSD: map[string]float64{"1": 1, "6": 1}, TruthVoxels: 2, PredVoxels: 1, TruthBorder: 2, PredBorder: 1},
	}, {
		name:  "pred empty",
		truth: mk([3]int{1, 1, 1}), pred: mk(),
		want: Result{HD: inf, HD95: inf, ASSD: inf, MASD: inf, NSD: map[string]float64{"1": 0, "6": 0},
			TruthVoxels: 1, TruthBorder: 1, Flags: []string{FlagPredEmpty}},
	}, {
		name:  "truth empty",
		truth: mk(), pred: mk([3]int{1, 1, 1}),
		want: Result{HD: inf, HD95: inf, ASSD: inf, MASD: inf, NSD: map[string]float64{"1": 0, "6": 0},
			PredVoxels: 1, PredBorder: 1, Flags: []string{FlagTruthEmpty}},
	}, {
		name:  "both empty",
		truth: mk(), pred: mk(),
		want: Result{Dice: 1, IoU: 1, NSD: map[string]float64{"1": 1, "6": 1}, Flags: []string{FlagBothEmpty}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := eval(t, tc.truth, tc.pred, Options{TolerancesMM: []float64{1, 6}})
			if diff := cmp.Diff(tc.want, got, approx, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestLabels: a multi-label map is evaluated per label, each as the
// binary mask of that label; label 0 means any nonzero voxel.
func TestLabels(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(13, 14))
	a, b := randomPair(rng, [3]int{12, 11, 10}, [3]float64{1, 1, 2}, 3)
	per, err := EvaluateLabels(context.Background(), a, b, Options{TolerancesMM: taus})
	if err != nil {
		t.Fatal(err)
	}
	labels := slices.Concat(Labels(a), Labels(b))
	slices.Sort(labels)
	if len(per) != len(slices.Compact(labels)) {
		t.Fatalf("%d label results for labels %v", len(per), labels)
	}
	binary := func(v *volume.Volume, l uint8) *volume.Volume {
		w := volume.New(volume.Uint8, v.Dim, v.Affine)
		for n, x := range v.U8 {
			if (l == 0 && x != 0) || (l != 0 && x == l) {
				w.U8[n] = 1
			}
		}
		return w
	}
	for _, lr := range per {
		want := eval(t, binary(a, lr.Label), binary(b, lr.Label), Options{TolerancesMM: taus})
		if diff := cmp.Diff(want, lr.Result, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("label %d (-binary +per-label):\n%s", lr.Label, diff)
		}
	}
	want := eval(t, binary(a, 0), binary(b, 0), Options{TolerancesMM: taus})
	if diff := cmp.Diff(want, eval(t, a, b, Options{TolerancesMM: taus}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("label 0 (-binary +any nonzero):\n%s", diff)
	}
}

// TestBadInput: each problem yields its sentinel error.
func TestBadInput(t *testing.T) {
	t.Parallel()
	dim := [3]int{4, 4, 4}
	good := volume.New(volume.Uint8, dim, volume.Identity([3]float64{1, 1, 1}))
	good.U8[5] = 1
	f32 := func(x float32) *volume.Volume {
		v := volume.New(volume.Float32, dim, good.Affine)
		v.F32[3] = x
		return v
	}
	i16 := volume.New(volume.Int16, dim, good.Affine)
	i16.I16[0] = -1
	shifted := volume.New(volume.Uint8, dim, good.Affine)
	shifted.Affine[0][3] = 0.01
	tests := []struct {
		name        string
		truth, pred *volume.Volume
		opts        Options
		want        error
	}{
		{"shape", good, volume.New(volume.Uint8, [3]int{4, 4, 5}, good.Affine), Options{}, volume.ErrShape},
		{"affine", good, shifted, Options{}, volume.ErrShape},
		{"nan", good, f32(float32(math.NaN())), Options{}, ErrNotLabelMap},
		{"fraction", f32(0.5), good, Options{}, ErrNotLabelMap},
		{"too big", good, f32(256), Options{}, ErrNotLabelMap},
		{"negative", i16, good, Options{}, ErrNotLabelMap},
		{"absent label", good, good, Options{Label: 7}, ErrLabelAbsent},
	}
	for _, tc := range tests {
		if _, err := Evaluate(context.Background(), tc.truth, tc.pred, tc.opts); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Evaluate(context.Background(), good, good, Options{TolerancesMM: []float64{-1}}); err == nil {
		t.Error("negative tolerance accepted")
	}
	// Integer-valued float and int16 label maps are accepted.
	if _, err := Evaluate(context.Background(), f32(1), good, Options{}); err != nil {
		t.Errorf("float32 label map: %v", err)
	}
}

// TestJSON: the wire keys, null for infinite distances, and a round trip.
func TestJSON(t *testing.T) {
	t.Parallel()
	r := Result{Dice: 0, HD: math.Inf(1), HD95: math.Inf(1), ASSD: math.Inf(1), MASD: math.Inf(1),
		NSD: map[string]float64{"1": 0}, TruthVoxels: 3, Flags: []string{FlagPredEmpty}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"dice":0,"iou":0,"hd_mm":null,"hd95_mm":null,"assd_mm":null,"masd_mm":null,"nsd":{"1":0},"truth_voxels":3,"pred_voxels":0,"flags":["pred_empty"]}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(15, 16))
	a, b := randomPair(rng, [3]int{20, 20, 20}, [3]float64{1, 1, 1}, 1)
	a.U8[0], b.U8[len(b.U8)-1] = 1, 1
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Evaluate(ctx, a, b, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	s := Summarize([]float64{4, 1, math.Inf(1), 3, 2})
	if s.N != 4 || s.NonFinite != 1 || s.Mean != 2.5 || s.Median != 2.5 || s.Min != 1 || s.Max != 4 ||
		math.Abs(s.Std-math.Sqrt(5.0/3)) > 1e-12 {
		t.Fatalf("summary %+v", s)
	}
	if !(s.CILow < s.Mean && s.Mean < s.CIHigh && s.CILow >= 1 && s.CIHigh <= 4) {
		t.Errorf("confidence interval [%v, %v] around mean %v", s.CILow, s.CIHigh, s.Mean)
	}
	if again := Summarize([]float64{4, 1, math.Inf(1), 3, 2}); again != s {
		t.Errorf("bootstrap not reproducible: %+v then %+v", s, again)
	}
	one := Summarize([]float64{0.9})
	if one.Std != 0 || one.CILow != 0.9 || one.CIHigh != 0.9 {
		t.Errorf("single value: %+v", one)
	}
	if none := Summarize([]float64{math.Inf(1)}); !math.IsNaN(none.Mean) || none.NonFinite != 1 {
		t.Errorf("no finite value: %+v", none)
	}
}

func TestAggregate(t *testing.T) {
	t.Parallel()
	rs := []Result{
		{Dice: 0.5, HD: 2, NSD: map[string]float64{"1": 0.25}},
		{Dice: 1, HD: math.Inf(1), NSD: map[string]float64{"1": 0.75}},
	}
	got := Aggregate(rs, MetricNames([]float64{1}))
	if len(got) != 7 || got[0].Metric != "dice" || got[0].Mean != 0.75 || got[2].Metric != "hd_mm" ||
		got[2].N != 1 || got[2].NonFinite != 1 || got[6].Metric != "nsd@1" || got[6].Median != 0.5 {
		t.Fatalf("aggregate %+v", got)
	}
	b, err := json.Marshal(Aggregate(rs[1:], []string{"hd_mm"}))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"metric":"hd_mm","n":0,"non_finite":1,"mean":null,"median":null,"std":null,"min":null,"max":null,"ci95_low":null,"ci95_high":null}]`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
}

func TestLabelResultJSON(t *testing.T) {
	t.Parallel()
	in := []LabelResult{{Label: 2, Result: Result{Dice: 0.5, HD: math.Inf(1), HD95: 1, NSD: map[string]float64{"1": 0.25}, TruthVoxels: 4, Flags: []string{}}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `[{"label":2,"dice":0.5,`) {
		t.Errorf("JSON %s", b)
	}
	var out []LabelResult
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
