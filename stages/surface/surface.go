// Package surface turns volumes into triangle meshes: marching cubes on a
// label map (the surface of the voxels with one label) or on an intensity
// volume at an iso value (e.g. bone at 300 HU), with vertices in patient
// RAS+ millimetres, outward winding and no cracks; mesh statistics; and
// STL encoding and decoding.
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
	} else if v.DType == volume.Float32 {
		for n, f := range v.F32 {
			if f != float32(math.Trunc(float64(f))) {
				return nil, fmt.Errorf("voxel %d holds %g: a label map holds integers (use an iso value for intensities)", n, f)
			}
		}
	}
	return x.run(ctx)
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

// plane is one padded z plane: inside flags, values (iso mode) and the
// vertex numbers of the edges it owns.
type plane struct {
	in  []uint8
	val []float32 // iso mode: voxel values, −Inf in the padding
	idx []uint32  // x edges (i,j)→(i+1,j): [j*(X−1)+i]
	idy []uint32  // y edges (i,j)→(i,j+1): [j*X+i]
	idz []uint32  // z edges (i,j,k)→(i,j,k+1): [j*X+i]
}

const noVertex = math.MaxUint32

func (x *extractor) newPlane() *plane {
	n := x.X * x.Y
	p := &plane{in: make([]uint8, n), idx: make([]uint32, n), idy: make([]uint32, n), idz: make([]uint32, n)}
	if x.opts.Iso != nil {
		p.val = make([]float32, n)
	}
	return p
}

// fill computes the inside flags (and values) of padded plane k.
func (x *extractor) fill(p *plane, k int) {
	clear(p.in)
	if p.val != nil {
		for i := range p.val {
			p.val[i] = float32(math.Inf(-1))
		}
	}
	if k == 0 || k == x.Z-1 {
		return
	}
	v := x.v
	nx := v.Dim[0]
	label := x.opts.Label
	for j := 1; j < x.Y-1; j++ {
		src := v.Index(0, j-1, k-1)
		dst := j*x.X + 1
		if x.opts.Iso != nil {
			iso := *x.opts.Iso
			for i := range nx {
				f := v.At(src + i)
				p.val[dst+i] = float32(f)
				if f > iso {
					p.in[dst+i] = 1
				}
			}
			continue
		}
		switch v.DType {
		case volume.Uint8:
			for i, l := range v.U8[src : src+nx] {
				if (label == 0 && l != 0) || (label != 0 && l == label) {
					p.in[dst+i] = 1
				}
			}
		default:
			for i := range nx {
				l := v.At(src + i)
				if (label == 0 && l != 0) || (label != 0 && l == float64(label)) {
					p.in[dst+i] = 1
				}
			}
		}
	}
}

// cellCase returns the case of the cell with lower corner (i, j) between
// planes a (k) and b (k+1).
func (x *extractor) cellCase(a, b *plane, i, j int) int {
	n := j*x.X + i
	X := x.X
	return int(a.in[n]) | int(a.in[n+1])<<1 | int(a.in[n+X])<<2 | int(a.in[n+X+1])<<3 |
		int(b.in[n])<<4 | int(b.in[n+1])<<5 | int(b.in[n+X])<<6 | int(b.in[n+X+1])<<7
}

// countPlane returns the number of crossing edges plane a owns (next is
// plane k+1, nil for the last plane).
func (x *extractor) countPlane(a, next *plane) int {
	X, Y := x.X, x.Y
	c := 0
	for j := range Y {
		row := a.in[j*X : (j+1)*X]
		for i := range X - 1 {
			c += int(row[i] ^ row[i+1])
		}
	}
	for j := range Y - 1 {
		for i := range X {
			c += int(a.in[j*X+i] ^ a.in[(j+1)*X+i])
		}
	}
	if next != nil {
		for n := range X * Y {
			c += int(a.in[n] ^ next.in[n])
		}
	}
	return c
}

// countLayer returns the number of triangles between planes a and b.
func (x *extractor) countLayer(a, b *plane) int {
	c := 0
	for j := range x.Y - 1 {
		for i := range x.X - 1 {
			if cs := x.cellCase(a, b, i, j); cs != 0 && cs != 255 {
				c += len(x.table[cs]) / 3
			}
		}
	}
	return c
}

