package dicom

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzParse from fixtures")

// TestWriteFuzzSeeds rewrites the FuzzParse seed corpus (with
// -update-seeds): one small file per transfer syntax and pixel format.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite the corpus")
	}
	src := t.TempDir()
	v := phantom([3]int{8, 6, 1}, axial([3]float64{1, 1, 1}, [3]float64{}), 51)
	seeds := map[string]string{}
	for name, o := range map[string]WriteOptions{
		"explicit-le": {}, "implicit-le": {TransferSyntax: tsImplicitLE}, "big-endian": {TransferSyntax: tsExplicitBE},
		"signed-12": {BitsStored: 12, Signed: true, Slope: 1, Intercept: 0, JunkHighBits: true},
	} {
		dir := filepath.Join(src, name)
		os.Mkdir(dir, 0o755)
		writeOrFatal(t, dir, v, o)
		seeds[name] = dir
	}
	seeds["rle"] = recode(t, seeds["explicit-le"], "dcmcrle")
	seeds["jpeg-sv1"] = recode(t, seeds["explicit-le"], "dcmcjpeg")
	seeds["jpeg-sv5"] = recode(t, seeds["explicit-le"], "dcmcjpeg", "+el", "+sv", "5")
	seeds["deflated"] = recode(t, seeds["explicit-le"], "dcmconv", "+td")
	seeds["jpegls"] = recode(t, seeds["explicit-le"], "dcmcjpls")
	seeds["jpegls-near"] = recode(t, seeds["explicit-le"], "dcmcjpls", "+en", "+md", "3")
	seeds["jpeg-baseline"] = recode(t, seeds["explicit-le"], "dcmcjpeg", "+eb")
	seeds["jpeg-extended"] = recode(t, seeds["signed-12"], "dcmcjpeg", "+ee")
	seeds["jpeg2000"], _ = opjSeries(t, seeds["explicit-le"], j2kEncoding{args: []string{"-n", "2"}})
	seeds["jpeg2000-lossy"], _ = opjSeries(t, seeds["signed-12"], j2kEncoding{lossy: true, args: []string{"-n", "2", "-I", "-r", "4"}})
	out := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// 1-bit Segmentation and 32-bit RT Dose, written by pydicom; the dose
	// also RLE-compressed by GDCM.
	py := filepath.Join(src, "pydicom")
	os.Mkdir(py, 0o755)
	if b, err := exec.Command(testenv.Python(t, "pydicom", "numpy"), "-c", pydicomWriter, py).CombinedOutput(); err != nil {
		t.Fatalf("pydicom: %v\n%s", err, b)
	}
	dose := filepath.Join(src, "dose")
	os.Mkdir(dose, 0o755)
	if err := os.Rename(filepath.Join(py, "dose-le.dcm"), filepath.Join(dose, "slice-0000.dcm")); err != nil {
		t.Fatal(err)
	}
	seeds["dose-32"], seeds["dose-32-rle"] = dose, gdcmSeries(t, dose, "--rle")
	for _, n := range []string{"seg-le", "seg-be-ow", "dose-be"} {
		dir := filepath.Join(src, n)
		os.Mkdir(dir, 0o755)
		if err := os.Rename(filepath.Join(py, n+".dcm"), filepath.Join(dir, "slice-0000.dcm")); err != nil {
			t.Fatal(err)
		}
		seeds[n] = dir
	}
	for name, dir := range seeds {
		b, err := os.ReadFile(filepath.Join(dir, "slice-0000.dcm"))
		if err != nil {
			t.Fatal(err)
		}
		if name == "implicit-le" { // also as a bare dataset
			l, err := scanFile(b, int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			writeSeed(t, filepath.Join(out, "bare-implicit"), b[l.dataset:])
		}
		if name == "explicit-le" {
			l, err := scanFile(b, int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			writeSeed(t, filepath.Join(out, "bare-explicit"), b[l.dataset:])
		}
		writeSeed(t, filepath.Join(out, name), b)
		subTarget := map[string]string{"jpeg-sv1": "FuzzJPEGLossless", "jpeg-sv5": "FuzzJPEGLossless", "rle": "FuzzRLE",
			"jpegls": "FuzzJPEGLS", "jpegls-near": "FuzzJPEGLS", "jpeg-baseline": "FuzzJPEGBaseline", "jpeg-extended": "FuzzJPEGExtended"}
		if target, ok := subTarget[name]; ok {
			_, px, err := parseBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			args := "uint8(5)\nuint8(7)\n" // 6 rows, 8 columns
			if name == "rle" {
				args = "uint8(7)\n"
			}
			d := filepath.Join("testdata", "fuzz", target)
			os.MkdirAll(d, 0o755)
			seed := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n%s", strconv.Quote(string(px.fragments[0])), args)
			if err := os.WriteFile(filepath.Join(d, name), []byte(seed), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func writeSeed(t *testing.T, path string, b []byte) {
	t.Helper()
	s := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
