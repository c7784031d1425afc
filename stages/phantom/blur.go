package phantom

import (
	"context"
	"math"
)

// blur applies a separable Gaussian of the given per-axis sigmas (in
// voxels) in place: the partial-volume effect of the scanner's point
// spread function and slice profile.
func blur(ctx context.Context, data []float32, dim [3]int, sigma [3]float64) {
	nx, ny, nz := dim[0], dim[1], dim[2]
	stride := [3]int{1, nx, nx * ny}
	n := [3]int{nx, ny, nz}
	for axis := range 3 {
		if sigma[axis] < 0.2 || n[axis] < 2 {
			continue
		}
		kern := gaussian(sigma[axis])
		// Lines along axis, indexed by their start voxel; split by slice of
		// the other axes so that each goroutine writes its own lines.
		outer := nz
		if axis == 2 {
			outer = ny
		}
		_ = parallelSlices(ctx, outer, func(o int) {
			line := make([]float32, n[axis])
			out := make([]float32, n[axis])
			var starts []int
			switch axis {
			case 0:
				for j := range ny {
					starts = append(starts, o*nx*ny+j*nx)
				}
			case 1:
				for i := range nx {
					starts = append(starts, o*nx*ny+i)
				}
			case 2:
				for i := range nx {
					starts = append(starts, o*nx+i)
				}
			}
			for _, st := range starts {
				for t := range line {
					line[t] = data[st+t*stride[axis]]
				}
				convolve(line, out, kern)
				for t := range out {
					data[st+t*stride[axis]] = out[t]
				}
			}
		})
	}
}

func gaussian(sigma float64) []float32 {
	r := int(math.Ceil(3 * sigma))
	k := make([]float32, 2*r+1)
	var sum float64
	w := make([]float64, 2*r+1)
	for i := -r; i <= r; i++ {
		w[i+r] = math.Exp(-float64(i*i) / (2 * sigma * sigma))
		sum += w[i+r]
	}
	for i := range w {
		k[i] = float32(w[i] / sum)
	}
	return k
}

// convolve writes in ⊛ kern to out, replicating the edge values.
func convolve(in, out, kern []float32) {
	r := len(kern) / 2
	n := len(in)
	for t := range n {
		var acc float32
		for q := -r; q <= r; q++ {
			idx := min(max(t+q, 0), n-1)
			acc += kern[q+r] * in[idx]
		}
		out[t] = acc
	}
}
