package metrics

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// bruteDirected is the definition: for each query voxel the minimum over
// all feature voxels of the Euclidean distance between centres in mm.
func bruteDirected(flag []uint8, dim [3]int, sp [3]float64, feat, query uint8) []float64 {
	type pt struct{ x, y, z float64 }
	var feats, queries []pt
	n := 0
	for k := range dim[2] {
		for j := range dim[1] {
			for i := range dim[0] {
				p := pt{float64(i) * sp[0], float64(j) * sp[1], float64(k) * sp[2]}
				if flag[n]&feat != 0 {
					feats = append(feats, p)
				}
				if flag[n]&query != 0 {
					queries = append(queries, p)
				}
				n++
			}
		}
	}
	out := make([]float64, len(queries))
	for q, a := range queries {
		best := math.Inf(1)
		for _, b := range feats {
			best = min(best, math.Hypot(math.Hypot(a.x-b.x, a.y-b.y), a.z-b.z))
		}
		out[q] = best
	}
	return out
}

// TestDirectedMatchesBruteForce checks the separable distance transform
// against the O(n·m) definition on random sparse and dense point sets.
func TestDirectedMatchesBruteForce(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 240 {
		dim := [3]int{1 + rng.IntN(9), 1 + rng.IntN(9), 1 + rng.IntN(9)}
		if trial >= 200 { // larger grids: long columns, near and far queries
			dim = [3]int{20 + rng.IntN(30), 20 + rng.IntN(30), 5 + rng.IntN(10)}
		}
		sp := [3]float64{0.3 + rng.Float64()*2, 0.3 + rng.Float64()*2, 0.3 + rng.Float64()*3}
		flag := make([]uint8, dim[0]*dim[1]*dim[2])
		pf, pq := rng.Float64()*0.5, rng.Float64()
		if trial >= 200 {
			pf, pq = rng.Float64()*0.005, rng.Float64()*0.2
		}
		nq, nf := 0, 0
		for n := range flag {
			if rng.Float64() < pf {
				flag[n] |= bdTruth
				nf++
			}
			if rng.Float64() < pq {
				flag[n] |= bdPred
				nq++
			}
		}
		if nf == 0 {
			flag[rng.IntN(len(flag))] |= bdTruth
		}
		got, err := directed(context.Background(), flag, dim, sp, bdTruth, bdPred, nq, make([]uint16, len(flag)))
		if err != nil {
			t.Fatal(err)
		}
		want := bruteDirected(flag, dim, sp, bdTruth, bdPred)
		slices.Sort(got)
		slices.Sort(want)
		if len(got) != len(want) {
			t.Fatalf("trial %d: %d distances, want %d", trial, len(got), len(want))
		}
		for q := range got {
			if math.Abs(got[q]-want[q]) > 1e-9*(1+want[q]) {
				t.Fatalf("trial %d dim %v spacing %v: distance %d = %v, want %v", trial, dim, sp, q, got[q], want[q])
			}
		}
	}
}

func TestPercentileMatchesNumpyLinear(t *testing.T) {
	t.Parallel()
	tests := []struct {
		x    []float64
		q    float64
		want float64
	}{
		{[]float64{1}, 95, 1},
		{[]float64{1, 2}, 95, 1.95},
		{[]float64{3, 1, 2, 4}, 50, 2.5},
		{[]float64{10, 0, 5}, 95, 9.5},
		{[]float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 95, 9.5},
		{[]float64{2, 2, 2, 2}, 95, 2},
		{[]float64{5, 4, 3, 2, 1}, 0, 1},
		{[]float64{5, 4, 3, 2, 1}, 100, 5},
	}
	for _, tc := range tests {
		x := slices.Clone(tc.x)
		if got := Percentile(x, tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tc.x, tc.q, got, tc.want)
		}
	}
	// Against a sorted reference on random data with many ties.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		x := make([]float64, 1+rng.IntN(200))
		for i := range x {
			x[i] = float64(rng.IntN(20))
		}
		s := slices.Clone(x)
		slices.Sort(s)
		q := rng.Float64() * 100
		v := float64(len(s)-1) * q / 100
		lo := int(math.Floor(v))
		hi := min(lo+1, len(s)-1)
		want := s[lo] + (s[hi]-s[lo])*(v-float64(lo))
		if got := Percentile(x, q); math.Abs(got-want) > 1e-9 {
			t.Fatalf("Percentile(q=%v) = %v, want %v", q, got, want)
		}
	}
}
