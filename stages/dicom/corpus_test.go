package dicom

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages/volume"
)

// corpusRoots are the Debian-packaged DICOM samples on a test machine
// (scripts/test-deps.sh installs their packages): pydicom's test files,
// real-world DICOM from many vendors and toolkits; GDCM's and nibabel's
// examples.
var corpusRoots = []struct{ label, dir, pkg string }{
	{"pydicom", "/usr/lib/python3/dist-packages/pydicom/data/test_files", "python3-pydicom"},
	{"gdcm", "/usr/share/doc/libgdcm3.0/examples", "libgdcm3.0"},
	{"nibabel", "/usr/lib/python3/dist-packages/nibabel/nicom/tests/data", "python3-nibabel"},
	{"nibabel-tests", "/usr/lib/python3/dist-packages/nibabel/tests/data", "python3-nibabel"},
}

// corpusCase is one folder to convert: a single file of a packaged
// corpus, or a series medcad's tests encode with another tool.
type corpusCase struct {
	name string
	dir  func(t *testing.T) string
	tol  float64 // voxel difference allowed against dcm2niix
	// orig, for a lossless re-encoding, is the uncompressed series: when
	// dcm2niix cannot read the encoded one, medcad is held to dcm2niix's
	// conversion of the original.
	orig string
}

// notConverted lists the corpus files dcm2niix converts and medcad
// refuses on purpose, with the reason medcad must give.
var notConverted = map[string]string{
	// Empty: every grayscale image dcm2niix converts, medcad converts.
	// A deliberate refusal goes here, with the reason medcad must give.
}

// dcm2niixDiffers lists corpus files where dcm2niix is not the reference,
// and why; medcad is compared with pydicom's pixel_array instead.
var dcm2niixDiffers = map[string]string{
	// pydicom's issue 1149: the JPEG 2000 codestream holds unsigned 13-bit
	// samples, the header says PixelRepresentation 1. pydicom (and medcad)
	// follow the header, so that the padding reads -2000; dcm2niix keeps
	// the unsigned codes (6192), and shears the affine of this tilted
	// single slice.
	"pydicom/J2K_pixelrep_mismatch.dcm": "PixelRepresentation differs from the codestream's sign",
	// dcm2niix 1.0.20220720 decodes the four byte planes of 32-bit RLE
	// wrongly (its values span the whole int32 range; the same grid
	// uncompressed, rtdose.dcm, reads 795000–1254000).
	"pydicom/rtdose_rle.dcm": "dcm2niix misreads 32-bit RLE",
}

// lossySyntaxes are the transfer syntaxes whose decoders may round
// differently.
var lossySyntaxes = map[string]bool{tsJPEGBaseline: true, tsJPEGExtended: true, tsJPEG2000: true, tsJPEGLSNear: true}

