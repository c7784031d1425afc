package reports

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/sergi/go-diff/diffmatchpatch"
)

// Change kinds of datasets, params and packages.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// DataChanges are the dataset differences between the two models.
type DataChanges struct {
	Datasets            []DatasetChange `json:"datasets"` // added, removed or changed, by name
	BaseLabelRules      string          `json:"base_label_rules"`
	CandidateLabelRules string          `json:"candidate_label_rules"`
	// LabelRulesDiffer says the labelling rules of the ground truth
	// changed: the two evaluations measure against different truths.
	LabelRulesDiffer bool `json:"label_rules_differ"`
}

// DatasetChange is one dataset that differs.
type DatasetChange struct {
	Name                string   `json:"name"`
	Status              string   `json:"status"` // added | removed | changed
	BaseDigest          string   `json:"base_digest,omitempty"`
	CandidateDigest     string   `json:"candidate_digest,omitempty"`
	BaseLabelRules      string   `json:"base_label_rules,omitempty"`
	CandidateLabelRules string   `json:"candidate_label_rules,omitempty"`
	BaseFiles           int64    `json:"base_files"`
	CandidateFiles      int64    `json:"candidate_files"`
	BaseBytes           int64    `json:"base_bytes"`
	CandidateBytes      int64    `json:"candidate_bytes"`
	CasesAdded          []string `json:"cases_added"`
	CasesRemoved        []string `json:"cases_removed"`
	CasesChanged        []string `json:"cases_changed"` // image or label content differs
	// Detail says whether the pointers were at hand: without them only
	// the digests are known.
	Detail bool `json:"detail"`
}

func pointerOf(s *Side, name string, manifest cas.ID) *gitops.Dataset {
	if s == nil {
		return nil
	}
	for _, d := range s.Datasets {
		if d.Name == name && d.Manifest == manifest {
			return d
		}
	}
	return nil
}

func dataChanges(base, cand *Side) DataChanges {
	dc := DataChanges{Datasets: []DatasetChange{}, CandidateLabelRules: cand.Model.LabelRules}
	var bd map[string]cas.ID
	if base != nil {
		bd = base.Model.Datasets
		dc.BaseLabelRules = base.Model.LabelRules
		dc.LabelRulesDiffer = dc.BaseLabelRules != dc.CandidateLabelRules
	} else {
		return dc // the first model: nothing to compare with
	}
	cd := cand.Model.Datasets
	names := make([]string, 0, len(bd)+len(cd))
	for n := range bd {
		names = append(names, n)
	}
	for n := range cd {
		names = append(names, n)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		b, inB := bd[n]
		k, inC := cd[n]
		if inB && inC && b == k {
			continue
		}
		ch := DatasetChange{Name: n, BaseDigest: gitops.DigestText(b), CandidateDigest: gitops.DigestText(k),
			CasesAdded: []string{}, CasesRemoved: []string{}, CasesChanged: []string{}}
		switch {
		case !inB:
			ch.Status = Added
		case !inC:
			ch.Status = Removed
		default:
			ch.Status = Changed
		}
		bp, cp := pointerOf(base, n, b), pointerOf(cand, n, k)
		ch.Detail = (bp != nil || !inB) && (cp != nil || !inC)
		bc, kc := map[string]gitops.DatasetCase{}, map[string]gitops.DatasetCase{}
		if bp != nil {
			ch.BaseLabelRules, ch.BaseFiles, ch.BaseBytes = bp.LabelRules, bp.Files, bp.Bytes
			for _, c := range bp.Cases {
				bc[c.ID] = c
			}
		}
		if cp != nil {
			ch.CandidateLabelRules, ch.CandidateFiles, ch.CandidateBytes = cp.LabelRules, cp.Files, cp.Bytes
			for _, c := range cp.Cases {
				kc[c.ID] = c
			}
		}
		for id, c := range kc {
			if o, ok := bc[id]; !ok {
				ch.CasesAdded = append(ch.CasesAdded, id)
			} else if o.Image != c.Image || o.Label != c.Label {
				ch.CasesChanged = append(ch.CasesChanged, id)
			}
		}
		for id := range bc {
			if _, ok := kc[id]; !ok {
				ch.CasesRemoved = append(ch.CasesRemoved, id)
			}
		}
		slices.Sort(ch.CasesAdded)
		slices.Sort(ch.CasesRemoved)
		slices.Sort(ch.CasesChanged)
		dc.Datasets = append(dc.Datasets, ch)
	}
	return dc
}

// ParamsDiff is the difference of the training params.
type ParamsDiff struct {
	Base      string        `json:"base_toml"` // canonical TOML of the baseline's params
	Candidate string        `json:"candidate_toml"`
	Changes   []ParamChange `json:"changes"`
	Lines     []DiffLine    `json:"diff"` // line diff of Base and Candidate (sergi/go-diff)
}

// ParamChange is one param that differs.
type ParamChange struct {
	Key       string `json:"key"` // "table.key"
	Status    string `json:"status"`
	Base      string `json:"base"` // TOML literal
	Candidate string `json:"candidate"`
}

