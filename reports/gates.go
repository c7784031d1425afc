package reports

import (
	"fmt"
	"github.com/medcad/medcad/internal/plural"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/medcad/medcad/gitops"
)

// Gate rules (medcad.toml [[promote.gate]] rule).
const (
	RuleNoWorse = "no-worse" // candidate stat ≥ baseline stat − tolerance (in the metric's direction)
	RuleBetter  = "better"   // candidate stat > baseline stat + tolerance (in the metric's direction)
	RuleAtLeast = "at-least" // candidate stat ≥ value
	RuleAtMost  = "at-most"  // candidate stat ≤ value
)

// slack absorbs floating-point rounding in gate comparisons
// (0.8 − 0.74 is 0.06000000000000005): a value within it of the bound is
// on the bound.
const slack = 1e-9

// Gate outcomes.
const (
	Pass    = "pass"
	Fail    = "fail"
	Skipped = "skipped" // a relative gate with no baseline
)

// Verdict is the outcome of the promotion gates: the candidate may be
// promoted when no gate failed.
type Verdict struct {
	Promote bool         `json:"promote"`
	Gates   []GateResult `json:"gates"`
	// Source says whose medcad.toml the gates came from (Input.GatesFrom).
	Source string `json:"gates_from"`
	// Paired is how many cases both models evaluated: what the relative
	// gates rest on (0 with no baseline).
	Paired int `json:"paired"`
}

// Failed lists the gates that failed.
func (v Verdict) Failed() []GateResult {
	var out []GateResult
	for _, g := range v.Gates {
		if g.Status == Fail {
			out = append(out, g)
		}
	}
	return out
}

// Result is "pass" or "fail", as recorded in a model manifest's gate.
func (v Verdict) Result() string {
	if v.Promote {
		return Pass
	}
	return Fail
}

// GateResult is one gate applied: its numbers and why it passed or failed.
type GateResult struct {
	Name      string   `json:"name"` // e.g. "dice mean no-worse (tolerance 0.002)"
	Metric    string   `json:"metric"`
	Stat      string   `json:"stat"`
	Rule      string   `json:"rule"`
	Status    string   `json:"status"`
	Base      Num      `json:"base"`      // the baseline's statistic (relative gates)
	Candidate Num      `json:"candidate"` // the candidate's statistic
	Limit     Num      `json:"limit"`     // the bound the candidate was held to
	Message   string   `json:"message"`
	Cases     []string `json:"cases,omitempty"` // per-case rule: the cases that lost too much
}

// evaluateGates applies the gates. Relative gates (no-worse, better) and
// the per-case rule compare the two models on the cases both evaluated;
// absolute gates (at-least, at-most) hold every case the candidate
// evaluated. Without a baseline only absolute gates apply.
func evaluateGates(p gitops.Promote, pr pairing) Verdict {
	v := Verdict{Promote: true, Gates: []GateResult{}}
	for _, g := range p.Gates {
		r := applyGate(g, pr)
		v.Gates = append(v.Gates, r)
	}
	metricsDropped := make([]string, 0, len(p.MaxCaseDrop))
	for m := range p.MaxCaseDrop {
		metricsDropped = append(metricsDropped, m)
	}
	slices.Sort(metricsDropped)
	for _, m := range metricsDropped {
		if p.MaxCaseDrop[m] <= 0 {
			continue // zero disables the rule
		}
		v.Gates = append(v.Gates, caseDropGate(m, p.MaxCaseDrop[m], pr))
	}
	for _, r := range v.Gates {
		if r.Status == Fail {
			v.Promote = false
		}
	}
	return v
}

func gateName(g gitops.Gate) string {
	switch g.Rule {
	case RuleAtLeast, RuleAtMost:
		return fmt.Sprintf("%s %s %s %s", g.Metric, g.Stat, g.Rule, fmtNum(g.Value))
	}
	return fmt.Sprintf("%s %s %s (tolerance %s)", g.Metric, g.Stat, g.Rule, fmtNum(g.Tolerance))
}