// TestCorpusDcm2niix is the differential test against dcm2niix: every
// file of the packaged samples in corpusRoots and every series encoded by
// dcmtk and GDCM in each transfer syntax is converted by both. Wherever
// dcm2niix writes a grayscale volume, medcad must convert it with the
// same voxels (±1 for lossy syntaxes) and the same affine, or refuse it
// for the reason listed in notConverted. Files only medcad reads are
// counted, logged and checked against dcm2niix's conversion of the
// uncompressed original or of GDCM's decompression.
func TestCorpusDcm2niix(t *testing.T) {
	bin := testenv.LookPath(t, "dcm2niix")
	var cases []corpusCase
	for _, root := range corpusRoots {
		if _, err := os.Stat(root.dir); err != nil {
			testenv.Missing(t, root.dir+" (Debian package "+root.pkg+")")
		}
		err := filepath.WalkDir(root.dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root.dir, p)
			base := filepath.Base(p)
			if ext := filepath.Ext(base); ext != ".dcm" && ext != "" || strings.HasPrefix(base, "DICOMDIR") || strings.HasPrefix(base, "README") {
				return nil
			}
			cases = append(cases, corpusCase{name: root.label + "/" + rel, dir: func(t *testing.T) string {
				dir := t.TempDir()
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "in.dcm"), b, 0o644); err != nil {
					t.Fatal(err)
				}
				return dir
			}})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cases = append(cases, encodedCases(t)...)

	var converted, both, onlyMedcad, colour, refused []string
	for _, c := range cases {
		dir := c.dir(t)
		ref := dcm2niixVolumes(t, bin, dir)
		got, s, merr := medcadVolume(dir)
		if merr != nil && strings.Contains(merr.Error(), "samples per pixel") {
			colour = append(colour, c.name) // not grayscale: refused, as it should be
			continue
		}
		if len(ref) > 0 {
			converted = append(converted, c.name)
		}
		if _, ok := dcm2niixDiffers[c.name]; ok {
			if merr != nil {
				t.Errorf("%s: %v", c.name, merr)
			} else if msg := compareToPydicom(t, filepath.Join(dir, "in.dcm"), got); msg != "" {
				t.Errorf("%s: %s", c.name, msg)
			}
			both = append(both, c.name)
			continue
		}
		switch {
		case len(ref) == 0 && merr == nil:
			onlyMedcad = append(onlyMedcad, c.name)
			// The reference is then dcm2niix's conversion of the original
			// (a lossless re-encoding) or of GDCM's decompression.
			orig, tol, from := c.orig, 0.0, "the uncompressed original"
			if orig == "" {
				orig, from = gdcmSeries(t, dir, "--raw"), "gdcmconv --raw's decompression"
				if lossySyntaxes[s.TransferSyntax] {
					tol = 1
				}
			}
			if msg := compareToDcm2niix(got, dcm2niixVolumes(t, bin, orig), tol); msg != "" {
				t.Errorf("%s against dcm2niix's conversion of %s: %s", c.name, from, msg)
			}
		case len(ref) == 0:
		case merr != nil:
			if why, ok := notConverted[c.name]; ok {
				if !strings.Contains(merr.Error(), why) {
					t.Errorf("%s: refused with %q, want the reason %q", c.name, merr, why)
				}
				refused = append(refused, c.name)
				continue
			}
			t.Errorf("%s: dcm2niix converts it, medcad does not: %v", c.name, merr)
		default:
			both = append(both, c.name)
			if s.Modality == "RTDOSE" {
				ref = doseOf(t, filepath.Join(dir, "in.dcm"), ref)
			}
			tol := c.tol
			if lossySyntaxes[s.TransferSyntax] {
				tol = max(tol, 1)
			}
			if msg := compareToDcm2niix(got, ref, tol); msg != "" {
				t.Errorf("%s (%s): %s", c.name, TransferSyntaxName(s.TransferSyntax), msg)
			}
		}
	}
	t.Logf("%d cases (%d colour, refused): dcm2niix converts %d grayscale, medcad %d of those; refused on purpose %d: %s; medcad alone %d: %s",
		len(cases), len(colour), len(converted), len(both), len(refused), strings.Join(refused, ", "), len(onlyMedcad), strings.Join(onlyMedcad, ", "))
	if len(both) == 0 {
		t.Fatal("no case converted by both")
	}
	if len(refused) != len(notConverted) {
		t.Errorf("%d of the %d refusals listed in notConverted happened: the list is stale", len(refused), len(notConverted))
	}
}

