package dicom

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages/volume"
)

// pydicomWriter writes the fixtures of TestSegmentationAndDose with
// pydicom (an encoder independent of medcad's): argv[1] is the folder.
// SEG: 1-bit frames of 5×3 (15 bits: frames start inside a byte), one in
// explicit little endian (OB), one in explicit big endian with VR OW (its
// bytes swapped in 16-bit words, PS3.5 D.2). RT Dose: 32-bit frames with
// DoseGridScaling, little and big endian, a coronal grid with relative
// GridFrameOffsetVector and an axial one with absolute offsets.
const pydicomWriter = `
import sys, os, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ExplicitVRBigEndian, generate_uid
from pydicom.pixel_data_handlers.numpy_handler import pack_bits
out = sys.argv[1]
rng = np.random.default_rng(7)

def base(sop, ts, rows, cols, frames, bits):
    m = FileMetaDataset()
    m.MediaStorageSOPClassUID, m.MediaStorageSOPInstanceUID, m.TransferSyntaxUID = sop, generate_uid(), ts
    d = Dataset()
    d.file_meta = m
    d.is_little_endian, d.is_implicit_VR = ts == ExplicitVRLittleEndian, False
    d.SOPClassUID, d.SOPInstanceUID = sop, m.MediaStorageSOPInstanceUID
    d.StudyInstanceUID, d.SeriesInstanceUID, d.SeriesNumber = generate_uid(), generate_uid(), 1
    d.Rows, d.Columns, d.NumberOfFrames = rows, cols, frames
    d.SamplesPerPixel, d.PhotometricInterpretation = 1, "MONOCHROME2"
    d.BitsAllocated, d.BitsStored, d.HighBit, d.PixelRepresentation = bits, bits, bits - 1, 0
    return d

def item(**kw):
    i = Dataset()
    for k, v in kw.items():
        setattr(i, k, v)
    return i

def seg(name, ts, vr):
    d = base("1.2.840.10008.5.1.4.1.1.66.4", ts, 3, 5, 3, 1)
    d.Modality, d.ImageType, d.SegmentationType = "SEG", ["DERIVED", "PRIMARY"], "BINARY"
    d.SharedFunctionalGroupsSequence = Sequence([item(
        PlaneOrientationSequence=Sequence([item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])]),
        PixelMeasuresSequence=Sequence([item(PixelSpacing=[0.8, 0.6], SliceThickness=2)]))])
    d.PerFrameFunctionalGroupsSequence = Sequence([item(
        PlanePositionSequence=Sequence([item(ImagePositionPatient=[-10, 20, 2 * k])]),
        SegmentIdentificationSequence=Sequence([item(ReferencedSegmentNumber=1)])) for k in range(3)])
    labels = np.random.default_rng(3).integers(0, 2, (3, 3, 5), dtype=np.uint8)  # the same in both files
    packed = pack_bits(labels.ravel())
    if vr == "OW":
        packed = bytes(packed) + b"\0" * (len(packed) % 2)
        packed = np.frombuffer(packed, "<u2").astype(">u2").tobytes()
    d.PixelData = packed
    d["PixelData"].VR = vr
    d.save_as(os.path.join(out, name), write_like_original=False)
    return labels

def dose(name, ts, orient, pos, offsets):
    d = base("1.2.840.10008.5.1.4.1.1.481.2", ts, 3, 4, 3, 32)
    d.Modality, d.DoseUnits, d.DoseType, d.DoseSummationType = "RTDOSE", "GY", "PHYSICAL", "PLAN"
    d.ImageOrientationPatient, d.ImagePositionPatient, d.PixelSpacing = orient, pos, [2, 3]
    d.GridFrameOffsetVector, d.DoseGridScaling = offsets, "1.5e-4"
    d.FrameIncrementPointer = 0x3004000C
    v = rng.integers(0, 4_000_000_000, (3, 3, 4), dtype=np.uint32)
    v[0, 0, 0], v[0, 0, 1] = 0xFFFFFFFF, 0
    d.PixelData = v.astype("<u4" if ts == ExplicitVRLittleEndian else ">u4").tobytes()
    d["PixelData"].VR = "OW"
    d.save_as(os.path.join(out, name), write_like_original=False)

seg("seg-le.dcm", ExplicitVRLittleEndian, "OB")
seg("seg-be-ow.dcm", ExplicitVRBigEndian, "OW")
dose("dose-le.dcm", ExplicitVRLittleEndian, [1, 0, 0, 0, 0, -1], [5, -7, 30], [0, 2.5, 5])
dose("dose-be.dcm", ExplicitVRBigEndian, [1, 0, 0, 0, 0, -1], [5, -7, 30], [0, 2.5, 5])
dose("dose-abs.dcm", ExplicitVRLittleEndian, [1, 0, 0, 0, 1, 0], [5, -7, -40], [-40, -37.5, -35])
`

