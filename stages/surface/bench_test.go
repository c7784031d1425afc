package surface

import (
	"context"
	"testing"

	"github.com/medcad/medcad/stages/volume"
)

// BenchmarkExtract measures marching cubes on a 200×200×120 smooth field
// (a ball) at an iso value (bench/metrics/run.sh compares full CT size
// with scikit-image).
func BenchmarkExtract(b *testing.B) {
	sp := [3]float64{0.8, 0.8, 1}
	_, field := sphere([3]int{200, 200, 120}, sp, 70, volume.Identity(sp))
	iso := 0.0
	b.SetBytes(int64(field.Len()))
	for b.Loop() {
		if _, err := Extract(context.Background(), field, Options{Iso: &iso}); err != nil {
			b.Fatal(err)
		}
	}
}
