package metrics

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/medcad/medcad/stages/volume"
)

// FuzzEvaluate builds two small masks from the fuzzer's bytes and checks
// the fast path against the definition computed by brute force, and
// symmetry.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{3, 3, 3, 10, 20, 30, 0xff, 0x0f, 0xf0, 0x55, 0xaa, 0x01})
	f.Add([]byte{1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte{5, 2, 4, 255, 0, 7, 0, 0, 0, 0, 0x80, 0, 0, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 6 {
			return
		}
		dim := [3]int{1 + int(b[0])%7, 1 + int(b[1])%7, 1 + int(b[2])%7}
		sp := [3]float64{0.25 + float64(b[3])/64, 0.25 + float64(b[4])/64, 0.25 + float64(b[5])/64}
		b = b[6:]
		truth := volume.New(volume.Uint8, dim, volume.Identity(sp))
		pred := volume.New(volume.Uint8, dim, volume.Identity(sp))
		for n := range truth.U8 {
			if len(b) > 0 {
				truth.U8[n] = b[0] & 1
				pred.U8[n] = b[0] >> 1 & 1
				b = b[1:]
			}
		}
		r, err := Evaluate(context.Background(), truth, pred, Options{TolerancesMM: []float64{1}})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Evaluate(context.Background(), pred, truth, Options{TolerancesMM: []float64{1}})
		if err != nil {
			t.Fatal(err)
		}
		if r.HD != s.HD || math.Abs(r.ASSD-s.ASSD) > 1e-12 || r.Dice != s.Dice {
			t.Fatalf("not symmetric: %+v vs %+v", r, s)
		}
		if r.TruthVoxels == 0 || r.PredVoxels == 0 {
			return
		}
		m, err := newMasks(context.Background(), truth, pred, 0)
		if err != nil {
			t.Fatal(err)
		}
		pg := bruteDirected(m.flag, m.dim, sp, bdTruth, bdPred)
		gp := bruteDirected(m.flag, m.dim, sp, bdPred, bdTruth)
		hd := max(slices.Max(pg), slices.Max(gp))
		if math.Abs(r.HD-hd) > 1e-9 || r.HD < 0 || r.HD95 < 0 || r.ASSD < 0 {
			t.Fatalf("HD %v, brute force %v (HD95 %v ASSD %v)", r.HD, hd, r.HD95, r.ASSD)
		}
		hd95 := max(Percentile(pg, 95), Percentile(gp, 95))
		if math.Abs(r.HD95-hd95) > 1e-9 {
			t.Fatalf("HD95 %v, brute force %v", r.HD95, hd95)
		}
	})
}
