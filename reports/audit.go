package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/stages/metrics"
)

// AuditSchema is the version of the audit document's JSON form.
const AuditSchema = 1

// AuditRecord is one version of a model's production chain as the audit
// shows it: the fields of the signed production record (action/promote
// converts its records; reports does not depend on that package).
type AuditRecord struct {
	Model          string             `json:"model"`
	Version        int                `json:"version"`
	Tag            string             `json:"tag"`
	Digest         string             `json:"digest,omitempty"` // of the record's stored bytes: the next record's prev
	Artifact       string             `json:"artifact"`
	Eval           string             `json:"eval,omitempty"`
	Manifest       string             `json:"manifest"` // digest of the promoted manifest file
	ManifestCommit string             `json:"manifest_commit"`
	Run            string             `json:"run"`
	CodeCommit     string             `json:"code_commit"`
	Commit         string             `json:"commit"` // the default branch's commit that was promoted
	PR             int                `json:"pull_request,omitempty"`
	MergedBy       string             `json:"merged_by,omitempty"`
	Approvers      []string           `json:"approved_by,omitempty"`
	CIRunURL       string             `json:"ci_run_url,omitempty"`
	Metrics        map[string]float64 `json:"metrics,omitempty"`
	GateResult     string             `json:"gate_result"`
	GateBaseline   int                `json:"gate_baseline,omitempty"` // version compared with; 0: none
	Gates          []string           `json:"gates,omitempty"`         // one line per gate checked
	Rollback       *AuditRollback     `json:"rollback,omitempty"`
	Prev           string             `json:"prev,omitempty"`
	PromotedAt     time.Time          `json:"promoted_at"`
	Signature      string             `json:"signature"`
}

// AuditRollback says that a version restores an earlier one's artifact.
type AuditRollback struct {
	Of     int    `json:"of"`
	Reason string `json:"reason"`
	By     string `json:"by"`
}

// AuditInput is what NewAudit documents: one version of a chain whose
// records the caller has verified, and the model manifest it promoted as
// Loader.Rev reads it at the record's manifest commit (its evaluation,
// dataset pointers and environment lock).
type AuditInput struct {
	Record AuditRecord
	// Chain is every version of the model, oldest first; it holds Record.
	Chain []AuditRecord
	Side  *Side
	// Source is where the chain was read (the store, or git tags);
	// PublicKey the key its signatures verified with ("" when the key was
	// derived from the signing secret).
	Source    string
	PublicKey string
	Generated time.Time
}

// Audit is the lineage document of one model version, for an auditor:
// where it came from (datasets, code, environment, params), how it was
// evaluated and gated, who approved and merged it, and its place in the
// production chain. It holds no PHI: cases are named by their
// pseudonymous ids, datasets by names and digests.
type Audit struct {
	Schema     int            `json:"schema"`
	Model      string         `json:"model"`
	Version    int            `json:"version"`
	Tag        string         `json:"tag"`
	Status     string         `json:"status"` // "production" or "superseded by vN"
	Generated  time.Time      `json:"generated_at"`
	Chain      AuditChain     `json:"chain"`
	Record     AuditRecord    `json:"record"`
	Rollback   *AuditRestore  `json:"rollback"` // null unless this version is a rollback
	Code       AuditCode      `json:"code"`
	Datasets   []AuditData    `json:"datasets"`
	Env        AuditEnv       `json:"environment"`
	Params     []AuditParam   `json:"params"`
	Evaluation AuditEval      `json:"evaluation"`
	Gates      AuditGates     `json:"gates"`
	History    []AuditVersion `json:"history"`
	Warnings   []string       `json:"warnings"`
}

// AuditChain says where the chain was read and what verified it.
type AuditChain struct {
	Source    string `json:"source"`
	PublicKey string `json:"public_key"`
	Versions  int    `json:"versions"`
}

// AuditRestore is a rollback: which version's artifact it restores, who
// asked and why.
type AuditRestore struct {
	Of       int          `json:"of"`
	OfTag    string       `json:"of_tag"`
	By       string       `json:"by"`
	Reason   string       `json:"reason"`
	Original AuditVersion `json:"original"`
}

