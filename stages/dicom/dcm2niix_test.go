package dicom

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages/volume"
)

// dcm2niix converts dir with dcm2niix and returns the volumes it wrote.
func dcm2niix(t *testing.T, dir string) []*volume.Volume {
	t.Helper()
	bin := testenv.LookPath(t, "dcm2niix")
	out := t.TempDir()
	cmd := exec.Command(bin, "-z", "n", "-f", "%s_%j", "-o", out, dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dcm2niix: %v\n%s", err, b)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.nii"))
	var vs []*volume.Volume
	for _, f := range files {
		v, err := volume.Read(f)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

func TestExploreDcm2niix(t *testing.T) {
	v := phantom([3]int{24, 20, 7}, axial([3]float64{0.7, 0.7, 2.5}, [3]float64{8, -120, -300}), 1)
	dir := t.TempDir()
	if _, err := WriteSeries(dir, v, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := dcm2niix(t, dir)
	s := discoverOne(t, dir, Options{})
	got, _ := s.Volume(context.Background())
	for _, r := range ref {
		t.Logf("ref dim %v dtype %v aff %v", r.Dim, r.DType, r.Affine)
		t.Logf("got dim %v aff %v", got.Dim, got.Affine)
		same := 0
		for n := range r.Len() {
			if r.At(n) == float64(got.I16[n]) {
				same++
			}
		}
		t.Logf("same %d of %d", same, r.Len())
	}
	_ = os.Remove
}
