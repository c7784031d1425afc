package dicom

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages/volume"
)

func TestFixtures(t *testing.T) {
	t.Parallel()
	for _, fx := range fixtures() {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			want := fx.write(t, dir)
			scan, err := Discover(context.Background(), []string{dir}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(scan.Skipped) != fx.skipped {
				t.Errorf("skipped %v, want %d", scan.Skipped, fx.skipped)
			}
			nwant := max(len(want), 1)
			if len(scan.Series) != nwant {
				t.Fatalf("%d series, want %d", len(scan.Series), nwant)
			}
			for _, w := range fx.warnings {
				if !slices.ContainsFunc(scan.Series[0].Warnings, func(s string) bool { return strings.Contains(s, w) }) {
					t.Errorf("warnings %q lack %q", scan.Series[0].Warnings, w)
				}
			}
			if len(fx.warnings) == 0 && len(scan.Series[0].Warnings) > 0 {
				t.Errorf("unexpected warnings %q", scan.Series[0].Warnings)
			}
			for i, w := range want {
				s := scan.Series[i]
				got, err := s.Volume(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if d := got.Affine.MaxDiff(w.Affine); d > 1e-4 {
					t.Errorf("series %d: affine differs by %g\n got %v\nwant %v", i, d, got.Affine, w.Affine)
				}
				if diff := cmp.Diff(w.I16, got.I16); diff != "" {
					t.Errorf("series %d: voxels (-want +got):\n%s", i, diff)
				}
				if s.Dim != w.Dim || s.Slices != w.Dim[2] {
					t.Errorf("series %d: dim %v slices %d, want %v", i, s.Dim, s.Slices, w.Dim)
				}
			}
		})
	}
}

func TestStrictAndResample(t *testing.T) {
	t.Parallel()
	for _, fx := range fixtures() {
		if fx.name != "missing-slice" && fx.name != "gantry-tilt" {
			continue
		}
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fx.write(t, dir)
			strict := discoverOne(t, dir, Options{Strict: true})
			if !errors.Is(strict.Err, ErrIrregular) {
				t.Errorf("--strict: Err = %v, want ErrIrregular", strict.Err)
			}
			if _, err := strict.Volume(context.Background()); !errors.Is(err, ErrIrregular) {
				t.Errorf("--strict: Volume error = %v", err)
			}
			plain := discoverOne(t, dir, Options{})
			pv, err := plain.Volume(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			rs := discoverOne(t, dir, Options{Resample: true})
			rv, err := rs.Volume(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// The resampled grid is orthogonal, 2.5 mm apart along the normal.
			sp := rv.Affine.Spacing()
			if math.Abs(sp[2]-2.5) > 1e-6 || math.Abs(rv.Affine[1][2]) > 1e-9 || math.Abs(rv.Affine[0][2]) > 1e-9 {
				t.Errorf("resampled affine %v is not a 2.5 mm orthogonal grid", rv.Affine)
			}
			plane := rv.Dim[0] * rv.Dim[1]
			switch fx.name {
			case "missing-slice":
				if plain.Dim[2] != 6 || rv.Dim[2] != 7 {
					t.Fatalf("slices %d plain, %d resampled; want 6 and 7", plain.Dim[2], rv.Dim[2])
				}
				// Slice 3 is rebuilt as the mean of its neighbours; the others are the originals.
				for n := range plane {
					want := int16(math.Round((float64(pv.I16[2*plane+n]) + float64(pv.I16[3*plane+n])) / 2))
					if rv.I16[3*plane+n] != want {
						t.Fatalf("voxel %d of the missing slice = %d, want %d", n, rv.I16[3*plane+n], want)
					}
				}
				if !slices.Equal(rv.I16[:3*plane], pv.I16[:3*plane]) || !slices.Equal(rv.I16[4*plane:], pv.I16[3*plane:]) {
					t.Error("resampling changed the existing slices")
				}
			case "gantry-tilt":
				// Slice k moved k·0.531 mm anteriorly; at world point of voxel
				// (i, j) of slice 0 everything matches, and slice 5 is shifted by
				// 2.66 mm (≈3.5 rows of 0.75 mm) relative to the plain volume.
				if !slices.Equal(rv.I16[:plane], pv.I16[:plane]) {
					t.Error("slice 0 changed")
				}
				if slices.Equal(rv.I16[5*plane:], pv.I16[5*plane:]) {
					t.Error("slice 5 was not shifted")
				}
			}
		})
	}
}