// AuditCode is the code that trained the model and the merge that
// promoted it.
type AuditCode struct {
	CodeCommit     string   `json:"code_commit"`
	Subject        string   `json:"subject"`
	Trainer        string   `json:"trainer"`
	Run            string   `json:"run"`
	PR             int      `json:"pull_request"`
	MergedBy       string   `json:"merged_by"`
	Approvers      []string `json:"approved_by"`
	Commit         string   `json:"promoted_commit"`
	ManifestCommit string   `json:"manifest_commit"`
	CIRunURL       string   `json:"ci_run_url"`
}

// AuditData is one dataset the model was trained and evaluated on, from
// its pointer at the manifest's commit.
type AuditData struct {
	Name     string `json:"name"`
	Manifest string `json:"manifest"` // the dataset's manifest digest, as the model manifest names it
	// Pointer is the SHA-256 of the pointer file (its canonical
	// encoding); "" when the pointer is not at the manifest's commit.
	Pointer     string `json:"pointer"`
	Cases       int    `json:"cases"`
	Labelled    int    `json:"labelled"`
	Train       int    `json:"train"` // of the held-out split
	Test        int    `json:"test"`
	Files       int64  `json:"files"`
	Bytes       int64  `json:"bytes"`
	LabelRules  string `json:"label_rules"`
	DeidProfile string `json:"deid_profile"`
}

// AuditEnv is the environment lock the model was trained in.
type AuditEnv struct {
	Digest   string           `json:"digest"`
	File     string           `json:"file"`
	Packages []gitops.Package `json:"packages"`
}

// AuditParam is one param of the training run.
type AuditParam struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// AuditEval is the model's evaluation: each metric's mean with its 95%
// bootstrap interval over the evaluated cases, and every case.
type AuditEval struct {
	Digest       string        `json:"digest"`
	TolerancesMM []float64     `json:"tolerances_mm"`
	Evaluated    int           `json:"evaluated"`
	Failed       int           `json:"failed"`
	Metrics      []AuditMetric `json:"metrics"`
	Cases        []AuditCase   `json:"cases"`
}

// AuditMetric summarises one metric over the evaluated cases.
type AuditMetric struct {
	Metric    string    `json:"metric"`
	Better    Direction `json:"better"`
	N         int       `json:"n"`
	NonFinite int       `json:"non_finite"`
	Mean      Num       `json:"mean"`
	CILow     Num       `json:"ci95_low"`
	CIHigh    Num       `json:"ci95_high"`
	Median    Num       `json:"median"`
	Std       Num       `json:"std"`
	Min       Num       `json:"min"`
	Max       Num       `json:"max"`
}

