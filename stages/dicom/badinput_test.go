package dicom

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	dframe "github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// TestBadInput: broken files are skipped (or their series refused) with
// one-line messages naming the file and the problem; the good series in
// the same folder still converts.
func TestBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.Mkdir(good, 0o755)
	writeOrFatal(t, good, phantom([3]int{16, 16, 4}, axial([3]float64{1, 1, 2}, [3]float64{}), 31), WriteOptions{SeriesNumber: 1})

	// A series whose image size changes.
	sizes := filepath.Join(dir, "sizes")
	os.Mkdir(sizes, 0o755)
	sizeUID := NewUID()
	writeOrFatal(t, sizes, phantom([3]int{16, 16, 2}, axial([3]float64{1, 1, 2}, [3]float64{}), 32), WriteOptions{SeriesUID: sizeUID, SeriesNumber: 2})
	writeOrFatal(t, sizes, phantom([3]int{12, 16, 1}, axial([3]float64{1, 1, 2}, [3]float64{0, 0, 10}), 33),
		WriteOptions{SeriesUID: sizeUID, SeriesNumber: 2, Name: func(int) string { return "odd.dcm" }})

	// A series where one file lacks ImagePositionPatient.
	nopos := filepath.Join(dir, "nopos")
	os.Mkdir(nopos, 0o755)
	writeOrFatal(t, nopos, phantom([3]int{16, 16, 3}, axial([3]float64{1, 1, 2}, [3]float64{}), 34), WriteOptions{SeriesNumber: 3})
	stripTag(t, filepath.Join(nopos, "slice-0001.dcm"), tag.ImagePositionPatient)

	// Broken files next to the good series.
	src, _ := os.ReadFile(filepath.Join(good, "slice-0000.dcm"))
	os.WriteFile(filepath.Join(dir, "truncated.dcm"), src[:len(src)/2], 0o644)
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("just text, longer than one hundred and thirty-two bytes so that it could hold a preamble, but it has no DICM magic at all, none"), 0o644)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644)
	header := append([]byte{}, src[:300]...) // preamble and meta only
	os.WriteFile(filepath.Join(dir, "header-only.dcm"), header, 0o644)

	scan, err := Discover(context.Background(), []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, n := range scan.Skipped {
		reasons[filepath.Base(n.Path)] = n.Reason
		if strings.Contains(n.Reason, "\n") {
			t.Errorf("%s: reason is not one line: %q", n.Path, n.Reason)
		}
	}
	for file, want := range map[string]string{
		"truncated.dcm":   "corrupt DICOM file: element (",
		"README.txt":      "not a DICOM file",
		"empty":           "not a DICOM file",
		"header-only.dcm": "no usable image: no pixel data",
	} {
		if !strings.Contains(reasons[file], want) {
			t.Errorf("%s: reason %q, want %q", file, reasons[file], want)
		}
	}
	if len(scan.Series) != 3 {
		t.Fatalf("%d series, want 3", len(scan.Series))
	}
	byNumber := map[int]*Series{}
	for _, s := range scan.Series {
		byNumber[s.SeriesNumber] = s
	}
	if v, err := byNumber[1].Volume(context.Background()); err != nil || v.Dim != [3]int{16, 16, 4} {
		t.Errorf("good series: %v", err)
	}
	for n, want := range map[int]string{
		2: "image size changes within the series (",
		3: "slice-0001.dcm has no ImagePositionPatient or ImageOrientationPatient",
	} {
		s := byNumber[n]
		if !errors.Is(s.Err, ErrInconsistent) || !strings.Contains(s.Err.Error(), want) {
			t.Errorf("series %d: Err = %v, want %q", n, s.Err, want)
		}
		if _, err := s.Volume(context.Background()); err == nil {
			t.Errorf("series %d converted", n)
		}
	}
}

// stripTag rewrites a file without one top-level element.
func stripTag(t *testing.T, path string, drop tag.Tag) {
	t.Helper()
	ds, err := dicom.ParseFile(path, nil, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		t.Fatal(err)
	}
	var kept []*dicom.Element
	for _, e := range ds.Elements {
		if e.Tag != drop {
			kept = append(kept, e)
		}
	}
	ds.Elements = kept
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := dicom.Write(f, ds, dicom.SkipVRVerification()); err != nil {
		t.Fatal(err)
	}
}

