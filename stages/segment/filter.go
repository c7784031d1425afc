package segment

import (
	"math"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// grid is the shape and voxel size (mm) of a working box.
type grid struct {
	dim [3]int
	sp  [3]float64
}

func (g grid) len() int { return g.dim[0] * g.dim[1] * g.dim[2] }

// radius converts a radius in mm to whole voxels along each axis.
func (g grid) radius(mm float64) [3]int {
	var r [3]int
	for a := range 3 {
		r[a] = int(math.Round(mm / g.sp[a]))
	}
	return r
}

// area is how many pixels of an axial slice cover mm2 square mm (0 for
// 0: no bound).
func (g grid) area(mm2 float64) int {
	if mm2 <= 0 {
		return 0
	}
	return max(int(math.Round(mm2/(g.sp[0]*g.sp[1]))), 1)
}

// pool recycles float32 buffers between the slabs of one extraction, so
// that large maps are not allocated (and zeroed, and collected) per
// feature. A nil pool allocates. Buffers come back with arbitrary content.
type pool struct{ free [][]float32 }

func (p *pool) get(n int) []float32 {
	if p != nil {
		for i := len(p.free) - 1; i >= 0; i-- {
			if b := p.free[i]; cap(b) >= n {
				p.free = append(p.free[:i], p.free[i+1:]...)
				return b[:n]
			}
		}
	}
	return make([]float32, n)
}

func (p *pool) put(bufs ...[]float32) {
	if p != nil {
		p.free = append(p.free, bufs...)
	}
}

// filters run the 3-D filters on one grid, drawing buffers from a pool.
type filters struct {
	g grid
	p *pool
}

// parallel calls f on [lo, hi) chunks covering [0, n), on all CPUs, in
// several chunks per CPU taken in turn so that a slower CPU does not hold
// the others up. Each chunk writes only its own outputs, so results do not
// depend on scheduling.
func parallel(n int, f func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 {
		f(0, n)
		return
	}
	chunks := min(n, 8*w)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range w {
		wg.Go(func() {
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				f(c*n/chunks, (c+1)*n/chunks)
			}
		})
	}
	wg.Wait()
}

// mean returns the mean of in over a box of the given per-axis radii;
// at the edges the box is cut to the volume (mean over valid voxels).
func (f filters) mean(in []float32, r [3]int) []float32 {
	p := f.p
	nx, ny, nz := f.g.dim[0], f.g.dim[1], f.g.dim[2]
	plane := nx * ny
	src := in
	next := func() []float32 {
		dst := p.get(len(in))
		return dst
	}
	done := func(dst []float32) {
		if &src[0] != &in[0] {
			p.put(src)
		}
		src = dst
	}
	if r[0] > 0 {
		dst := next()
		parallel(nz*ny, func(lo, hi int) {
			for row := lo; row < hi; row++ {
				line, out := src[row*nx:(row+1)*nx], dst[row*nx:(row+1)*nx]
				var acc float64
				for i := 0; i <= min(r[0], nx-1); i++ {
					acc += float64(line[i])
				}
				for i := range nx {
					a, b := max(i-r[0], 0), min(i+r[0]+1, nx)
					out[i] = float32(acc / float64(b-a))
					if add := i + r[0] + 1; add < nx {
						acc += float64(line[add])
					}
					if sub := i - r[0]; sub >= 0 {
						acc -= float64(line[sub])
					}
				}
			}
		})
		done(dst)
	}
	if r[1] > 0 {
		dst := next()
		parallel(nz, func(lo, hi int) {
			acc := make([]float64, nx)
			for k := lo; k < hi; k++ {
				sl, out := src[k*plane:(k+1)*plane], dst[k*plane:(k+1)*plane]
				clear(acc)
				for j := 0; j <= min(r[1], ny-1); j++ {
					for i := range nx {
						acc[i] += float64(sl[j*nx+i])
					}
				}
				for j := range ny {
					a, b := max(j-r[1], 0), min(j+r[1]+1, ny)
					inv := 1 / float64(b-a)
					for i := range nx {
						out[j*nx+i] = float32(acc[i] * inv)
					}
					if add := j + r[1] + 1; add < ny {
						for i := range nx {
							acc[i] += float64(sl[add*nx+i])
						}
					}
					if sub := j - r[1]; sub >= 0 {
						for i := range nx {
							acc[i] -= float64(sl[sub*nx+i])
						}
					}
				}
			}
		})
		done(dst)
	}
	if r[2] > 0 && nz > 1 {
		dst := next()
		parallel(plane, func(lo, hi int) {
			w := hi - lo
			acc := make([]float64, w)
			for k := 0; k <= min(r[2], nz-1); k++ {
				for c := range w {
					acc[c] += float64(src[k*plane+lo+c])
				}
			}
			for k := range nz {
				a, b := max(k-r[2], 0), min(k+r[2]+1, nz)
				inv := 1 / float64(b-a)
				for c := range w {
					dst[k*plane+lo+c] = float32(acc[c] * inv)
				}
				if add := k + r[2] + 1; add < nz {
					for c := range w {
						acc[c] += float64(src[add*plane+lo+c])
					}
				}
				if sub := k - r[2]; sub >= 0 {
					for c := range w {
						acc[c] -= float64(src[sub*plane+lo+c])
					}
				}
			}
		})
		done(dst)
	}
	if &src[0] == &in[0] {
		dst := next()
		copy(dst, in)
		return dst
	}
	return src
}

