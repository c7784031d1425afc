// Package phantom generates synthetic CT volumes of a body section with
// known ground-truth bone labels, so that medcad's whole lifecycle (ingest,
// train, evaluate, report) runs without patient data.
//
// Everything here is written by hand: no library draws anatomy. A case is
// rendered from a handful of analytic shapes (body ellipse with skin, fat
// and muscle; long bones with a cortical shell, trabecular ring and
// medullary canal; a flat pelvis-like plate; thin skull-like plates with
// two cortical tables around diploë and air cells; stacked vertebral
// bodies with discs) plus the confounders a plain HU threshold gets wrong
// (contrast-filled vessels, calcified plaques, osteoporotic bone, the table
// under the body, an optional metal implant with streaks). Voxels on a
// boundary average 16 points of their footprint (partial volume: a
// surface counts where it lies inside the voxel, and a cortex thinner
// than the slice spacing is not lost between voxel centres); the volume is
// then blurred (the scanner's point spread) and given correlated Gaussian
// noise. Labels follow partial volume (see LabelExcessHU), computed from
// the same voxel footprints as the image, with the anatomy's HU: streaks
// never move a label.
//
// Output is deterministic: the same Options and case index always give
// byte-identical volumes. All randomness comes from PCG generators seeded
// from (seed, case, slice); parallel rendering writes disjoint slices.
package phantom

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/medcad/medcad/stages/volume"
)

// Size selects the volume size of generated cases.
type Size string

// Sizes: Small is about 96×96×64 voxels (fast tests), Full about
// 512×512×300 (a real CT series).
const (
	Small Size = "small"
	Full  Size = "full"
)

// Label rules: which voxels the label calls bone.
const (
	RulesV1 = "v1" // cortical bone only
	RulesV2 = "v2" // whole bone: cortex, trabecular bone and medullary canal
)

// ErrOptions means the generator options are invalid.
var ErrOptions = errors.New("invalid phantom options")

// Options configure the generator.
type Options struct {
	Seed       uint64
	Size       Size   // Small (default) or Full
	LabelRules string // RulesV1 or RulesV2 (default)
}

func (o Options) normalized() (Options, error) {
	if o.Size == "" {
		o.Size = Small
	}
	if o.LabelRules == "" {
		o.LabelRules = RulesV2
	}
	if o.Size != Small && o.Size != Full {
		return o, fmt.Errorf("size %q (want small or full): %w", o.Size, ErrOptions)
	}
	if o.LabelRules != RulesV1 && o.LabelRules != RulesV2 {
		return o, fmt.Errorf("label rules %q (want v1 or v2): %w", o.LabelRules, ErrOptions)
	}
	return o, nil
}

// LabelExcessHU is how far above soft tissue bone must raise a
// partial-volume voxel for the label to call it bone: the clinical bone
// window starts at 226 HU, about 180 HU above soft tissue.
const LabelExcessHU = 180

// Tissue is the ground-truth class of a voxel centre.
type Tissue uint8

// Tissues, in no particular order. Only Cortical (v1) or Cortical,
// Trabecular and Canal (v2) are bone in the labels.
const (
	Air Tissue = iota
	Fat
	Muscle
	Skin
	Cortical
	Trabecular
	Canal
	Disc
	Vessel
	Plaque
	Table
	Metal
	numTissues
)

var tissueNames = [numTissues]string{"air", "fat", "muscle", "skin", "cortical", "trabecular", "canal", "disc", "vessel", "plaque", "table", "metal"}

func (t Tissue) String() string {
	if t < numTissues {
		return tissueNames[t]
	}
	return fmt.Sprintf("tissue(%d)", int(t))
}

// IsBone reports whether rules label tissue t as bone.
func IsBone(t Tissue, rules string) bool {
	if rules == RulesV1 {
		return t == Cortical
	}
	return t == Cortical || t == Trabecular || t == Canal
}

// Case is one generated CT with its ground truth.
type Case struct {
	ID     string         // e.g. "phantom_003"
	Seed   uint64         // the series seed and
	Index  int            // case index it was generated from
	CT     *volume.Volume // int16 Hounsfield units
	Label  *volume.Volume // uint8: 1 bone, 0 background, per the label rules
	Tissue *volume.Volume // uint8 Tissue at each voxel centre (before blur and noise)
	Facts  Facts
}

// Facts describe the random choices of a case, for tests and reports.
type Facts struct {
	Rules        string
	Osteoporotic bool
	Metal        bool
	NoiseHU      float64 // noise standard deviation
	Spacing      [3]float64
	BitsStored   int // 12 or 16, for DICOM output
	Patient      Patient
}

// Patient is the fake identity written into DICOM headers so that
// de-identification has work to do. Never real.
type Patient struct {
	Name, ID, BirthDate, Sex, Institution, Referrer, StudyDate, StudyTime, Accession string
}

// CaseID names case i.
func CaseID(i int) string { return fmt.Sprintf("phantom_%03d", i) }

// Generate renders case index i of the series described by opts.
func Generate(ctx context.Context, opts Options, i int) (*Case, error) {
	opts, err := opts.normalized()
	if err != nil {
		return nil, err
	}
	if i < 0 {
		return nil, fmt.Errorf("case index %d: %w", i, ErrOptions)
	}
	sc := newScene(opts, i)
	n := sc.dim[0] * sc.dim[1] * sc.dim[2]
	tis := make([]uint8, n)
	if err := parallelSlices(ctx, sc.dim[2], func(k int) { sc.classifySlice(k, tis) }); err != nil {
		return nil, err
	}
	// Labels follow partial volume: a voxel is bone when it is mostly bone
	// (its bone fraction, blurred like the image, reaches ½) or when bone
	// raises it at least LabelExcessHU above soft tissue (the bone's excess
	// over muscle, blurred like the image), as a clinical bone window does
	// at a bone's surface.
	hu := make([]float32, n)
	frac := make([]float32, n)
	excess := make([]float32, n)
	if err := parallelSlices(ctx, sc.dim[2], func(k int) { sc.shadeSlice(k, tis, opts.LabelRules, hu, frac, excess) }); err != nil {
		return nil, err
	}
	blur(ctx, hu, sc.dim, sc.blurVox)
	blur(ctx, frac, sc.dim, sc.blurVox)
	blur(ctx, excess, sc.dim, sc.blurVox)
	ct := volume.New(volume.Int16, sc.dim, sc.affine)
	if err := parallelSlices(ctx, sc.dim[2], func(k int) { sc.noiseSlice(k, hu, ct.I16) }); err != nil {
		return nil, err
	}
	lab := volume.New(volume.Uint8, sc.dim, sc.affine)
	for v := range frac {
		if frac[v] >= 0.5 || excess[v] >= LabelExcessHU {
			lab.U8[v] = 1
		}
	}
	tv := volume.New(volume.Uint8, sc.dim, sc.affine)
	tv.U8 = tis
	return &Case{ID: CaseID(i), Seed: opts.Seed, Index: i, CT: ct, Label: lab, Tissue: tv, Facts: sc.facts}, nil
}

// parallelSlices runs f for k in [0, n) on all CPUs; each k is done once.
func parallelSlices(ctx context.Context, n int, f func(k int)) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				f(k)
			}
		}()
	}
	var err error
	for k := range n {
		if err = ctx.Err(); err != nil {
			break
		}
		next <- k
	}
	close(next)
	wg.Wait()
	return err
}

// rng returns a PCG generator for a purpose, independent of all others.
func rng(seed uint64, caseIdx int, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, uint64(caseIdx)<<20^stream))
}

func uniform(r *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }
