package dicom

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// maxFileSize bounds the size of one DICOM file read into memory.
const maxFileSize = 4 << 30

// Frame is one 2-D image of a file: the image of a classic single-frame
// file, or one frame of an enhanced multi-frame file.
type Frame struct {
	Position    [3]float64 // ImagePositionPatient, LPS mm
	Orientation [6]float64 // ImageOrientationPatient: row then column cosines
	Spacing     [2]float64 // PixelSpacing: between rows, between columns (mm)
	Slope       float64    // RescaleSlope (1 when absent)
	Intercept   float64    // RescaleIntercept
	Thickness   float64    // SliceThickness (0 when absent)
	Localizer   bool       // ImageType or FrameType value 3 is LOCALIZER
	Segment     int        // a Segmentation's ReferencedSegmentNumber (0 otherwise)
	HasPosition bool
	HasOrient   bool
	HasSpacing  bool
}

// Instance is the header of one DICOM file: what series assembly and pixel
// decoding need, and nothing that identifies the patient except the UIDs
// used for grouping, which are unexported and never printed.
type Instance struct {
	Path           string
	TransferSyntax string // UID
	SOPClassUID    string
	Modality       string
	SeriesNumber   int
	Rows, Columns  int
	BitsAllocated  int
	BitsStored     int
	HighBit        int
	Signed         bool // PixelRepresentation = 1
	Samples        int  // SamplesPerPixel
	Photometric    string
	GantryTilt     float64 // GantryDetectorTilt, degrees
	// SpacingBetweenSlices, 0 when absent.
	SpacingBetweenSlices float64
	// Segmentation says the file is a DICOM Segmentation (SEG) object:
	// 1-bit label frames over another series.
	Segmentation bool
	// Frames are the file's images; for a Siemens MOSAIC, its tiles
	// (Rows and Columns are then a tile's size).
	Frames []Frame
	// Warnings are header irregularities read leniently, in words that
	// name the attribute.
	Warnings []string

	studyUID, seriesUID string
	mosaic              *mosaic // nil unless a Siemens MOSAIC
}

// pixels is the raw pixel data of a file, located by the structural scan:
// native bytes, or one byte slice per fragment of encapsulated data.
type pixels struct {
	native    []byte
	fragments [][]byte
	ow        bool // VR OW (see layout.pixelOW)
}

// ReadHeader reads the header of one DICOM file (its pixel data is
// skipped). The error names the file and wraps ErrNotDICOM, ErrCorrupt,
// ErrUnsupported or ErrNoImage.
func ReadHeader(path string) (*Instance, error) {
	in, _, err := readInstance(path, false)
	return in, err
}

// headerPrefix is how much of a file a header read looks at first; the
// rest is read only when the header does not end inside it.
const headerPrefix = 64 << 10

// readInstance reads and parses a file, with its pixel data when
// withPixels is set.
func readInstance(path string, withPixels bool) (*Instance, *pixels, error) {
	l, err := readLayout(path, withPixels, nil)
	if err != nil {
		return nil, nil, err
	}
	in, err := parseInstance(l)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	in.Path = path
	if !withPixels {
		return in, nil, nil
	}
	return in, &pixels{native: l.native, fragments: l.fragments, ow: l.pixelOW}, nil
}

// readLayout reads a file (only its first bytes when they hold the whole
// header and the pixels are not wanted) and scans its structure. With buf
// not nil the file is read into *buf (grown as needed and kept for the
// next call), and the layout's pixels point into it.
func readLayout(path string, whole bool, buf *[]byte) (layout, error) {
	f, err := os.Open(path)
	if err != nil {
		return layout{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return layout{}, err
	}
	if !st.Mode().IsRegular() {
		return layout{}, fmt.Errorf("%s: %w (not a regular file)", path, ErrNotDICOM)
	}
	size := st.Size()
	if size > maxFileSize {
		return layout{}, fmt.Errorf("%s: %w: %d bytes is larger than the supported %d", path, ErrUnsupported, size, int64(maxFileSize))
	}
	n := size
	if !whole {
		n = min(size, headerPrefix)
	}
	for {
		var b []byte
		if buf != nil && int64(cap(*buf)) >= n {
			b = (*buf)[:n]
		} else {
			b = make([]byte, n)
			if buf != nil {
				*buf = b
			}
		}
		if _, err := io.ReadFull(f, b); err != nil {
			return layout{}, fmt.Errorf("%s: %w", path, err)
		}
		l, err := scanFile(b, size)
		if errors.Is(err, errNeedWhole) && n < size {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return layout{}, err
			}
			n = size
			continue
		}
		if err != nil {
			return layout{}, fmt.Errorf("%s: %w", path, err)
		}
		return l, nil
	}
}

