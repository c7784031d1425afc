package dicom

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages/volume"
)

// TestSuyashkumarTestdata converts the real files shipped with
// suyashkumar/dicom (TCIA PET, MR, CR, enhanced CT, a deflated file):
// each converts or fails with a clear message, and the 2-frame CT
// converts.
func TestSuyashkumarTestdata(t *testing.T) {
	t.Parallel()
	td := suyashTestdata(t)
	tests := []struct {
		file      string
		modality  string
		dim       [3]int
		orient    string
		warnings  int
		converts  bool
		wantInErr string
	}{
		{"1.dcm", "PT", [3]int{168, 168, 1}, "LAS", 0, true, ""},
		{"2.dcm", "PT", [3]int{168, 168, 1}, "LAS", 0, true, ""},
		{"3.dcm", "MR", [3]int{176, 176, 1}, "", 0, true, ""},
		{"4.dcm", "CR", [3]int{1760, 2140, 1}, "RAS", 1, true, ""},
		{"5.dcm", "CT", [3]int{512, 512, 2}, "RAI", 0, true, ""},
		{"6.dcm", "OT", [3]int{512, 512, 1}, "RAS", 2, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			scan, err := Discover(context.Background(), []string{filepath.Join(td, tt.file)}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(scan.Series) != 1 {
				t.Fatalf("series %d, skipped %v", len(scan.Series), scan.Skipped)
			}
			s := scan.Series[0]
			v, err := s.Volume(context.Background())
			if !tt.converts {
				if err == nil {
					t.Fatal("converted; want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Modality != tt.modality || v.Dim != tt.dim || len(s.Warnings) != tt.warnings || (tt.orient != "" && s.Orientation != tt.orient) {
				t.Errorf("modality %s dim %v orientation %s warnings %q; want %s %v %s %d",
					s.Modality, v.Dim, s.Orientation, s.Warnings, tt.modality, tt.dim, tt.orient, tt.warnings)
			}
			if tt.file != "6.dcm" { // dcm2niix refuses deflated files
				compareDcm2niix(t, filepath.Join(td, tt.file), s, v)
			}
		})
	}
}

// compareDcm2niix converts one file with dcm2niix and compares voxels and
// (canonical) affine with medcad's.
func compareDcm2niix(t *testing.T, file string, s *Series, got *volume.Volume) {
	t.Helper()
	bin := testenv.LookPath(t, "dcm2niix")
	in, out := t.TempDir(), t.TempDir()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(in, filepath.Base(file)), b, 0o644)
	if o, err := exec.Command(bin, "-z", "n", "-f", "out", "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("dcm2niix: %v\n%s", err, o)
	}
	ref, err := volume.Read(filepath.Join(out, "out.nii"))
	if err != nil {
		t.Fatal(err)
	}
	gv, gdim, gaff := canonical(got)
	rv, rdim, raff := canonical(ref)
	if gdim != rdim {
		t.Fatalf("%s: shape %v, dcm2niix %v", s.ID, gdim, rdim)
	}
	if d := gaff.MaxDiff(raff); d > 1e-4 {
		t.Errorf("affine differs from dcm2niix by %g mm\nmedcad   %v\ndcm2niix %v", d, gaff, raff)
	}
	bad := 0
	for i := range rv {
		if math.Abs(rv[i]-gv[i]) > 1e-3*max(1, math.Abs(rv[i])) {
			if bad < 3 {
				t.Errorf("voxel %d: dcm2niix %g, medcad %g", i, rv[i], gv[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d voxels differ from dcm2niix", bad, len(rv))
	}
}
