package metrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
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

// Eval is an evaluation file, eval.json: the per-case metrics of a folder
// of predictions and their aggregate, as `medcad eval --truth-dir …
// --pred-dir … --json` writes it. Encode writes it; ParseEval reads it.
type Eval struct {
	TolerancesMM []float64      `json:"tolerances_mm"`
	Cases        []Case         `json:"cases"` // sorted by ID
	Aggregate    []NamedSummary `json:"aggregate"`
}

// Case is the evaluation of one case: its metrics, or, when it could not
// be evaluated, an error and no metrics (Result is nil).
type Case struct {
	ID    string
	Error string
	*Result
}

// caseHead is the part of a case's JSON object that is not its Result.
type caseHead struct {
	Case  string `json:"case"`
	Error string `json:"error,omitempty"`
}

// MarshalJSON writes "case", "error" if set, then the Result's keys.
func (c Case) MarshalJSON() ([]byte, error) {
	head, err := json.Marshal(caseHead{c.ID, c.Error})
	if err != nil || c.Result == nil {
		return head, err
	}
	body, err := c.Result.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("case %q: %w", c.ID, err)
	}
	return append(append(head[:len(head)-1:len(head)-1], ','), body[1:]...), nil
}

// Failed counts the cases that could not be evaluated.
func (e *Eval) Failed() int {
	n := 0
	for _, c := range e.Cases {
		if c.Result == nil {
			n++
		}
	}
	return n
}

// Encode writes the evaluation file: indented JSON and a final newline.
func (e *Eval) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode evaluation: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseEval decodes an evaluation file strictly enough for reports: bounded
// size and case count, unique case ids, every metric of MetricNames present
// and in range. Cases come back sorted by ID. Errors are one line naming
// file and wrap ErrBadEval.
func ParseEval(file string, data []byte) (*Eval, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", file, ErrBadEval, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxEvalBytes {
		return nil, bad("larger than %d bytes", MaxEvalBytes)
	}
	var raw struct {
		TolerancesMM []float64         `json:"tolerances_mm"`
		Cases        []json.RawMessage `json:"cases"`
		Aggregate    []NamedSummary    `json:"aggregate"`
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
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
	e := &Eval{TolerancesMM: raw.TolerancesMM, Cases: make([]Case, 0, len(raw.Cases)), Aggregate: raw.Aggregate}
	if e.TolerancesMM == nil {
		e.TolerancesMM = []float64{}
	}
	names := MetricNames(e.TolerancesMM)
	seen := map[string]bool{}
	for i, rc := range raw.Cases {
		var head struct {
			Case  *string  `json:"case"`
			Error string   `json:"error"`
			Dice  *float64 `json:"dice"`
		}
		if err := json.Unmarshal(rc, &head); err != nil {
			return nil, bad("case %d: %v", i+1, err)
		}
		var r Result
		if err := json.Unmarshal(rc, &r); err != nil {
			return nil, bad("case %d: %v", i+1, err)
		}
		if head.Case == nil || *head.Case == "" {
			return nil, bad("case %d has no id", i+1)
		}
		id := *head.Case
		if len(id) > maxCaseIDLen || !utf8.ValidString(id) {
			return nil, bad("case %d: id is not valid UTF-8 of at most %d bytes", i+1, maxCaseIDLen)
		}
		if seen[id] {
			return nil, bad("case %q is listed twice", id)
		}
		seen[id] = true
		c := Case{ID: id, Error: head.Error}
		if c.Error == "" {
			if head.Dice == nil {
				return nil, bad("case %q has neither metrics nor an error", id)
			}
			for _, n := range names {
				v, ok := r.Value(n)
				if !ok {
					return nil, bad("case %q has no %s", id, n)
				}
				if err := checkValue(n, v); err != nil {
					return nil, bad("case %q: %v", id, err)
				}
			}
			c.Result = &r
		}
		e.Cases = append(e.Cases, c)
	}
	slices.SortFunc(e.Cases, func(a, b Case) int { return strings.Compare(a.ID, b.ID) })
	return e, nil
}

// checkValue checks a metric value is in its range: ratios (dice, iou,
// nsd@τ) in [0, 1], distances ≥ 0 (+Inf allowed).
func checkValue(name string, v float64) error {
	if math.IsNaN(v) {
		return fmt.Errorf("%s is NaN", name)
	}
	if name == "dice" || name == "iou" || strings.HasPrefix(name, "nsd@") {
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