// std returns the standard deviation of in over a box of the given radii
// (cut at the edges): texture, which trabecular bone has and contrast in
// a vessel has not.
func (f filters) std(in []float32, r [3]int) []float32 {
	sq := f.p.get(len(in))
	for v, x := range in {
		sq[v] = x * x
	}
	m2 := f.mean(sq, r)
	f.p.put(sq)
	m := f.mean(in, r)
	for v := range m {
		m[v] = float32(math.Sqrt(max(float64(m2[v])-float64(m[v])*float64(m[v]), 0)))
	}
	f.p.put(m2)
	return m
}

// extrema returns the maximum and the minimum of in over a box of the
// given radii (cut at the edges).
func (f filters) extrema(in []float32, r [3]int) (mx, mn []float32) {
	return f.extreme(in, r, true), f.extreme(in, r, false)
}

// combine sets d[i] to the maximum (or minimum) of d[i] and s[i].
func combine(d, s []float32, isMax bool) {
	s = s[:len(d)]
	if isMax {
		for i, v := range s {
			d[i] = max(d[i], v)
		}
		return
	}
	for i, v := range s {
		d[i] = min(d[i], v)
	}
}

// extreme applies max (or min) over a box, one axis at a time. Along each
// axis the window of 2r+1 positions is covered by two overlapping runs of
// a power-of-two length, built by doubling (van Herk's idea in its
// sparse-table form): about log2(2r+1)+1 comparisons per voxel instead of
// 2r. Along y and z whole rows and planes are combined at once.
func (f filters) extreme(in []float32, r [3]int, isMax bool) []float32 {
	p := f.p
	nx, ny, nz := f.g.dim[0], f.g.dim[1], f.g.dim[2]
	plane := nx * ny
	src := in
	done := func(dst []float32) {
		if &src[0] != &in[0] {
			p.put(src)
		}
		src = dst
	}
	if r[0] > 0 && nx > 1 {
		dst := p.get(len(in))
		parallel(nz*ny, func(lo, hi int) {
			lv := newLevels(nx, r[0], 1)
			for row := lo; row < hi; row++ {
				windowLine(src[row*nx:(row+1)*nx], dst[row*nx:(row+1)*nx], r[0], isMax, lv)
			}
		})
		done(dst)
	}
	if r[1] > 0 && ny > 1 {
		dst := p.get(len(in))
		parallel(nz, func(lo, hi int) {
			lv := newLevels(ny, r[1], nx)
			for k := lo; k < hi; k++ {
				windowVectors(vectors{src: src, dst: dst, off: k * plane, stride: nx, n: ny, vl: nx}, r[1], isMax, lv)
			}
		})
		done(dst)
	}
	if r[2] > 0 && nz > 1 {
		dst := p.get(len(in))
		parallel(plane, func(lo, hi int) {
			lv := newLevels(nz, r[2], hi-lo)
			windowVectors(vectors{src: src, dst: dst, off: lo, stride: plane, n: nz, vl: hi - lo}, r[2], isMax, lv)
		})
		done(dst)
	}
	if &src[0] == &in[0] {
		dst := p.get(len(in))
		copy(dst, in)
		return dst
	}
	return src
}