// TestDiscoverMissingPath: a path that does not exist is an error of the
// walk, naming it.
func TestDiscoverMissingPath(t *testing.T) {
	t.Parallel()
	_, err := Discover(context.Background(), []string{filepath.Join(t.TempDir(), "nope")}, Options{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("err = %v", err)
	}
}

// TestBareImplicitDataset: a dataset without preamble and meta header, in
// implicit VR little endian, is recognised and converts.
func TestBareImplicitDataset(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	v := phantom([3]int{16, 12, 3}, axial([3]float64{1, 1, 2}, [3]float64{}), 35)
	writeOrFatal(t, src, v, WriteOptions{TransferSyntax: tsImplicitLE})
	dst := t.TempDir()
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(src, e.Name()))
		l, err := scanFile(b, int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b[l.dataset:], 0o644) // drop preamble and meta
	}
	s := discoverOne(t, dst, Options{})
	got, err := s.Volume(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.TransferSyntax != tsImplicitLE || got.Affine.MaxDiff(v.Affine) > 1e-4 || !equalI16(got.I16, v.I16) {
		t.Errorf("bare dataset: ts %s, affine %v", s.TransferSyntax, got.Affine)
	}
}

func equalI16(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLongHeader: a header longer than the first bytes a header read looks
// at is read whole.
func TestLongHeader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := &dicom.Element{Tag: tag.Tag{Group: 0x0009, Element: 0x0010}, RawValueRepresentation: "LO",
		Value: mustValue(t, []string{"MEDCAD TEST"})}
	blob := &dicom.Element{Tag: tag.Tag{Group: 0x0009, Element: 0x1001}, RawValueRepresentation: "OB",
		Value: mustValue(t, make([]byte, 3*headerPrefix))}
	v := phantom([3]int{16, 12, 2}, axial([3]float64{1, 1, 2}, [3]float64{}), 36)
	writeOrFatal(t, dir, v, WriteOptions{Extra: []*dicom.Element{big, blob}})
	s := discoverOne(t, dir, Options{})
	got, err := s.Volume(context.Background())
	if err != nil || !equalI16(got.I16, v.I16) || s.Files[0] == "" {
		t.Fatalf("long header: %v", err)
	}
}

func mustValue(t *testing.T, data any) dicom.Value {
	t.Helper()
	v, err := dicom.NewValue(data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRefusedTransferSyntaxes: MPEG2 and unknown syntaxes are
// refused with the syntax named and how to decompress (hermetic: the file
// is written with suyashkumar/dicom, encapsulated).
func TestRefusedTransferSyntaxes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ ts, want string }{
		{"1.2.840.10008.1.2.4.100", "transfer syntax MPEG2 (1.2.840.10008.1.2.4.100); decompress first with `gdcmconv --raw IN OUT` or `dcmdjpeg IN OUT`"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "x.dcm")
		var elems []*dicom.Element
		for _, kv := range []struct {
			t tag.Tag
			v any
		}{
			{tag.MediaStorageSOPClassUID, []string{"1.2.840.10008.5.1.4.1.1.2"}},
			{tag.MediaStorageSOPInstanceUID, []string{"2.25.1"}},
			{tag.TransferSyntaxUID, []string{tt.ts}},
			{tag.Modality, []string{"CT"}},
			{tag.SeriesInstanceUID, []string{"2.25.2"}},
			{tag.ImagePositionPatient, []string{"0", "0", "0"}},
			{tag.ImageOrientationPatient, []string{"1", "0", "0", "0", "1", "0"}},
			{tag.SamplesPerPixel, []int{1}},
			{tag.Rows, []int{4}},
			{tag.Columns, []int{4}},
			{tag.BitsAllocated, []int{16}},
			{tag.BitsStored, []int{16}},
			{tag.HighBit, []int{15}},
			{tag.PixelRepresentation, []int{0}},
		} {
			e, err := dicom.NewElement(kv.t, kv.v)
			if err != nil {
				t.Fatal(err)
			}
			elems = append(elems, e)
		}
		px, err := dicom.NewElement(tag.PixelData, dicom.PixelDataInfo{IsEncapsulated: true,
			Frames: []*dframe.Frame{{Encapsulated: true, EncapsulatedData: dframe.EncapsulatedFrame{Data: make([]byte, 16)}}}})
		if err != nil {
			t.Fatal(err)
		}
		px.ValueLength = tag.VLUndefinedLength
		px.RawValueRepresentation = "OB"
		elems = append(elems, px)
		var buf bytes.Buffer
		if err := dicom.Write(&buf, dicom.Dataset{Elements: elems}, dicom.SkipVRVerification()); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, buf.Bytes(), 0o644)
		s := discoverOne(t, dir, Options{})
		_, err = s.Volume(context.Background())
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), path+": ") {
			t.Errorf("%s: err = %v\nwant %q", tt.ts, err, tt.want)
		}
	}
}