// canonical reorders v's axes so that voxel axis c points along +RAS axis
// c (nibabel's as_closest_canonical), returning values and affine.
func canonical(v *volume.Volume) ([]float64, [3]int, volume.Affine) {
	var perm [3]int
	var flip [3]bool
	for c := range 3 {
		best := 0
		for r := 1; r < 3; r++ {
			if math.Abs(v.Affine[r][c]) > math.Abs(v.Affine[best][c]) {
				best = r
			}
		}
		perm[c], flip[c] = best, v.Affine[best][c] < 0
	}
	var dim [3]int
	for c := range 3 {
		dim[perm[c]] = v.Dim[c]
	}
	var aff volume.Affine
	aff[3][3] = 1
	for r := range 3 {
		aff[r][3] = v.Affine[r][3]
	}
	for c := range 3 {
		s := 1.0
		if flip[c] {
			s = -1
			for r := range 3 {
				aff[r][3] += v.Affine[r][c] * float64(v.Dim[c]-1)
			}
		}
		for r := range 3 {
			aff[r][perm[c]] = s * v.Affine[r][c]
		}
	}
	out := make([]float64, v.Len())
	for k := range v.Dim[2] {
		for j := range v.Dim[1] {
			for i := range v.Dim[0] {
				old := [3]int{i, j, k}
				var nw [3]int
				for c := range 3 {
					x := old[c]
					if flip[c] {
						x = v.Dim[c] - 1 - x
					}
					nw[perm[c]] = x
				}
				out[nw[0]+dim[0]*(nw[1]+dim[1]*nw[2])] = v.At(v.Index(i, j, k))
			}
		}
	}
	return out, dim, aff
}

// TestDcm2niix converts every fixture with dcm2niix and medcad: the same
// voxels, and affines within 1e-4 mm once both are in canonical axis order.
func TestDcm2niix(t *testing.T) {
	t.Parallel()
	bin := testenv.LookPath(t, "dcm2niix")
	for _, fx := range fixtures() {
		if !fx.diff {
			continue
		}
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			dir, out := t.TempDir(), t.TempDir()
			fx.write(t, dir)
			cmd := exec.Command(bin, "-z", "n", "-f", "%s_%j_%z", "-o", out, dir)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("dcm2niix: %v\n%s", err, b)
			}
			refFiles, _ := filepath.Glob(filepath.Join(out, "*.nii"))
			var refs []*volume.Volume
			for _, f := range refFiles {
				v, err := volume.Read(f)
				if err != nil {
					t.Fatal(err)
				}
				if v.Dim[2] > 1 { // dcm2niix also writes the localizer
					refs = append(refs, v)
				}
			}
			scan, err := Discover(context.Background(), []string{dir}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(refs) != len(scan.Series) {
				t.Fatalf("dcm2niix wrote %d volumes, medcad found %d series", len(refs), len(scan.Series))
			}
			for _, s := range scan.Series {
				got, err := s.Volume(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				gv, gdim, gaff := canonical(got)
				matched := false
				for _, r := range refs {
					rv, rdim, raff := canonical(r)
					if fx.refFix != nil {
						for i := range rv {
							rv[i] = fx.refFix(rv[i])
						}
					}
					if rdim != gdim {
						continue
					}
					matched = true
					if d := gaff.MaxDiff(raff); d > 1e-4 {
						t.Errorf("%s: affine differs from dcm2niix by %g mm\nmedcad   %v\ndcm2niix %v", s.ID, d, gaff, raff)
					}
					if diff := cmp.Diff(rv, gv); diff != "" {
						t.Errorf("%s: voxels differ from dcm2niix (-dcm2niix +medcad):\n%s", s.ID, diff)
					}
				}
				if !matched {
					t.Errorf("%s: no dcm2niix volume of shape %v", s.ID, gdim)
				}
			}
		})
	}
}

var _ = bytes.Equal
var _ = os.Remove