// pydicomReference prints, for each file of argv[1:], pydicom's
// pixel_array (× DoseGridScaling for RT Dose) with frames in file order and
// rows bottom-up (the NIfTI order medcad writes).
const pydicomReference = `
import sys, json, pydicom
out = {}
for p in sys.argv[1:]:
    d = pydicom.dcmread(p)
    a = d.pixel_array.astype(float) * float(d.get("DoseGridScaling", 1))
    a = a.reshape((-1,) + a.shape[-2:])[:, ::-1]
    out[p.rsplit("/", 1)[-1]] = [float(x) for x in a.ravel()]
print(json.dumps(out))
`

// TestSegmentationAndDose converts 1-bit Segmentation frames and 32-bit RT
// Dose grids written by pydicom (and RLE-compressed by GDCM) and compares
// them with pydicom's pixel_array: SEG as uint8 0/1 labels, dose as
// float32 stored × DoseGridScaling, frames placed along the normal by
// their positions or GridFrameOffsetVector.
func TestSegmentationAndDose(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t, "pydicom", "numpy")
	dir := t.TempDir()
	if out, err := exec.Command(py, "-c", pydicomWriter, dir).CombinedOutput(); err != nil {
		t.Fatalf("pydicom: %v\n%s", err, out)
	}
	// GDCM's RLE encoder: four byte-plane segments per 32-bit sample.
	rleSrc := t.TempDir()
	if err := os.Rename(filepath.Join(dir, "dose-le.dcm"), filepath.Join(rleSrc, "dose-le.dcm")); err != nil {
		t.Fatal(err)
	}
	rle := gdcmSeries(t, rleSrc, "--rle")
	for src, dst := range map[string]string{filepath.Join(rleSrc, "dose-le.dcm"): "dose-le.dcm", filepath.Join(rle, "dose-le.dcm"): "dose-rle.dcm"} {
		if err := os.Rename(src, filepath.Join(dir, dst)); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"seg-le.dcm", "seg-be-ow.dcm", "dose-le.dcm", "dose-be.dcm", "dose-rle.dcm", "dose-abs.dcm"}
	args := []string{"-c", pydicomReference}
	for _, n := range names {
		args = append(args, filepath.Join(dir, n))
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		t.Fatalf("pydicom: %v", err)
	}
	var ref map[string][]float64
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	// seg-be-ow is checked against the little endian file's labels: the
	// same bits, swapped in words.
	ref["seg-be-ow.dcm"] = ref["seg-le.dcm"]
	for _, n := range names {
		one := t.TempDir()
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(one, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
		s := discoverOne(t, one, Options{AllImages: true})
		v, err := s.Volume(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		seg := strings.HasPrefix(n, "seg")
		wantType, wantDim := volume.Float32, [3]int{4, 3, 3}
		if seg {
			wantType, wantDim = volume.Uint8, [3]int{5, 3, 3}
		}
		if v.DType != wantType || v.Dim != wantDim || len(ref[n]) != v.Len() {
			t.Fatalf("%s: %v %v, want %v %v (pydicom: %d values)", n, v.DType, v.Dim, wantType, wantDim, len(ref[n]))
		}
		off := 0
		for i, want := range ref[n] {
			if math.Abs(v.At(i)-want) > 1e-6*math.Abs(want) { // float32 rounding
				off++
			}
		}
		if off > 0 {
			t.Errorf("%s: %d of %d voxels differ from pydicom's", n, off, v.Len())
		}
		// The top row of frame k (voxel row Dim[1]-1) lies at the frame's
		// position: 2 mm steps for the SEG, 2.5 mm for the dose grids.
		type place struct {
			pos, normal [3]float64 // LPS
			step        float64
		}
		want := map[string]place{
			"seg-le.dcm":    {[3]float64{-10, 20, 0}, [3]float64{0, 0, 1}, 2},
			"seg-be-ow.dcm": {[3]float64{-10, 20, 0}, [3]float64{0, 0, 1}, 2},
			"dose-le.dcm":   {[3]float64{5, -7, 30}, [3]float64{0, 1, 0}, 2.5},
			"dose-be.dcm":   {[3]float64{5, -7, 30}, [3]float64{0, 1, 0}, 2.5},
			"dose-rle.dcm":  {[3]float64{5, -7, 30}, [3]float64{0, 1, 0}, 2.5},
			"dose-abs.dcm":  {[3]float64{5, -7, -40}, [3]float64{0, 0, 1}, 2.5},
		}[n]
		for k := range 3 {
			p := v.Affine.Apply(0, float64(v.Dim[1]-1), float64(k))
			lps := [3]float64{-p[0], -p[1], p[2]}
			w := want.pos
			for r := range 3 {
				w[r] += float64(k) * want.step * want.normal[r]
			}
			if norm(sub(lps, w)) > 1e-4 {
				t.Errorf("%s: frame %d at LPS %v, want %v", n, k+1, lps, w)
			}
		}
	}
}

// TestPipelinesLeaveOut: without Options.AllImages (data add, the
// pipeline), localizers, Segmentation objects and RT Dose grids are
// skipped with a note naming what they are; with it each is a series,
// the localizer marked.
func TestPipelinesLeaveOut(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t, "pydicom", "numpy")
	dir := t.TempDir()
	if out, err := exec.Command(py, "-c", pydicomWriter, dir).CombinedOutput(); err != nil {
		t.Fatalf("pydicom: %v\n%s", err, out)
	}
	for _, n := range []string{"seg-be-ow.dcm", "dose-be.dcm", "dose-abs.dcm"} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	loc := phantom([3]int{8, 6, 1}, axial([3]float64{1, 1, 1}, [3]float64{0, 0, 0}), 3)
	writeOrFatal(t, dir, loc, WriteOptions{ImageType: []string{"ORIGINAL", "PRIMARY", "LOCALIZER"}, Name: func(int) string { return "scout.dcm" }})

	scan, err := Discover(context.Background(), []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"seg-le.dcm":  "a Segmentation (SEG) object: labels, not an image",
		"dose-le.dcm": "an RT Dose grid, not an image",
		"scout.dcm":   "LOCALIZER image, not part of a volume",
	}
	if len(scan.Series) != 0 || len(scan.Skipped) != len(want) {
		t.Fatalf("%d series, skipped %v; want none and %d notes", len(scan.Series), scan.Skipped, len(want))
	}
	for _, sk := range scan.Skipped {
		if want[filepath.Base(sk.Path)] != sk.Reason {
			t.Errorf("%s skipped for %q, want %q", filepath.Base(sk.Path), sk.Reason, want[filepath.Base(sk.Path)])
		}
	}

	scan, err = Discover(context.Background(), []string{dir}, Options{AllImages: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(scan.Series) != 3 || len(scan.Skipped) != 0 {
		t.Fatalf("%d series, skipped %v; want 3 and none", len(scan.Series), scan.Skipped)
	}
	for _, s := range scan.Series {
		isLoc := filepath.Base(s.Files[0]) == "scout.dcm"
		if s.Localizer != isLoc || s.Err != nil {
			t.Errorf("%s: localizer %v, err %v", filepath.Base(s.Files[0]), s.Localizer, s.Err)
		}
		if _, err := s.Volume(context.Background()); err != nil {
			t.Errorf("%s: %v", filepath.Base(s.Files[0]), err)
		}
	}
}

// TestShortPixelData: a 1-bit or 32-bit file whose pixel data is shorter
// than its header declares is refused with a one-line reason, before
// anything of the declared size is allocated; so is a NumberOfFrames
// read leniently ("3A") that the pixel data cannot hold.
func TestShortPixelData(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t, "pydicom", "numpy")
	dir := t.TempDir()
	if out, err := exec.Command(py, "-c", pydicomWriter+`
for name, frames, keep in [("seg-le.dcm", "3", 3), ("dose-le.dcm", "3", 100), ("dose-le.dcm", "4A", None), ("dose-le.dcm", "999999A", None)]:
    d = pydicom.dcmread(os.path.join(out, name))
    if keep is not None:
        d.PixelData = d.PixelData[:keep]
    else:  # frames placed by nothing but their count
        del d.GridFrameOffsetVector
    p = os.path.join(out, "short-%s-%s-%s" % (frames, keep, name))
    d.save_as(p)
    # pydicom refuses to write a malformed IS: patch the bytes.
    v = frames.encode() + b" " * (len(frames) % 2)
    raw = open(p, "rb").read()
    old = b"\x28\x00\x08\x00IS\x02\x003 "
    assert raw.count(old) == 1
    open(p, "wb").write(raw.replace(old, b"\x28\x00\x08\x00IS" + bytes([len(v), 0]) + v))
`, dir).CombinedOutput(); err != nil {
		t.Fatalf("pydicom: %v\n%s", err, out)
	}
	for _, n := range []string{"short-3-3-seg-le.dcm", "short-3-100-dose-le.dcm", "short-4A-None-dose-le.dcm", "short-999999A-None-dose-le.dcm"} {
		path := filepath.Join(dir, n)
		_, err := ReadHeader(path)
		if !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), path+": ") || strings.Contains(err.Error(), "\n") ||
			!strings.Contains(err.Error(), "pixel data holds") {
			t.Errorf("%s: %v, want a one-line corrupt-data error naming the file", n, err)
		}
	}
}

// TestLeadingInt: malformed IS values are read as C's atoi reads them.
func TestLeadingInt(t *testing.T) {
	for s, want := range map[string]struct {
		n       int
		lenient bool
	}{"12": {12, false}, " 7 ": {7, false}, "1A": {1, true}, "+3x": {3, true}, "A1": {0, true}, "": {0, true}, "99999999999999999999": {999999999, true}} {
		if n, lenient := leadingInt(s); n != want.n || lenient != want.lenient {
			t.Errorf("leadingInt(%q) = %d, %v; want %d, %v", s, n, lenient, want.n, want.lenient)
		}
	}
}
