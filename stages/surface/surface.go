// Package surface turns volumes into triangle meshes: marching cubes on a
// label map (the surface of the voxels with one label) or on an intensity
// volume at an iso value (e.g. bone at 300 HU), with vertices in patient
// RAS+ millimetres, outward winding and no cracks; mesh statistics; Taubin
// smoothing; and STL encoding and decoding.
//
// Written by hand because no reachable Go library extracts surfaces from
// medcad volumes. The case table is derived from a rule at run time (see
// table.go) rather than copied, which also makes every mesh of a closed
// region watertight: every edge borders exactly two triangles, traversed
// in opposite directions. The volume is treated as surrounded by one layer
// of outside voxels, so regions touching the volume's faces are closed
// too. Label surfaces put vertices half way between voxel centres, so a
// box of voxels gives exactly the box's volume; iso surfaces interpolate
// linearly.
package surface

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/medcad/medcad/stages/volume"
)

// ErrEmpty means the requested region has no voxel, so there is no surface.
var ErrEmpty = errors.New("empty region: no surface")

// Mesh is an indexed triangle mesh. Triangles are wound counter-clockwise
// seen from outside, so normals point out of the region.
type Mesh struct {
	Vertices  [][3]float32 // RAS+ mm
	Triangles [][3]uint32  // indices into Vertices
}

// Options choose the region whose surface is extracted.
type Options struct {
	// Label selects the voxels of a label map with this value; 0 means
	// every nonzero voxel. Ignored when Iso is set.
	Label uint8
	// Iso, when not nil, extracts the surface where the intensity crosses
	// *Iso; voxels above it are inside.
	Iso *float64
}

// Extract runs marching cubes on v. For a label map (Iso nil) v must hold
// integer values; the mesh encloses the selected voxels. It returns
// ErrEmpty when no voxel is inside.
func Extract(ctx context.Context, v *volume.Volume, opts Options) (*Mesh, error) {
	if err := v.Check(); err != nil {
		return nil, err
	}
	table, err := newCaseTable()
	if err != nil {
		return nil, err
	}
	x := &extractor{v: v, table: table, opts: opts, flip: det3(v.Affine) < 0}
	x.X, x.Y, x.Z = v.Dim[0]+2, v.Dim[1]+2, v.Dim[2]+2
	if opts.Iso != nil {
		if math.IsNaN(*opts.Iso) || math.IsInf(*opts.Iso, 0) {
			return nil, fmt.Errorf("iso value %v: want a finite number", *opts.Iso)
		}
	}
	if err := checkValues(v, opts.Iso == nil); err != nil {
		return nil, err
	}
	return x.run(ctx)
}

// checkValues rejects NaN and infinite voxels, and, for a label map,
// values that are not integer labels 0..255.
func checkValues(v *volume.Volume, label bool) error {
	const hint = "not a label map (give an iso value for intensities)"
	switch {
	case v.DType == volume.Float32:
		for n, f := range v.F32 {
			x := float64(f)
			switch {
			case math.IsNaN(x) || math.IsInf(x, 0):
				return fmt.Errorf("voxel %d is %v", n, x)
			case label && (x != math.Trunc(x) || x < 0 || x > 255):
				return fmt.Errorf("voxel %d holds %g: %s", n, x, hint)
			}
		}
	case v.DType == volume.Int16 && label:
		for n, x := range v.I16 {
			if x < 0 || x > 255 {
				return fmt.Errorf("voxel %d holds %d: %s", n, x, hint)
			}
		}
	}
	return nil
}

func det3(a volume.Affine) float64 {
	return a[0][0]*(a[1][1]*a[2][2]-a[1][2]*a[2][1]) -
		a[0][1]*(a[1][0]*a[2][2]-a[1][2]*a[2][0]) +
		a[0][2]*(a[1][0]*a[2][1]-a[1][1]*a[2][0])
}

// extractor works on the padded grid: point (i, j, k) with 0 ≤ i < X is
// voxel (i−1, j−1, k−1); the outer layer is outside.
type extractor struct {
	v       *volume.Volume
	table   *caseTable
	opts    Options
	flip    bool
	X, Y, Z int
}

