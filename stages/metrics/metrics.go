// Package metrics computes segmentation quality metrics between a ground
// truth and a predicted label map: Dice, IoU, Hausdorff distance (HD), its
// 95th percentile (HD95), average symmetric surface distance (ASSD), mean
// average surface distance (MASD) and normalised surface Dice (NSD) at
// tolerances in mm.
//
// Definitions (medcad DESIGN.md §6, Metrics Reloaded / MONAI style):
//
//   - A mask M is the set of voxels with the evaluated label (Options.Label,
//     or any nonzero voxel when it is 0).
//   - Its border ∂M is M XOR its erosion by the 6-connected structuring
//     element; voxels outside the volume count as background, so mask voxels
//     on the volume's faces are border voxels.
//   - d(P→G) is, for every voxel of ∂P, the exact Euclidean distance in mm
//     from its centre to the nearest centre of a voxel of ∂G, using the
//     voxel spacing (anisotropic grids are exact, not resampled); d(G→P)
//     likewise.
//   - HD = max(max d(P→G), max d(G→P)).
//   - HD95 = max(p95 d(P→G), p95 d(G→P)), percentiles with linear
//     interpolation between order statistics, as numpy's default.
//   - ASSD = mean of all directed distances pooled together.
//   - MASD = (mean d(P→G) + mean d(G→P)) / 2.
//   - NSD@τ = (#{d(P→G) ≤ τ} + #{d(G→P) ≤ τ}) / (|∂P| + |∂G|).
//   - Dice = 2|P∩G| / (|P|+|G|), IoU = |P∩G| / |P∪G|, over voxels.
//   - Both masks empty: Dice = IoU = NSD = 1, distances 0, flag "both_empty".
//     One empty: Dice = IoU = NSD = 0, distances +Inf (JSON null), flag
//     "truth_empty" or "pred_empty".
//
// The distance transform is written by hand because no reachable Go library
// offers an exact, anisotropic, parallel Euclidean distance transform: it is
// the separable algorithm of Felzenszwalb and Huttenlocher ("Distance
// Transforms of Sampled Functions", 2012), restricted to the bounding box of
// the two masks (all border voxels lie inside it, so the distances are
// exact), with the first pass along k stored as small integers and the two
// in-plane passes run slice by slice, in parallel, only where distances are
// needed. Peak memory is about 3 bytes per voxel of the bounding box.
package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"

	"github.com/medcad/medcad/stages/volume"
)

// Sentinel errors callers test with errors.Is.
var (
	// ErrNotLabelMap means a volume holds values that are not label values
	// (non-integer, negative, above 255 or NaN).
	ErrNotLabelMap = errors.New("not a label map")
	// ErrLabelAbsent means the requested label occurs in neither volume.
	ErrLabelAbsent = errors.New("label not present")
)

// GridTolerance is how far (in mm, per affine element) truth and
// prediction affines may differ.
const GridTolerance = 1e-3

// Flags set on a Result for the empty-mask policy.
const (
	FlagBothEmpty  = "both_empty"
	FlagTruthEmpty = "truth_empty"
	FlagPredEmpty  = "pred_empty"
)

// Options select what Evaluate measures.
type Options struct {
	// Label is the label value evaluated; 0 means any nonzero voxel.
	Label uint8
	// TolerancesMM are the NSD tolerances τ in mm (≥ 0).
	TolerancesMM []float64
}

// Result holds the metrics of one truth/prediction pair. Distances are in
// mm; an infinite distance (one mask empty) is math.Inf(1) and is written
// as null in JSON.
type Result struct {
	Dice float64
	IoU  float64
	HD   float64
	HD95 float64
	ASSD float64
	MASD float64
	// NSD maps a tolerance, formatted by ToleranceKey, to its NSD.
	NSD         map[string]float64
	TruthVoxels int
	PredVoxels  int
	// TruthBorder and PredBorder are the border voxel counts |∂G|, |∂P|.
	TruthBorder int
	PredBorder  int
	Flags       []string
}

// ToleranceKey formats a tolerance as the NSD map key: the shortest
// decimal that reads back to the same value ("1", "0.5", "2.25").
func ToleranceKey(tau float64) string { return strconv.FormatFloat(tau, 'g', -1, 64) }

