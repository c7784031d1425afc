package metrics

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/medcad/medcad/internal/atomicfile"
)

// Format prints a metric value with 6 significant digits; inf for +Inf.
func Format(v float64) string {
	if math.IsInf(v, 1) {
		return "inf"
	}
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// WriteTable writes an evaluation as aligned text: one row per case, then
// the aggregate of each metric.
func WriteTable(w io.Writer, rep *Eval) error {
	names := MetricNames(rep.TolerancesMM)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "case\t%s\tflags\n", strings.Join(names, "\t"))
	for _, c := range rep.Cases {
		fmt.Fprint(tw, c.ID)
		for _, n := range names {
			if c.Result == nil {
				fmt.Fprint(tw, "\t-")
				continue
			}
			v, _ := c.Value(n)
			fmt.Fprintf(tw, "\t%s", Format(v))
		}
		switch {
		case c.Result == nil:
			fmt.Fprint(tw, "\terror\n")
		case len(c.Flags) > 0:
			fmt.Fprintf(tw, "\t%s\n", strings.Join(c.Flags, ","))
		default:
			fmt.Fprint(tw, "\t-\n")
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprint(tw, "metric\tn\tmean\tmedian\tstd\tmin\tmax\tci95_low\tci95_high\n")
	for _, s := range rep.Aggregate {
		fmt.Fprintf(tw, "%s\t%d", s.Metric, s.N)
		if s.NonFinite > 0 {
			fmt.Fprintf(tw, " (+%d inf)", s.NonFinite)
		}
		for _, v := range []float64{s.Mean, s.Median, s.Std, s.Min, s.Max, s.CILow, s.CIHigh} {
			fmt.Fprintf(tw, "\t%s", Format(v))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// WriteCSV writes one row per case, then one row per aggregate
// statistic whose case column is "aggregate:<statistic>". Infinite
// distances are "inf"; missing values are empty.
func WriteCSV(w io.Writer, rep *Eval) error {
	names := MetricNames(rep.TolerancesMM)
	cw := csv.NewWriter(w)
	cw.Write(slices.Concat([]string{"case"}, names, []string{"truth_voxels", "pred_voxels", "flags", "error"}))
	num := func(v float64) string {
		switch {
		case math.IsInf(v, 1):
			return "inf"
		case math.IsNaN(v):
			return ""
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	for _, c := range rep.Cases {
		row := []string{c.ID}
		for _, n := range names {
			v := math.NaN()
			if c.Result != nil {
				v, _ = c.Value(n)
			}
			row = append(row, num(v))
		}
		if c.Result != nil {
			row = append(row, strconv.Itoa(c.TruthVoxels), strconv.Itoa(c.PredVoxels), strings.Join(c.Flags, " "), "")
		} else {
			row = append(row, "", "", "", c.Error)
		}
		cw.Write(row)
	}
	stats := []struct {
		name string
		get  func(Summary) float64
	}{
		{"mean", func(s Summary) float64 { return s.Mean }},
		{"median", func(s Summary) float64 { return s.Median }},
		{"std", func(s Summary) float64 { return s.Std }},
		{"min", func(s Summary) float64 { return s.Min }},
		{"max", func(s Summary) float64 { return s.Max }},
		{"ci95_low", func(s Summary) float64 { return s.CILow }},
		{"ci95_high", func(s Summary) float64 { return s.CIHigh }},
	}
	for _, st := range stats {
		row := []string{"aggregate:" + st.name}
		for _, s := range rep.Aggregate {
			row = append(row, num(st.get(s.Summary)))
		}
		cw.Write(append(row, "", "", "", ""))
	}
	cw.Flush()
	return cw.Error()
}

// WriteMeans writes {"metric": mean, …} of the finite values of each
// metric, the form pipeline stages report through MEDCAD_METRICS.
func WriteMeans(path string, agg []NamedSummary) error {
	means := map[string]float64{}
	for _, s := range agg {
		if s.N > 0 {
			means[s.Metric] = s.Mean
		}
	}
	b, err := json.MarshalIndent(means, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}