// newLevels allocates the doubling levels 2, 4, … ≤ 2r+1 for n positions
// of vl values each.
func newLevels(n, r, vl int) [][]float32 {
	var lv [][]float32
	for k := 2; k <= 2*r+1; k *= 2 {
		lv = append(lv, make([]float32, n*vl))
	}
	return lv
}

// windowLine writes to dst the max (or min) of src over [t−r, t+r] cut
// to the line, for every t.
func windowLine(src, dst []float32, r int, isMax bool, lv [][]float32) {
	n := len(src)
	prev := src
	for l, k := 0, 1; l < len(lv); l, k = l+1, 2*k {
		cur := lv[l][:n]
		for t := range n {
			a, b := prev[t], prev[min(t+k, n-1)]
			if isMax {
				cur[t] = max(a, b)
			} else {
				cur[t] = min(a, b)
			}
		}
		prev = cur
	}
	for t := range n {
		lo, hi := max(t-r, 0), min(t+r, n-1)
		l := bits.Len(uint(hi-lo+1)) - 1
		lvl := src
		if l > 0 {
			lvl = lv[l-1]
		}
		a, b := lvl[lo], lvl[hi-(1<<l)+1]
		if isMax {
			dst[t] = max(a, b)
		} else {
			dst[t] = min(a, b)
		}
	}
}

// vectors are n positions along an axis, each a run of vl values at
// off + t·stride in src and dst.
type vectors struct {
	src, dst           []float32
	off, stride, n, vl int
}

// windowVectors is windowLine for whole rows or planes at once.
func windowVectors(v vectors, r int, isMax bool, lv [][]float32) {
	at := func(l, t int) []float32 {
		if l == 0 {
			o := v.off + t*v.stride
			return v.src[o : o+v.vl]
		}
		return lv[l-1][t*v.vl : (t+1)*v.vl]
	}
	for l, k := 1, 1; l <= len(lv); l, k = l+1, 2*k {
		for t := range v.n {
			d := at(l, t)
			copy(d, at(l-1, t))
			combine(d, at(l-1, min(t+k, v.n-1)), isMax)
		}
	}
	for t := range v.n {
		lo, hi := max(t-r, 0), min(t+r, v.n-1)
		l := bits.Len(uint(hi-lo+1)) - 1
		o := v.off + t*v.stride
		d := v.dst[o : o+v.vl]
		copy(d, at(l, lo))
		combine(d, at(l, hi-(1<<l)+1), isMax)
	}
}

// gradient returns the gradient magnitude of in (HU/mm), central
// differences inside, one-sided at the edges.
func (f filters) gradient(in []float32) []float32 {
	g := f.g
	out := f.p.get(len(in))
	nx, ny, nz := g.dim[0], g.dim[1], g.dim[2]
	plane := nx * ny
	// neighbours returns the previous and next positions along an axis of
	// n and the spacing factor of their difference (0 for a single voxel).
	neighbours := func(t, n int, sp float64) (int, int, float32) {
		if n < 2 {
			return t, t, 0
		}
		a, b := max(t-1, 0), min(t+1, n-1)
		return a, b, float32(1 / (float64(b-a) * sp))
	}
	parallel(nz*ny, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			j, k := row%ny, row/ny
			ja, jb, fy := neighbours(j, ny, g.sp[1])
			ka, kb, fz := neighbours(k, nz, g.sp[2])
			ya, yb := in[k*plane+ja*nx:], in[k*plane+jb*nx:]
			za, zb := in[ka*plane+j*nx:], in[kb*plane+j*nx:]
			line := in[row*nx : (row+1)*nx]
			o := out[row*nx : (row+1)*nx]
			for i := range nx {
				ia, ib, fx := neighbours(i, nx, g.sp[0])
				dx := (line[ib] - line[ia]) * fx
				dy := (yb[i] - ya[i]) * fy
				dz := (zb[i] - za[i]) * fz
				o[i] = float32(math.Sqrt(float64(dx*dx + dy*dy + dz*dz)))
			}
		}
	})
	return out
}

// fillSlices returns, per axial slice, the mask plus every region of
// non-mask pixels not 4-connected to the slice border (the holes).
func fillSlices(g grid, mask []bool) []bool { return fillHoles(g, mask, 0) }

