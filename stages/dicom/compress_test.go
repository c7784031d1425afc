package dicom

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages/volume"
)

// recode runs a dcmtk program on every file of src, writing into a new
// folder, and returns it.
func recode(t *testing.T, src string, prog string, args ...string) string {
	t.Helper()
	bin := testenv.LookPath(t, prog)
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		a := append(append([]string{}, args...), filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
		if out, err := exec.Command(bin, a...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", prog, a, err, out)
		}
	}
	return dst
}

func volumeOf(t *testing.T, dir string) (*Series, *volume.Volume) {
	t.Helper()
	s := discoverOne(t, dir, Options{})
	v, err := s.Volume(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return s, v
}

// TestCompressed compresses fixtures with dcmtk and checks that medcad
// decodes them voxel for voxel like the uncompressed original.
func TestCompressed(t *testing.T) {
	t.Parallel()
	unsigned := t.TempDir()
	writeOrFatal(t, unsigned, phantom([3]int{37, 23, 4}, axial([3]float64{0.7, 0.7, 2}, [3]float64{1, 2, 3}), 21), WriteOptions{})
	signed := t.TempDir()
	writeOrFatal(t, signed, phantom([3]int{33, 20, 3}, axial([3]float64{0.7, 0.7, 2}, [3]float64{1, 2, 3}), 22),
		WriteOptions{Signed: true, BitsStored: 16, Slope: 1, Intercept: 0})
	enhanced := t.TempDir()
	mf := filepath.Join(suyashTestdata(t), "5.dcm")
	b, err := os.ReadFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(enhanced, "5.dcm"), b, 0o644)

	tests := []struct {
		name   string
		prog   string
		args   []string
		ts     string
		srcDir string
	}{
		{"rle", "dcmcrle", nil, tsRLE, unsigned},
		{"rle-signed", "dcmcrle", nil, tsRLE, signed},
		{"rle-multiframe", "dcmcrle", nil, tsRLE, enhanced},
		{"jpeg-sv1", "dcmcjpeg", nil, tsJPEGLosslessSV, unsigned},
		{"jpeg-sv1-signed", "dcmcjpeg", nil, tsJPEGLosslessSV, signed},
		{"jpeg-sv1-multiframe", "dcmcjpeg", nil, tsJPEGLosslessSV, enhanced},
		{"jpeg-fragments", "dcmcjpeg", []string{"+fs", "1"}, tsJPEGLosslessSV, unsigned},
		{"jpeg-fragments-multiframe", "dcmcjpeg", []string{"+fs", "1"}, tsJPEGLosslessSV, enhanced},
		{"jpegls", "dcmcjpls", nil, tsJPEGLS, unsigned},
		{"jpegls-signed", "dcmcjpls", nil, tsJPEGLS, signed},
		{"jpegls-multiframe", "dcmcjpls", nil, tsJPEGLS, enhanced},
		{"jpegls-fragments", "dcmcjpls", []string{"+fs", "1"}, tsJPEGLS, unsigned},
		{"jpegls-fragments-multiframe", "dcmcjpls", []string{"+fs", "1", "-ot"}, tsJPEGLS, enhanced},
		{"jpegls-cooked", "dcmcjpls", []string{"+pc"}, tsJPEGLS, unsigned},
		{"jpegls-thresholds", "dcmcjpls", []string{"+t1", "5", "+t2", "9", "+t3", "30", "+rs", "32"}, tsJPEGLS, signed},
		{"jpegls-interleave-none", "dcmcjpls", []string{"+in", "+pz"}, tsJPEGLS, unsigned},
		{"deflated", "dcmconv", []string{"+td"}, tsDeflated, unsigned},
		{"big-endian-dcmtk", "dcmconv", []string{"+tb"}, tsExplicitBE, signed},
	}
	for sv := 1; sv <= 7; sv++ {
		tests = append(tests, struct {
			name   string
			prog   string
			args   []string
			ts     string
			srcDir string
		}{"jpeg-process14-sv" + string(rune('0'+sv)), "dcmcjpeg", []string{"+el", "+sv", string(rune('0' + sv))}, tsJPEGLossless14, unsigned})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, want := volumeOf(t, tt.srcDir)
			dir := recode(t, tt.srcDir, tt.prog, tt.args...)
			s, got := volumeOf(t, dir)
			if s.TransferSyntax != tt.ts {
				t.Fatalf("transfer syntax %s (%s), want %s", s.TransferSyntax, TransferSyntaxName(s.TransferSyntax), tt.ts)
			}
			if diff := cmp.Diff(want.I16, got.I16); diff != "" {
				t.Errorf("voxels differ from the uncompressed original (-want +got):\n%s", diff)
			}
			if d := got.Affine.MaxDiff(want.Affine); d > 1e-6 {
				t.Errorf("affine differs by %g", d)
			}
		})
	}
}

// TestPointTransform: JPEG Lossless with a point transform drops low bits;
// medcad must agree with dcmtk's own decoder (dcmdjpeg).
func TestPointTransform(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeOrFatal(t, src, phantom([3]int{21, 17, 2}, axial([3]float64{1, 1, 1}, [3]float64{}), 23), WriteOptions{})
	jpeg := recode(t, src, "dcmcjpeg", "+el", "+sv", "1", "+pt", "3")
	plain := recode(t, jpeg, "dcmdjpeg")
	_, want := volumeOf(t, plain)
	_, got := volumeOf(t, jpeg)
	if diff := cmp.Diff(want.I16, got.I16); diff != "" {
		t.Errorf("(-dcmdjpeg +medcad):\n%s", diff)
	}
}

// TestUnsupportedTransferSyntax: progressive JPEG (a retired syntax) is
// refused with a message that names the transfer syntax and how to
// decompress it.
func TestUnsupportedTransferSyntax(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeOrFatal(t, src, phantom([3]int{16, 16, 2}, axial([3]float64{1, 1, 1}, [3]float64{}), 24),
		WriteOptions{BitsStored: 12, Slope: 1, Intercept: -1024})
	dir := recode(t, src, "dcmcjpeg", "+ep")
	s := discoverOne(t, dir, Options{})
	_, err := s.Volume(context.Background())
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
	for _, want := range []string{"JPEG Full Progression (lossy, retired)", "1.2.840.10008.1.2.4.55", "dcmdjpeg", "gdcmconv --raw", "slice-000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
