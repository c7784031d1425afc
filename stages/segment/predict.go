package segment

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/medcad/medcad/stages/volume"
)

// fullIndex maps voxel v of the working box to its index in ct.
func (w *work) fullIndex(v int) int {
	d := w.g.dim
	i, j, k := v%d[0], (v/d[0])%d[1], v/(d[0]*d[1])
	return w.ct.Index(w.box.lo[0]+i, w.box.lo[1]+j, w.box.lo[2]+k)
}

// Predict segments bone in ct (int16 or float32 HU). The mask (uint8,
// 1 = bone) has ct's shape and affine.
func Predict(ctx context.Context, m *Model, ct *volume.Volume) (*volume.Volume, error) {
	if err := ct.Check(); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	out := volume.New(volume.Uint8, ct.Dim, ct.Affine)
	w, err := localize(ct, m.Localizer)
	if errors.Is(err, ErrNoBody) {
		return out, nil // nothing there: an empty mask
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fs := extract(w, m.Features)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prob := m.MLP.net().score(fs)
	mask := refine(w, fs, prob, m.Refine, m.Features.MaxHoleMM2, m.Localizer.BodyMinHU)
	w.paste(mask, out)
	return out, nil
}

// paste writes the box mask into the full-size output.
func (w *work) paste(mask []bool, out *volume.Volume) {
	d := w.g.dim
	parallel(d[2], func(lo, hi int) {
		for k := lo; k < hi; k++ {
			for j := range d[1] {
				src := (k*d[1] + j) * d[0]
				dst := w.ct.Index(w.box.lo[0], w.box.lo[1]+j, w.box.lo[2]+k)
				for i, in := range mask[src : src+d[0]] {
					if in {
						out.U8[dst+i] = 1
					}
				}
			}
		}
	})
}

// refine thresholds the candidate probabilities, removes fragments
// smaller than r.MinComponentMM3 and optionally fills holes per slice (of
// at most maxHoleMM2) except their air (HU ≤ airHU): a marrow cavity is
// bone, the air of a sinus or an air cell is not.
func refine(w *work, fs featureSet, prob [][]float32, r Refine, maxHoleMM2, airHU float64) []bool {
	mask := make([]bool, w.g.len())
	for ci, c := range fs.chunks {
		for i, v := range c.idx {
			if float64(prob[ci][i]) > r.Threshold {
				mask[v] = true
			}
		}
	}
	voxel := w.g.sp[0] * w.g.sp[1] * w.g.sp[2]
	removeSmall(w.g, mask, int(math.Ceil(r.MinComponentMM3/voxel)))
	if r.FillHoles {
		filled := fillHoles(w.g, mask, w.g.area(maxHoleMM2))
		for v := range filled {
			filled[v] = mask[v] || filled[v] && w.body[v] && w.ct.At(w.fullIndex(v)) > airHU
		}
		mask = filled
	}
	return mask
}

// removeSmall clears the components of mask with fewer than n voxels.
func removeSmall(g grid, mask []bool, n int) {
	if n <= 1 {
		return
	}
	c := components(g, mask)
	c.paint(mask, func(root int32) bool { return c.size[root] >= n })
}

// BaselineOptions configure Baseline.
type BaselineOptions struct {
	ThresholdHU float64
	// KeepFraction keeps the components with at least this fraction of
	// the largest component's voxels (default 0.1).
	KeepFraction float64
}

// Baseline is the classical segmentation to beat: voxels above the HU
// threshold, keeping only the largest 6-connected components.
func Baseline(ctx context.Context, ct *volume.Volume, opts BaselineOptions) (*volume.Volume, error) {
	if err := ct.Check(); err != nil {
		return nil, err
	}
	if math.IsNaN(opts.ThresholdHU) || math.IsInf(opts.ThresholdHU, 0) {
		return nil, fmt.Errorf("threshold %v HU is not a number", opts.ThresholdHU)
	}
	if opts.KeepFraction == 0 {
		opts.KeepFraction = 0.1
	}
	g := grid{dim: ct.Dim, sp: ct.Spacing()}
	mask := make([]bool, g.len())
	parallel(len(mask), func(lo, hi int) {
		for v := lo; v < hi; v++ {
			mask[v] = ct.At(v) > opts.ThresholdHU
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := components(g, mask)
	out := volume.New(volume.Uint8, ct.Dim, ct.Affine)
	big := c.largest()
	if big < 0 {
		return out, nil
	}
	keep := int(math.Ceil(opts.KeepFraction * float64(c.size[big])))
	c.paint(mask, func(root int32) bool { return c.size[root] >= keep })
	for v, in := range mask {
		if in {
			out.U8[v] = 1
		}
	}
	return out, nil
}
