package segment

import (
	"errors"
	"fmt"
	"math"

	"github.com/medcad/medcad/stages/volume"
)

// box is the working box: the body's bounding box plus a margin, in voxel
// indices of the input volume ([lo, hi) per axis).
type box struct{ lo, hi [3]int }

func (b box) dim() [3]int { return [3]int{b.hi[0] - b.lo[0], b.hi[1] - b.lo[1], b.hi[2] - b.lo[2]} }

// work is the body's working box in a CT volume.
type work struct {
	ct   *volume.Volume
	g    grid // the box
	box  box
	body []bool // body mask in the box
}

// ErrNoBody means the localizer found no patient in the volume.
var ErrNoBody = errors.New("no body found (nothing above the body threshold)")

// localize finds the body in ct: the largest 6-connected component of
// voxels above loc.BodyMinHU, with holes filled per axial slice. The
// table and anything else outside it are not body.
func localize(ct *volume.Volume, loc Localizer) (*work, error) {
	if ct.DType != volume.Int16 && ct.DType != volume.Float32 {
		return nil, fmt.Errorf("CT voxels are %v, want int16 or float32 HU", ct.DType)
	}
	full := grid{dim: ct.Dim, sp: ct.Spacing()}
	mask := make([]bool, full.len())
	parallel(len(mask), func(lo, hi int) {
		if ct.DType == volume.Int16 {
			t := loc.BodyMinHU
			for v, h := range ct.I16[lo:hi] {
				mask[lo+v] = float64(h) > t
			}
			return
		}
		for v := lo; v < hi; v++ {
			mask[v] = ct.At(v) > loc.BodyMinHU
		}
	})
	c := components(full, mask)
	best := c.largest()
	if best < 0 {
		return nil, ErrNoBody
	}
	clear(mask)
	c.paint(mask, func(r int32) bool { return r == best })
	b := box{lo: ct.Dim, hi: [3]int{-1, -1, -1}}
	ny := ct.Dim[1]
	for i := range c.x0 {
		if c.find(int32(i)) != best {
			continue
		}
		j, k := int(c.row[i])%ny, int(c.row[i])/ny
		b.lo = [3]int{min(b.lo[0], int(c.x0[i])), min(b.lo[1], j), min(b.lo[2], k)}
		b.hi = [3]int{max(b.hi[0], int(c.x1[i])), max(b.hi[1], j+1), max(b.hi[2], k+1)}
	}

	m := full.radius(loc.MarginMM)
	for a := range 3 {
		b.lo[a] = max(b.lo[a]-m[a], 0)
		b.hi[a] = min(b.hi[a]+m[a], ct.Dim[a])
	}
	d := b.dim()
	w := &work{ct: ct, g: grid{dim: d, sp: full.sp}, box: b}
	body := make([]bool, w.g.len())
	parallel(d[2], func(lo, hi int) {
		for k := lo; k < hi; k++ {
			for j := range d[1] {
				src := ct.Index(b.lo[0], b.lo[1]+j, b.lo[2]+k)
				copy(body[(k*d[1]+j)*d[0]:(k*d[1]+j+1)*d[0]], mask[src:src+d[0]])
			}
		}
	})
	mask = nil
	w.body = fillSlices(w.g, body)
	return w, nil
}

// slabHU returns the HU of box slices [k0, k1), −1000 outside the body,
// clipped to [−1024, 3071].
func (w *work) slabHU(k0, k1 int, p *pool) []float32 {
	d := w.g.dim
	out := p.get(d[0] * d[1] * (k1 - k0))
	parallel(k1-k0, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			for j := range d[1] {
				src := w.ct.Index(w.box.lo[0], w.box.lo[1]+j, w.box.lo[2]+k0+k)
				dst := (k*d[1] + j) * d[0]
				bv := ((k0+k)*d[1] + j) * d[0]
				body := w.body[bv : bv+d[0]]
				o := out[dst : dst+d[0]]
				if w.ct.DType == volume.Int16 {
					for i, h := range w.ct.I16[src : src+d[0]] {
						o[i] = -1000
						if body[i] {
							o[i] = float32(min(max(h, -1024), 3071))
						}
					}
					continue
				}
				for i := range o {
					o[i] = -1000
					if body[i] {
						o[i] = float32(min(max(w.ct.At(src+i), -1024), 3071))
					}
				}
			}
		}
	})
	return out
}