// plane is one padded z plane: inside flags, values (iso mode), the range
// of inside points of each row, and the vertex numbers of the edges it
// owns.
type plane struct {
	in     []uint8
	val    []float32 // iso mode: voxel values, −Inf in the padding
	lo, hi []int     // row j has inside points only in [lo[j], hi[j]] (none if lo > hi)
	idx    []uint32  // x edges (i,j)→(i+1,j): [j*X+i]
	idy    []uint32  // y edges (i,j)→(i,j+1): [j*X+i]
	idz    []uint32  // z edges (i,j,k)→(i,j,k+1): [j*X+i]
}

// Vertex numbers: remote marks a vertex of the first plane of the next
// slab, numbered from 0 there.
const remote = 1 << 31

func (x *extractor) newPlane() *plane {
	n := x.X * x.Y
	p := &plane{in: make([]uint8, n), lo: make([]int, x.Y), hi: make([]int, x.Y),
		idx: make([]uint32, n), idy: make([]uint32, n), idz: make([]uint32, n)}
	if x.opts.Iso != nil {
		p.val = make([]float32, n)
	}
	return p
}

// fill computes the inside flags, values and row ranges of padded plane k.
func (x *extractor) fill(p *plane, k int) {
	X := x.X
	clear(p.in)
	for j := range x.Y {
		p.lo[j], p.hi[j] = X, -1
	}
	if p.val != nil {
		neg := float32(math.Inf(-1))
		for i := range p.val {
			p.val[i] = neg
		}
	}
	if k == 0 || k == x.Z-1 {
		return
	}
	v := x.v
	nx := v.Dim[0]
	label := x.opts.Label
	var lut [256]uint8
	for l := range lut {
		if (label == 0 && l != 0) || (label != 0 && l == int(label)) {
			lut[l] = 1
		}
	}
	for j := 1; j < x.Y-1; j++ {
		src := v.Index(0, j-1, k-1)
		dst := j*X + 1
		in := p.in[dst : dst+nx]
		switch {
		case x.opts.Iso != nil:
			iso := *x.opts.Iso
			val := p.val[dst : dst+nx]
			switch v.DType {
			case volume.Int16:
				for i, f := range v.I16[src : src+nx] {
					val[i] = float32(f)
					in[i] = b2u(float64(f) > iso)
				}
			case volume.Uint8:
				for i, f := range v.U8[src : src+nx] {
					val[i] = float32(f)
					in[i] = b2u(float64(f) > iso)
				}
			default:
				for i, f := range v.F32[src : src+nx] {
					val[i] = f
					in[i] = b2u(float64(f) > iso)
				}
			}
		case v.DType == volume.Uint8:
			for i, l := range v.U8[src : src+nx] {
				in[i] = lut[l]
			}
		default:
			for i := range nx {
				in[i] = lut[uint8(v.At(src+i))]
			}
		}
		for i, f := range in {
			if f != 0 {
				p.lo[j] = i + 1
				break
			}
		}
		for i := nx - 1; i >= 0; i-- {
			if in[i] != 0 {
				p.hi[j] = i + 1
				break
			}
		}
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// span returns the range [lo, hi] of points around which rows of a and b
// (nil allowed) may have crossings: the union of their inside ranges,
// widened by one to the left.
func span(a, b *plane, ja, jb int) (int, int) {
	lo, hi := a.lo[ja], a.hi[ja]
	if b != nil {
		lo, hi = min(lo, b.lo[jb]), max(hi, b.hi[jb])
	}
	return lo - 1, hi
}

// numberPlane assigns vertex numbers from id to the crossing edges plane a
// (padded k) owns, x and y edges first, then z edges to next (nil: none),
// in a fixed order. With verts not nil it appends their positions.
// It returns the next free number and verts.
func (x *extractor) numberPlane(a, next *plane, k int, id uint32, verts [][3]float32) (uint32, [][3]float32) {
	X, Y := x.X, x.Y
	write := verts != nil
	put := func(i0, j0, axis int, va, vb float32) {
		if write {
			t := 0.5
			if x.opts.Iso != nil && !math.IsInf(float64(va), 0) && !math.IsInf(float64(vb), 0) {
				t = (*x.opts.Iso - float64(va)) / (float64(vb) - float64(va))
			}
			p := [3]float64{float64(i0 - 1), float64(j0 - 1), float64(k - 1)}
			p[axis] += t
			r := x.v.Affine.Apply(p[0], p[1], p[2])
			verts = append(verts, [3]float32{float32(r[0]), float32(r[1]), float32(r[2])})
		}
	}
	val := func(p *plane, n int) float32 {
		if p.val == nil {
			return 0
		}
		return p.val[n]
	}
	for j := range Y {
		lo, hi := span(a, nil, j, j)
		for i := max(lo, 0); i <= min(hi, X-2); i++ {
			n := j*X + i
			if a.in[n] != a.in[n+1] {
				a.idx[n] = id
				id++
				put(i, j, 0, val(a, n), val(a, n+1))
			}
		}
	}
	for j := range Y - 1 {
		lo, hi := span(a, a, j, j+1)
		for i := max(lo+1, 0); i <= hi; i++ {
			n := j*X + i
			if a.in[n] != a.in[n+X] {
				a.idy[n] = id
				id++
				put(i, j, 1, val(a, n), val(a, n+X))
			}
		}
	}
	if next != nil {
		for j := range Y {
			lo, hi := span(a, next, j, j)
			for i := max(lo+1, 0); i <= hi; i++ {
				n := j*X + i
				if a.in[n] != next.in[n] {
					a.idz[n] = id
					id++
					put(i, j, 2, val(a, n), val(next, n))
				}
			}
		}
	}
	return id, verts
}

// emitLayer appends the triangles of the cells between planes a and b.
func (x *extractor) emitLayer(a, b *plane, tris [][3]uint32) [][3]uint32 {
	X := x.X
	for j := range x.Y - 1 {
		lo0, hi0 := span(a, b, j, j)
		lo1, hi1 := span(a, b, j+1, j+1)
		lo, hi := max(min(lo0, lo1), 0), min(max(hi0, hi1), X-2)
		for i := lo; i <= hi; i++ {
			n := j*X + i
			cs := int(a.in[n]) | int(a.in[n+1])<<1 | int(a.in[n+X])<<2 | int(a.in[n+X+1])<<3 |
				int(b.in[n])<<4 | int(b.in[n+1])<<5 | int(b.in[n+X])<<6 | int(b.in[n+X+1])<<7
			if cs == 0 || cs == 255 {
				continue
			}
			es := x.table[cs]
			for q := 0; q < len(es); q += 3 {
				var tr [3]uint32
				for c := range 3 {
					tr[c] = x.edgeID(a, b, n, es[q+c])
				}
				if x.flip {
					tr[1], tr[2] = tr[2], tr[1]
				}
				tris = append(tris, tr)
			}
		}
	}
	return tris
}

// edgeID returns the vertex number of cube edge e of the cell at n.
func (x *extractor) edgeID(a, b *plane, n int, e uint8) uint32 {
	X := x.X
	switch e {
	case 0:
		return a.idx[n]
	case 1:
		return a.idx[n+X]
	case 2:
		return b.idx[n]
	case 3:
		return b.idx[n+X]
	case 4:
		return a.idy[n]
	case 5:
		return a.idy[n+1]
	case 6:
		return b.idy[n]
	case 7:
		return b.idy[n+1]
	case 8:
		return a.idz[n]
	case 9:
		return a.idz[n+1]
	case 10:
		return a.idz[n+X]
	default:
		return a.idz[n+X+1]
	}
}

// slab is the part of the mesh made from planes [lo, hi): the vertices
// those planes own and the triangles of the layers starting there.
type slab struct {
	lo, hi int
	verts  [][3]float32
	tris   [][3]uint32
}

// run extracts the mesh slab by slab in parallel, then joins the slabs.
// Each slab numbers its vertices from 0; a triangle of a slab's last layer
// that uses a vertex of the next slab's first plane refers to it with the
// remote bit and that plane's own numbering, which the next slab repeats.
func (x *extractor) run(ctx context.Context) (*Mesh, error) {
	n := min(x.Z, 4*runtime.GOMAXPROCS(0))
	slabs := make([]*slab, n)
	for s := range n {
		slabs[s] = &slab{lo: s * x.Z / n, hi: (s + 1) * x.Z / n}
	}
	var wg sync.WaitGroup
	var failed atomic.Pointer[string]
	work := make(chan *slab)
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil { // a bug: report it, do not crash
					msg := fmt.Sprint(r)
					failed.CompareAndSwap(nil, &msg)
					for range work {
					}
				}
			}()
			a, b, c := x.newPlane(), x.newPlane(), x.newPlane()
			for s := range work {
				x.extractSlab(s, a, b, c)
			}
		})
	}
	for _, s := range slabs {
		if ctx.Err() != nil {
			break
		}
		work <- s
	}
	close(work)
	wg.Wait()
	if msg := failed.Load(); msg != nil {
		return nil, fmt.Errorf("internal error: %s", *msg)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	base := make([]uint64, n+1)
	nt := 0
	for s, sl := range slabs {
		base[s+1] = base[s] + uint64(len(sl.verts))
		nt += len(sl.tris)
	}
	if base[n] == 0 {
		return nil, ErrEmpty
	}
	if base[n] >= remote {
		return nil, fmt.Errorf("%d vertices: too many for one mesh", base[n])
	}
	m := &Mesh{Vertices: make([][3]float32, 0, base[n]), Triangles: make([][3]uint32, 0, nt)}
	for s, sl := range slabs {
		m.Vertices = append(m.Vertices, sl.verts...)
		for _, t := range sl.tris {
			for c, id := range t {
				if id&remote != 0 {
					t[c] = uint32(base[s+1]) + id&^remote
				} else {
					t[c] = uint32(base[s]) + id
				}
			}
			m.Triangles = append(m.Triangles, t)
		}
		sl.verts, sl.tris = nil, nil
	}
	return m, nil
}

