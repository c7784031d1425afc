package metrics

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// maxSlices bounds the bounding box along k, so that k distances and the
// "no feature" mark nz fit in uint16.
const maxSlices = math.MaxUint16 - 1

// directed returns, for every voxel of flag with bit query, the Euclidean
// distance in mm from its centre to the nearest voxel with bit feat. There
// must be at least one feature voxel; nq is the number of query voxels;
// dk is scratch memory of len(flag). The order of the result is
// unspecified (slice by slice).
//
// Pass 1 runs along k and stores, per voxel, the distance in voxels to the
// nearest feature voxel of its k column (uint16). Then, for each slice k
// holding query voxels, pass 2 runs along i over all rows, evaluated at the
// columns holding query voxels, and pass 3 along j, evaluated at the query
// voxels only (by a bounded outward scan, or the column's envelope when
// the queries are far from any feature).
func directed(ctx context.Context, flag []uint8, dim [3]int, sp [3]float64, feat, query uint8, nq int, dk []uint16) ([]float64, error) {
	nx, ny, nz := dim[0], dim[1], dim[2]
	if nz > maxSlices {
		return nil, fmt.Errorf("bounding box of %d slices: at most %d supported", nz, maxSlices)
	}
	// In pass 1, none = nz marks "no feature in this column" (real k
	// distances are below nz); sq maps a k distance to its square in mm²
	// and none to +Inf.
	none := uint16(nz)
	sq := make([]float64, nz+2)
	for d := range sq {
		sq[d] = float64(d) * float64(d) * sp[2] * sp[2]
	}
	sq[nz], sq[nz+1] = math.Inf(1), math.Inf(1)
	plane := nx * ny
	workers := runtime.GOMAXPROCS(0)

	// Pass 1: distance along k, per row j of every slice, rows in parallel.
	err := forEach(ctx, ny, workers, func(_, j int) {
		for k := range nz {
			row := k*plane + j*nx
			for i := range nx {
				n := row + i
				switch {
				case flag[n]&feat != 0:
					dk[n] = 0
				case k > 0:
					dk[n] = min(dk[n-plane]+1, none)
				default:
					dk[n] = none
				}
			}
		}
		for k := nz - 2; k >= 0; k-- {
			row := k*plane + j*nx
			for i := range nx {
				n := row + i
				dk[n] = min(dk[n], dk[n+plane]+1)
			}
		}
	})
	if err != nil {
		return nil, err
	}

	// Query voxels per slice give each slice its segment of the result;
	// qcol[k*nx+i] marks the columns i of slice k holding query voxels.
	offset := make([]int, nz+1)
	qcol := make([]bool, nz*nx)
	err = forEach(ctx, nz, workers, func(_, k int) {
		c := 0
		col := qcol[k*nx : (k+1)*nx]
		for j := range ny {
			for i, f := range flag[k*plane+j*nx : k*plane+(j+1)*nx] {
				if f&query != 0 {
					c++
					col[i] = true
				}
			}
		}
		offset[k+1] = c
	})
	if err != nil {
		return nil, err
	}
	for k := range nz {
		offset[k+1] += offset[k]
	}
	if offset[nz] != nq {
		return nil, fmt.Errorf("internal error: %d query voxels, expected %d", offset[nz], nq)
	}

	out := make([]float64, nq)
	scratch := make([]*sliceScratch, workers)
	err = forEach(ctx, nz, workers, func(w, k int) {
		if offset[k] == offset[k+1] {
			return
		}
		s := scratch[w]
		if s == nil {
			s = newSliceScratch(nx, ny, sp)
			scratch[w] = s
		}
		base := k * plane
		s.cols = s.cols[:0]
		for i, c := range qcol[k*nx : (k+1)*nx] {
			if c {
				s.cols = append(s.cols, i)
			}
		}
		// Pass 2 along i, evaluated at the query columns only.
		for j := range ny {
			row := base + j*nx
			near := none
			for i, d := range dk[row : row+nx] {
				s.f[i] = sq[d]
				near = min(near, d)
			}
			if near == none {
				for c := range s.cols {
					s.g[c*ny+j] = math.Inf(1)
				}
				continue
			}
			s.env.build(s.f[:nx], sp[0], s.invX)
			s.env.start()
			for c, i := range s.cols {
				s.g[c*ny+j] = s.env.eval(i, sp[0])
			}
		}
		// Pass 3 along j, evaluated only at the query voxels. A query's
		// own row bounds its distance: g[j] ≥ d², so rows farther than
		// √g[j] cannot be nearer. Most queries lie close to the other
		// border, and scanning outward from them until that bound costs
		// far less than building the column's envelope; columns whose
		// queries are far from it use the envelope.
		o := offset[k]
		sy2 := sp[1] * sp[1]
		for c, i := range s.cols {
			g := s.g[c*ny : (c+1)*ny]
			s.rows = s.rows[:0]
			cost := 0.0
			for j := range ny {
				if flag[base+j*nx+i]&query != 0 {
					s.rows = append(s.rows, j)
					cost += 2*math.Sqrt(g[j])/sp[1] + 1
				}
			}
			if cost < float64(ny) {
				for _, j := range s.rows {
					best := g[j]
					for d := 1; ; d++ {
						dd := float64(d) * float64(d) * sy2
						if dd >= best || (j-d < 0 && j+d >= ny) {
							break
						}
						if j-d >= 0 {
							best = min(best, dd+g[j-d])
						}
						if j+d < ny {
							best = min(best, dd+g[j+d])
						}
					}
					out[o] = math.Sqrt(best)
					o++
				}
				continue
			}
			if !s.env.build(g, sp[1], s.invY) {
				continue // cannot happen: a feature voxel exists somewhere
			}
			s.env.start()
			for _, j := range s.rows {
				out[o] = math.Sqrt(s.env.eval(j, sp[1]))
				o++
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// sliceScratch is one worker's memory for the in-plane passes.
type sliceScratch struct {
	g    []float64 // pass 2 result at the query columns, column-major: g[c*ny+j]
	f    []float64 // one line of input
	cols []int     // their indices, increasing
	rows []int     // rows of the query voxels of one column
	// invX[d] = 1 / (2 d sx), invY likewise: the envelope divides by
	// these distances, and multiplying is several times faster.
	invX, invY []float64
	env        envelope
}

func newSliceScratch(nx, ny int, sp [3]float64) *sliceScratch {
	m := max(nx, ny)
	inv := func(n int, s float64) []float64 {
		t := make([]float64, n)
		for d := 1; d < n; d++ {
			t[d] = 1 / (2 * float64(d) * s)
		}
		return t
	}
	return &sliceScratch{
		invX: inv(nx, sp[0]),
		invY: inv(ny, sp[1]),
		g:    make([]float64, nx*ny),
		f:    make([]float64, m),
		cols: make([]int, 0, nx),
		rows: make([]int, 0, ny),
		env:  envelope{v: make([]int, m), p: make([]float64, m), h: make([]float64, m), f: make([]float64, m), z: make([]float64, m+1)},
	}
}

// envelope is the lower envelope of the parabolas y = f[q] + (x − q·s)²
// (Felzenszwalb–Huttenlocher), with x and q·s in mm.
type envelope struct {
	v   []int     // apex indices q of the envelope's parabolas, v[:n]
	p   []float64 // their positions q·s
	h   []float64 // f[q] + (q·s)²
	f   []float64 // f[q]
	z   []float64 // boundaries: parabola t is lowest on [z[t], z[t+1]]
	n   int
	cur int // evaluation cursor
}

// build computes the envelope of the finite values of f, with inv[d] =
// 1/(2·d·s); it reports whether there was any.
func (e *envelope) build(f []float64, s float64, inv []float64) bool {
	k := -1
	v, p, h, fv, z := e.v, e.p, e.h, e.f, e.z
	for q, fq := range f {
		if fq > math.MaxFloat64 {
			continue // +Inf: no feature
		}
		pq := float64(q) * s
		hq := fq + pq*pq
		if k < 0 {
			k = 0
			v[0], p[0], h[0], fv[0] = q, pq, hq, fq
			z[0] = math.Inf(-1)
			continue
		}
		// Pop parabolas hidden by the new one. The intersection with
		// parabola k is x = (hq − h[k]) / (2 (pq − p[k])), pq > p[k];
		// x ≤ z[k] is tested without dividing.
		for k > 0 && hq-h[k] <= 2*(pq-p[k])*z[k] {
			k--
		}
		x := (hq - h[k]) * inv[q-v[k]]
		k++
		v[k], p[k], h[k], fv[k], z[k] = q, pq, hq, fq, x
	}
	e.n = k + 1
	if k >= 0 {
		z[k+1] = math.Inf(1)
	}
	return k >= 0
}

// start resets the cursor; eval must then be called at increasing indices.
func (e *envelope) start() { e.cur = 0 }

// eval returns the envelope at index i (position i·s).
func (e *envelope) eval(i int, s float64) float64 {
	x := float64(i) * s
	for e.z[e.cur+1] < x {
		e.cur++
	}
	d := x - e.p[e.cur]
	return d*d + e.f[e.cur]
}

// forEach calls fn(worker, i) for i in [0, n) on up to workers goroutines,
// handing out indices one at a time; it stops early when ctx is done. A
// panic in fn (a bug) is returned as an error rather than crashing.
func forEach(ctx context.Context, n, workers int, fn func(w, i int)) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[string]
	for w := range min(workers, n) {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					msg := fmt.Sprint(r)
					failed.CompareAndSwap(nil, &msg)
					next.Store(int64(n)) // stop the others
				}
			}()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(w, i)
			}
		})
	}
	wg.Wait()
	if msg := failed.Load(); msg != nil {
		return fmt.Errorf("internal error: %s", *msg)
	}
	return ctx.Err()
}