// numberPlane assigns vertex numbers from base to the crossing edges plane
// a (padded k) owns, in a fixed order, and writes their positions into
// verts when verts is not nil. It returns the next free number.
func (x *extractor) numberPlane(a, next *plane, k int, base uint32, verts [][3]float32) uint32 {
	X, Y := x.X, x.Y
	id := base
	put := func(i0, j0, k0 int, axis int, va, vb float32) {
		if verts != nil {
			t := 0.5
			if x.opts.Iso != nil && !math.IsInf(float64(va), 0) && !math.IsInf(float64(vb), 0) {
				t = (*x.opts.Iso - float64(va)) / (float64(vb) - float64(va))
			}
			p := [3]float64{float64(i0 - 1), float64(j0 - 1), float64(k0 - 1)}
			p[axis] += t
			r := x.v.Affine.Apply(p[0], p[1], p[2])
			verts[id] = [3]float32{float32(r[0]), float32(r[1]), float32(r[2])}
		}
		id++
	}
	val := func(p *plane, n int) float32 {
		if p.val == nil {
			return 0
		}
		return p.val[n]
	}
	for j := range Y {
		for i := range X - 1 {
			n := j*X + i
			if a.in[n] != a.in[n+1] {
				a.idx[j*(X-1)+i] = id
				put(i, j, k, 0, val(a, n), val(a, n+1))
			} else {
				a.idx[j*(X-1)+i] = noVertex
			}
		}
	}
	for j := range Y - 1 {
		for i := range X {
			n := j*X + i
			if a.in[n] != a.in[n+X] {
				a.idy[n] = id
				put(i, j, k, 1, val(a, n), val(a, n+X))
			} else {
				a.idy[n] = noVertex
			}
		}
	}
	if next != nil {
		for n := range X * Y {
			if a.in[n] != next.in[n] {
				a.idz[n] = id
				put(n%X, n/X, k, 2, val(a, n), val(next, n))
			} else {
				a.idz[n] = noVertex
			}
		}
	}
	return id
}

// emitLayer writes the triangles of the cells between planes a and b into
// tris and returns how many.
func (x *extractor) emitLayer(a, b *plane, tris [][3]uint32) int {
	X := x.X
	t := 0
	for j := range x.Y - 1 {
		for i := range X - 1 {
			cs := x.cellCase(a, b, i, j)
			if cs == 0 || cs == 255 {
				continue
			}
			n := j*X + i
			nx := j*(X-1) + i
			ids := [12]uint32{
				a.idx[nx], a.idx[nx+X-1], b.idx[nx], b.idx[nx+X-1],
				a.idy[n], a.idy[n+1], b.idy[n], b.idy[n+1],
				a.idz[n], a.idz[n+1], a.idz[n+X], a.idz[n+X+1],
			}
			es := x.table[cs]
			for q := 0; q < len(es); q += 3 {
				tr := [3]uint32{ids[es[q]], ids[es[q+1]], ids[es[q+2]]}
				if x.flip {
					tr[1], tr[2] = tr[2], tr[1]
				}
				tris[t] = tr
				t++
			}
		}
	}
	return t
}

// slabs splits the planes into contiguous ranges for the workers.
func (x *extractor) slabs() [][2]int {
	n := min(x.Z, 4*runtime.GOMAXPROCS(0))
	out := make([][2]int, 0, n)
	for s := range n {
		out = append(out, [2]int{s * x.Z / n, (s + 1) * x.Z / n})
	}
	return out
}

// run counts vertices and triangles per plane (pass 1), then numbers,
// places and connects them (pass 2); both passes run slabs in parallel.
func (x *extractor) run(ctx context.Context) (*Mesh, error) {
	slabs := x.slabs()
	nv := make([]int, x.Z) // vertices owned by plane k
	nt := make([]int, x.Z) // triangles of layer k (between k and k+1)
	err := x.parallel(ctx, slabs, func(lo, hi int) {
		a, b := x.newPlane(), x.newPlane()
		x.fill(a, lo)
		for k := lo; k < hi; k++ {
			var next *plane
			if k+1 < x.Z {
				x.fill(b, k+1)
				next = b
				nt[k] = x.countLayer(a, b)
			}
			nv[k] = x.countPlane(a, next)
			a, b = b, a
		}
	})
	if err != nil {
		return nil, err
	}
	vbase := make([]int, x.Z+1)
	tbase := make([]int, x.Z+1)
	for k := range x.Z {
		vbase[k+1] = vbase[k] + nv[k]
		tbase[k+1] = tbase[k] + nt[k]
	}
	if vbase[x.Z] == 0 {
		return nil, ErrEmpty
	}
	if vbase[x.Z] >= noVertex {
		return nil, fmt.Errorf("%d vertices: too many for one mesh", vbase[x.Z])
	}
	m := &Mesh{Vertices: make([][3]float32, vbase[x.Z]), Triangles: make([][3]uint32, tbase[x.Z])}
	err = x.parallel(ctx, slabs, func(lo, hi int) {
		// Planes k, k+1, k+2: numbering plane k+1 needs k+2's flags for
		// its z edges.
		a, b, c := x.newPlane(), x.newPlane(), x.newPlane()
		x.fill(a, lo)
		if lo+1 < x.Z {
			x.fill(b, lo+1)
			x.numberPlane(a, b, lo, uint32(vbase[lo]), m.Vertices)
		}
		for k := lo; k < hi && k+1 < x.Z; k++ {
			var next *plane
			if k+2 < x.Z {
				x.fill(c, k+2)
				next = c
			}
			// Plane k+1 is written by its own slab; here only numbered.
			var verts [][3]float32
			if k+1 < hi {
				verts = m.Vertices
			}
			x.numberPlane(b, next, k+1, uint32(vbase[k+1]), verts)
			x.emitLayer(a, b, m.Triangles[tbase[k]:tbase[k+1]])
			a, b, c = b, c, a
		}
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (x *extractor) parallel(ctx context.Context, slabs [][2]int, fn func(lo, hi int)) error {
	var wg sync.WaitGroup
	work := make(chan [2]int)
	for range min(len(slabs), runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for s := range work {
				fn(s[0], s[1])
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
	return ctx.Err()
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