// fillHoles is fillSlices for holes of at most maxArea pixels (any size
// when maxArea ≤ 0): a skull's ring around the brain is no hole to fill,
// a bone's medullary canal is.
func fillHoles(g grid, mask []bool, maxArea int) []bool {
	nx, ny, nz := g.dim[0], g.dim[1], g.dim[2]
	plane := nx * ny
	slice := grid{dim: [3]int{nx, ny, 1}, sp: g.sp}
	out := make([]bool, len(mask))
	parallel(nz, func(lo, hi int) {
		background := make([]bool, plane)
		for k := lo; k < hi; k++ {
			m := mask[k*plane : (k+1)*plane]
			for p, in := range m {
				background[p] = !in
			}
			// 4-connected regions of the background, found on its runs
			c := components(slice, background)
			outside := make([]bool, len(c.x0)) // per root: the region touches the border
			for i := range c.x0 {
				if j := c.row[i]; j == 0 || j == int32(ny-1) || c.x0[i] == 0 || c.x1[i] == int32(nx) {
					outside[c.find(int32(i))] = true
				}
			}
			o := out[k*plane : (k+1)*plane]
			copy(o, m)
			c.paint(o, func(root int32) bool {
				return !outside[root] && (maxArea <= 0 || c.size[root] <= maxArea)
			})
		}
	})
	return out
}

// runs are the connected components of a mask, found on its runs (maximal
// stretches of mask voxels along x) with a union-find: far less memory
// than a label per voxel. Connectivity is 6 (faces).
type runs struct {
	g      grid
	row    []int32 // j + k·ny of each run
	x0, x1 []int32 // [x0, x1)
	parent []int32
	size   []int // voxels per component, at its root
}

func (c *runs) find(i int32) int32 {
	for c.parent[i] != i {
		c.parent[i] = c.parent[c.parent[i]]
		i = c.parent[i]
	}
	return i
}

func (c *runs) union(a, b int32) {
	ra, rb := c.find(a), c.find(b)
	if ra == rb {
		return
	}
	if rb < ra {
		ra, rb = rb, ra
	}
	c.parent[rb] = ra // the smaller index is the root: deterministic
}

// components finds the 6-connected components of mask.
func components(g grid, mask []bool) *runs {
	nx, ny, nz := g.dim[0], g.dim[1], g.dim[2]
	c := &runs{g: g}
	start := make([]int32, ny*nz+1) // first run of each row
	for row := range ny * nz {
		start[row] = int32(len(c.x0))
		line := mask[row*nx : (row+1)*nx]
		for i := 0; i < nx; {
			if !line[i] {
				i++
				continue
			}
			e := i
			for e < nx && line[e] {
				e++
			}
			c.row = append(c.row, int32(row))
			c.x0 = append(c.x0, int32(i))
			c.x1 = append(c.x1, int32(e))
			i = e
		}
	}
	start[ny*nz] = int32(len(c.x0))
	c.parent = make([]int32, len(c.x0))
	for i := range c.parent {
		c.parent[i] = int32(i)
	}
	link := func(row, prev int) {
		a, b := start[row], start[prev]
		for a < start[row+1] && b < start[prev+1] {
			if c.x0[a] < c.x1[b] && c.x0[b] < c.x1[a] {
				c.union(a, b)
			}
			if c.x1[a] < c.x1[b] {
				a++
			} else {
				b++
			}
		}
	}
	for row := range ny * nz {
		j, k := row%ny, row/ny
		if j > 0 {
			link(row, row-1)
		}
		if k > 0 {
			link(row, row-ny)
		}
	}
	c.size = make([]int, len(c.x0))
	for i := range c.x0 {
		c.size[c.find(int32(i))] += int(c.x1[i] - c.x0[i])
	}
	return c
}

// largest returns the root of the largest component (the first on ties),
// or −1 when there is none.
func (c *runs) largest() int32 {
	best := int32(-1)
	for i := range c.size {
		if c.size[i] > 0 && (best < 0 || c.size[i] > c.size[best]) {
			best = int32(i)
		}
	}
	return best
}

// paint sets mask to keep(root) on every run (and leaves other voxels).
func (c *runs) paint(mask []bool, keep func(root int32) bool) {
	nx := c.g.dim[0]
	for i := range c.x0 {
		v := keep(c.find(int32(i)))
		off := int(c.row[i]) * nx
		for x := c.x0[i]; x < c.x1[i]; x++ {
			mask[off+int(x)] = v
		}
	}
}
