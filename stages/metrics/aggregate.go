package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Bootstrap settings of Summarize: the confidence interval is the 2.5th and
// 97.5th percentile of the means of BootstrapResamples resamples drawn with
// a PCG generator seeded with BootstrapSeed, so a report is reproducible.
const (
	BootstrapResamples = 10000
	BootstrapSeed      = 0x6d65646361642d35 // "medcad-5"
)

// Summary describes one metric over many cases. Infinite values (a case
// with an empty mask has an infinite distance) cannot enter a mean; they
// are counted in NonFinite and left out of every other field.
type Summary struct {
	N         int     `json:"n"`          // finite values summarised
	NonFinite int     `json:"non_finite"` // infinite or NaN values left out
	Mean      float64 `json:"mean"`
	Median    float64 `json:"median"`
	Std       float64 `json:"std"` // sample standard deviation (n−1); 0 when n = 1
	Min       float64 `json:"min"`
	Max       float64 `json:"max"`
	CILow     float64 `json:"ci95_low"` // 95% percentile-bootstrap interval of the mean
	CIHigh    float64 `json:"ci95_high"`
}

// Summarize returns the Summary of values (not modified). With no finite
// value every statistic is NaN.
func Summarize(values []float64) Summary {
	x := make([]float64, 0, len(values))
	for _, v := range values {
		if !math.IsInf(v, 0) && !math.IsNaN(v) {
			x = append(x, v)
		}
	}
	s := Summary{N: len(x), NonFinite: len(values) - len(x)}
	if len(x) == 0 {
		nan := math.NaN()
		s.Mean, s.Median, s.Std, s.Min, s.Max, s.CILow, s.CIHigh = nan, nan, nan, nan, nan, nan, nan
		return s
	}
	slices.Sort(x)
	n := float64(len(x))
	s.Min, s.Max = x[0], x[len(x)-1]
	s.Mean = mean(x)
	s.Median = Percentile(slices.Clone(x), 50)
	if len(x) > 1 {
		ss := 0.0
		for _, v := range x {
			ss += (v - s.Mean) * (v - s.Mean)
		}
		s.Std = math.Sqrt(ss / (n - 1))
	}
	rng := rand.New(rand.NewPCG(BootstrapSeed, uint64(len(x))))
	means := make([]float64, BootstrapResamples)
	for b := range means {
		sum := 0.0
		for range x {
			sum += x[rng.IntN(len(x))]
		}
		means[b] = sum / n
	}
	s.CILow = Percentile(means, 2.5)
	s.CIHigh = Percentile(means, 97.5)
	return s
}

// mean is the arithmetic mean.
func mean(x []float64) float64 {
	sum := 0.0
	for _, v := range x {
		sum += v
	}
	return sum / float64(len(x))
}
