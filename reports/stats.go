package reports

import (
	"math"
	"slices"
)

// exactWilcoxonMax is the largest number of non-zero differences for which
// the Wilcoxon p-value is computed from the exact null distribution (as
// scipy does with method="auto"); above it, and whenever there are zero
// differences or tied ranks, the normal approximation with tie correction
// is used.
const exactWilcoxonMax = 50

// Wilcoxon is the result of a two-sided Wilcoxon signed-rank test of paired
// differences (zero differences dropped, as scipy's zero_method="wilcox").
type Wilcoxon struct {
	N      int     // non-zero differences ranked
	Zeros  int     // zero differences dropped
	WPlus  float64 // sum of the ranks of positive differences
	WMinus float64 // sum of the ranks of negative differences
	P      float64 // two-sided p-value; 1 when no difference is non-zero
	Exact  bool    // p from the exact distribution, not the normal approximation
}

// SignedRank runs the two-sided Wilcoxon signed-rank test on the finite
// values of d (the paired differences candidate − baseline). It matches
// scipy.stats.wilcoxon(d) (zero_method="wilcox", correction=False,
// method="auto") when there are no ties; with ties or zeros it uses the
// normal approximation with the tie-corrected variance, as scipy does
// when it cannot use the exact distribution.
func SignedRank(d []float64) Wilcoxon {
	var w Wilcoxon
	x := make([]float64, 0, len(d))
	for _, v := range d {
		switch {
		case math.IsInf(v, 0) || math.IsNaN(v):
		case v == 0:
			w.Zeros++
		default:
			x = append(x, v)
		}
	}
	w.N = len(x)
	if w.N == 0 {
		w.P = 1
		return w
	}
	// Rank |x| with average ranks for ties.
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		aa, ab := math.Abs(x[a]), math.Abs(x[b])
		switch {
		case aa < ab:
			return -1
		case aa > ab:
			return 1
		}
		return 0
	})
	ties := 0.0 // Σ t(t²−1) over groups of tied ranks
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && math.Abs(x[idx[j]]) == math.Abs(x[idx[i]]) {
			j++
		}
		rank := float64(i+j+1) / 2 // average of ranks i+1 … j
		for _, k := range idx[i:j] {
			if x[k] > 0 {
				w.WPlus += rank
			} else {
				w.WMinus += rank
			}
		}
		if t := float64(j - i); t > 1 {
			ties += t * (t*t - 1)
		}
		i = j
	}
	n := float64(w.N)
	if w.N <= exactWilcoxonMax && w.Zeros == 0 && ties == 0 {
		w.Exact = true
		w.P = exactSignedRankP(w.N, int(math.Round(w.WPlus)))
		return w
	}
	mean := n * (n + 1) / 4
	se := math.Sqrt((n*(n+1)*(2*n+1) - ties/2) / 24)
	t := min(w.WPlus, w.WMinus)
	if se == 0 {
		w.P = 1
		return w
	}
	z := (t - mean) / se
	w.P = min(1, math.Erfc(math.Abs(z)/math.Sqrt2))
	return w
}

// exactSignedRankP is the two-sided exact p-value of W+ = r for n ranks
// 1…n: twice the smaller tail of the null distribution, capped at 1.
func exactSignedRankP(n, r int) float64 {
	maxSum := n * (n + 1) / 2
	// cnt[s] = number of subsets of {1…n} with sum s (exact in float64
	// up to n = 50: every count is below 2^50).
	cnt := make([]float64, maxSum+1)
	cnt[0] = 1
	for k := 1; k <= n; k++ {
		for s := maxSum; s >= k; s-- {
			cnt[s] += cnt[s-k]
		}
	}
	if 2*r == maxSum {
		return 1
	}
	total := math.Ldexp(1, n)
	var less, greater float64
	for s, c := range cnt {
		if s <= r {
			less += c
		}
		if s >= r {
			greater += c
		}
	}
	return min(1, 2*min(less, greater)/total)
}

// Stat names a statistic of a gate.
const (
	StatMean   = "mean"
	StatMedian = "median"
	StatMin    = "min"
	StatMax    = "max"
	StatP05    = "p05"
	StatP95    = "p95"
)

// statOf computes a gate statistic over values. Infinite values (distances
// of a case with an empty mask) take part: a mean with an infinite value
// is infinite, so a distance gate cannot pass by ignoring a failed case.
// NaN values are left out; with no value the result is NaN.
func statOf(values []float64, stat string) float64 {
	x := make([]float64, 0, len(values))
	for _, v := range values {
		if !math.IsNaN(v) {
			x = append(x, v)
		}
	}
	if len(x) == 0 {
		return math.NaN()
	}
	slices.Sort(x)
	switch stat {
	case StatMean:
		sum := 0.0
		for _, v := range x {
			sum += v
		}
		return sum / float64(len(x))
	case StatMedian:
		return percentile(x, 50)
	case StatMin:
		return x[0]
	case StatMax:
		return x[len(x)-1]
	case StatP05:
		return percentile(x, 5)
	case StatP95:
		return percentile(x, 95)
	}
	return math.NaN()
}

// percentile is numpy's default (linear) percentile of sorted x; equal
// neighbours (infinite ones too) give their value.
func percentile(x []float64, q float64) float64 {
	v := float64(len(x)-1) * q / 100
	lo := int(math.Floor(v))
	hi := min(lo+1, len(x)-1)
	g := v - float64(lo)
	a, b := x[lo], x[hi]
	if a == b || g == 0 {
		return a
	}
	if math.IsInf(b, 1) {
		return b // between a finite value and an infinite one
	}
	if g >= 0.5 {
		return b - (b-a)*(1-g)
	}
	return a + (b-a)*g
}