func applyGate(g gitops.Gate, pr pairing) GateResult {
	names, base, cand, common, hasBase := pr.names, pr.base, pr.cand, pr.common, pr.hasBase
	m := canonicalMetric(g.Metric, names)
	nan := Num(math.NaN())
	r := GateResult{Name: gateName(g), Metric: m, Stat: g.Stat, Rule: g.Rule, Base: nan, Candidate: nan, Limit: nan}
	fail := func(format string, args ...any) GateResult {
		r.Status, r.Message = Fail, fmt.Sprintf(format, args...)
		return r
	}
	if !slices.Contains(names, m) {
		return fail("%s is not a metric of the evaluation (have %s)", g.Metric, strings.Join(names, ", "))
	}
	dir := DirectionOf(m)
	switch g.Rule {
	case RuleAtLeast, RuleAtMost:
		if len(cand) == 0 {
			return fail("the candidate evaluated no case")
		}
		c := statOf(valuesOf(cand, m), g.Stat)
		r.Candidate, r.Limit = Num(c), Num(g.Value)
		ok := c >= g.Value-slack
		word := "at least"
		if g.Rule == RuleAtMost {
			ok, word = c <= g.Value+slack, "at most"
		}
		r.Status = Pass
		if !ok {
			r.Status = Fail
		}
		r.Message = fmt.Sprintf("%s %s = %s, must be %s %s (%s)", m, g.Stat, fmtNum(c), word, fmtNum(g.Value), count(len(cand), "case"))
		return r
	case RuleNoWorse, RuleBetter:
		if !hasBase {
			r.Status, r.Message = Skipped, "no baseline: relative gates apply from the second model on"
			return r
		}
		if len(common) == 0 {
			return fail("no case was evaluated by both models")
		}
		var bv, cv []float64
		for _, id := range common {
			bv = append(bv, base[id].Values[m])
			cv = append(cv, cand[id].Values[m])
		}
		b, c := statOf(bv, g.Stat), statOf(cv, g.Stat)
		r.Base, r.Candidate = Num(b), Num(c)
		// limit: the candidate's bound in the metric's direction.
		var ok bool
		var word string
		if g.Rule == RuleNoWorse {
			limit := b - float64(dir)*g.Tolerance
			r.Limit = Num(limit)
			if dir == HigherIsBetter {
				ok, word = c >= limit-slack, "≥"
			} else {
				ok, word = c <= limit+slack, "≤"
			}
		} else {
			limit := b + float64(dir)*g.Tolerance
			r.Limit = Num(limit)
			if dir == HigherIsBetter {
				ok, word = c > limit+slack, ">"
			} else {
				ok, word = c < limit-slack, "<"
			}
		}
		if math.IsInf(b, 1) && math.IsInf(c, 1) && g.Rule == RuleNoWorse {
			ok = true // both infinite: no worse
		}
		r.Status = Pass
		if !ok {
			r.Status = Fail
		}
		r.Message = fmt.Sprintf("%s %s %s → %s (Δ %s), must be %s %s (%s)",
			m, g.Stat, fmtNum(b), fmtNum(c), fmtSigned(delta(c, b)), word, fmtNum(float64(r.Limit)), count(len(common), "paired case"))
		return r
	}
	return fail("unknown rule %q", g.Rule)
}

func caseDropGate(metric string, maxDrop float64, pr pairing) GateResult {
	names, base, cand, common, hasBase := pr.names, pr.base, pr.cand, pr.common, pr.hasBase
	m := canonicalMetric(metric, names)
	nan := Num(math.NaN())
	r := GateResult{Name: fmt.Sprintf("%s per-case drop at most %s", metric, fmtNum(maxDrop)), Metric: m, Stat: "case",
		Rule: "max-case-drop", Base: nan, Candidate: nan, Limit: Num(maxDrop)}
	if !slices.Contains(names, m) {
		r.Status, r.Message = Fail, fmt.Sprintf("%s is not a metric of the evaluation (have %s)", metric, strings.Join(names, ", "))
		return r
	}
	if !hasBase {
		r.Status, r.Message = Skipped, "no baseline: the per-case rule applies from the second model on"
		return r
	}
	worst, worstCase := 0.0, ""
	for _, id := range common {
		drop := -gain(m, base[id].Values[m], cand[id].Values[m])
		if drop > maxDrop+slack || math.IsNaN(drop) {
			r.Cases = append(r.Cases, id)
		}
		if drop > worst || worstCase == "" {
			worst, worstCase = drop, id
		}
	}
	r.Candidate = Num(worst)
	if len(r.Cases) > 0 {
		r.Status = Fail
		r.Message = fmt.Sprintf("%d of %s lost more than %s %s; worst %s lost %s", len(r.Cases), count(len(common), "case"), fmtNum(maxDrop), m, worstCase, fmtNum(worst))
		return r
	}
	r.Status = Pass
	switch {
	case worstCase == "":
		r.Message = "no case was evaluated by both models"
	case worst <= 0:
		r.Message = fmt.Sprintf("no case lost %s (%s)", m, count(len(common), "paired case"))
	default:
		r.Message = fmt.Sprintf("largest per-case loss of %s is %s (case %s), at most %s allowed", m, fmtNum(max(worst, 0)), worstCase, fmtNum(maxDrop))
	}
	return r
}

// count writes "1 case", "2 cases".
func count(n int, noun string) string { return plural.Of(n, noun) }

// fmtNum formats a number for a report: 4 significant digits, "inf" for
// an infinite distance, "–" for no value.
func fmtNum(x float64) string {
	switch {
	case math.IsNaN(x):
		return "–"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	case x == 0:
		return "0"
	}
	return strconv.FormatFloat(x, 'g', 4, 64)
}

// fmtSigned is fmtNum with an explicit sign.
func fmtSigned(x float64) string {
	s := fmtNum(x)
	if x > 0 {
		return "+" + s
	}
	return s
}