// encodedCases are series written by medcad and re-encoded by dcmtk and
// GDCM, one per transfer syntax (and fragment layout).
func encodedCases(t *testing.T) []corpusCase {
	src := jlsSources(t)
	var cases []corpusCase
	add := func(name, from string, lossy bool, prog string, args ...string) {
		orig := src[from]
		if lossy {
			orig = ""
		}
		cases = append(cases, corpusCase{name: name, orig: orig, dir: func(t *testing.T) string {
			if prog == "gdcmconv" {
				return gdcmSeries(t, src[from], args...)
			}
			return recode(t, src[from], prog, args...)
		}})
	}
	cases = append(cases, corpusCase{name: "encoded/explicit-le-s16", dir: func(*testing.T) string { return src["s16"] }})
	add("encoded/implicit-le-u16", "u16", false, "dcmconv", "+ti")
	add("encoded/explicit-be-s16", "s16", false, "dcmconv", "+tb")
	add("encoded/deflated-u12", "u12", false, "dcmconv", "+td")
	add("encoded/rle-s16", "s16", false, "dcmcrle")
	add("encoded/jpeg-lossless-sv1-u16", "u16", false, "dcmcjpeg")
	add("encoded/jpeg-lossless-p14-s16", "s16", false, "dcmcjpeg", "+el", "+sv", "4")
	add("encoded/jpeg-baseline-u8", "u8", true, "dcmcjpeg", "+eb")
	// dcm2niix decodes baseline JPEG with its own fixed-point IDCT, which
	// rounds up to 4 levels away from libjpeg's; medcad's output is
	// within ±1 of dcmtk's libjpeg (TestJPEGBaseline).
	cases[len(cases)-1].tol = 4
	add("encoded/jpeg-extended-u12", "u12", true, "dcmcjpeg", "+ee")
	add("encoded/jpegls-lossless-s16", "s16", false, "dcmcjpls")
	add("encoded/jpegls-near2-u16", "u16", true, "dcmcjpls", "+en", "+md", "2")
	add("encoded/jpegls-fragments-u12", "u12", false, "dcmcjpls", "+fs", "1")
	add("encoded/j2k-lossless-s16", "s16", false, "gdcmconv", "--j2k")
	add("encoded/j2k-lossy-u16", "u16", true, "gdcmconv", "--j2k", "--lossy", "-q", "30")
	return cases
}

