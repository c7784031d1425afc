package dicom

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages/volume"
	"github.com/suyashkumar/dicom"
	dframe "github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// rewrap writes src (a native DICOM file) as dst with transfer syntax ts
// and new pixel data: fragments (one item each, encapsulated) or native
// 16-bit frames. It is a test helper: WriteSeries writes native data only.
func rewrap(t testing.TB, src, dst, ts string, fragments [][]byte, native []*dframe.Frame) {
	t.Helper()
	ds, err := dicom.ParseFile(src, nil, dicom.SkipPixelData())
	if err != nil {
		t.Fatal(err)
	}
	var elems []*dicom.Element
	for _, e := range ds.Elements {
		switch e.Tag {
		case tag.PixelData, tag.FileMetaInformationGroupLength:
			continue
		case tag.TransferSyntaxUID:
			var err error
			if e, err = dicom.NewElement(tag.TransferSyntaxUID, []string{ts}); err != nil {
				t.Fatal(err)
			}
		}
		elems = append(elems, e)
	}
	var px *dicom.Element
	if fragments != nil {
		var frames []*dframe.Frame
		for _, f := range fragments {
			if len(f)%2 != 0 {
				f = append(f[:len(f):len(f)], 0)
			}
			frames = append(frames, &dframe.Frame{Encapsulated: true, EncapsulatedData: dframe.EncapsulatedFrame{Data: f}})
		}
		px, err = dicom.NewElement(tag.PixelData, dicom.PixelDataInfo{IsEncapsulated: true, Frames: frames})
		if err == nil {
			px.ValueLength = tag.VLUndefinedLength
			px.RawValueRepresentation = "OB"
		}
	} else {
		px, err = dicom.NewElement(tag.PixelData, dicom.PixelDataInfo{Frames: native})
	}
	if err != nil {
		t.Fatal(err)
	}
	elems = append(elems, px)
	var buf bytes.Buffer
	if err := dicom.Write(&buf, dicom.Dataset{Elements: elems}, dicom.SkipVRVerification()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// j2kEncoding is how every frame of a series is compressed by OpenJPEG.
type j2kEncoding struct {
	args      []string // opj_compress options
	lossy     bool     // -I: compare with opj_decompress, not the original
	fragments int      // fragments per frame
	jp2       bool     // JP2 files instead of raw code streams
	// unsigned codes the samples as unsigned whatever PixelRepresentation
	// says (pydicom's J2K_pixelrep_mismatch.dcm, from a real scanner).
	unsigned bool
}

// opjSeries compresses every file of src with opj_compress into a new
// folder; for lossy encodings it also returns a folder of the same files
// with opj_decompress's output as native pixel data.
func opjSeries(t *testing.T, src string, enc j2kEncoding) (dir, ref string) {
	t.Helper()
	opj := testenv.LookPath(t, "opj_compress")
	unopj := testenv.LookPath(t, "opj_decompress")
	dir, ref = t.TempDir(), t.TempDir()
	work := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	ts := tsJPEG2000Lossless
	if enc.lossy {
		ts = tsJPEG2000
	}
	for _, e := range ents {
		path := filepath.Join(src, e.Name())
		in, px, err := readInstance(path, true)
		if err != nil {
			t.Fatal(err)
		}
		n := in.Rows * in.Columns * in.BitsAllocated / 8
		var frags [][]byte
		var decoded []*dframe.Frame
		for f := range in.Frames {
			raw := px.native[f*n : (f+1)*n]
			be := make([]byte, len(raw)) // opj_compress reads .raw big-endian
			for i := 0; i+1 < len(raw); i += 2 {
				v := binary.LittleEndian.Uint16(raw[i:])
				binary.BigEndian.PutUint16(be[i:], v&(1<<in.BitsStored-1))
			}
			rawPath, out := filepath.Join(work, "in.raw"), filepath.Join(work, "out.j2k")
			if enc.jp2 {
				out = filepath.Join(work, "out.jp2")
			}
			if err := os.WriteFile(rawPath, be, 0o644); err != nil {
				t.Fatal(err)
			}
			sign := "u"
			if in.Signed && !enc.unsigned {
				sign = "s"
			}
			args := append([]string{"-i", rawPath, "-o", out, "-F", fmt.Sprintf("%d,%d,1,%d,%s", in.Columns, in.Rows, in.BitsStored, sign)}, enc.args...)
			if b, err := exec.Command(opj, args...).CombinedOutput(); err != nil {
				t.Fatalf("opj_compress %v: %v\n%s", args, err, b)
			}
			cs, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			k := max(enc.fragments, 1)
			cut := func(i int) int { // fragments have even lengths
				if i == k {
					return len(cs)
				}
				return (i * len(cs) / k) &^ 1
			}
			for i := range k {
				frags = append(frags, cs[cut(i):cut(i+1)])
			}
			if enc.lossy {
				rl := filepath.Join(work, "ref.rawl")
				if b, err := exec.Command(unopj, "-i", out, "-o", rl).CombinedOutput(); err != nil {
					t.Fatalf("opj_decompress: %v\n%s", err, b)
				}
				b, err := os.ReadFile(rl)
				if err != nil {
					t.Fatal(err)
				}
				nf := dframe.NewNativeFrame[uint16](16, in.Rows, in.Columns, in.Rows*in.Columns, 1)
				for i := range nf.RawData {
					nf.RawData[i] = binary.LittleEndian.Uint16(b[2*i:])
				}
				decoded = append(decoded, &dframe.Frame{NativeData: nf})
			}
		}
		rewrap(t, path, filepath.Join(dir, e.Name()), ts, frags, nil)
		if enc.lossy {
			rewrap(t, path, filepath.Join(ref, e.Name()), tsExplicitLE, nil, decoded)
		}
	}
	return dir, ref
}

// TestJPEG2000 decodes series whose frames OpenJPEG compressed, wrapped
// in DICOM: lossless ones voxel for voxel like the uncompressed original,
// lossy ones like opj_decompress's output, within ±1 (counted).
func TestJPEG2000(t *testing.T) {
	t.Parallel()
	unsigned := t.TempDir() // 12-bit, odd size
	writeOrFatal(t, unsigned, phantom([3]int{45, 37, 4}, axial([3]float64{0.7, 0.7, 2}, [3]float64{1, 2, 3}), 31), WriteOptions{BitsStored: 12, Slope: 1, Intercept: -1024})
	signed := t.TempDir() // 16-bit signed
	writeOrFatal(t, signed, phantom([3]int{40, 34, 3}, axial([3]float64{0.7, 0.7, 2}, [3]float64{1, 2, 3}), 32),
		WriteOptions{Signed: true, BitsStored: 16, Slope: 1, Intercept: 0})
	signed13 := t.TempDir() // 13 of 16 bits signed, as J2K_pixelrep_mismatch.dcm
	writeOrFatal(t, signed13, phantom([3]int{48, 40, 2}, axial([3]float64{0.7, 0.7, 2}, [3]float64{1, 2, 3}), 34),
		WriteOptions{Signed: true, BitsStored: 13, Slope: 1, Intercept: 0})
	wide := t.TempDir() // 16-bit unsigned
	writeOrFatal(t, wide, phantom([3]int{127, 93, 2}, axial([3]float64{0.5, 0.5, 1}, [3]float64{}), 33), WriteOptions{})
	enhanced := t.TempDir()
	b, err := os.ReadFile(filepath.Join(suyashTestdata(t), "5.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(enhanced, "5.dcm"), b, 0o644)

	tests := []struct {
		name string
		src  string
		enc  j2kEncoding
	}{
		{"12bit-odd", unsigned, j2kEncoding{}},
		{"16bit-signed", signed, j2kEncoding{}},
		// The header's PixelRepresentation 1 wins over the codestream's
		// unsigned samples, as in pydicom: the stored value is the
		// BitsStored-bit two's complement code.
		{"pixelrep-mismatch-13bit", signed13, j2kEncoding{unsigned: true}},
		{"pixelrep-mismatch-16bit", signed, j2kEncoding{unsigned: true}},
		{"16bit", wide, j2kEncoding{args: []string{"-n", "4", "-b", "16,16"}}},
		{"tiles-precincts-layers", wide, j2kEncoding{args: []string{"-t", "64,48", "-c", "[32,32],[16,16]", "-r", "20,5,1", "-p", "RPCL"}}},
		{"modes", signed, j2kEncoding{args: []string{"-M", "63", "-p", "CPRL"}}},
		{"fragments", unsigned, j2kEncoding{fragments: 3}},
		{"jp2", unsigned, j2kEncoding{jp2: true}},
		{"multiframe", enhanced, j2kEncoding{}},
		{"multiframe-fragments", enhanced, j2kEncoding{fragments: 2, args: []string{"-p", "LRCP", "-r", "10,1"}}},
		{"lossy", unsigned, j2kEncoding{lossy: true, args: []string{"-I", "-r", "8"}}},
		{"lossy-16bit-signed", signed, j2kEncoding{lossy: true, args: []string{"-I", "-r", "5,2"}}},
		{"lossy-multiframe", enhanced, j2kEncoding{lossy: true, args: []string{"-I", "-r", "10", "-M", "1"}, fragments: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, ref := opjSeries(t, tt.src, tt.enc)
			if !tt.enc.lossy {
				ref = tt.src
			}
			_, want := volumeOf(t, ref)
			s, got := volumeOf(t, dir)
			ts := map[bool]string{false: tsJPEG2000Lossless, true: tsJPEG2000}[tt.enc.lossy]
			if s.TransferSyntax != ts {
				t.Fatalf("transfer syntax %s, want %s", s.TransferSyntax, ts)
			}
			if d := got.Affine.MaxDiff(want.Affine); d > 1e-6 {
				t.Errorf("affine differs by %g", d)
			}
			if !tt.enc.lossy {
				if diff := cmp.Diff(want.I16, got.I16); diff != "" {
					t.Errorf("voxels differ from the uncompressed original (-want +got):\n%s", diff)
				}
				return
			}
			off := countOff(t, want, got)
			t.Logf("%d of %d voxels differ by ±1 from opj_decompress", off, want.Len())
		})
	}
}

// countOff fails on voxels that differ by more than 1 and returns how
// many differ by 1.
func countOff(t *testing.T, want, got *volume.Volume) int {
	t.Helper()
	if want.Len() != got.Len() {
		t.Fatalf("%d voxels, want %d", got.Len(), want.Len())
	}
	off, bad := 0, 0
	for i := range want.Len() {
		switch d := got.At(i) - want.At(i); {
		case d == 0:
		case d >= -1 && d <= 1:
			off++
		default:
			if bad++; bad <= 5 {
				t.Errorf("voxel %d = %g, want %g", i, got.At(i), want.At(i))
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d voxels differ by more than 1", bad)
	}
	return off
}

// gdcmSeries recompresses every file of src with GDCM's gdcmconv.
func gdcmSeries(t *testing.T, src string, args ...string) string {
	t.Helper()
	bin := testenv.LookPath(t, "gdcmconv")
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		a := append(append([]string{}, args...), filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
		if out, err := exec.Command(bin, a...).CombinedOutput(); err != nil {
			t.Fatalf("gdcmconv %v: %v\n%s", a, err, out)
		}
	}
	return dst
}

// TestJPEG2000GDCM: series compressed by GDCM's gdcmconv --j2k decode like
// the original (lossless) or like gdcmconv --raw of the lossy files.
func TestJPEG2000GDCM(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeOrFatal(t, src, phantom([3]int{61, 45, 3}, axial([3]float64{0.8, 0.8, 1.5}, [3]float64{4, 5, 6}), 34), WriteOptions{})
	enhanced := t.TempDir()
	b, err := os.ReadFile(filepath.Join(suyashTestdata(t), "5.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(enhanced, "5.dcm"), b, 0o644)
	for _, tt := range []struct {
		name string
		src  string
	}{{"series", src}, {"multiframe", enhanced}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, want := volumeOf(t, tt.src)
			dir := gdcmSeries(t, tt.src, "--j2k")
			s, got := volumeOf(t, dir)
			if s.TransferSyntax != tsJPEG2000Lossless {
				t.Fatalf("transfer syntax %s, want %s", s.TransferSyntax, tsJPEG2000Lossless)
			}
			if diff := cmp.Diff(want.I16, got.I16); diff != "" {
				t.Errorf("voxels differ from the original (-want +got):\n%s", diff)
			}
			lossy := gdcmSeries(t, tt.src, "--j2k", "--lossy", "-q", "30")
			raw := gdcmSeries(t, lossy, "--raw")
			_, want = volumeOf(t, raw)
			s, got = volumeOf(t, lossy)
			if s.TransferSyntax != tsJPEG2000 {
				t.Fatalf("transfer syntax %s, want %s", s.TransferSyntax, tsJPEG2000)
			}
			t.Logf("lossy: %d of %d voxels differ by ±1 from gdcmconv --raw", countOff(t, want, got), want.Len())
		})
	}
}

// TestJPEG2000Dcm2niix: dcm2niix and medcad agree voxel for voxel on
// JPEG 2000 series from OpenJPEG and GDCM.
func TestJPEG2000Dcm2niix(t *testing.T) {
	t.Parallel()
	bin := testenv.LookPath(t, "dcm2niix")
	src := t.TempDir()
	writeOrFatal(t, src, phantom([3]int{53, 41, 5}, axial([3]float64{0.6, 0.6, 1.25}, [3]float64{-3, 2, 9}), 35), WriteOptions{BitsStored: 12, Slope: 1, Intercept: -1024})
	signed := t.TempDir()
	writeOrFatal(t, signed, phantom([3]int{40, 36, 3}, axial([3]float64{0.6, 0.6, 1.25}, [3]float64{}), 36), WriteOptions{Signed: true, BitsStored: 16, Slope: 1, Intercept: 0})
	series := map[string]func(t *testing.T) string{
		"opj-lossless": func(t *testing.T) string {
			d, _ := opjSeries(t, src, j2kEncoding{args: []string{"-t", "32,32"}})
			return d
		},
		"opj-lossless-signed": func(t *testing.T) string {
			d, _ := opjSeries(t, signed, j2kEncoding{args: []string{"-p", "RLCP", "-r", "10,1"}})
			return d
		},
		"opj-lossy": func(t *testing.T) string {
			d, _ := opjSeries(t, src, j2kEncoding{lossy: true, args: []string{"-I", "-r", "6"}})
			return d
		},
		"gdcm-lossless": func(t *testing.T) string { return gdcmSeries(t, src, "--j2k") },
		"gdcm-lossy":    func(t *testing.T) string { return gdcmSeries(t, signed, "--j2k", "--lossy", "-q", "25") },
	}
	for name, mk := range series {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, out := mk(t), t.TempDir()
			if b, err := exec.Command(bin, "-z", "n", "-f", "out", "-o", out, dir).CombinedOutput(); err != nil {
				t.Fatalf("dcm2niix: %v\n%s", err, b)
			}
			ref, err := volume.Read(filepath.Join(out, "out.nii"))
			if err != nil {
				t.Fatal(err)
			}
			_, got := volumeOf(t, dir)
			rv, rdim, raff := canonical(ref)
			gv, gdim, gaff := canonical(got)
			if rdim != gdim {
				t.Fatalf("shape %v, dcm2niix %v", gdim, rdim)
			}
			if d := gaff.MaxDiff(raff); d > 1e-4 {
				t.Errorf("affine differs from dcm2niix by %g mm", d)
			}
			if diff := cmp.Diff(rv, gv); diff != "" {
				t.Errorf("voxels differ from dcm2niix (-dcm2niix +medcad):\n%s", diff)
			}
		})
	}
	_ = context.Background
}

// TestJPEG2000Colour: a colour code stream in a grayscale header is
// refused as unsupported, saying why, with the file named.
func TestJPEG2000Colour(t *testing.T) {
	t.Parallel()
	bin := testenv.LookPath(t, "opj_compress")
	src, dir, work := t.TempDir(), t.TempDir(), t.TempDir()
	files, err := WriteSeries(src, phantom([3]int{40, 34, 2}, axial([3]float64{1, 1, 1}, [3]float64{}), 37), WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, cs := filepath.Join(work, "rgb.raw"), filepath.Join(work, "rgb.j2k")
	os.WriteFile(raw, make([]byte, 3*40*34), 0o644)
	if b, err := exec.Command(bin, "-i", raw, "-o", cs, "-F", "40,34,3,8,u").CombinedOutput(); err != nil {
		t.Fatalf("opj_compress: %v\n%s", err, b)
	}
	b, err := os.ReadFile(cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rewrap(t, f, filepath.Join(dir, filepath.Base(f)), tsJPEG2000Lossless, [][]byte{b}, nil)
	}
	_, err = discoverOne(t, dir, Options{}).Volume(context.Background())
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "JPEG 2000 image with 3 components (colour); only grayscale is supported") ||
		!strings.Contains(err.Error(), "slice-000") {
		t.Errorf("err = %v", err)
	}
}
