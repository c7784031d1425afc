package reports

import (
	"slices"

	"github.com/medcad/medcad/stages/metrics"
)

// Eval is the per-case evaluation of one model as reports use it, each
// case's metrics by name. The file it comes from, eval.json, is
// metrics.Eval; ParseEval reads one.
type Eval struct {
	TolerancesMM []float64 `json:"tolerances_mm"`
	Cases        []Case    `json:"cases"` // sorted by ID
}

// Case is the evaluation of one case. Values maps a metric name (see
// metrics.MetricNames: dice, iou, hd_mm, hd95_mm, assd_mm, masd_mm, nsd@τ)
// to its value; an infinite distance (an empty mask) is +Inf. A case that
// could not be evaluated has Error set and no values.
type Case struct {
	ID     string             `json:"case"`
	Error  string             `json:"error,omitempty"`
	Values map[string]float64 `json:"-"`
	Flags  []string           `json:"flags,omitempty"`
}

// MetricNames lists the metric names of the evaluation, in report order.
func (e *Eval) MetricNames() []string { return metrics.MetricNames(e.TolerancesMM) }

// ParseEval reads an evaluation file (see metrics.ParseEval); errors name
// the file and wrap metrics.ErrBadEval.
func ParseEval(file string, data []byte) (*Eval, error) {
	f, err := metrics.ParseEval(file, data)
	if err != nil {
		return nil, err
	}
	return EvalOf(f), nil
}

// EvalOf is the report view of an evaluation file: the metrics of
// MetricNames of each evaluated case.
func EvalOf(f *metrics.Eval) *Eval {
	e := &Eval{TolerancesMM: f.TolerancesMM, Cases: make([]Case, 0, len(f.Cases))}
	names := e.MetricNames()
	for _, fc := range f.Cases {
		c := Case{ID: fc.ID, Error: fc.Error}
		if fc.Result != nil {
			c.Values = make(map[string]float64, len(names))
			for _, n := range names {
				if v, ok := fc.Value(n); ok {
					c.Values[n] = v
				}
			}
			c.Flags = slices.Clone(fc.Flags)
		}
		e.Cases = append(e.Cases, c)
	}
	return e
}
