package dicom

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/stages/volume"
)

// phantom returns a small CT-like volume: air, a body ellipse of soft
// tissue, a bone ring and a gradient, so that every axis and flip shows.
func phantom(dim [3]int, aff volume.Affine, seed uint64) *volume.Volume {
	v := volume.New(volume.Int16, dim, aff)
	rng := rand.New(rand.NewPCG(seed, 1))
	for k := range dim[2] {
		for j := range dim[1] {
			for i := range dim[0] {
				x := (float64(i) - float64(dim[0])/2) / float64(dim[0]) * 2
				y := (float64(j) - float64(dim[1])/2.5) / float64(dim[1]) * 2
				hu := -1000
				r := math.Hypot(x, y*1.3)
				switch {
				case r < 0.35:
					hu = 40 + 3*k + i - j
				case r < 0.5:
					hu = 700 + 10*k
				case r < 0.8:
					hu = 20 + j
				}
				hu += rng.IntN(7) - 3
				v.I16[v.Index(i, j, k)] = int16(hu)
			}
		}
	}
	return v
}

// axial is the affine dcm2niix writes for an axial series.
func axial(sp [3]float64, o [3]float64) volume.Affine {
	return volume.Affine{
		{-sp[0], 0, 0, o[0]},
		{0, sp[1], 0, o[1]},
		{0, 0, sp[2], o[2]},
		{0, 0, 0, 1},
	}
}

func discoverOne(t *testing.T, dir string, opts Options) *Series {
	t.Helper()
	scan, err := Discover(context.Background(), []string{dir}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(scan.Series) != 1 {
		t.Fatalf("%d series, want 1 (skipped %v)", len(scan.Series), scan.Skipped)
	}
	return scan.Series[0]
}

func TestWriteSeriesRoundTrip(t *testing.T) {
	t.Parallel()
	v := phantom([3]int{24, 20, 7}, axial([3]float64{0.7, 0.7, 2.5}, [3]float64{8, -120, -300}), 1)
	dir := t.TempDir()
	if _, err := WriteSeries(dir, v, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	s := discoverOne(t, dir, Options{})
	got, err := s.Volume(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Affine.MaxDiff(v.Affine); d > 1e-4 {
		t.Errorf("affine differs by %g:\n got %v\nwant %v", d, got.Affine, v.Affine)
	}
	if diff := cmp.Diff(v.I16, got.I16); diff != "" {
		t.Errorf("voxels (-want +got):\n%s", diff)
	}
	if s.Orientation != "LAS" || len(s.Warnings) != 0 {
		t.Errorf("orientation %q warnings %q", s.Orientation, s.Warnings)
	}
	_ = os.Remove
	_ = filepath.Join
	_ = strings.Contains
}