// resultJSON is the wire form of Result; distances are pointers so that
// infinities become null.
type resultJSON struct {
	Dice        float64            `json:"dice"`
	IoU         float64            `json:"iou"`
	HD          *float64           `json:"hd_mm"`
	HD95        *float64           `json:"hd95_mm"`
	ASSD        *float64           `json:"assd_mm"`
	MASD        *float64           `json:"masd_mm"`
	NSD         map[string]float64 `json:"nsd"`
	TruthVoxels int                `json:"truth_voxels"`
	PredVoxels  int                `json:"pred_voxels"`
	Flags       []string           `json:"flags"`
}

func finite(x float64) *float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return nil
	}
	return &x
}

func unfinite(p *float64) float64 {
	if p == nil {
		return math.Inf(1)
	}
	return *p
}

// MarshalJSON writes the keys dice, iou, hd_mm, hd95_mm, assd_mm, masd_mm,
// nsd, truth_voxels, pred_voxels and flags; infinite distances are null.
func (r Result) MarshalJSON() ([]byte, error) {
	w := resultJSON{
		Dice: r.Dice, IoU: r.IoU,
		HD: finite(r.HD), HD95: finite(r.HD95), ASSD: finite(r.ASSD), MASD: finite(r.MASD),
		NSD: r.NSD, TruthVoxels: r.TruthVoxels, PredVoxels: r.PredVoxels, Flags: r.Flags,
	}
	if w.NSD == nil {
		w.NSD = map[string]float64{}
	}
	if w.Flags == nil {
		w.Flags = []string{}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes (null distances are +Inf).
func (r *Result) UnmarshalJSON(b []byte) error {
	var w resultJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Result{
		Dice: w.Dice, IoU: w.IoU,
		HD: unfinite(w.HD), HD95: unfinite(w.HD95), ASSD: unfinite(w.ASSD), MASD: unfinite(w.MASD),
		NSD: w.NSD, TruthVoxels: w.TruthVoxels, PredVoxels: w.PredVoxels, Flags: w.Flags,
	}
	return nil
}

// CheckLabelMap returns an error wrapping ErrNotLabelMap unless every voxel
// of v is an integer label in 0..255.
func CheckLabelMap(v *volume.Volume) error {
	if err := v.Check(); err != nil {
		return err
	}
	switch v.DType {
	case volume.Uint8:
		return nil
	case volume.Int16:
		for n, x := range v.I16 {
			if x < 0 || x > 255 {
				return fmt.Errorf("voxel %d holds %d, outside 0..255: %w", n, x, ErrNotLabelMap)
			}
		}
		return nil
	case volume.Float32:
		for n, x := range v.F32 {
			switch {
			case x != x:
				return fmt.Errorf("voxel %d is NaN: %w", n, ErrNotLabelMap)
			case x < 0 || x > 255 || x != float32(math.Trunc(float64(x))):
				return fmt.Errorf("voxel %d holds %g, not an integer label in 0..255: %w", n, x, ErrNotLabelMap)
			}
		}
		return nil
	}
	return fmt.Errorf("voxel type %v: %w", v.DType, ErrNotLabelMap)
}

// Labels returns the sorted nonzero label values present in v, which must
// be a label map (see CheckLabelMap).
func Labels(v *volume.Volume) []uint8 {
	var seen [256]bool
	for _, x := range labelBytes(v) {
		seen[x] = true
	}
	var out []uint8
	for l := 1; l < 256; l++ {
		if seen[l] {
			out = append(out, uint8(l))
		}
	}
	return out
}

// Evaluate computes the metrics of pred against truth for one label. Both
// volumes must be label maps on the same grid (within GridTolerance mm);
// errors wrap volume.ErrShape, ErrNotLabelMap or ErrLabelAbsent.
func Evaluate(ctx context.Context, truth, pred *volume.Volume, opts Options) (Result, error) {
	for _, tau := range opts.TolerancesMM {
		if !(tau >= 0) || math.IsInf(tau, 0) {
			return Result{}, fmt.Errorf("NSD tolerance %v mm: must be a finite number ≥ 0", tau)
		}
	}
	if err := CheckLabelMap(truth); err != nil {
		return Result{}, fmt.Errorf("truth: %w", err)
	}
	if err := CheckLabelMap(pred); err != nil {
		return Result{}, fmt.Errorf("prediction: %w", err)
	}
	if err := volume.SameGrid(truth, pred, GridTolerance); err != nil {
		return Result{}, err
	}
	m, err := newMasks(ctx, truth, pred, opts.Label)
	if err != nil {
		return Result{}, err
	}
	return m.evaluate(ctx, truth.Spacing(), opts.TolerancesMM)
}

// LabelResult is the Result of one label of a multi-label map.
type LabelResult struct {
	Label uint8
	Result
}

// MarshalJSON writes "label" followed by the Result's keys.
func (l LabelResult) MarshalJSON() ([]byte, error) {
	b, err := l.Result.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return append(fmt.Appendf(nil, `{"label":%d,`, l.Label), b[1:]...), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (l *LabelResult) UnmarshalJSON(b []byte) error {
	var head struct {
		Label uint8 `json:"label"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	l.Label = head.Label
	return l.Result.UnmarshalJSON(b)
}

// EvaluateLabels evaluates every nonzero label present in truth or pred,
// in increasing label order.
func EvaluateLabels(ctx context.Context, truth, pred *volume.Volume, opts Options) ([]LabelResult, error) {
	if err := CheckLabelMap(truth); err != nil {
		return nil, fmt.Errorf("truth: %w", err)
	}
	if err := CheckLabelMap(pred); err != nil {
		return nil, fmt.Errorf("prediction: %w", err)
	}
	labels := slices.Concat(Labels(truth), Labels(pred))
	slices.Sort(labels)
	labels = slices.Compact(labels)
	out := make([]LabelResult, 0, len(labels))
	for _, l := range labels {
		o := opts
		o.Label = l
		r, err := Evaluate(ctx, truth, pred, o)
		if err != nil {
			return nil, fmt.Errorf("label %d: %w", l, err)
		}
		out = append(out, LabelResult{Label: l, Result: r})
	}
	return out, nil
}

// Mask bits in masks.flag.
const (
	inTruth = 1 << iota // voxel in G
	inPred              // voxel in P
	bdTruth             // voxel in ∂G
	bdPred              // voxel in ∂P
)

// masks holds both masks cropped to the bounding box of their union.
type masks struct {
	dim                 [3]int // bounding box size
	flag                []uint8
	nTruth, nPred, nAnd int
	nBdTruth, nBdPred   int
}

// labelBytes returns v's voxels as label bytes (v must be a label map):
// the data itself for Uint8, a converted copy otherwise.
func labelBytes(v *volume.Volume) []uint8 {
	if v.DType == volume.Uint8 {
		return v.U8
	}
	b := make([]uint8, v.Len())
	for n := range b {
		b[n] = uint8(v.At(n))
	}
	return b
}

// sliceStats are the voxel counts and in-plane bounding box of one slice.
type sliceStats struct {
	nTruth, nPred, nAnd int
	lo, hi              [2]int
}

func newMasks(ctx context.Context, truth, pred *volume.Volume, label uint8) (*masks, error) {
	tb, pb := labelBytes(truth), labelBytes(pred)
	// lut[x] has inTruth when label value x is in the mask; inPred is the
	// same bit shifted.
	var lut [256]uint8
	for x := range lut {
		if (label == 0 && x != 0) || (label != 0 && x == int(label)) {
			lut[x] = inTruth
		}
	}
	d := truth.Dim
	plane := d[0] * d[1]
	stats := make([]sliceStats, d[2])
	err := forEach(ctx, d[2], runtime.GOMAXPROCS(0), func(_, k int) {
		st := sliceStats{lo: [2]int{d[0], d[1]}, hi: [2]int{-1, -1}}
		n := k * plane
		for j := range d[1] {
			for i := range d[0] {
				f := lut[tb[n]] | lut[pb[n]]<<1
				n++
				if f == 0 {
					continue
				}
				st.nTruth += int(f & inTruth)
				st.nPred += int(f >> 1)
				st.nAnd += int(f>>1) & int(f)
				st.lo = [2]int{min(st.lo[0], i), min(st.lo[1], j)}
				st.hi = [2]int{max(st.hi[0], i), max(st.hi[1], j)}
			}
		}
		stats[k] = st
	})
	if err != nil {
		return nil, err
	}
	m := &masks{}
	lo := [3]int{d[0], d[1], d[2]}
	hi := [3]int{-1, -1, -1}
	for k, st := range stats {
		m.nTruth += st.nTruth
		m.nPred += st.nPred
		m.nAnd += st.nAnd
		if st.hi[0] >= 0 {
			lo = [3]int{min(lo[0], st.lo[0]), min(lo[1], st.lo[1]), min(lo[2], k)}
			hi = [3]int{max(hi[0], st.hi[0]), max(hi[1], st.hi[1]), max(hi[2], k)}
		}
	}
	if m.nTruth == 0 && m.nPred == 0 {
		if label != 0 {
			return nil, fmt.Errorf("label %d: %w in truth or prediction", label, ErrLabelAbsent)
		}
		return m, nil
	}
	m.dim = [3]int{hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1}
	m.flag = make([]uint8, m.dim[0]*m.dim[1]*m.dim[2])
	bplane := m.dim[0] * m.dim[1]
	err = forEach(ctx, m.dim[2], runtime.GOMAXPROCS(0), func(_, kb int) {
		b := kb * bplane
		for j := lo[1]; j <= hi[1]; j++ {
			src := truth.Index(lo[0], j, lo[2]+kb)
			for i := range m.dim[0] {
				m.flag[b] = lut[tb[src+i]] | lut[pb[src+i]]<<1
				b++
			}
		}
	})
	if err != nil {
		return nil, err
	}
	bt := markBorder(ctx, m.flag, m.dim, inTruth, bdTruth)
	bp := markBorder(ctx, m.flag, m.dim, inPred, bdPred)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.nBdTruth, m.nBdPred = bt, bp
	return m, nil
}

// markBorder sets bit bd on every voxel with bit in that has a 6-neighbour
// without it (outside the box counts as without), and returns their count.
// Slices are done in parallel, even slices first, then odd ones: a slice
// writes its own bytes and reads its neighbours', which are then idle.
func markBorder(ctx context.Context, flag []uint8, dim [3]int, in, bd uint8) int {
	nx, ny, nz := dim[0], dim[1], dim[2]
	sy, sz := nx, nx*ny
	counts := make([]int, nz)
	slice := func(k int) {
		count := 0
		n := k * sz
		for j := range ny {
			for i := range nx {
				if flag[n]&in != 0 {
					if i == 0 || i == nx-1 || j == 0 || j == ny-1 || k == 0 || k == nz-1 ||
						flag[n-1]&in == 0 || flag[n+1]&in == 0 ||
						flag[n-sy]&in == 0 || flag[n+sy]&in == 0 ||
						flag[n-sz]&in == 0 || flag[n+sz]&in == 0 {
						flag[n] |= bd
						count++
					}
				}
				n++
			}
		}
		counts[k] = count
	}
	for parity := range 2 {
		_ = forEach(ctx, (nz+1-parity)/2, runtime.GOMAXPROCS(0), func(_, h int) { slice(2*h + parity) })
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	return total
}

func (m *masks) evaluate(ctx context.Context, spacing [3]float64, taus []float64) (Result, error) {
	r := Result{TruthVoxels: m.nTruth, PredVoxels: m.nPred, TruthBorder: m.nBdTruth, PredBorder: m.nBdPred, NSD: map[string]float64{}}
	switch {
	case m.nTruth == 0 && m.nPred == 0:
		r.Dice, r.IoU = 1, 1
		for _, tau := range taus {
			r.NSD[ToleranceKey(tau)] = 1
		}
		r.Flags = []string{FlagBothEmpty}
		return r, nil
	case m.nTruth == 0 || m.nPred == 0:
		inf := math.Inf(1)
		r.HD, r.HD95, r.ASSD, r.MASD = inf, inf, inf, inf
		for _, tau := range taus {
			r.NSD[ToleranceKey(tau)] = 0
		}
		if m.nTruth == 0 {
			r.Flags = []string{FlagTruthEmpty}
		} else {
			r.Flags = []string{FlagPredEmpty}
		}
		return r, nil
	}
	r.Dice = 2 * float64(m.nAnd) / float64(m.nTruth+m.nPred)
	r.IoU = float64(m.nAnd) / float64(m.nTruth+m.nPred-m.nAnd)

	dk := make([]uint16, len(m.flag))
	dPG, err := directed(ctx, m.flag, m.dim, spacing, bdTruth, bdPred, m.nBdPred, dk)
	if err != nil {
		return Result{}, err
	}
	dGP, err := directed(ctx, m.flag, m.dim, spacing, bdPred, bdTruth, m.nBdTruth, dk)
	if err != nil {
		return Result{}, err
	}
	sPG, sGP := summarise(dPG, taus), summarise(dGP, taus)
	r.HD = max(sPG.max, sGP.max)
	r.HD95 = max(Percentile(dPG, 95), Percentile(dGP, 95))
	r.ASSD = (sPG.sum + sGP.sum) / float64(len(dPG)+len(dGP))
	r.MASD = (sPG.sum/float64(len(dPG)) + sGP.sum/float64(len(dGP))) / 2
	for t, tau := range taus {
		r.NSD[ToleranceKey(tau)] = float64(sPG.within[t]+sGP.within[t]) / float64(len(dPG)+len(dGP))
	}
	return r, nil
}

type dirStats struct {
	max, sum float64
	within   []int
}

func summarise(d []float64, taus []float64) dirStats {
	s := dirStats{within: make([]int, len(taus))}
	for _, x := range d {
		s.max = max(s.max, x)
		s.sum += x
		for t, tau := range taus {
			if x <= tau {
				s.within[t]++
			}
		}
	}
	return s
}

// Percentile returns the q-th percentile (0 ≤ q ≤ 100) of x with linear
// interpolation between order statistics, as numpy.percentile's default
// method. It reorders x. It returns NaN for an empty x.
func Percentile(x []float64, q float64) float64 {
	n := len(x)
	if n == 0 {
		return math.NaN()
	}
	v := (float64(n) - 1) * (q / 100)
	lo := int(math.Floor(v))
	lo = min(max(lo, 0), n-1)
	hi := min(lo+1, n-1)
	g := v - float64(lo)
	a := selectKth(x, lo)
	if hi == lo || g == 0 {
		return a
	}
	// After selectKth, x[lo+1:] holds the larger elements; the next order
	// statistic is their minimum.
	b := slices.Min(x[lo+1:])
	// numpy's _lerp: a + (b-a)·g, computed from b when g ≥ 0.5.
	if g >= 0.5 {
		return b - (b-a)*(1-g)
	}
	return a + (b-a)*g
}

// selectKth partially orders x so that x[k] is its k-th smallest element,
// smaller or equal elements before it and larger or equal after, and
// returns x[k] (Hoare's quickselect with median-of-three pivots).
func selectKth(x []float64, k int) float64 {
	lo, hi := 0, len(x)-1
	for hi > lo {
		if hi-lo < 16 {
			slices.Sort(x[lo : hi+1])
			break
		}
		mid := lo + (hi-lo)/2
		if x[mid] < x[lo] {
			x[mid], x[lo] = x[lo], x[mid]
		}
		if x[hi] < x[lo] {
			x[hi], x[lo] = x[lo], x[hi]
		}
		if x[hi] < x[mid] {
			x[hi], x[mid] = x[mid], x[hi]
		}
		p := x[mid]
		i, j := lo, hi
		for i <= j {
			for x[i] < p {
				i++
			}
			for x[j] > p {
				j--
			}
			if i <= j {
				x[i], x[j] = x[j], x[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return x[k]
		}
	}
	return x[k]
}

// Version is the version of the metric definitions and the eval.json they
// are written in; cache keys of stages that evaluate depend on it.
const Version = "1"
