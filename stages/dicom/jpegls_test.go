package dicom

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/stages/volume"
)

// jlsSources writes the uncompressed series the JPEG-LS and JPEG tests
// compress with dcmtk: 16-bit unsigned, 16-bit signed, 12-bit, 8-bit
// stored, odd sizes.
func jlsSources(t *testing.T) map[string]string {
	t.Helper()
	src := map[string]string{}
	mk := func(name string, v *volume.Volume, o WriteOptions) {
		d := t.TempDir()
		writeOrFatal(t, d, v, o)
		src[name] = d
	}
	aff := axial([3]float64{0.7, 0.7, 2}, [3]float64{1, 2, 3})
	mk("u16", phantom([3]int{37, 23, 3}, aff, 51), WriteOptions{})
	mk("s16", phantom([3]int{33, 21, 2}, aff, 52), WriteOptions{Signed: true, BitsStored: 16, Slope: 1, Intercept: 0})
	mk("u12", phantom([3]int{31, 19, 2}, aff, 53), WriteOptions{BitsStored: 12, Slope: 1, Intercept: -1024})
	mk("s12", phantom([3]int{29, 17, 2}, aff, 54), WriteOptions{Signed: true, BitsStored: 12, Slope: 1, Intercept: 0})
	mk("u8", phantom8([3]int{35, 25, 2}, aff, 55), WriteOptions{BitsStored: 8, Slope: 1, Intercept: -1000})
	return src
}

// phantom8 is a phantom whose values fit 8 bits stored with intercept
// -1000.
func phantom8(dim [3]int, aff volume.Affine, seed uint64) *volume.Volume {
	v := phantom(dim, aff, seed)
	for i, x := range v.I16 {
		v.I16[i] = int16(-1000 + min(max((int(x)+1000)/6, 0), 255))
	}
	return v
}

// TestJPEGLS compresses with dcmcjpls (lossless, near-lossless NEAR 1 to 5)
// and checks medcad's decoding against the original (lossless: identical;
// near-lossless: within NEAR) and against dcmdjpls's output (identical).
// dcmcjpls refuses near-lossless for signed images, so those are lossless
// only.
func TestJPEGLS(t *testing.T) {
	t.Parallel()
	src := jlsSources(t)
	for _, tt := range []struct {
		name, src string
		near      int
		args      []string
	}{
		{"lossless-u16", "u16", 0, nil},
		{"lossless-s16", "s16", 0, nil},
		{"lossless-u12", "u12", 0, nil},
		{"lossless-s12", "s12", 0, nil},
		{"lossless-u8", "u8", 0, nil},
		{"near1-u16", "u16", 1, []string{"+en", "+md", "1"}},
		{"near2-u16-default", "u16", 2, []string{"+en"}},
		{"near3-u12", "u12", 3, []string{"+en", "+md", "3"}},
		{"near4-thresholds", "u12", 4, []string{"+en", "+md", "4", "+t1", "9", "+t2", "20", "+t3", "40", "+rs", "40"}},
		{"near5-u8", "u8", 5, []string{"+en", "+md", "5"}},
		{"near2-fragments", "u16", 2, []string{"+en", "+fs", "1", "-ot"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := tsJPEGLS
			if tt.near > 0 {
				ts = tsJPEGLSNear
			}
			_, orig := volumeOf(t, src[tt.src])
			jls := recode(t, src[tt.src], "dcmcjpls", tt.args...)
			plain := recode(t, jls, "dcmdjpls")
			s, got := volumeOf(t, jls)
			_, ref := volumeOf(t, plain)
			if s.TransferSyntax != ts {
				t.Fatalf("transfer syntax %s, want %s", s.TransferSyntax, ts)
			}
			maxd, ndiff := 0, 0
			for i := range got.I16 {
				if got.I16[i] != ref.I16[i] {
					ndiff++
				}
				maxd = max(maxd, abs(int(got.I16[i])-int(orig.I16[i])))
			}
			if ndiff > 0 {
				t.Errorf("%d of %d voxels differ from dcmdjpls", ndiff, len(got.I16))
			}
			if maxd > tt.near {
				t.Errorf("largest deviation from the original %d, NEAR is %d", maxd, tt.near)
			}
			t.Logf("NEAR %d: largest deviation %d", tt.near, maxd)
		})
	}
}