// extractSlab fills s using the scratch planes a, b, c.
func (x *extractor) extractSlab(s *slab, a, b, c *plane) {
	x.fill(a, s.lo)
	if s.lo+1 >= x.Z {
		return // the last padding plane owns nothing
	}
	x.fill(b, s.lo+1)
	id, verts := x.numberPlane(a, b, s.lo, 0, make([][3]float32, 0, 1024))
	tris := make([][3]uint32, 0, 2048)
	for k := s.lo; k < s.hi && k+1 < x.Z; k++ {
		var next *plane
		if k+2 < x.Z {
			x.fill(c, k+2)
			next = c
		}
		if k+1 < s.hi {
			id, verts = x.numberPlane(b, next, k+1, id, verts)
		} else {
			// The next slab's first plane: number its x and y edges as
			// that slab does, marked remote; its z edges are not needed.
			x.numberPlane(b, nil, k+1, remote, nil)
		}
		tris = x.emitLayer(a, b, tris)
		a, b, c = b, c, a
	}
	s.verts, s.tris = verts, tris
}

// Stats describes a mesh.
type Stats struct {
	Vertices  int     `json:"vertices"`
	Triangles int     `json:"triangles"`
	AreaMM2   float64 `json:"area_mm2"`
	VolumeMM3 float64 `json:"volume_mm3"` // enclosed volume (divergence theorem); positive for outward winding
}

