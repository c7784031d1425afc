package reports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/stages/metrics"
)

// Direction says whether a larger value of a metric is better.
type Direction int

// Directions of the metrics.
const (
	HigherIsBetter Direction = 1
	LowerIsBetter  Direction = -1
)

// DirectionOf returns the direction of a metric of the evaluation: Dice,
// IoU and NSD are better higher; HD, HD95, ASSD and MASD (distances) are
// better lower.
func DirectionOf(metric string) Direction {
	switch {
	case metric == "dice", metric == "iou", metric == "nsd", strings.HasPrefix(metric, "nsd@"):
		return HigherIsBetter
	}
	return LowerIsBetter
}

func (d Direction) String() string {
	if d == HigherIsBetter {
		return "higher"
	}
	return "lower"
}

// MarshalText writes "higher" or "lower" (is better).
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Num is a number of a report; NaN (no value) and ±Inf (an infinite
// distance) are written as null in JSON.
type Num float64

// MarshalJSON writes n, or null when it is not finite.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// Side is one model of a comparison and what it came from.
type Side struct {
	// Ref is how the model was named: "main@1a2b3c4d5e6f", "working tree"
	// or a file path.
	Ref   string
	Model *gitops.Model
	Eval  *Eval
	// Datasets are the dataset pointers of the revision (nil when unknown);
	// they give case-level data changes.
	Datasets []*gitops.Dataset
	// Env is the parsed environment lock of the revision (nil when unknown).
	Env *gitops.EnvLock
	// CommitSubject is the first line of the model's code commit message.
	CommitSubject string
	// Lock is the pipeline lock of the revision (nil when unknown); it
	// names the CT, truth and prediction files of the case slices.
	Lock *gitops.Lock
}

// Input is what Compare compares.
type Input struct {
	Base      *Side // nil for the first model: only absolute gates apply
	Candidate *Side
	Promote   gitops.Promote
	// GatesFrom says where Promote was read, e.g. "medcad.toml at
	// main@1a2b3c4d5e6f" (shown in the report).
	GatesFrom string
	Top       int // regressions and improvements listed (default 10)
}

// ErrNoCandidate means Compare was given no candidate model.
var ErrNoCandidate = errors.New("no candidate model")

// Comparison is a candidate model compared with its baseline: everything a
// report shows, in report order.
type Comparison struct {
	Model     string       `json:"model"`
	Verdict   Verdict      `json:"verdict"`
	Warnings  []Warning    `json:"warnings"`
	Primary   string       `json:"primary_metric"`
	Base      *Lineage     `json:"base"` // null for the first model
	Candidate Lineage      `json:"candidate"`
	Metrics   []MetricDiff `json:"metrics"`
	// Cases are the cases both models evaluated, worst change of the
	// primary metric first.
	Cases         []CaseDiff  `json:"cases"`
	Regressions   []CaseDiff  `json:"regressions"`    // the worst, at most Top
	Improvements  []CaseDiff  `json:"improvements"`   // the best, at most Top
	OnlyBase      []string    `json:"only_base"`      // evaluated by the baseline only
	OnlyCandidate []string    `json:"only_candidate"` // evaluated by the candidate only
	NotEvaluated  []CaseError `json:"not_evaluated"`  // cases whose evaluation failed
	Data          DataChanges `json:"data"`
	Params        ParamsDiff  `json:"params"`
	Env           EnvDiff     `json:"env"`

	// Each model's values per metric, for the distribution plots.
	baseVals, candVals map[string][]float64
}

// Lineage is where a model came from.
type Lineage struct {
	Ref           string            `json:"ref"`
	Commit        string            `json:"commit"`
	CommitSubject string            `json:"commit_subject"`
	Run           string            `json:"run"`
	Trainer       string            `json:"trainer"`
	Artifact      string            `json:"artifact"`
	Eval          string            `json:"eval"`
	EnvLock       string            `json:"env_lock"`
	LabelRules    string            `json:"label_rules"`
	Datasets      map[string]string `json:"datasets"`
	CIRunURL      string            `json:"ci_run_url"`
	Cases         int               `json:"cases"`
}

// MetricDiff is one row of the headline table.
type MetricDiff struct {
	Metric    string           `json:"metric"`
	Direction Direction        `json:"better"`
	Base      *metrics.Summary `json:"base"` // over the baseline's cases; null for the first model
	Candidate metrics.Summary  `json:"candidate"`
	// Paired statistics over the cases both evaluated (Δ = candidate −
	// baseline); pairs with an infinite value are counted in NonFinite and
	// left out of the mean, interval and test.
	Paired    int  `json:"paired"`
	NonFinite int  `json:"non_finite_pairs"`
	Delta     Num  `json:"delta_mean"`
	CILow     Num  `json:"delta_ci95_low"` // 95% paired bootstrap interval of the mean Δ
	CIHigh    Num  `json:"delta_ci95_high"`
	P         Num  `json:"p_value"` // two-sided Wilcoxon signed-rank
	Exact     bool `json:"p_exact"`
	Better    int  `json:"cases_better"`
	Worse     int  `json:"cases_worse"`
	Same      int  `json:"cases_same"`
	// Change is "better", "worse" or "same": the sign of the mean Δ in the
	// metric's direction. Significant says the interval excludes 0 and
	// the Wilcoxon p-value is below 0.05.
	Change      string `json:"change"`
	Significant bool   `json:"significant"`
}

// CaseDiff is one case both models evaluated.
type CaseDiff struct {
	Case      string         `json:"case"`
	Base      map[string]Num `json:"base"`
	Candidate map[string]Num `json:"candidate"`
	Delta     map[string]Num `json:"delta"`
	// Gain is the change of the primary metric in its direction
	// (positive = better).
	Gain Num `json:"gain"`
}

// CaseError is a case whose evaluation failed.
type CaseError struct {
	Side  string `json:"side"` // "base" or "candidate"
	Case  string `json:"case"`
	Error string `json:"error"`
}

// Compare compares in.Candidate with in.Base and applies the gates.
func Compare(ctx context.Context, in Input) (*Comparison, error) {
	cand := in.Candidate
	if cand == nil || cand.Model == nil || cand.Eval == nil {
		return nil, ErrNoCandidate
	}
	base := in.Base
	if base != nil && (base.Model == nil || base.Eval == nil) {
		base = nil
	}
	top := in.Top
	if top <= 0 {
		top = 10
	}
	c := &Comparison{
		Model:         cand.Model.Name,
		Warnings:      []Warning{},
		Candidate:     lineage(cand),
		OnlyBase:      []string{},
		OnlyCandidate: []string{},
		NotEvaluated:  []CaseError{},
		Cases:         []CaseDiff{},
		Regressions:   []CaseDiff{},
		Improvements:  []CaseDiff{},
	}
	names := cand.Eval.MetricNames()
	if base != nil {
		l := lineage(base)
		c.Base = &l
		names = commonNames(base.Eval.MetricNames(), names)
	}
	c.Primary = primaryMetric(in.Promote, names)

	candCases := evaluated(cand.Eval, "candidate", &c.NotEvaluated)
	var baseCases map[string]Case
	if base != nil {
		baseCases = evaluated(base.Eval, "base", &c.NotEvaluated)
	}
	slices.SortFunc(c.NotEvaluated, func(a, b CaseError) int {
		return cmpJoin(a.Side, a.Case, b.Side, b.Case)
	})
	var common []string
	for _, cs := range cand.Eval.Cases {
		if cs.Values == nil {
			continue
		}
		if base == nil {
			continue
		}
		if _, ok := baseCases[cs.ID]; ok {
			common = append(common, cs.ID)
		} else {
			c.OnlyCandidate = append(c.OnlyCandidate, cs.ID)
		}
	}
	if base != nil {
		for _, bs := range base.Eval.Cases {
			if _, ok := candCases[bs.ID]; bs.Values != nil && !ok {
				c.OnlyBase = append(c.OnlyBase, bs.ID)
			}
		}
	}

	pr := pairing{names: names, base: baseCases, cand: candCases, common: common, hasBase: base != nil}
	c.baseVals, c.candVals = map[string][]float64{}, map[string][]float64{}
	for _, n := range names {
		c.candVals[n] = valuesOf(candCases, n)
		if base != nil {
			c.baseVals[n] = valuesOf(baseCases, n)
		}
	}
	// The bootstraps dominate the time: one goroutine per metric (each
	// bootstrap has its own fixed seed, so the result does not depend on
	// the schedule).
	c.Metrics = make([]MetricDiff, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { c.Metrics[i] = metricDiff(n, pr) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, id := range common {
		b, k := baseCases[id], candCases[id]
		cd := CaseDiff{Case: id, Base: map[string]Num{}, Candidate: map[string]Num{}, Delta: map[string]Num{}}
		for _, n := range names {
			cd.Base[n] = Num(b.Values[n])
			cd.Candidate[n] = Num(k.Values[n])
			cd.Delta[n] = Num(delta(k.Values[n], b.Values[n]))
		}
		cd.Gain = Num(gain(c.Primary, b.Values[c.Primary], k.Values[c.Primary]))
		c.Cases = append(c.Cases, cd)
	}
	slices.SortStableFunc(c.Cases, func(a, b CaseDiff) int {
		ga, gb := sortable(float64(a.Gain)), sortable(float64(b.Gain))
		switch {
		case ga < gb:
			return -1
		case ga > gb:
			return 1
		}
		return strings.Compare(a.Case, b.Case)
	})
	for _, cd := range c.Cases {
		if len(c.Regressions) < top && sortable(float64(cd.Gain)) < 0 {
			c.Regressions = append(c.Regressions, cd)
		}
	}
	for i := len(c.Cases) - 1; i >= 0 && len(c.Improvements) < top; i-- {
		if sortable(float64(c.Cases[i].Gain)) > 0 {
			c.Improvements = append(c.Improvements, c.Cases[i])
		}
	}

	c.Data = dataChanges(base, cand)
	c.Params = paramsDiff(base, cand)
	c.Env = envDiff(base, cand)
	c.Warnings = warnings(c, base)
	c.Verdict = evaluateGates(in.Promote, pr)
	c.Verdict.Source = in.GatesFrom
	if base != nil {
		c.Verdict.Paired = len(c.Cases)
	}
	return c, nil
}

// commonNames keeps the names of b that a also has, in b's order.
func commonNames(a, b []string) []string {
	var out []string
	for _, n := range b {
		if slices.Contains(a, n) {
			out = append(out, n)
		}
	}
	return out
}

// primaryMetric is the metric the per-case lists are sorted by: the first
// gate's, else dice.
func primaryMetric(p gitops.Promote, names []string) string {
	for _, g := range p.Gates {
		if m := canonicalMetric(g.Metric, names); slices.Contains(names, m) {
			return m
		}
	}
	if len(names) > 0 && !slices.Contains(names, "dice") {
		return names[0]
	}
	return "dice"
}

// canonicalMetric maps a gate's metric name to the evaluation's: "hd95"
// is "hd95_mm", "nsd" the NSD at the first tolerance.
func canonicalMetric(m string, names []string) string {
	if slices.Contains(names, m) {
		return m
	}
	if slices.Contains(names, m+"_mm") {
		return m + "_mm"
	}
	if m == "nsd" {
		for _, n := range names {
			if strings.HasPrefix(n, "nsd@") {
				return n
			}
		}
	}
	return m
}

func evaluated(e *Eval, side string, failed *[]CaseError) map[string]Case {
	out := make(map[string]Case, len(e.Cases))
	for _, c := range e.Cases {
		if c.Values == nil {
			*failed = append(*failed, CaseError{Side: side, Case: c.ID, Error: c.Error})
			continue
		}
		out[c.ID] = c
	}
	return out
}

func lineage(s *Side) Lineage {
	m := s.Model
	l := Lineage{
		Ref: s.Ref, Commit: m.Commit, CommitSubject: s.CommitSubject, Run: m.Run, Trainer: m.Trainer,
		Artifact: gitops.DigestText(m.Artifact), Eval: gitops.DigestText(m.Eval), EnvLock: gitops.DigestText(m.EnvLock),
		LabelRules: m.LabelRules, Datasets: make(map[string]string, len(m.Datasets)), CIRunURL: m.Provenance.CIRunURL,
	}
	for n, id := range m.Datasets {
		l.Datasets[n] = gitops.DigestText(id)
	}
	for _, c := range s.Eval.Cases {
		if c.Values != nil {
			l.Cases++
		}
	}
	return l
}

// delta is cand − base; two infinities (both masks failed) are no change.
func delta(cand, base float64) float64 {
	if math.IsInf(cand, 1) && math.IsInf(base, 1) {
		return 0
	}
	return cand - base
}

// gain is the change of metric in its direction: positive is better.
func gain(metric string, base, cand float64) float64 {
	return float64(DirectionOf(metric)) * delta(cand, base)
}

// sortable orders NaN as no change.
func sortable(x float64) float64 {
	if math.IsNaN(x) {
		return 0
	}
	return x
}

// pairing is what the statistics and gates are computed over.
type pairing struct {
	names      []string        // metrics both evaluations have
	base, cand map[string]Case // evaluated cases by id (base nil without a baseline)
	common     []string        // ids both evaluated, sorted
	hasBase    bool
}

func metricDiff(n string, pr pairing) MetricDiff {
	hasBase, base, cand, common := pr.hasBase, pr.base, pr.cand, pr.common
	md := MetricDiff{Metric: n, Direction: DirectionOf(n), Delta: Num(math.NaN()), CILow: Num(math.NaN()),
		CIHigh: Num(math.NaN()), P: Num(math.NaN()), Change: "same"}
	md.Candidate = metrics.Summarize(valuesOf(cand, n))
	if !hasBase {
		return md
	}
	bs := metrics.Summarize(valuesOf(base, n))
	md.Base = &bs
	md.Paired = len(common)
	var d []float64
	for _, id := range common {
		x := delta(cand[id].Values[n], base[id].Values[n])
		g := float64(md.Direction) * x
		switch {
		case g > 0:
			md.Better++
		case g < 0:
			md.Worse++
		default:
			md.Same++
		}
		if math.IsInf(x, 0) || math.IsNaN(x) {
			md.NonFinite++
			continue
		}
		d = append(d, x)
	}
	if len(d) == 0 {
		return md
	}
	s := metrics.Summarize(d) // the bootstrap of the paired differences
	md.Delta = Num(s.Mean)
	if len(d) >= 2 { // one pair has no interval
		md.CILow, md.CIHigh = Num(s.CILow), Num(s.CIHigh)
	}
	w := SignedRank(d)
	md.P, md.Exact = Num(w.P), w.Exact
	switch g := float64(md.Direction) * s.Mean; {
	case g > 0:
		md.Change = "better"
	case g < 0:
		md.Change = "worse"
	}
	// Significant: the interval excludes 0 and the test agrees (with
	// fewer than 6 pairs no two-sided p can be below 0.05).
	md.Significant = md.Change != "same" && len(d) >= 2 && (s.CILow > 0 || s.CIHigh < 0) && w.P < 0.05
	return md
}

func valuesOf(cases map[string]Case, n string) []float64 {
	ids := make([]string, 0, len(cases))
	for id := range cases {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a fixed order keeps the bootstrap reproducible
	out := make([]float64, 0, len(ids))
	for _, id := range ids {
		out = append(out, cases[id].Values[n])
	}
	return out
}

func cmpJoin(a1, a2, b1, b2 string) int {
	if c := strings.Compare(a1, b1); c != 0 {
		return c
	}
	return strings.Compare(a2, b2)
}

// warnings are the facts a reviewer must not miss.
// WarningKind classifies a report warning.
type WarningKind string

// The kinds of report warnings.
const (
	// NoBaseline: the first model, only absolute gates apply.
	NoBaseline WarningKind = "no-baseline"
	// LabelRulesDiffer: the ground truth changed; reports show it as a
	// caution, not a plain warning.
	LabelRulesDiffer WarningKind = "label-rules-differ"
	// NothingPaired: no case was evaluated by both models.
	NothingPaired WarningKind = "nothing-paired"
	// EvalFailed: some case evaluations failed.
	EvalFailed WarningKind = "eval-failed"
	// FewPaired: the comparison rests on fewer than MinPaired cases both
	// models evaluated.
	FewPaired WarningKind = "few-paired"
)

// MinPaired is the fewest paired cases a comparison with a baseline
// should rest on; below it the report and the gate warn (FewPaired).
const MinPaired = 5

// Warning is a caveat shown above a report's numbers. Its JSON form is
// the text alone.
type Warning struct {
	Kind WarningKind
	Text string
}

// Caution reports whether the warning invalidates the comparison (shown
// more prominently than a plain warning).
func (w Warning) Caution() bool { return w.Kind == LabelRulesDiffer }

// MarshalJSON writes the text.
func (w Warning) MarshalJSON() ([]byte, error) { return json.Marshal(w.Text) }

func warnings(c *Comparison, base *Side) []Warning {
	w := []Warning{}
	if base == nil {
		w = append(w, Warning{NoBaseline, "No baseline: this is the first model, so only absolute gates apply."})
	}
	if c.Data.LabelRulesDiffer {
		w = append(w, Warning{LabelRulesDiffer, fmt.Sprintf("Labelling rules differ (baseline %s, candidate %s): the ground truth changed, so the metrics are NOT comparable.",
			orNone(c.Data.BaseLabelRules), orNone(c.Data.CandidateLabelRules))})
	}
	if base != nil && len(c.Cases) == 0 {
		w = append(w, Warning{NothingPaired, "No case was evaluated by both models: there is nothing to pair."})
	}
	if n := len(c.Cases); base != nil && n > 0 && n < MinPaired {
		w = append(w, Warning{FewPaired, fmt.Sprintf("The comparison rests on only %s (fewer than %d): its statistics are weak; hold out more cases ([data] holdout, holdout_min).", count(n, "paired case"), MinPaired)})
	}
	if n := len(c.NotEvaluated); n > 0 {
		w = append(w, Warning{EvalFailed, fmt.Sprintf("%s failed; they are listed below and left out of every statistic.", count(n, "case evaluation"))})
	}
	return w
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