// DiffLine is one line of a line diff: Op is "+", "-" or " ".
type DiffLine struct {
	Op   string `json:"op"`
	Text string `json:"text"`
}

var bareKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func tomlKey(k string) string {
	if bareKeyRE.MatchString(k) {
		return k
	}
	return strconv.Quote(k)
}

// CanonicalParams writes a model's params ("table.key" → TOML literal) as
// canonical TOML: tables and keys sorted.
func CanonicalParams(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	table := "\x00"
	for _, k := range keys {
		t, key, ok := strings.Cut(k, ".")
		if !ok {
			t, key = "", k
		}
		if t != table {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			if t != "" {
				b.WriteString("[" + tomlKey(t) + "]\n")
			}
			table = t
		}
		b.WriteString(tomlKey(key) + " = " + oneLine(params[k]) + "\n")
	}
	return b.String()
}

// oneLine keeps a TOML literal on one line (a multi-line string would
// break the line diff and the tables).
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strconv.Quote(s)
}

func paramsDiff(base, cand *Side) ParamsDiff {
	pd := ParamsDiff{Candidate: CanonicalParams(cand.Model.Params), Changes: []ParamChange{}, Lines: []DiffLine{}}
	var bp map[string]string
	if base != nil {
		bp = base.Model.Params
		pd.Base = CanonicalParams(bp)
	}
	cp := cand.Model.Params
	keys := make([]string, 0, len(bp)+len(cp))
	for k := range bp {
		keys = append(keys, k)
	}
	for k := range cp {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for _, k := range keys {
		b, inB := bp[k]
		c, inC := cp[k]
		switch {
		case base == nil:
		case !inB:
			pd.Changes = append(pd.Changes, ParamChange{Key: k, Status: Added, Candidate: c})
		case !inC:
			pd.Changes = append(pd.Changes, ParamChange{Key: k, Status: Removed, Base: b})
		case b != c:
			pd.Changes = append(pd.Changes, ParamChange{Key: k, Status: Changed, Base: b, Candidate: c})
		}
	}
	if base != nil && pd.Base != pd.Candidate {
		pd.Lines = lineDiff(pd.Base, pd.Candidate)
	}
	return pd
}

// lineDiff diffs two texts line by line with sergi/go-diff.
func lineDiff(a, b string) []DiffLine {
	dmp := diffmatchpatch.New()
	ca, cb, lines := dmp.DiffLinesToChars(a, b)
	diffs := dmp.DiffCharsToLines(dmp.DiffMain(ca, cb, false), lines)
	var out []DiffLine
	for _, d := range diffs {
		op := " "
		switch d.Type {
		case diffmatchpatch.DiffInsert:
			op = "+"
		case diffmatchpatch.DiffDelete:
			op = "-"
		}
		for _, l := range strings.SplitAfter(d.Text, "\n") {
			if l == "" {
				continue
			}
			out = append(out, DiffLine{Op: op, Text: strings.TrimSuffix(l, "\n")})
		}
	}
	return out
}

// EnvDiff is the difference of the environment locks.
type EnvDiff struct {
	Base      string          `json:"base_digest"`
	Candidate string          `json:"candidate_digest"`
	Changed   bool            `json:"changed"`
	Packages  []PackageChange `json:"packages"` // from the parsed locks, when both are at hand
	Detail    bool            `json:"detail"`
}

// PackageChange is one package added, removed or changed.
type PackageChange struct {
	Name      string `json:"name"`
	Status    string `json:"status"`
	Base      string `json:"base"` // version
	Candidate string `json:"candidate"`
}

func envDiff(base, cand *Side) EnvDiff {
	ed := EnvDiff{Candidate: gitops.DigestText(cand.Model.EnvLock), Packages: []PackageChange{}}
	if base == nil {
		return ed
	}
	ed.Base = gitops.DigestText(base.Model.EnvLock)
	ed.Changed = ed.Base != ed.Candidate
	if !ed.Changed || base.Env == nil || cand.Env == nil {
		return ed
	}
	ed.Detail = true
	bp, cp := map[string]gitops.Package{}, map[string]gitops.Package{}
	for _, p := range base.Env.Packages {
		bp[p.Name] = p
	}
	for _, p := range cand.Env.Packages {
		cp[p.Name] = p
	}
	names := make([]string, 0, len(bp)+len(cp))
	for n := range bp {
		names = append(names, n)
	}
	for n := range cp {
		names = append(names, n)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		b, inB := bp[n]
		c, inC := cp[n]
		switch {
		case !inB:
			ed.Packages = append(ed.Packages, PackageChange{Name: n, Status: Added, Candidate: c.Version})
		case !inC:
			ed.Packages = append(ed.Packages, PackageChange{Name: n, Status: Removed, Base: b.Version})
		case b.Version != c.Version || b.Source != c.Source:
			ed.Packages = append(ed.Packages, PackageChange{Name: n, Status: Changed, Base: b.Version, Candidate: c.Version})
		}
	}
	return ed
}
