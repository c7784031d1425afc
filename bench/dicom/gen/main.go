// Command gen writes the DICOM series of bench/dicom: a synthetic CT of
// 512×512×N slices (0.78×0.78×1 mm, explicit VR little endian, 16-bit
// signed, RescaleIntercept -1024) with a body, bones and noise, as
// single-frame files named in shuffled order.
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"

	"github.com/medcad/medcad/stages/dicom"
	"github.com/medcad/medcad/stages/volume"
)

func main() {
	out := flag.String("out", "", "output folder")
	slices := flag.Int("slices", 300, "number of slices")
	flag.Parse()
	if *out == "" {
		log.Fatal("gen: -out is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	n := 512
	aff := volume.Affine{{-0.78125, 0, 0, 200}, {0, 0.78125, 0, -200}, {0, 0, 1, -150}, {0, 0, 0, 1}}
	v := volume.New(volume.Int16, [3]int{n, n, *slices}, aff)
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range *slices {
		for j := range n {
			for i := range n {
				x, y := (float64(i)-256)/200, (float64(j)-270)/150
				r := math.Hypot(x, y)
				hu := -1000.0
				switch {
				case math.Hypot(x-0.3, y) < 0.12 || math.Hypot(x+0.3, y) < 0.12:
					hu = 900 + 100*math.Sin(float64(k)/20) // bone
				case r < 0.25:
					hu = -800 // lung-like
				case r < 1:
					hu = 40 + 20*math.Sin(float64(i+j+k)/30) // soft tissue
				}
				if hu > -1000 {
					hu += rng.NormFloat64() * 15
				}
				v.I16[v.Index(i, j, k)] = int16(math.Round(hu))
			}
		}
	}
	perm := rand.New(rand.NewPCG(3, 4)).Perm(*slices)
	_, err := dicom.WriteSeries(*out, v, dicom.WriteOptions{
		Signed: true, Slope: 1, Intercept: -1024, SeriesNumber: 1,
		Name: func(k int) string { return fmt.Sprintf("IM%05d.dcm", perm[k]) },
	})
	if err != nil {
		log.Fatal(err)
	}
}
