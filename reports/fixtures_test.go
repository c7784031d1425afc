package reports

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
)

// digest returns a fake but well-formed object ID for a name.
func digest(name string) string { return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(name))) }

// digestID is digest as an object ID.
func digestID(name string) cas.ID { return cas.Sum([]byte(name)) }

type caseVals map[string]float64

// evalOf builds an evaluation from per-case values (tolerance 1 mm).
func evalOf(cases map[string]caseVals) *Eval {
	e := &Eval{TolerancesMM: []float64{1}}
	for _, id := range sortedKeysOf(cases) {
		e.Cases = append(e.Cases, Case{ID: id, Values: maps.Clone(cases[id])})
	}
	return e
}

func sortedKeysOf[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// baseCases returns n cases with plausible metric values, fixed seed.
func baseCases(n int, seed uint64) map[string]caseVals {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := map[string]caseVals{}
	for i := range n {
		dice := 0.86 + 0.08*rng.Float64()
		out[fmt.Sprintf("c-%06x", (i*2654435761+int(seed))&0xffffff)] = caseVals{
			"dice": round4(dice), "iou": round4(dice / (2 - dice)),
			"hd_mm": round4(4 + 6*rng.Float64()), "hd95_mm": round4(1.5 + 3*rng.Float64()),
			"assd_mm": round4(0.3 + 0.5*rng.Float64()), "masd_mm": round4(0.3 + 0.5*rng.Float64()),
			"nsd@1": round4(0.8 + 0.15*rng.Float64()),
		}
	}
	return out
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// shifted applies a per-case change to dice (and the matching opposite
// change to distances) of a copy of cases.
func shifted(cases map[string]caseVals, f func(i int) float64) map[string]caseVals {
	out := map[string]caseVals{}
	for i, id := range sortedKeysOf(cases) {
		v := maps.Clone(cases[id])
		d := f(i)
		v["dice"] = round4(math.Min(1, math.Max(0, v["dice"]+d)))
		v["iou"] = round4(v["dice"] / (2 - v["dice"]))
		v["hd95_mm"] = round4(math.Max(0, v["hd95_mm"]-20*d))
		v["hd_mm"] = round4(math.Max(0, v["hd_mm"]-40*d))
		v["assd_mm"] = round4(math.Max(0, v["assd_mm"]-5*d))
		v["masd_mm"] = round4(math.Max(0, v["masd_mm"]-5*d))
		v["nsd@1"] = round4(math.Min(1, math.Max(0, v["nsd@1"]+d)))
		out[id] = v
	}
	return out
}

type sideSpec struct {
	ref, rules, commit, subject string
	datasets                    []*gitops.Dataset
	params                      map[string]string
	env                         []gitops.Package
	envDigest                   string
	cases                       map[string]caseVals
}

func dataset(name, rules string, ids ...string) *gitops.Dataset {
	d := &gitops.Dataset{Schema: 1, Name: name, Manifest: digestID("manifest " + name + rules + fmt.Sprint(ids)),
		Files: int64(100 * len(ids)), Bytes: int64(5e7 * len(ids)), LabelRules: rules, DeidProfile: "ps3.15-basic"}
	for _, id := range ids {
		d.Cases = append(d.Cases, gitops.DatasetCase{ID: id, Modality: "CT", Image: digestID("image " + id), Label: digestID("label " + id + rules),
			Warnings: []string{"PHI-SENTINEL must never be shown"}})
	}
	return d
}

func (s sideSpec) side() *Side {
	env, _ := gitops.ParseDigest(s.envDigest) // "" or a digest
	m := &gitops.Model{Schema: 1, Name: "bone", Artifact: digestID("artifact " + s.ref + s.commit), Trainer: "medcad segment train",
		Run: "20261126T100000Z-" + digest(s.ref + s.commit)[7:15], Commit: s.commit, EnvLock: env, Eval: digestID("eval " + s.ref + s.commit),
		LabelRules: s.rules, Datasets: map[string]cas.ID{}, Params: s.params, Metrics: map[string]float64{}}
	for _, d := range s.datasets {
		m.Datasets[d.Name] = d.Manifest
	}
	side := &Side{Ref: s.ref, Model: m, Eval: evalOf(s.cases), Datasets: s.datasets, CommitSubject: s.subject}
	if s.env != nil {
		side.Env = &gitops.EnvLock{File: "uv.lock", Digest: s.envDigest, Packages: s.env}
	}
	return side
}

var defaultGates = gitops.Promote{
	Gates: []gitops.Gate{
		{Metric: "dice", Stat: "mean", Rule: "no-worse", Tolerance: 0.002},
		{Metric: "hd95", Stat: "p95", Rule: "at-most", Value: 8},
		{Metric: "dice", Stat: "min", Rule: "at-least", Value: 0.7},
	},
	MaxCaseDrop: map[string]float64{"dice": 0.05},
}

// fixtures are the comparisons the golden files hold.
func fixtures() map[string]Input {
	ids := sortedKeysOf(baseCases(24, 1))
	b := baseCases(24, 1)
	envA := []gitops.Package{{Name: "numpy", Version: "1.26.4"}, {Name: "torch", Version: "2.3.0"}, {Name: "nibabel", Version: "5.2.1"}}
	envB := []gitops.Package{{Name: "numpy", Version: "2.0.1"}, {Name: "torch", Version: "2.3.0"}, {Name: "monai", Version: "1.3.2"}}
	batch1 := dataset("2025-09-batch1", "v2", ids[:12]...)
	batch2 := dataset("2025-10-batch2", "v2", ids[12:]...)
	params := map[string]string{"train.epochs": "6", "train.hidden": "16", "train.lr": "0.001"}
	base := sideSpec{ref: "main@1111aaaa2222", rules: "v2", commit: "1111aaaa2222bbbb3333cccc4444dddd5555eeee", subject: "Train on batch 2",
		datasets: []*gitops.Dataset{batch1, batch2}, params: params, env: envA, envDigest: digest("env A"), cases: b}

	improved := base
	improved.ref, improved.commit, improved.subject = WorkTree, "9999ffff8888eeee7777dddd6666cccc5555bbbb", "More epochs, wider hidden layer"
	improved.params = map[string]string{"train.epochs": "12", "train.hidden": "32", "train.lr": "0.001"}
	improved.env, improved.envDigest = envB, digest("env B")
	improved.cases = shifted(b, func(i int) float64 { return 0.004 + 0.003*float64(i%5) - 0.004*float64(i%7/6) })

	regressed := base
	regressed.ref, regressed.commit, regressed.subject = "feature@3333cccc4444", "3333cccc4444dddd5555eeee6666ffff77778888", "Halve the epochs"
	regressed.params = map[string]string{"train.epochs": "3", "train.hidden": "16", "train.lr": "0.001"}
	regressed.cases = shifted(b, func(i int) float64 {
		if i == 3 || i == 17 {
			return -0.12
		}
		return -0.01 - 0.002*float64(i%4)
	})

	first := base
	first.ref = WorkTree

	// Labelling rules v3: the same cases relabelled.
	relabelled := base
	relabelled.ref, relabelled.commit, relabelled.rules = WorkTree, "4444dddd5555eeee6666ffff7777888899990000", "v3"
	relabelled.subject = "Relabel with rules v3"
	relabelled.datasets = []*gitops.Dataset{dataset("2025-09-batch1", "v3", ids[:12]...), dataset("2025-10-batch2", "v3", ids[12:]...)}
	relabelled.cases = shifted(b, func(i int) float64 { return 0.01 * math.Sin(float64(i)) })

	// A dataset removed: batch2's cases are gone.
	removed := base
	removed.ref, removed.commit, removed.subject = WorkTree, "5555eeee6666ffff77778888999900001111aaaa", "Drop batch 2 (scanner recall)"
	removed.datasets = []*gitops.Dataset{batch1}
	removed.cases = map[string]caseVals{}
	for _, id := range ids[:12] {
		removed.cases[id] = b[id]
	}

	tied := base
	tied.ref, tied.commit, tied.subject = WorkTree, "6666ffff77778888999900001111aaaa2222bbbb", "Refactor, no change"

	// A small held-out set: the comparison rests on 4 paired cases.
	few := base
	few.datasets = []*gitops.Dataset{dataset("2025-09-batch1", "v2", ids[:4]...)}
	few.cases = map[string]caseVals{}
	for _, id := range ids[:4] {
		few.cases[id] = b[id]
	}
	fewCand := few
	fewCand.ref, fewCand.commit, fewCand.subject = WorkTree, "7777888899990000aaaabbbbccccddddeeeeffff", "Wider hidden layer"
	fewCand.cases = shifted(few.cases, func(i int) float64 { return 0.003 })

	tiedGates := defaultGates
	tiedGates.Gates = append(append([]gitops.Gate(nil), defaultGates.Gates...), gitops.Gate{Metric: "dice", Stat: "median", Rule: "better", Tolerance: 0})
	return map[string]Input{
		"improvement":     {Base: base.side(), Candidate: improved.side(), Promote: defaultGates},
		"regression":      {Base: base.side(), Candidate: regressed.side(), Promote: defaultGates},
		"first-model":     {Candidate: first.side(), Promote: defaultGates},
		"label-rules":     {Base: base.side(), Candidate: relabelled.side(), Promote: defaultGates},
		"dataset-removed": {Base: base.side(), Candidate: removed.side(), Promote: defaultGates},
		"tied":            {Base: base.side(), Candidate: tied.side(), Promote: tiedGates},
		"few-paired":      {Base: few.side(), Candidate: fewCand.side(), Promote: defaultGates},
	}
}