// parseInstance parses the header elements (everything before the pixel
// data) with suyashkumar/dicom. A panic inside the parser library on
// malformed input becomes ErrCorrupt.
func parseInstance(l layout) (in *Instance, err error) {
	defer func() {
		if r := recover(); r != nil {
			in, err = nil, fmt.Errorf("%w: the parser failed on malformed data", ErrCorrupt)
		}
	}()
	head := l.data[:l.pixelAt]
	ds, err := dicom.Parse(bytes.NewReader(head), int64(len(head)), nil,
		dicom.AllowUnknownSpecificCharacterSet(), dicom.AllowMissingMetaElementGroupLength(), dicom.SkipPixelData())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, cleanParseError(err))
	}
	if !l.hasPixels {
		return nil, fmt.Errorf("%w: no pixel data", ErrNoImage)
	}
	in = &Instance{TransferSyntax: l.ts}
	if err := in.fill(&ds); err != nil {
		return nil, err
	}
	if err := in.checkSize(l); err != nil {
		return nil, err
	}
	return in, nil
}

// cleanParseError keeps the parser's message to one line without values:
// suyashkumar/dicom messages name tags and lengths, not values, except the
// string form of a whole element, which is cut off.
func cleanParseError(err error) string {
	s := err.Error()
	if i := strings.Index(s, "got: "); i >= 0 {
		s = s[:i] + "unexpected element"
	}
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// sopSegmentation is the SOP class of DICOM Segmentation objects.
const sopSegmentation = "1.2.840.10008.5.1.4.1.1.66.4"

// sopRTDose is the SOP class of RT Dose grids.
const sopRTDose = "1.2.840.10008.5.1.4.1.1.481.2"

// fill reads the attributes medcad uses.
func (in *Instance) fill(ds *dicom.Dataset) error {
	top := ds.Elements
	in.SOPClassUID = str(top, tag.SOPClassUID)
	in.Modality = str(top, tag.Modality)
	// Its 1-bit frames are labels over another series (see
	// Options.AllImages).
	in.Segmentation = in.SOPClassUID == sopSegmentation
	in.studyUID = str(top, tag.StudyInstanceUID)
	in.seriesUID = str(top, tag.SeriesInstanceUID)
	in.SeriesNumber, _ = strconv.Atoi(str(top, tag.SeriesNumber))
	in.Rows = integer(top, tag.Rows)
	in.Columns = integer(top, tag.Columns)
	in.BitsAllocated = integer(top, tag.BitsAllocated)
	in.BitsStored = integer(top, tag.BitsStored)
	in.HighBit = integer(top, tag.HighBit)
	in.Signed = integer(top, tag.PixelRepresentation) == 1
	in.Samples = integer(top, tag.SamplesPerPixel)
	in.Photometric = str(top, tag.PhotometricInterpretation)
	if t, ok := decimals(top, tag.SpacingBetweenSlices, 1); ok && t[0] > 0 {
		in.SpacingBetweenSlices = t[0]
	}
	if t, ok := decimals(top, tag.GantryDetectorTilt, 1); ok {
		in.GantryTilt = t[0]
	}
	if in.Rows <= 0 || in.Columns <= 0 {
		return fmt.Errorf("%w: no Rows/Columns", ErrNoImage)
	}
	if in.Samples == 0 {
		in.Samples = 1
	}
	if in.BitsStored == 0 {
		in.BitsStored = in.BitsAllocated
	}
	if in.HighBit == 0 {
		in.HighBit = in.BitsStored - 1
	}
	nFrames := 1
	if s := str(top, tag.NumberOfFrames); s != "" {
		n, lenient := leadingInt(s)
		if n < 1 {
			return fmt.Errorf("%w: NumberOfFrames %.20q is not a positive number", ErrCorrupt, s)
		}
		if lenient {
			// As dcm2niix (atoi) reads it; the pixel data must still hold
			// that many frames (checkSize).
			in.Warnings = append(in.Warnings, fmt.Sprintf("NumberOfFrames %.20q is not an integer string: read as %d", s, n))
		}
		nFrames = n
	}

	// The classic attributes, also the defaults for functional groups.
	var base Frame
	base.Slope, base.Intercept = 1, 0
	applyPlane(&base, top)
	imageType := strs(top, tag.ImageType)
	base.Localizer = len(imageType) > 2 && strings.EqualFold(strings.TrimSpace(imageType[2]), "LOCALIZER")
	if in.SOPClassUID == sopRTDose {
		// Dose = stored value × DoseGridScaling (Gy or relative, per
		// DoseUnits); RT Dose has no rescale of its own.
		if g, ok := decimals(top, tag.DoseGridScaling, 1); ok && g[0] > 0 {
			base.Slope, base.Intercept = g[0], 0
		}
	}

	shared := items(top, tag.SharedFunctionalGroupsSequence)
	perFrame := items(top, tag.PerFrameFunctionalGroupsSequence)
	if len(shared) > 0 {
		applyGroups(&base, shared[0])
	}
	if len(perFrame) > 0 && len(perFrame) < nFrames {
		return fmt.Errorf("%w: %d per-frame functional groups for %d frames", ErrCorrupt, len(perFrame), nFrames)
	}
	if len(perFrame) > nFrames {
		// A multi-frame file cut to its first frames (as dcm2niix reads it).
		in.Warnings = append(in.Warnings, fmt.Sprintf("%d per-frame functional groups for %d frame(s): the first used", len(perFrame), nFrames))
		perFrame = perFrame[:nFrames]
	}
	// Frames multiply a header-sized struct: refuse counts that cannot
	// match the pixel data (checked exactly when the pixels are read).
	if nFrames > 1<<20 {
		return fmt.Errorf("%w: NumberOfFrames %d", ErrUnsupported, nFrames)
	}
	in.Frames = make([]Frame, nFrames)
	for i := range in.Frames {
		in.Frames[i] = base
		if len(perFrame) > 0 {
			applyGroups(&in.Frames[i], perFrame[i])
		}
	}
	if nFrames > 1 && len(perFrame) == 0 && base.HasPosition && base.HasOrient {
		if off, ok := decimalsAtLeast(top, tag.GridFrameOffsetVector, 1); ok {
			if len(off) < nFrames {
				return fmt.Errorf("%w: GridFrameOffsetVector has %d values for %d frames", ErrCorrupt, len(off), nFrames)
			}
			gridFrames(in.Frames, off)
		}
	}
	if isMosaic(imageType) {
		return in.expandMosaic(top)
	}
	return nil
}

// gridFrames places the frames of a multi-frame RT Dose grid (PS3.3
// C.8.8.3.2): frame i lies offsets[i] − offsets[0] mm from the first
// along the normal (the first offset is 0 for relative offsets, and the
// first frame's z for absolute ones, allowed only for axial grids).
func gridFrames(frames []Frame, offsets []float64) {
	o := frames[0].Orientation
	n := cross([3]float64(o[:3]), [3]float64(o[3:]))
	l := norm(n)
	if l == 0 {
		return
	}
	for i := range frames {
		d := scale(n, (offsets[i]-offsets[0])/l)
		p := frames[0].Position
		frames[i].Position = [3]float64{p[0] + d[0], p[1] + d[1], p[2] + d[2]}
	}
}

// leadingInt parses an IS value; lenient says it was malformed and read,
// as C's atoi does, by its leading integer ("1A" is 1).
func leadingInt(s string) (n int, lenient bool) {
	s = strings.TrimSpace(s)
	if v, err := strconv.Atoi(s); err == nil {
		return v, false
	}
	end := 0
	if end < len(s) && (s[end] == '+' || s[end] == '-') {
		end++
	}
	for digits := 0; end < len(s) && digits < 9 && s[end] >= '0' && s[end] <= '9'; digits++ {
		end++
	}
	v, err := strconv.Atoi(s[:end])
	if err != nil {
		return 0, true
	}
	return v, true
}

// applyPlane reads the plane attributes found directly in elems.
func applyPlane(f *Frame, elems []*dicom.Element) {
	if p, ok := decimals(elems, tag.ImagePositionPatient, 3); ok {
		f.Position, f.HasPosition = [3]float64(p), true
	}
	if o, ok := decimals(elems, tag.ImageOrientationPatient, 6); ok {
		f.Orientation, f.HasOrient = [6]float64(o), true
	}
	if s, ok := decimals(elems, tag.PixelSpacing, 2); ok && s[0] > 0 && s[1] > 0 {
		f.Spacing, f.HasSpacing = [2]float64(s), true
	}
	if s, ok := decimals(elems, tag.SliceThickness, 1); ok && s[0] > 0 {
		f.Thickness = s[0]
	}
	if s, ok := decimals(elems, tag.RescaleSlope, 1); ok && s[0] != 0 {
		f.Slope = s[0]
	}
	if s, ok := decimals(elems, tag.RescaleIntercept, 1); ok {
		f.Intercept = s[0]
	}
}

// applyGroups applies one item of a functional groups sequence.
func applyGroups(f *Frame, item []*dicom.Element) {
	for _, t := range []tag.Tag{tag.PlanePositionSequence, tag.PlaneOrientationSequence, tag.PixelMeasuresSequence, tag.PixelValueTransformationSequence} {
		if it := items(item, t); len(it) > 0 {
			applyPlane(f, it[0])
		}
	}
	if it := items(item, tag.SegmentIdentificationSequence); len(it) > 0 {
		f.Segment = integer(it[0], tag.ReferencedSegmentNumber)
	}
	if it := items(item, tag.CTImageFrameTypeSequence); len(it) > 0 {
		ft := strs(it[0], tag.FrameType)
		f.Localizer = len(ft) > 2 && strings.EqualFold(strings.TrimSpace(ft[2]), "LOCALIZER")
	}
}

// maxExpansion bounds how many decoded bytes one byte of RLE data may
// claim: PackBits turns 2 bytes into at most 128.
const maxExpansion = 64

// minCodeStream is the smallest JPEG or JPEG-LS code stream (SOI, a frame
// header, a scan header, EOI): a bound on how many frames encapsulated
// data can hold, whatever they compress to.
const minCodeStream = 20

// checkSize compares the image size the header claims with the pixel data
// the file holds, before anything of that size is allocated. Compressed
// JPEG frames are not judged by their byte count (a uniform JPEG-LS image
// takes a few bytes a line): each frame's code stream declares its size,
// checked against the header before decoding (checkJPEGFrame).
func (in *Instance) checkSize(l layout) error {
	if in.mosaic != nil {
		return in.mosaic.whole.checkSize(l)
	}
	need := in.pixelDataBytes()
	switch in.TransferSyntax {
	case tsImplicitLE, tsExplicitLE, tsExplicitBE, tsDeflated:
		if l.pixelBytes < need {
			return fmt.Errorf("%w: pixel data holds %d bytes, %d frame(s) of %d×%d need %d", ErrCorrupt, l.pixelBytes, len(in.Frames), in.Columns, in.Rows, need)
		}
	case tsRLE:
		if need > l.pixelBytes*maxExpansion {
			return fmt.Errorf("%w: %d bytes of RLE data cannot hold %d frame(s) of %d×%d (PackBits expands at most %d times)", ErrCorrupt, l.pixelBytes, len(in.Frames), in.Columns, in.Rows, maxExpansion)
		}
	default:
		if int64(len(in.Frames))*minCodeStream > l.pixelBytes {
			return fmt.Errorf("%w: %d bytes of encapsulated pixel data cannot hold %d code streams", ErrCorrupt, l.pixelBytes, len(in.Frames))
		}
	}
	return nil
}

// pixelDataBytes is the size of the image's native pixel data: 1-bit
// frames are packed without padding between them (PS3.5 8.1.1).
func (in *Instance) pixelDataBytes() int64 {
	samples := int64(len(in.Frames)) * int64(in.Rows) * int64(in.Columns) * int64(max(in.Samples, 1))
	if in.BitsAllocated == 1 {
		return (samples + 7) / 8
	}
	return samples * int64(max(in.BitsAllocated, 8)/8)
}

// find returns the element with tag t among elems, or nil.
func find(elems []*dicom.Element, t tag.Tag) *dicom.Element {
	for _, e := range elems {
		if e.Tag == t {
			return e
		}
	}
	return nil
}

func strs(elems []*dicom.Element, t tag.Tag) []string {
	e := find(elems, t)
	if e == nil || e.Value == nil {
		return nil
	}
	return texts(e)
}

// texts returns the values of a text element. An element written with VR
// UN (as some converters write every attribute, e.g. GDCM's RLE RT Dose)
// is read as text when the dictionary gives the tag a text VR.
func texts(e *dicom.Element) []string {
	switch v := e.Value.GetValue().(type) {
	case []string:
		return v
	case []byte:
		if e.RawValueRepresentation != "UN" {
			return nil
		}
		info, err := tag.Find(e.Tag)
		if err != nil || len(info.VRs) == 0 || !isTextVR(info.VRs[0]) {
			return nil
		}
		return strings.Split(strings.TrimRight(string(v), " \x00"), `\`)
	}
	return nil
}

// isTextVR says values of VR vr are backslash-separated text.
func isTextVR(vr string) bool {
	switch vr {
	case "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "SH", "TM", "UI":
		return true
	}
	return false
}

func str(elems []*dicom.Element, t tag.Tag) string {
	s := strs(elems, t)
	if len(s) == 0 {
		return ""
	}
	return strings.TrimRight(strings.TrimSpace(s[0]), "\x00")
}

func integer(elems []*dicom.Element, t tag.Tag) int {
	e := find(elems, t)
	if e == nil || e.Value == nil {
		return 0
	}
	switch v := e.Value.GetValue().(type) {
	case []int:
		if len(v) > 0 {
			return v[0]
		}
	case []string:
		if len(v) > 0 {
			n, _ := strconv.Atoi(strings.TrimSpace(v[0]))
			return n
		}
	}
	return 0
}

// decimals parses exactly n decimal-string (or float) values.
func decimals(elems []*dicom.Element, t tag.Tag, n int) ([]float64, bool) {
	v, ok := decimalsAtLeast(elems, t, n)
	if !ok || len(v) != n {
		return nil, false
	}
	return v, true
}

// decimalsAtLeast parses n or more decimal-string (or float) values.
func decimalsAtLeast(elems []*dicom.Element, t tag.Tag, n int) ([]float64, bool) {
	e := find(elems, t)
	if e == nil || e.Value == nil {
		return nil, false
	}
	switch v := e.Value.GetValue().(type) {
	case []float64:
		if len(v) >= n {
			return slices.Clone(v), true
		}
	case []string, []byte:
		ts := texts(e)
		if len(ts) < n {
			return nil, false
		}
		out := make([]float64, len(ts))
		for i, s := range ts {
			x, err := strconv.ParseFloat(strings.Trim(s, " \x00"), 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, false
			}
			out[i] = x
		}
		return out, true
	}
	return nil, false
}

// items returns the elements of each item of sequence t.
func items(elems []*dicom.Element, t tag.Tag) [][]*dicom.Element {
	e := find(elems, t)
	if e == nil || e.Value == nil {
		return nil
	}
	seq, ok := e.Value.GetValue().([]*dicom.SequenceItemValue)
	if !ok {
		return nil
	}
	out := make([][]*dicom.Element, 0, len(seq))
	for _, it := range seq {
		if el, ok := it.GetValue().([]*dicom.Element); ok {
			out = append(out, el)
		}
	}
	return out
}
