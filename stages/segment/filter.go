package segment

import (
	"math"
	"runtime"
	"sync"
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

// parallel calls f on [lo, hi) chunks covering [0, n), on all CPUs. Each
// chunk writes only its own outputs, so results do not depend on
// scheduling.
func parallel(n int, f func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for c := range w {
		lo, hi := c*n/w, (c+1)*n/w
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

// boxMean returns the mean of in over a box of the given per-axis radii;
// at the edges the box is cut to the volume (mean over valid voxels).
func boxMean(g grid, in []float32, r [3]int) []float32 {
	out := append([]float32(nil), in...)
	tmp := make([]float32, len(in))
	nx, ny, nz := g.dim[0], g.dim[1], g.dim[2]
	plane := nx * ny
	if r[0] > 0 {
		parallel(nz*ny, func(lo, hi int) {
			acc := make([]float64, nx+1)
			for row := lo; row < hi; row++ {
				line := out[row*nx : (row+1)*nx]
				for i, v := range line {
					acc[i+1] = acc[i] + float64(v)
				}
				dst := tmp[row*nx : (row+1)*nx]
				for i := range line {
					a, b := max(i-r[0], 0), min(i+r[0]+1, nx)
					dst[i] = float32((acc[b] - acc[a]) / float64(b-a))
				}
			}
		})
		out, tmp = tmp, out
	}
	if r[1] > 0 {
		parallel(nz, func(lo, hi int) {
			acc := make([]float64, nx)
			for k := lo; k < hi; k++ {
				sl := out[k*plane : (k+1)*plane]
				dst := tmp[k*plane : (k+1)*plane]
				slideRows(sl, dst, acc, nx, ny, r[1])
			}
		})
		out, tmp = tmp, out
	}
	if r[2] > 0 && nz > 1 {
		parallel(plane, func(lo, hi int) {
			acc := make([]float64, hi-lo)
			w := hi - lo
			// Window over slices, as a running sum per column.
			for k := 0; k <= min(r[2], nz-1); k++ {
				for c := range w {
					acc[c] += float64(out[k*plane+lo+c])
				}
			}
			for k := range nz {
				a, b := max(k-r[2], 0), min(k+r[2]+1, nz)
				inv := 1 / float64(b-a)
				for c := range w {
					tmp[k*plane+lo+c] = float32(acc[c] * inv)
				}
				if add := k + r[2] + 1; add < nz {
					for c := range w {
						acc[c] += float64(out[add*plane+lo+c])
					}
				}
				if sub := k - r[2]; sub >= 0 {
					for c := range w {
						acc[c] -= float64(out[sub*plane+lo+c])
					}
				}
			}
		})
		out, tmp = tmp, out
	}
	return out
}

// slideRows writes the running mean over rows (radius r) of one slice.
func slideRows(sl, dst []float32, acc []float64, nx, ny, r int) {
	clear(acc)
	for j := 0; j <= min(r, ny-1); j++ {
		for i := range nx {
			acc[i] += float64(sl[j*nx+i])
		}
	}
	for j := range ny {
		a, b := max(j-r, 0), min(j+r+1, ny)
		inv := 1 / float64(b-a)
		for i := range nx {
			dst[j*nx+i] = float32(acc[i] * inv)
		}
		if add := j + r + 1; add < ny {
			for i := range nx {
				acc[i] += float64(sl[add*nx+i])
			}
		}
		if sub := j - r; sub >= 0 {
			for i := range nx {
				acc[i] -= float64(sl[sub*nx+i])
			}
		}
	}
}

// extrema returns the maximum and the minimum of in over a box of the
// given radii (cut at the edges).
func extrema(g grid, in []float32, r [3]int) (mx, mn []float32) {
	mx = append([]float32(nil), in...)
	mn = append([]float32(nil), in...)
	nx, ny, nz := g.dim[0], g.dim[1], g.dim[2]
	stride := [3]int{1, nx, nx * ny}
	for a := range 3 {
		if r[a] == 0 || g.dim[a] < 2 {
			continue
		}
		srcX, srcN := mx, mn
		mx, mn = make([]float32, len(in)), make([]float32, len(in))
		// Each output voxel v takes the extremes of v + d·stride, |d| ≤ r,
		// within the volume; parallel over slices for axes 0 and 1, over
		// rows for axis 2.
		parallel(nz*ny, func(lo, hi int) {
			for row := lo; row < hi; row++ {
				j, k := row%ny, row/ny
				for i := range nx {
					pos := [3]int{i, j, k}[a]
					v := row*nx + i
					x, n := srcX[v], srcN[v]
					for d := max(-r[a], -pos); d <= min(r[a], g.dim[a]-1-pos); d++ {
						u := v + d*stride[a]
						x = max(x, srcX[u])
						n = min(n, srcN[u])
					}
					mx[v], mn[v] = x, n
				}
			}
		})
	}
	return mx, mn
}

// gradient returns the gradient magnitude of in (HU/mm), central
// differences inside, one-sided at the edges.
func gradient(g grid, in []float32) []float32 {
	out := make([]float32, len(in))
	nx, ny, nz := g.dim[0], g.dim[1], g.dim[2]
	stride := [3]int{1, nx, nx * ny}
	parallel(nz*ny, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			j, k := row%ny, row/ny
			for i := range nx {
				v := row*nx + i
				pos := [3]int{i, j, k}
				var s float64
				for a := range 3 {
					if g.dim[a] < 2 {
						continue
					}
					lo, hi := max(pos[a]-1, 0), min(pos[a]+1, g.dim[a]-1)
					d := float64(in[v+(hi-pos[a])*stride[a]]-in[v-(pos[a]-lo)*stride[a]]) / (float64(hi-lo) * g.sp[a])
					s += d * d
				}
				out[v] = float32(math.Sqrt(s))
			}
		}
	})
	return out
}

// fillSlices returns, per axial slice, the mask plus every region of
// non-mask pixels not 4-connected to the slice border (the holes).
func fillSlices(g grid, mask []bool) []bool {
	nx, ny, nz := g.dim[0], g.dim[1], g.dim[2]
	plane := nx * ny
	out := make([]bool, len(mask))
	parallel(nz, func(lo, hi int) {
		outside := make([]bool, plane)
		var stack []int32
		for k := lo; k < hi; k++ {
			m := mask[k*plane : (k+1)*plane]
			clear(outside)
			stack = stack[:0]
			push := func(p int) {
				if !m[p] && !outside[p] {
					outside[p] = true
					stack = append(stack, int32(p))
				}
			}
			for i := range nx {
				push(i)
				push((ny-1)*nx + i)
			}
			for j := range ny {
				push(j * nx)
				push(j*nx + nx - 1)
			}
			for len(stack) > 0 {
				p := int(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
				i, j := p%nx, p/nx
				if i > 0 {
					push(p - 1)
				}
				if i < nx-1 {
					push(p + 1)
				}
				if j > 0 {
					push(p - nx)
				}
				if j < ny-1 {
					push(p + nx)
				}
			}
			o := out[k*plane : (k+1)*plane]
			for p := range o {
				o[p] = !outside[p]
			}
		}
	})
	return out
}

// components labels the 6-connected components of mask and returns, per
// voxel, its component number (0 outside the mask, 1… inside, in order of
// first voxel) and the size of each component (index 0 unused).
func components(g grid, mask []bool) ([]int32, []int) {
	nx, ny := g.dim[0], g.dim[1]
	plane := nx * ny
	lab := make([]int32, len(mask))
	sizes := []int{0}
	var queue []int32
	for s, in := range mask {
		if !in || lab[s] != 0 {
			continue
		}
		id := int32(len(sizes))
		n := 0
		lab[s] = id
		queue = append(queue[:0], int32(s))
		for len(queue) > 0 {
			p := int(queue[len(queue)-1])
			queue = queue[:len(queue)-1]
			n++
			i, j, k := p%nx, (p/nx)%ny, p/plane
			for _, q := range [6]int{p - 1, p + 1, p - nx, p + nx, p - plane, p + plane} {
				switch {
				case q == p-1 && i == 0, q == p+1 && i == nx-1,
					q == p-nx && j == 0, q == p+nx && j == ny-1,
					q == p-plane && k == 0, q == p+plane && k == g.dim[2]-1:
					continue
				}
				if mask[q] && lab[q] == 0 {
					lab[q] = id
					queue = append(queue, int32(q))
				}
			}
		}
		sizes = append(sizes, n)
	}
	return lab, sizes
}
