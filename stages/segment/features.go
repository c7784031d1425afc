package segment

import (
	"errors"
	"fmt"

	"github.com/medcad/medcad/stages/volume"
)

// box is the working box: the body's bounding box plus a margin, in voxel
// indices of the input volume ([lo, hi) per axis).
type box struct{ lo, hi [3]int }

func (b box) dim() [3]int { return [3]int{b.hi[0] - b.lo[0], b.hi[1] - b.lo[1], b.hi[2] - b.lo[2]} }

// work is a volume cropped to the body, ready for feature extraction.
type work struct {
	g    grid
	box  box
	hu   []float32 // HU in the box; outside the body set to −1000
	body []bool
}

// ErrNoBody means the localizer found no patient in the volume.
var ErrNoBody = errors.New("no body found (nothing above the body threshold)")

// localize finds the body in ct: the largest 6-connected component of
// voxels above loc.BodyMinHU, with holes filled per axial slice. The
// table and anything else outside it become air.
func localize(ct *volume.Volume, loc Localizer) (*work, error) {
	if ct.DType != volume.Int16 && ct.DType != volume.Float32 {
		return nil, fmt.Errorf("CT voxels are %v, want int16 or float32 HU", ct.DType)
	}
	full := grid{dim: ct.Dim, sp: ct.Spacing()}
	mask := make([]bool, full.len())
	parallel(len(mask), func(lo, hi int) {
		for v := lo; v < hi; v++ {
			mask[v] = ct.At(v) > loc.BodyMinHU
		}
	})
	lab, sizes := components(full, mask)
	best := 0
	for id := 1; id < len(sizes); id++ {
		if sizes[id] > sizes[best] {
			best = id
		}
	}
	if best == 0 {
		return nil, ErrNoBody
	}
	b := box{lo: ct.Dim, hi: [3]int{-1, -1, -1}}
	nx, ny := ct.Dim[0], ct.Dim[1]
	for v, l := range lab {
		mask[v] = l == int32(best)
		if mask[v] {
			p := [3]int{v % nx, (v / nx) % ny, v / (nx * ny)}
			for a := range 3 {
				b.lo[a] = min(b.lo[a], p[a])
				b.hi[a] = max(b.hi[a], p[a]+1)
			}
		}
	}
	lab = nil
	m := full.radius(loc.MarginMM)
	for a := range 3 {
		b.lo[a] = max(b.lo[a]-m[a], 0)
		b.hi[a] = min(b.hi[a]+m[a], ct.Dim[a])
	}
	d := b.dim()
	w := &work{g: grid{dim: d, sp: full.sp}, box: b}
	n := w.g.len()
	w.hu = make([]float32, n)
	body := make([]bool, n)
	parallel(d[2], func(lo, hi int) {
		for k := lo; k < hi; k++ {
			for j := range d[1] {
				src := ct.Index(b.lo[0], b.lo[1]+j, b.lo[2]+k)
				dst := (k*d[1] + j) * d[0]
				for i := range d[0] {
					body[dst+i] = mask[src+i]
				}
			}
		}
	})
	w.body = fillSlices(w.g, body)
	parallel(d[2], func(lo, hi int) {
		for k := lo; k < hi; k++ {
			for j := range d[1] {
				src := ct.Index(b.lo[0], b.lo[1]+j, b.lo[2]+k)
				dst := (k*d[1] + j) * d[0]
				for i := range d[0] {
					h := float32(-1000)
					if w.body[dst+i] {
						h = float32(min(max(ct.At(src+i), -1024), 3071))
					}
					w.hu[dst+i] = h
				}
			}
		}
	})
	return w, nil
}

// featureSet is the feature matrix of a work box's candidate voxels.
type featureSet struct {
	idx []int32   // candidate voxel indices in the box
	x   []float32 // len(idx) × nFeatures, row-major
	n   int       // features per row
}

// extract computes the model's features for the candidate voxels of w.
func extract(w *work, f Features) featureSet {
	g := w.g
	base := w.hu
	if r := g.radius(f.BaseRadiusMM); r != [3]int{} {
		base = boxMean(g, w.hu, r)
	}
	ringMask := make([]bool, g.len())
	for v, h := range base {
		ringMask[v] = h > float32(f.RingMinHU)
	}
	ringMask = fillSlices(g, ringMask)
	var fs featureSet
	fs.n = len(f.List)
	for v, in := range w.body {
		if in && (ringMask[v] || base[v] > float32(f.CandidateMinHU)) {
			fs.idx = append(fs.idx, int32(v))
		}
	}
	fs.x = make([]float32, len(fs.idx)*fs.n)
	var ring []float32
	ringMap := func() []float32 {
		if ring == nil {
			ring = make([]float32, len(ringMask))
			for v, in := range ringMask {
				if in {
					ring[v] = 1
				}
			}
		}
		return ring
	}
	// Maps already computed, by feature, so a repeated spec costs nothing.
	var mx, mn []float32
	var mxR float64 = -1
	for c, ft := range f.List {
		var m []float32
		switch ft.Kind {
		case FeatHU:
			m = w.hu
		case FeatMean:
			m = boxMean(g, w.hu, g.radius(ft.RadiusMM))
		case FeatGradient:
			m = gradient(g, base)
		case FeatMax, FeatMin:
			if mxR != ft.RadiusMM {
				mx, mn = extrema(g, base, g.radius(ft.RadiusMM))
				mxR = ft.RadiusMM
			}
			m = mx
			if ft.Kind == FeatMin {
				m = mn
			}
		case FeatRing:
			m = ringMap()
		case FeatRingMean:
			m = boxMean(g, ringMap(), g.radius(ft.RadiusMM))
		}
		for r, v := range fs.idx {
			fs.x[r*fs.n+c] = m[v]
		}
	}
	return fs
}