// dcm2niixVolumes converts dir with dcm2niix and returns the grayscale
// volumes it wrote (none when it refuses the input or writes colour).
func dcm2niixVolumes(t *testing.T, bin, dir string) []*volume.Volume {
	out := t.TempDir()
	if err := exec.Command(bin, "-z", "n", "-f", "%s_%j_%z", "-o", out, dir).Run(); err != nil {
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.nii"))
	sort.Strings(files)
	var vs []*volume.Volume
	for _, f := range files {
		if v, err := volume.Read(f); err == nil {
			vs = append(vs, v)
		}
	}
	return vs
}

// medcadVolume converts dir's one series as `dicom convert` does (every
// image, localizers and Segmentation objects included).
func medcadVolume(dir string) (*volume.Volume, *Series, error) {
	scan, err := Discover(context.Background(), []string{dir}, Options{AllImages: true})
	if err != nil {
		return nil, nil, err
	}
	if len(scan.Series) != 1 {
		var why []string
		for _, sk := range scan.Skipped {
			why = append(why, sk.Reason)
		}
		return nil, nil, errors.New(strings.Join(append([]string{"no single series"}, why...), "; "))
	}
	s := scan.Series[0]
	v, err := s.Volume(context.Background())
	return v, s, err
}

// compareToDcm2niix finds dcm2niix's volume of got's shape and reports
// how they differ: voxels beyond tol, or affines beyond 1e-4 mm (both in
// canonical axis order), or "" when they agree.
func compareToDcm2niix(got *volume.Volume, refs []*volume.Volume, tol float64) string {
	gv, gdim, gaff := canonical(got)
	for _, r := range refs {
		rv, rdim, raff := canonical(r)
		if rdim != gdim {
			continue
		}
		if d := gaff.MaxDiff(raff); d > 1e-4 {
			return fmt.Sprintf("affine differs from dcm2niix's by %g mm", d)
		}
		off, worst := 0, 0.0
		for i := range rv {
			// Beyond float32 rounding of rescaled values.
			if d := math.Abs(rv[i] - gv[i]); d > 1e-6*math.Abs(rv[i]) {
				off++
				worst = max(worst, d)
			}
		}
		if worst > tol {
			return fmt.Sprintf("%d voxels differ from dcm2niix's, by up to %g", off, worst)
		}
		return ""
	}
	return fmt.Sprintf("dcm2niix wrote no volume of shape %v", gdim)
}

// compareToPydicom checks got (rows bottom-up, frames in file order)
// against pydicom's pixel_array of path with its rescale (an RT Dose's
// DoseGridScaling) applied.
func compareToPydicom(t *testing.T, path string, got *volume.Volume) string {
	py := testenv.Python(t, "pydicom", "numpy")
	out, err := exec.Command(py, "-c", `
import sys, pydicom, numpy as np
d = pydicom.dcmread(sys.argv[1])
slope = float(d.get("DoseGridScaling", 1) if d.Modality == "RTDOSE" else d.get("RescaleSlope", 1))
a = d.pixel_array * slope + float(d.get("RescaleIntercept", 0))
a = a.reshape((-1,) + a.shape[-2:])
print(a.shape[1], a.shape[2], " ".join(repr(float(v)) for v in a[:, ::-1].ravel()))
`, path).Output()
	if err != nil {
		return fmt.Sprintf("pydicom: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 || f[0] != fmt.Sprint(got.Dim[1]) || f[1] != fmt.Sprint(got.Dim[0]) || len(f)-2 != got.Len() {
		return fmt.Sprintf("pydicom's array is %v values, medcad's volume %v", f[:min(2, len(f))], got.Dim)
	}
	off := 0
	for i, w := range f[2:] {
		x, err := strconv.ParseFloat(w, 64)
		// Beyond float32 rounding of rescaled values.
		if err != nil || math.Abs(x-got.At(i)) > 1e-6*math.Abs(x) {
			off++
		}
	}
	if off > 0 {
		return fmt.Sprintf("%d voxels differ from pydicom's pixel_array", off)
	}
	return ""
}

// doseOf turns dcm2niix's conversions of the RT Dose file path into dose
// grids, as medcad writes them: dcm2niix 1.0.20220720 writes the stored
// int32 values without DoseGridScaling, and ignores GridFrameOffsetVector
// (a 1 mm slice step). Both are read with pydicom: the voxels scaled, the
// slice step of a multi-frame grid taken from the offsets.
func doseOf(t *testing.T, path string, refs []*volume.Volume) []*volume.Volume {
	py := testenv.Python(t, "pydicom")
	out, err := exec.Command(py, "-c", `
import sys, pydicom
d = pydicom.dcmread(sys.argv[1])
off = [float(x) for x in d.get("GridFrameOffsetVector", [0, 0])]
print(repr(float(d.DoseGridScaling)), repr(off[1] - off[0]))
`, path).Output()
	if err != nil {
		t.Fatalf("%s: pydicom: %v", path, err)
	}
	var scaling, step float64
	if _, err := fmt.Sscan(string(out), &scaling, &step); err != nil {
		t.Fatalf("%s: pydicom printed %q: %v", path, out, err)
	}
	var doses []*volume.Volume
	for _, r := range refs {
		d := volume.New(volume.Float32, r.Dim, r.Affine)
		for i := range d.F32 {
			d.F32[i] = float32(r.At(i) * scaling)
		}
		if r.Dim[2] > 1 { // dcm2niix's slice axis: the unit normal
			for row := range 3 {
				d.Affine[row][2] *= step
			}
		}
		doses = append(doses, d)
	}
	return doses
}

// TestFramesInParallel decodes the frames of one multi-frame file
// (Enhanced CT, compressed by dcmtk and GDCM) with one goroutine and with
// several: the same voxels as the uncompressed file's.
func TestFramesInParallel(t *testing.T) {
	t.Parallel()
	enhanced := t.TempDir()
	b, err := os.ReadFile(filepath.Join(suyashTestdata(t), "5.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(enhanced, "5.dcm"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, want := volumeOf(t, enhanced)
	for name, dir := range map[string]string{
		"jpegls": recode(t, enhanced, "dcmcjpls"),
		"j2k":    gdcmSeries(t, enhanced, "--j2k"),
	} {
		s := discoverOne(t, dir, Options{})
		if len(s.slices) < 2 || s.resample {
			t.Fatalf("%s: %d frames (resampled %v), want a multi-frame file", name, len(s.slices), s.resample)
		}
		ks := make([]int, len(s.slices))
		for k := range ks {
			ks[k] = k
		}
		for _, workers := range []int{1, 2, 8} {
			out := volume.New(s.DType, [3]int{s.Dim[0], s.Dim[1], len(ks)}, s.Affine)
			var scratch []uint16
			var buf []byte
			if _, err := s.decodeFile(s.slices[0].in, ks, out, s.Dim[0]*s.Dim[1], workers, &scratch, &buf, newLUTCache()); err != nil {
				t.Fatalf("%s, %d workers: %v", name, workers, err)
			}
			if !slices.Equal(out.I16, want.I16) {
				t.Errorf("%s, %d workers: voxels differ from the uncompressed file's", name, workers)
			}
		}
	}
}