// AuditCase is one case of the evaluation.
type AuditCase struct {
	Case    string         `json:"case"`
	Dataset string         `json:"dataset"` // "" when no pointer lists it
	Split   string         `json:"split,omitempty"`
	Values  map[string]Num `json:"values,omitempty"` // an infinite distance is null
	Flags   []string       `json:"flags,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// AuditGates is the verdict of the promotion job, against which
// baseline, and the pull request job's verdict recorded in the manifest.
type AuditGates struct {
	Result           string   `json:"result"`
	Baseline         int      `json:"baseline"` // 0: none (the first version)
	BaselineTag      string   `json:"baseline_tag"`
	BaselineArtifact string   `json:"baseline_artifact"`
	Gates            []string `json:"gates"`
	PRResult         string   `json:"pr_result"`
	PRBaseline       string   `json:"pr_baseline_artifact"`
}

// AuditVersion is one line of the chain's history.
type AuditVersion struct {
	Version    int       `json:"version"`
	Tag        string    `json:"tag"`
	PromotedAt time.Time `json:"promoted_at"`
	Artifact   string    `json:"artifact"`
	PR         int       `json:"pull_request,omitempty"`
	By         string    `json:"by"` // merged by, or who asked for a rollback
	RollbackOf int       `json:"rollback_of,omitempty"`
	Gate       string    `json:"gate"`
	This       bool      `json:"this"`
	Production bool      `json:"production"`
}

// ErrAuditInput means NewAudit was given a version without its manifest
// and evaluation, or one whose manifest is not the record's.
var ErrAuditInput = errors.New("audit")

// NewAudit builds the audit document of in.Record.
func NewAudit(in AuditInput) (*Audit, error) {
	r := in.Record
	s := in.Side
	if s == nil || s.Model == nil || s.Eval == nil {
		return nil, fmt.Errorf("%w: %s v%d: the promoted manifest and its evaluation were not loaded", ErrAuditInput, r.Model, r.Version)
	}
	if got := gitops.DigestText(s.Model.Artifact); got != r.Artifact {
		return nil, fmt.Errorf("%w: %s v%d: the manifest at %.12s holds artifact %s, the record %s", ErrAuditInput, r.Model, r.Version, r.ManifestCommit, cas.ShortText(got), cas.ShortText(r.Artifact))
	}
	if got := gitops.DigestText(s.Model.Eval); r.Eval != "" && got != r.Eval {
		return nil, fmt.Errorf("%w: %s v%d: the manifest at %.12s holds evaluation %s, the record %s", ErrAuditInput, r.Model, r.Version, r.ManifestCommit, cas.ShortText(got), cas.ShortText(r.Eval))
	}
	if !slices.ContainsFunc(in.Chain, func(c AuditRecord) bool { return c.Version == r.Version }) {
		in.Chain = append(slices.Clone(in.Chain), r)
	}
	m := s.Model
	a := &Audit{
		Schema: AuditSchema, Model: r.Model, Version: r.Version, Tag: r.Tag, Generated: in.Generated.UTC(),
		Chain:  AuditChain{Source: in.Source, PublicKey: in.PublicKey, Versions: len(in.Chain)},
		Record: r, Warnings: []string{}, Datasets: []AuditData{}, Params: []AuditParam{}, History: []AuditVersion{},
		Code: AuditCode{CodeCommit: r.CodeCommit, Subject: s.CommitSubject, Trainer: m.Trainer, Run: r.Run, PR: r.PR,
			MergedBy: r.MergedBy, Approvers: nonNil(r.Approvers), Commit: r.Commit, ManifestCommit: r.ManifestCommit, CIRunURL: r.CIRunURL},
	}
	if a.Code.CIRunURL == "" {
		a.Code.CIRunURL = m.Provenance.CIRunURL
	}
	last := in.Chain[len(in.Chain)-1]
	a.Status = "production"
	if last.Version != r.Version {
		a.Status = fmt.Sprintf("superseded by v%d", last.Version)
	}
	for _, c := range in.Chain {
		a.History = append(a.History, auditVersion(c, r.Version, last.Version))
	}
	if rb := r.Rollback; rb != nil {
		a.Rollback = &AuditRestore{Of: rb.Of, By: rb.By, Reason: rb.Reason, OfTag: tagOf(in.Chain, rb.Of)}
		for _, v := range a.History {
			if v.Version == rb.Of {
				a.Rollback.Original = v
			}
		}
	}
	a.Datasets, a.Warnings = auditDatasets(m, s.Datasets, a.Warnings)
	a.Env = AuditEnv{Digest: gitops.DigestText(m.EnvLock), Packages: []gitops.Package{}}
	if s.Env != nil {
		a.Env.File, a.Env.Packages = s.Env.File, nonNil(s.Env.Packages)
	}
	if a.Env.Digest == "" {
		a.Warnings = append(a.Warnings, "No environment lock is recorded for this model ([env] lock in medcad.toml).")
	}
	for _, k := range sortedKeys(m.Params) {
		a.Params = append(a.Params, AuditParam{Key: k, Value: m.Params[k]})
	}
	a.Evaluation = auditEval(gitops.DigestText(m.Eval), s.Eval, s.Datasets)
	if a.Evaluation.Failed > 0 {
		a.Warnings = append(a.Warnings, fmt.Sprintf("Not evaluated: %s (see the case table), left out of every statistic.", count(a.Evaluation.Failed, "case")))
	}
	a.Gates = AuditGates{Result: r.GateResult, Baseline: r.GateBaseline, Gates: nonNil(r.Gates),
		PRResult: m.Gate.Result, PRBaseline: gitops.DigestText(m.Gate.Baseline)}
	if r.GateBaseline > 0 {
		a.Gates.BaselineTag = tagOf(in.Chain, r.GateBaseline)
		for _, c := range in.Chain {
			if c.Version == r.GateBaseline {
				a.Gates.BaselineArtifact = c.Artifact
			}
		}
	}
	return a, nil
}

func auditVersion(c AuditRecord, this, prod int) AuditVersion {
	v := AuditVersion{Version: c.Version, Tag: c.Tag, PromotedAt: c.PromotedAt.UTC(), Artifact: c.Artifact, PR: c.PR,
		By: c.MergedBy, Gate: c.GateResult, This: c.Version == this, Production: c.Version == prod}
	if c.Rollback != nil {
		v.RollbackOf, v.By = c.Rollback.Of, c.Rollback.By
	}
	return v
}

func tagOf(chain []AuditRecord, v int) string {
	for _, c := range chain {
		if c.Version == v {
			return c.Tag
		}
	}
	return fmt.Sprintf("v%d", v)
}

// auditDatasets describes each dataset the manifest names from its
// pointer, warning where the pointer is missing or names another
// manifest. No case warning is shown: ingest notes are not for an audit
// trail that leaves the hospital.
func auditDatasets(m *gitops.Model, pointers []*gitops.Dataset, warn []string) ([]AuditData, []string) {
	byName := map[string]*gitops.Dataset{}
	for _, d := range pointers {
		byName[d.Name] = d
	}
	out := []AuditData{}
	names := make([]string, 0, len(m.Datasets))
	for n := range m.Datasets {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		ad := AuditData{Name: n, Manifest: gitops.DigestText(m.Datasets[n])}
		d, ok := byName[n]
		switch {
		case !ok:
			warn = append(warn, fmt.Sprintf("Dataset %s: no pointer %s at the manifest's commit; its cases and rules are unknown here.", n, gitops.DatasetPath(n)))
		case d.Manifest != m.Datasets[n]:
			warn = append(warn, fmt.Sprintf("Dataset %s: the pointer at the manifest's commit names manifest %s, the model %s.", n, d.Manifest.Short(), m.Datasets[n].Short()))
			fallthrough
		default:
			ad.Pointer = cas.Sum(d.Encode()).String()
			ad.Cases, ad.Files, ad.Bytes, ad.LabelRules, ad.DeidProfile = len(d.Cases), d.Files, d.Bytes, d.LabelRules, d.DeidProfile
			for _, c := range d.Cases {
				if !c.Label.IsZero() {
					ad.Labelled++
				}
				switch c.Split {
				case gitops.SplitTrain:
					ad.Train++
				case gitops.SplitTest:
					ad.Test++
				}
			}
		}
		out = append(out, ad)
	}
	return out, warn
}

func auditEval(digest string, e *Eval, pointers []*gitops.Dataset) AuditEval {
	type where struct{ dataset, split string }
	home := map[string]where{}
	for _, d := range pointers {
		for _, c := range d.Cases {
			home[c.ID] = where{d.Name, c.Split}
		}
	}
	ae := AuditEval{Digest: digest, TolerancesMM: nonNil(e.TolerancesMM), Metrics: []AuditMetric{}, Cases: []AuditCase{}}
	evaluated := map[string]Case{}
	for _, c := range e.Cases {
		ac := AuditCase{Case: c.ID, Dataset: home[c.ID].dataset, Split: home[c.ID].split, Flags: c.Flags, Error: c.Error}
		if c.Values == nil {
			ae.Failed++
		} else {
			ae.Evaluated++
			evaluated[c.ID] = c
			ac.Values = map[string]Num{}
			for n, v := range c.Values {
				ac.Values[n] = Num(v)
			}
		}
		ae.Cases = append(ae.Cases, ac)
	}
	for _, n := range e.MetricNames() {
		s := metrics.Summarize(valuesOf(evaluated, n))
		ae.Metrics = append(ae.Metrics, AuditMetric{Metric: n, Better: DirectionOf(n), N: s.N, NonFinite: s.NonFinite,
			Mean: Num(s.Mean), CILow: Num(s.CILow), CIHigh: Num(s.CIHigh), Median: Num(s.Median), Std: Num(s.Std), Min: Num(s.Min), Max: Num(s.Max)})
	}
	return ae
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// AuditJSON renders the audit document for machines.
func AuditJSON(a *Audit) ([]byte, error) {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// UnmarshalText reads "higher" or "lower".
func (d *Direction) UnmarshalText(b []byte) error {
	switch string(b) {
	case "higher":
		*d = HigherIsBetter
	case "lower":
		*d = LowerIsBetter
	default:
		return fmt.Errorf("better: %q, want higher or lower", b)
	}
	return nil
}

// UnmarshalJSON reads a number; null (no value, or an infinite distance)
// reads as NaN.
func (n *Num) UnmarshalJSON(b []byte) error {
	if strings.TrimSpace(string(b)) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}
