package metrics

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
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

// summaryJSON is the wire form of Summary and NamedSummary: NaN (no
// finite value) becomes null.
type summaryJSON struct {
	Metric    string   `json:"metric,omitempty"`
	N         int      `json:"n"`
	NonFinite int      `json:"non_finite"`
	Mean      *float64 `json:"mean"`
	Median    *float64 `json:"median"`
	Std       *float64 `json:"std"`
	Min       *float64 `json:"min"`
	Max       *float64 `json:"max"`
	CILow     *float64 `json:"ci95_low"`
	CIHigh    *float64 `json:"ci95_high"`
}

func (s Summary) wire(metric string) summaryJSON {
	return summaryJSON{metric, s.N, s.NonFinite, finite(s.Mean), finite(s.Median), finite(s.Std),
		finite(s.Min), finite(s.Max), finite(s.CILow), finite(s.CIHigh)}
}

// MarshalJSON writes the statistics with NaN (no finite value) as null.
func (s Summary) MarshalJSON() ([]byte, error) { return json.Marshal(s.wire("")) }

// MetricNames lists the names of the per-case metrics, in report order:
// dice, iou, hd_mm, hd95_mm, assd_mm, masd_mm, then nsd@τ for each
// tolerance (τ formatted by ToleranceKey).
func MetricNames(tolerancesMM []float64) []string {
	names := []string{"dice", "iou", "hd_mm", "hd95_mm", "assd_mm", "masd_mm"}
	for _, tau := range tolerancesMM {
		names = append(names, "nsd@"+ToleranceKey(tau))
	}
	return names
}

// Value returns the metric of r named as in MetricNames.
func (r Result) Value(name string) (float64, bool) {
	switch name {
	case "dice":
		return r.Dice, true
	case "iou":
		return r.IoU, true
	case "hd_mm":
		return r.HD, true
	case "hd95_mm":
		return r.HD95, true
	case "assd_mm":
		return r.ASSD, true
	case "masd_mm":
		return r.MASD, true
	}
	if key, ok := strings.CutPrefix(name, "nsd@"); ok {
		v, ok := r.NSD[key]
		return v, ok
	}
	return 0, false
}

// NamedSummary is the Summary of one metric.
type NamedSummary struct {
	Metric string
	Summary
}

// MarshalJSON writes the metric name and its statistics in one object.
func (s NamedSummary) MarshalJSON() ([]byte, error) { return json.Marshal(s.Summary.wire(s.Metric)) }

// UnmarshalJSON reads what MarshalJSON writes (null statistics are NaN).
func (s *NamedSummary) UnmarshalJSON(b []byte) error {
	var w summaryJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*s = NamedSummary{Metric: w.Metric, Summary: Summary{N: w.N, NonFinite: w.NonFinite,
		Mean: orNaN(w.Mean), Median: orNaN(w.Median), Std: orNaN(w.Std), Min: orNaN(w.Min), Max: orNaN(w.Max),
		CILow: orNaN(w.CILow), CIHigh: orNaN(w.CIHigh)}}
	return nil
}

// orNaN inverts finite for statistics: null is NaN.
func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// Aggregate summarises each named metric (see MetricNames) over results;
// a result lacking a metric is left out of its summary.
func Aggregate(results []Result, names []string) []NamedSummary {
	out := make([]NamedSummary, 0, len(names))
	for _, name := range names {
		var x []float64
		for _, r := range results {
			if v, ok := r.Value(name); ok {
				x = append(x, v)
			}
		}
		out = append(out, NamedSummary{Metric: name, Summary: Summarize(x)})
	}
	return out
}