// featureSet holds the features of the candidate voxels of a box, in
// chunks (one per slab of slices).
type featureSet struct {
	n      int // features per row
	chunks []chunk
}

type chunk struct {
	idx []int32   // candidate voxel indices in the box
	x   []float32 // len(idx) × n, row-major
}

func (fs featureSet) rows() int {
	n := 0
	for _, c := range fs.chunks {
		n += len(c.idx)
	}
	return n
}

// slabSlices is how many slices extract works on at once (plus halos).
const slabSlices = 32

// extract computes the features for the candidate voxels of w, slab by
// slab: each slab is padded with enough slices on both sides (the halo)
// that every filter chain sees the same neighbourhood as on the whole
// volume, so the result does not depend on the slab size.
func extract(w *work, f Features) featureSet { return extractSlabs(w, f, slabSlices) }

func extractSlabs(w *work, f Features, slices int) featureSet {
	g := w.g
	halo := g.radius(f.BaseRadiusMM)[2] + 1
	for _, ft := range f.List {
		r := g.radius(ft.RadiusMM)[2]
		switch ft.Kind {
		case FeatMax, FeatMin:
			r += g.radius(f.BaseRadiusMM)[2]
		case FeatOutward, FeatOutwardMean:
			// the sample point, its interpolation neighbour, the gradient's
			// neighbour slice and the base mean under both
			r = int(math.Ceil(ft.RadiusMM/g.sp[2])) + 2 + g.radius(f.BaseRadiusMM)[2]
		}
		halo = max(halo, r)
	}
	fs := featureSet{n: len(f.List)}
	nz := g.dim[2]
	p := &pool{}
	for z0 := 0; z0 < nz; z0 += slices {
		z1 := min(z0+slices, nz)
		h0, h1 := max(z0-halo, 0), min(z1+halo, nz)
		sg := grid{dim: [3]int{g.dim[0], g.dim[1], h1 - h0}, sp: g.sp}
		fs.chunks = append(fs.chunks, extractSlab(w, f, slab{filters{sg, p}, h0, z0, z1}))
	}
	return fs
}

// slab is a run of box slices [h0, h0+dim[2]) (core plus halos), of which
// the core [z0, z1) keeps its candidates.
type slab struct {
	filters
	h0, z0, z1 int
}

