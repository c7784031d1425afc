package metrics

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// noFeature marks "no feature voxel in this column" in the k pass.
const noFeature = math.MaxUint16

// directed returns, for every voxel of flag with bit query, the Euclidean
// distance in mm from its centre to the nearest voxel with bit feat. There
// must be at least one feature voxel; nq is the number of query voxels.
// The order of the result is unspecified (slice by slice).
//
// Pass 1 runs along k and stores, per voxel, the distance in voxels to the
// nearest feature voxel of its k column (uint16). Then, for each slice k
// holding query voxels, pass 2 runs along i over all rows and pass 3 along
// j only over the columns holding query voxels, evaluated at them only.
func directed(ctx context.Context, flag []uint8, dim [3]int, sp [3]float64, feat, query uint8, nq int) ([]float64, error) {
	nx, ny, nz := dim[0], dim[1], dim[2]
	if nz >= noFeature {
		return nil, fmt.Errorf("bounding box of %d slices: at most %d supported", nz, noFeature-1)
	}
	plane := nx * ny
	workers := runtime.GOMAXPROCS(0)

	// Pass 1: distance along k, per row j of every slice, rows in parallel.
	dk := make([]uint16, len(flag))
	err := forEach(ctx, ny, workers, func(_, j int) {
		for k := range nz {
			row := k*plane + j*nx
			for i := range nx {
				n := row + i
				switch {
				case flag[n]&feat != 0:
					dk[n] = 0
				case k > 0 && dk[n-plane] != noFeature:
					dk[n] = dk[n-plane] + 1
				default:
					dk[n] = noFeature
				}
			}
		}
		for k := nz - 2; k >= 0; k-- {
			row := k*plane + j*nx
			for i := range nx {
				n := row + i
				if up := dk[n+plane]; up != noFeature && up+1 < dk[n] {
					dk[n] = up + 1
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}

	// Query voxels per slice give each slice its segment of the result.
	offset := make([]int, nz+1)
	err = forEach(ctx, nz, workers, func(_, k int) {
		c := 0
		for _, f := range flag[k*plane : (k+1)*plane] {
			if f&query != 0 {
				c++
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
	sk2 := sp[2] * sp[2]
	err = forEach(ctx, nz, workers, func(w, k int) {
		if offset[k] == offset[k+1] {
			return
		}
		s := scratch[w]
		if s == nil {
			s = newSliceScratch(nx, ny)
			scratch[w] = s
		}
		base := k * plane
		// Columns i with query voxels in this slice.
		clear(s.col)
		for j := range ny {
			for i, f := range flag[base+j*nx : base+(j+1)*nx] {
				if f&query != 0 {
					s.col[i] = true
				}
			}
		}
		// Pass 2 along i.
		for j := range ny {
			row := base + j*nx
			finite := false
			for i := range nx {
				if d := dk[row+i]; d == noFeature {
					s.f[i] = math.Inf(1)
				} else {
					s.f[i] = float64(d) * float64(d) * sk2
					finite = true
				}
			}
			g := s.g[j*nx : (j+1)*nx]
			if !finite {
				for i := range g {
					g[i] = math.Inf(1)
				}
				continue
			}
			s.env.build(s.f[:nx], sp[0])
			s.env.evalAll(g, sp[0])
		}
		// Pass 3 along j, evaluated only at the query voxels.
		o := offset[k]
		for i := range nx {
			if !s.col[i] {
				continue
			}
			for j := range ny {
				s.f[j] = s.g[j*nx+i]
			}
			if !s.env.build(s.f[:ny], sp[1]) {
				continue // cannot happen: a feature voxel exists somewhere
			}
			s.env.start()
			for j := range ny {
				if flag[base+j*nx+i]&query != 0 {
					out[o] = math.Sqrt(s.env.eval(j, sp[1]))
					o++
				}
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
	g   []float64 // pass 2 result for the slice
	f   []float64 // one line of input
	col []bool    // columns with query voxels
	env envelope
}

func newSliceScratch(nx, ny int) *sliceScratch {
	m := max(nx, ny)
	return &sliceScratch{
		g:   make([]float64, nx*ny),
		f:   make([]float64, m),
		col: make([]bool, nx),
		env: envelope{v: make([]int, m), z: make([]float64, m+1)},
	}
}

// envelope is the lower envelope of the parabolas y = f[q] + (x − q·s)²
// (Felzenszwalb–Huttenlocher), with x and q·s in mm.
type envelope struct {
	f   []float64
	v   []int     // parabola apexes (indices), v[:n]
	z   []float64 // boundaries: parabola v[t] is lowest on [z[t], z[t+1]]
	n   int
	cur int // evaluation cursor
}

// build computes the envelope of the finite values of f; it reports
// whether there was any.
func (e *envelope) build(f []float64, s float64) bool {
	e.f = f
	k := -1
	for q, fq := range f {
		if math.IsInf(fq, 1) {
			continue
		}
		pq := float64(q) * s
		if k < 0 {
			k = 0
			e.v[0] = q
			e.z[0] = math.Inf(-1)
			e.z[1] = math.Inf(1)
			continue
		}
		var x float64
		for {
			pv := float64(e.v[k]) * s
			x = ((fq + pq*pq) - (f[e.v[k]] + pv*pv)) / (2 * (pq - pv))
			if x <= e.z[k] {
				k--
				continue
			}
			break
		}
		k++
		e.v[k] = q
		e.z[k] = x
		e.z[k+1] = math.Inf(1)
	}
	e.n = k + 1
	return k >= 0
}

// evalAll writes the envelope at every index into g.
func (e *envelope) evalAll(g []float64, s float64) {
	e.start()
	for i := range g {
		g[i] = e.eval(i, s)
	}
}

// start resets the cursor; eval must then be called at increasing indices.
func (e *envelope) start() { e.cur = 0 }

func (e *envelope) eval(i int, s float64) float64 {
	p := float64(i) * s
	for e.z[e.cur+1] < p {
		e.cur++
	}
	d := p - float64(e.v[e.cur])*s
	return d*d + e.f[e.v[e.cur]]
}

// forEach calls fn(worker, i) for i in [0, n) on up to workers goroutines,
// handing out indices one at a time; it stops early when ctx is done.
func forEach(ctx context.Context, n, workers int, fn func(w, i int)) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range min(workers, n) {
		wg.Go(func() {
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
	return ctx.Err()
}
