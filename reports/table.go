package reports

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/medcad/medcad/stages/metrics"
)

// BaseRef names the baseline of c, "" for a first model.
func (c *Comparison) BaseRef() string {
	if c.Base == nil {
		return ""
	}
	return c.Base.Ref
}

// WriteMetricsTable writes the per-metric comparison as aligned text, or
// as a Markdown table with md.
func WriteMetricsTable(w io.Writer, c *Comparison, md bool) error {
	head := []string{"metric", "better", orDashStr(c.BaseRef()), c.Candidate.Ref, "Δ", "95% CI of Δ", "p"}
	var rows [][]string
	for _, m := range c.Metrics {
		b := "-"
		if m.Base != nil {
			b = metrics.Format(m.Base.Mean)
		}
		rows = append(rows, []string{m.Metric, m.Direction.String(), b, metrics.Format(m.Candidate.Mean),
			signedMetric(float64(m.Delta)), "[" + signedMetric(float64(m.CILow)) + ", " + signedMetric(float64(m.CIHigh)) + "]",
			metrics.Format(float64(m.P))})
	}
	if md {
		// Refs, the only user text here, are escaped by reports for
		// reports; in this table they are shown as code.
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(mdTableCells(head), " | "), strings.Repeat(" --- |", len(head)))
		for _, r := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func mdTableCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "`", "\\`", "[", `\[`, "]", `\]`).Replace(c)
	}
	return out
}

func orDashStr(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func signedMetric(v float64) string {
	s := metrics.Format(v)
	if v > 0 {
		return "+" + s
	}
	return s
}
