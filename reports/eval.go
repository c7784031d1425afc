package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/medcad/medcad/stages/metrics"
)

// Limits on an evaluation file (eval.json), which is untrusted input.
const (
	MaxEvalBytes = 64 << 20
	maxEvalCases = 200_000
	maxCaseIDLen = 200
)

// ErrBadEval means an evaluation file is not what `medcad eval --json`
// writes.
var ErrBadEval = errors.New("bad evaluation")

// Eval is the per-case evaluation of one model: what `medcad eval
// --truth-dir … --pred-dir … --json` wrote.
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

type evalFileJSON struct {
	TolerancesMM []float64         `json:"tolerances_mm"`
	Cases        []json.RawMessage `json:"cases"`
}

// caseJSON is one case of eval.json: its head, and the metrics that
// metrics.Result decodes (it has its own UnmarshalJSON, so the two are
// decoded apart).
type caseJSON struct {
	caseHead
	metrics.Result
}

type caseHead struct {
	Case  *string `json:"case"`
	Error string  `json:"error"`
}

// MetricNames lists the metric names of the evaluation, in report order.
func (e *Eval) MetricNames() []string { return metrics.MetricNames(e.TolerancesMM) }

// ParseEval decodes an evaluation file; errors name file and the problem.
func ParseEval(file string, data []byte) (*Eval, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", file, ErrBadEval, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxEvalBytes {
		return nil, bad("larger than %d bytes", MaxEvalBytes)
	}
	var raw evalFileJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, bad("not JSON: %v", err)
	}
	if raw.Cases == nil {
		return nil, bad("no \"cases\" list")
	}
	if len(raw.Cases) > maxEvalCases {
		return nil, bad("more than %d cases", maxEvalCases)
	}
	for _, t := range raw.TolerancesMM {
		if !(t >= 0) || math.IsInf(t, 0) {
			return nil, bad("tolerance %v: want a finite number ≥ 0", t)
		}
	}
	e := &Eval{TolerancesMM: raw.TolerancesMM, Cases: make([]Case, 0, len(raw.Cases))}
	if e.TolerancesMM == nil {
		e.TolerancesMM = []float64{}
	}
	names := e.MetricNames()
	seen := map[string]bool{}
	for i, rc := range raw.Cases {
		var cj caseJSON
		if err := json.Unmarshal(rc, &cj.caseHead); err != nil {
			return nil, bad("case %d: %v", i+1, err)
		}
		if err := json.Unmarshal(rc, &cj.Result); err != nil {
			return nil, bad("case %d: %v", i+1, err)
		}
		if cj.Case == nil || *cj.Case == "" {
			return nil, bad("case %d has no id", i+1)
		}
		id := *cj.Case
		if len(id) > maxCaseIDLen || !utf8.ValidString(id) {
			return nil, bad("case %d: id is not valid UTF-8 of at most %d bytes", i+1, maxCaseIDLen)
		}
		if seen[id] {
			return nil, bad("case %q is listed twice", id)
		}
		seen[id] = true
		c := Case{ID: id, Error: cj.Error}
		if c.Error == "" {
			var hasDice struct {
				Dice *float64 `json:"dice"`
			}
			_ = json.Unmarshal(rc, &hasDice)
			if hasDice.Dice == nil {
				return nil, bad("case %q has neither metrics nor an error", id)
			}
			c.Values = make(map[string]float64, len(names))
			c.Flags = slices.Clone(cj.Flags)
			for _, n := range names {
				v, ok := cj.Value(n)
				if !ok {
					return nil, bad("case %q has no %s", id, n)
				}
				if err := checkValue(n, v); err != nil {
					return nil, bad("case %q: %v", id, err)
				}
				c.Values[n] = v
			}
		}
		e.Cases = append(e.Cases, c)
	}
	slices.SortFunc(e.Cases, func(a, b Case) int { return strings.Compare(a.ID, b.ID) })
	return e, nil
}

// checkValue checks a metric value is in its range: ratios in [0, 1],
// distances ≥ 0 (+Inf allowed).
func checkValue(name string, v float64) error {
	if math.IsNaN(v) {
		return fmt.Errorf("%s is NaN", name)
	}
	if DirectionOf(name) == HigherIsBetter {
		if v < 0 || v > 1 {
			return fmt.Errorf("%s = %v is outside [0, 1]", name, v)
		}
		return nil
	}
	if v < 0 {
		return fmt.Errorf("%s = %v is negative", name, v)
	}
	return nil
}

// Encode writes the evaluation in the form ParseEval reads (the per-case
// part of `medcad eval --json`).
func (e *Eval) Encode() []byte {
	type out struct {
		TolerancesMM []float64         `json:"tolerances_mm"`
		Cases        []json.RawMessage `json:"cases"`
	}
	o := out{TolerancesMM: e.TolerancesMM, Cases: make([]json.RawMessage, 0, len(e.Cases))}
	for _, c := range e.Cases {
		head, _ := json.Marshal(struct {
			Case  string `json:"case"`
			Error string `json:"error,omitempty"`
		}{c.ID, c.Error})
		if c.Values == nil {
			o.Cases = append(o.Cases, head)
			continue
		}
		r := metrics.Result{NSD: map[string]float64{}, Flags: c.Flags}
		for n, v := range c.Values {
			switch n {
			case "dice":
				r.Dice = v
			case "iou":
				r.IoU = v
			case "hd_mm":
				r.HD = v
			case "hd95_mm":
				r.HD95 = v
			case "assd_mm":
				r.ASSD = v
			case "masd_mm":
				r.MASD = v
			default:
				if key, ok := strings.CutPrefix(n, "nsd@"); ok {
					r.NSD[key] = v
				}
			}
		}
		body, _ := r.MarshalJSON()
		o.Cases = append(o.Cases, append(append(head[:len(head)-1:len(head)-1], ','), body[1:]...))
	}
	b, _ := json.MarshalIndent(o, "", "  ")
	return append(b, '\n')
}