// Stats computes the mesh statistics.
func (m *Mesh) Stats() Stats {
	s := Stats{Vertices: len(m.Vertices), Triangles: len(m.Triangles)}
	if len(m.Vertices) == 0 {
		return s
	}
	// Coordinates relative to the first vertex keep the products small.
	o := m.Vertices[0]
	rel := func(i uint32) [3]float64 {
		p := m.Vertices[i]
		return [3]float64{float64(p[0] - o[0]), float64(p[1] - o[1]), float64(p[2] - o[2])}
	}
	for _, t := range m.Triangles {
		a, b, c := rel(t[0]), rel(t[1]), rel(t[2])
		u := [3]float64{b[0] - a[0], b[1] - a[1], b[2] - a[2]}
		w := [3]float64{c[0] - a[0], c[1] - a[1], c[2] - a[2]}
		n := cross(u, w)
		s.AreaMM2 += math.Sqrt(n[0]*n[0]+n[1]*n[1]+n[2]*n[2]) / 2
		bc := cross(b, c)
		s.VolumeMM3 += (a[0]*bc[0] + a[1]*bc[1] + a[2]*bc[2]) / 6
	}
	return s
}

func cross(a, b [3]float64) [3]float64 {
	return [3]float64{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}

// Version is the version of the meshes Surface makes; cache keys of stages
// that build surfaces depend on it.
const Version = "1"