// TestJPEGBaseline: 8-bit JPEG Baseline by dcmcjpeg, decoded by
// image/jpeg, matches dcmdjpeg within ±1 (the two IDCTs round
// differently), counted.
func TestJPEGBaseline(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeOrFatal(t, src, phantom8([3]int{35, 25, 2}, axial([3]float64{1, 1, 1}, [3]float64{}), 56), WriteOptions{BitsStored: 8, Slope: 1, Intercept: -1000})
	jpg := recode(t, src, "dcmcjpeg", "+eb")
	plain := recode(t, jpg, "dcmdjpeg")
	s, got := volumeOf(t, jpg)
	_, ref := volumeOf(t, plain)
	if s.TransferSyntax != tsJPEGBaseline {
		t.Fatalf("transfer syntax %s", s.TransferSyntax)
	}
	off := 0
	for i := range got.I16 {
		d := abs(int(got.I16[i]) - int(ref.I16[i]))
		if d > 1 {
			t.Fatalf("voxel %d: %d, dcmdjpeg %d", i, got.I16[i], ref.I16[i])
		}
		off += d
	}
	t.Logf("%d of %d voxels differ from dcmdjpeg by 1", off, len(got.I16))
}

// TestUniformJPEGLS: a uniform 256×1024 image compresses to a few hundred
// bytes; that is no reason to refuse it.
func TestUniformJPEGLS(t *testing.T) {
	t.Parallel()
	v := volume.New(volume.Int16, [3]int{256, 1024, 1}, axial([3]float64{1, 1, 1}, [3]float64{}))
	for i := range v.I16 {
		v.I16[i] = -1000
	}
	src := t.TempDir()
	writeOrFatal(t, src, v, WriteOptions{})
	jls := recode(t, src, "dcmcjpls")
	ents, _ := os.ReadDir(jls)
	fi, _ := os.Stat(filepath.Join(jls, ents[0].Name()))
	_, got := volumeOf(t, jls)
	if !equalI16(got.I16, v.I16) {
		t.Error("uniform image decoded wrong")
	}
	t.Logf("file of %d bytes", fi.Size())
}

// TestJPEGLSRefusals: colour, mapping tables and wrong sizes are named.
func TestJPEGLSRefusals(t *testing.T) {
	t.Parallel()
	sof := func(nf byte) []byte {
		b := []byte{0xff, 0xd8, 0xff, 0xf7, 0, byte(8 + 3*int(nf)), 8, 0, 2, 0, 2, nf}
		for i := range nf {
			b = append(b, i+1, 0x11, 0)
		}
		return b
	}
	sos := []byte{0xff, 0xda, 0, 8, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xd9}
	dst := make([]uint16, 4)
	for _, tt := range []struct {
		name string
		b    []byte
		rows int
		want error
		msg  string
	}{
		{"colour", append(sof(3), sos...), 2, ErrUnsupported, "3 components (colour)"},
		{"size", append(sof(1), sos...), 1, ErrCorrupt, "image is 2×2, DICOM header says 2×1"},
		{"mapping", append(append(sof(1), 0xff, 0xf8, 0, 5, 2, 1, 1), sos...), 2, ErrUnsupported, "mapping tables"},
		{"no SOI", []byte{0, 1, 2, 3}, 2, ErrCorrupt, "no SOI"},
	} {
		err := decodeJPEGLS(tt.b, tt.rows, 2, dst[:tt.rows*2])
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: %v, want %v with %q", tt.name, err, tt.want, tt.msg)
		}
	}
}

