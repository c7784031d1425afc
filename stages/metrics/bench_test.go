package metrics

import (
	"context"
	"math/rand/v2"
	"testing"
)

// BenchmarkEvaluate measures the full metric set on a 160×160×96 pair of
// random box unions (bench/metrics/run.sh measures full CT size against
// scipy).
func BenchmarkEvaluate(b *testing.B) {
	rng := rand.New(rand.NewPCG(17, 18))
	dim := [3]int{160, 160, 96}
	truth, pred := randomPair(rng, dim, [3]float64{0.78, 0.78, 1.25}, 1)
	for range 30 {
		t2, p2 := randomPair(rng, dim, [3]float64{0.78, 0.78, 1.25}, 1)
		for n := range truth.U8 {
			truth.U8[n] |= t2.U8[n]
			pred.U8[n] |= p2.U8[n]
		}
	}
	opts := Options{TolerancesMM: []float64{1, 2}}
	b.SetBytes(int64(truth.Len()))
	for b.Loop() {
		if _, err := Evaluate(context.Background(), truth, pred, opts); err != nil {
			b.Fatal(err)
		}
	}
}
