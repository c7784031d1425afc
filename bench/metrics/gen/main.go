// Command gen writes the synthetic CT-sized mask pair and HU volume that
// bench/metrics/run.sh measures: a 300-slice 512×512 grid (0.78×0.78×1 mm)
// holding about 5 million "bone" voxels made of solid and hollow ellipsoids
// (vertebra- and long-bone-like), and a prediction that differs from it as
// a model's would: jittered centres and radii, a few parts missed, a few
// false positives. It writes truth.nii, pred.nii and ct.nii (HU: bone 700,
// soft tissue 40, air -1000, mild noise), and raw copies truth.u8,
// pred.u8 and ct.i16 (little-endian; i fastest; shape in NAME.shape) for
// the Python side.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/medcad/medcad/stages/volume"
)

type ellipsoid struct {
	c, r  [3]float64 // centre and radii in mm
	shell float64    // wall thickness in mm; 0 = solid
}

func main() {
	out := flag.String("out", ".", "output folder")
	nx := flag.Int("nx", 512, "voxels along i and j")
	nz := flag.Int("nz", 300, "slices")
	count := flag.Int("n", 175, "number of bone parts")
	flag.Parse()
	if err := run(*out, [3]int{*nx, *nx, *nz}, *count); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(out string, dim [3]int, count int) error {
	sp := [3]float64{0.78125, 0.78125, 1}
	aff := volume.Identity(sp)
	ext := [3]float64{float64(dim[0]) * sp[0], float64(dim[1]) * sp[1], float64(dim[2]) * sp[2]}
	rng := rand.New(rand.NewPCG(2026, 5))
	var truth, pred []ellipsoid
	for range count {
		e := ellipsoid{
			c: [3]float64{ext[0] * (0.2 + 0.6*rng.Float64()), ext[1] * (0.2 + 0.6*rng.Float64()), ext[2] * rng.Float64()},
			r: [3]float64{6 + 18*rng.Float64(), 6 + 18*rng.Float64(), 8 + 40*rng.Float64()},
		}
		if rng.IntN(2) == 0 {
			e.shell = 2 + 3*rng.Float64()
		}
		truth = append(truth, e)
		switch p := rng.Float64(); {
		case p < 0.04: // missed by the model
		default:
			q := e
			for a := range 3 {
				q.c[a] += rng.NormFloat64() * 0.8
				q.r[a] *= 1 + rng.NormFloat64()*0.04
			}
			pred = append(pred, q)
		}
		if rng.Float64() < 0.04 { // false positive
			pred = append(pred, ellipsoid{
				c: [3]float64{ext[0] * rng.Float64(), ext[1] * rng.Float64(), ext[2] * rng.Float64()},
				r: [3]float64{3 + 5*rng.Float64(), 3 + 5*rng.Float64(), 3 + 5*rng.Float64()},
			})
		}
	}
	t := volume.New(volume.Uint8, dim, aff)
	p := volume.New(volume.Uint8, dim, aff)
	paint(t, truth)
	paint(p, pred)
	ct := volume.New(volume.Int16, dim, aff)
	for n := range ct.I16 {
		i, j := n%dim[0], n/dim[0]%dim[1]
		x, y := (float64(i)/float64(dim[0])-0.5)*2, (float64(j)/float64(dim[1])-0.5)*2
		switch {
		case t.U8[n] != 0:
			ct.I16[n] = 700
		case x*x/0.9+y*y/0.7 < 1:
			ct.I16[n] = 40
		default:
			ct.I16[n] = -1000
		}
		ct.I16[n] += int16(rng.IntN(41) - 20)
	}
	bone := 0
	for _, x := range t.U8 {
		bone += int(x)
	}
	fmt.Fprintf(os.Stderr, "gen: %v voxels, %d truth bone voxels\n", dim, bone)
	for name, v := range map[string]*volume.Volume{"truth": t, "pred": p, "ct": ct} {
		if err := volume.Write(filepath.Join(out, name+".nii"), v); err != nil {
			return err
		}
		raw, ext := v.U8, ".u8"
		if v.DType == volume.Int16 {
			raw, ext = make([]byte, 2*len(v.I16)), ".i16"
			for n, x := range v.I16 {
				binary.LittleEndian.PutUint16(raw[2*n:], uint16(x))
			}
		}
		if err := os.WriteFile(filepath.Join(out, name+ext), raw, 0o644); err != nil {
			return err
		}
		shape := fmt.Sprintf("%d %d %d\n", dim[0], dim[1], dim[2])
		if err := os.WriteFile(filepath.Join(out, name+ext+".shape"), []byte(shape), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// paint sets to 1 every voxel whose centre lies inside one of the parts.
func paint(v *volume.Volume, parts []ellipsoid) {
	sp := v.Spacing()
	for _, e := range parts {
		var lo, hi [3]int
		for a := range 3 {
			lo[a] = max(0, int(math.Floor((e.c[a]-e.r[a])/sp[a])))
			hi[a] = min(v.Dim[a]-1, int(math.Ceil((e.c[a]+e.r[a])/sp[a])))
		}
		for k := lo[2]; k <= hi[2]; k++ {
			for j := lo[1]; j <= hi[1]; j++ {
				for i := lo[0]; i <= hi[0]; i++ {
					p := [3]float64{float64(i) * sp[0], float64(j) * sp[1], float64(k) * sp[2]}
					if inside(e, p) {
						v.U8[v.Index(i, j, k)] = 1
					}
				}
			}
		}
	}
}

func inside(e ellipsoid, p [3]float64) bool {
	q := 0.0
	for a := range 3 {
		d := (p[a] - e.c[a]) / e.r[a]
		q += d * d
	}
	if q > 1 {
		return false
	}
	if e.shell == 0 {
		return true
	}
	q = 0
	for a := range 3 {
		d := (p[a] - e.c[a]) / math.Max(e.r[a]-e.shell, 0.1)
		q += d * d
	}
	return q > 1
}