// TestBareExplicitDataset: a dataset without preamble and meta header in
// explicit VR little endian (its first element in group 0008) is read.
func TestBareExplicitDataset(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	v := phantom([3]int{16, 12, 3}, axial([3]float64{1, 1, 2}, [3]float64{}), 57)
	writeOrFatal(t, src, v, WriteOptions{})
	dst := t.TempDir()
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(src, e.Name()))
		l, err := scanFile(b, int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if g := b[l.dataset]; g != 0x08 {
			t.Fatalf("dataset starts with group %#x", g)
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b[l.dataset:], 0o644)
	}
	s := discoverOne(t, dst, Options{})
	got, err := s.Volume(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.TransferSyntax != tsExplicitLE || got.Affine.MaxDiff(v.Affine) > 1e-4 || !equalI16(got.I16, v.I16) {
		t.Errorf("bare explicit dataset: ts %s, affine %v", s.TransferSyntax, got.Affine)
	}
	// Without pixel data it is a DICOM object that is not an image.
	b, _ := os.ReadFile(filepath.Join(dst, ents[0].Name()))
	i := bytes.Index(b, []byte{0xe0, 0x7f, 0x10, 0x00})
	path := filepath.Join(t.TempDir(), "no-pixels.dcm")
	os.WriteFile(path, b[:i], 0o644)
	if _, err := ReadHeader(path); !errors.Is(err, ErrNoImage) {
		t.Errorf("bare dataset without pixels: %v, want ErrNoImage", err)
	}
	// One stray byte before it (pydicom's no_meta.dcm starts with the
	// last padding byte of the meta header it was cut from): not DICOM,
	// and the error says why.
	path = filepath.Join(t.TempDir(), "stray-byte.dcm")
	os.WriteFile(path, append([]byte{' '}, b...), 0o644)
	if _, err := ReadHeader(path); !errors.Is(err, ErrNotDICOM) || !strings.Contains(err.Error(), "no data element starts at byte 0") {
		t.Errorf("bare dataset after a stray byte: %v, want ErrNotDICOM naming byte 0", err)
	}
}

// TestJPEGExtended: dcmcjpeg +ee (12-bit, and 8-bit through the same
// decoder) decoded by medcad's DCT decoder; compared with dcmdjpeg,
// exactly or within ±1, counted.
func TestJPEGExtended(t *testing.T) {
	t.Parallel()
	src := jlsSources(t)
	for _, tt := range []struct{ name, src string }{{"u12", "u12"}, {"s12", "s12"}, {"u8", "u8"}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jpg := recode(t, src[tt.src], "dcmcjpeg", "+ee")
			plain := recode(t, jpg, "dcmdjpeg")
			s, got := volumeOf(t, jpg)
			_, ref := volumeOf(t, plain)
			if s.TransferSyntax != tsJPEGExtended {
				t.Fatalf("transfer syntax %s", s.TransferSyntax)
			}
			off := 0
			for i := range got.I16 {
				d := abs(int(got.I16[i]) - int(ref.I16[i]))
				if d > 1 {
					t.Fatalf("voxel %d: %d, dcmdjpeg %d", i, got.I16[i], ref.I16[i])
				}
				off += d
			}
			if off > 0 {
				t.Errorf("%d of %d voxels differ from dcmdjpeg by 1", off, len(got.I16))
			}
		})
	}
}

// TestColourRefused: a JPEG-LS file whose header says 3 samples per pixel
// is refused as colour, not as corrupt (its few compressed bytes are no
// reason).
func TestColourRefused(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeOrFatal(t, src, phantom([3]int{16, 12, 1}, axial([3]float64{1, 1, 1}, [3]float64{}), 58), WriteOptions{})
	jls := recode(t, src, "dcmcjpls")
	path := filepath.Join(jls, "slice-0000.dcm")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte{0x28, 0x00, 0x02, 0x00, 'U', 'S', 2, 0, 1, 0})
	if i < 0 {
		t.Fatal("no SamplesPerPixel element")
	}
	b[i+8] = 3
	os.WriteFile(path, b, 0o644)
	s := discoverOne(t, jls, Options{})
	_, err = s.Volume(context.Background())
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "3 samples per pixel") || !strings.Contains(err.Error(), "only grayscale is supported") {
		t.Errorf("err = %v, want a colour refusal", err)
	}
}