// extractSlab computes the features of one slab.
func extractSlab(w *work, f Features, sl slab) chunk {
	sg, p, h0, z0, z1 := sl.g, sl.p, sl.h0, sl.z0, sl.z1
	hu := w.slabHU(h0, h0+sg.dim[2], p)
	base := hu
	baseR := sg.radius(f.BaseRadiusMM)
	if baseR != [3]int{} {
		base = sl.mean(hu, baseR)
	}
	ringMask := make([]bool, sg.len())
	for v, h := range base {
		ringMask[v] = h > float32(f.RingMinHU)
	}
	ringMask = fillHoles(sg, ringMask, sg.area(f.MaxHoleMM2))
	plane := sg.dim[0] * sg.dim[1]
	lo, hi := (z0-h0)*plane, (z1-h0)*plane
	bodyOff := h0 * plane
	var local []int32 // candidate indices in the slab
	for v := lo; v < hi; v++ {
		if w.body[bodyOff+v] && (ringMask[v] || base[v] > float32(f.CandidateMinHU) || hu[v] > float32(f.CandidateMinHU)) {
			local = append(local, int32(v))
		}
	}
	n := len(f.List)
	c := chunk{idx: make([]int32, len(local)), x: make([]float32, len(local)*n)}
	for r, v := range local {
		c.idx[r] = v + int32(bodyOff)
	}
	var ring []float32
	ringMap := func() []float32 {
		if ring == nil {
			ring = p.get(len(ringMask))
			for v, in := range ringMask {
				ring[v] = 0
				if in {
					ring[v] = 1
				}
			}
		}
		return ring
	}
	for col, ft := range f.List {
		var m []float32
		owned := true // m is a temporary map, returned to the pool
		switch ft.Kind {
		case FeatHU:
			m, owned = hu, false
		case FeatMean:
			if r := sg.radius(ft.RadiusMM); r == baseR {
				m, owned = base, false
			} else {
				m = sl.mean(hu, r)
			}
		case FeatGradient:
			m = sl.gradient(base)
		case FeatMax:
			m = sl.extreme(base, sg.radius(ft.RadiusMM), true)
		case FeatMin:
			m = sl.extreme(base, sg.radius(ft.RadiusMM), false)
		case FeatRing:
			m, owned = ringMap(), false
		case FeatRingMean:
			m = sl.mean(ringMap(), sg.radius(ft.RadiusMM))
		case FeatStd:
			m = sl.std(hu, sg.radius(ft.RadiusMM))
		case FeatOutward, FeatOutwardMean:
			src := hu
			if ft.Kind == FeatOutwardMean {
				src = base
			}
			outward(sg, base, src, local, ft.RadiusMM, c.x[col:], n)
			continue
		}
		for r, v := range local {
			c.x[r*n+col] = m[v]
		}
		if owned {
			p.put(m)
		}
	}
	p.put(hu)
	if &base[0] != &hu[0] {
		p.put(base)
	}
	if ring != nil {
		p.put(ring)
	}
	return c
}

// outward writes, for each voxel v of local, the value of src d mm from v
// down the gradient of base (central differences), trilinearly
// interpolated and clamped to the grid, to out[r*stride]; where base is
// flat, src at v itself.
func outward(g grid, base, src []float32, local []int32, d float64, out []float32, stride int) {
	nx, ny, nz := g.dim[0], g.dim[1], g.dim[2]
	index := func(i, j, k int) int {
		return (min(max(k, 0), nz-1)*ny+min(max(j, 0), ny-1))*nx + min(max(i, 0), nx-1)
	}
	// slope is the derivative of base along an axis in HU/mm, 0 across a
	// single slice.
	slope := func(a, b int, n int, sp float64) float64 {
		if n < 2 {
			return 0
		}
		return float64(base[b]-base[a]) / (2 * sp)
	}
	parallel(len(local), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			v := int(local[r])
			i, j, k := v%nx, (v/nx)%ny, v/(nx*ny)
			gx := slope(index(i-1, j, k), index(i+1, j, k), nx, g.sp[0])
			gy := slope(index(i, j-1, k), index(i, j+1, k), ny, g.sp[1])
			gz := slope(index(i, j, k-1), index(i, j, k+1), nz, g.sp[2])
			norm := math.Sqrt(gx*gx + gy*gy + gz*gz)
			if norm < 1e-6 {
				out[r*stride] = src[v]
				continue
			}
			s := -d / norm
			x, y, z := float64(i)+s*gx/g.sp[0], float64(j)+s*gy/g.sp[1], float64(k)+s*gz/g.sp[2]
			x0, y0, z0 := math.Floor(x), math.Floor(y), math.Floor(z)
			fx, fy, fz := float32(x-x0), float32(y-y0), float32(z-z0)
			a, b, c := int(x0), int(y0), int(z0)
			row := func(b, c int) float32 { return src[index(a, b, c)]*(1-fx) + src[index(a+1, b, c)]*fx }
			plane := func(c int) float32 { return row(b, c)*(1-fy) + row(b+1, c)*fy }
			out[r*stride] = plane(c)*(1-fz) + plane(c+1)*fz
		}
	})
}
