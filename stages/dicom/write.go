package dicom

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/medcad/medcad/internal/atomicfile"
	"github.com/medcad/medcad/stages/volume"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// WriteOptions describe how WriteSeries encodes a volume.
type WriteOptions struct {
	// TransferSyntax is a native syntax UID: explicit VR little endian
	// (the default), implicit VR little endian or explicit VR big endian.
	TransferSyntax string
	// Slope and Intercept are RescaleSlope/RescaleIntercept (default 1
	// and -1024): stored = (HU - Intercept) / Slope must be an integer.
	Slope, Intercept float64
	// BitsStored (default 16) and Signed (PixelRepresentation = 1).
	BitsStored int
	Signed     bool
	// Signed values are sign-extended into the bits above BitsStored, as
	// scanners write them. JunkHighBits sets those bits to ones for every
	// value instead, to prove that readers mask them.
	JunkHighBits bool
	// StudyUID, SeriesUID, FrameOfReferenceUID default to fresh 2.25 UIDs.
	StudyUID, SeriesUID, FrameOfReferenceUID string
	SeriesNumber                             int
	// ImageType defaults to ORIGINAL\PRIMARY\AXIAL.
	ImageType []string
	// Name returns the file name of slice k (default "slice-%04d.dcm").
	Name func(k int) string
	// InstanceNumber returns the InstanceNumber of slice k (default k+1).
	InstanceNumber func(k int) int
	// Extra elements are added to every file (for test fixtures: patient
	// attributes, private tags, sequences).
	Extra []*dicom.Element
}

// NewUID returns a fresh random UID under the 2.25 root.
func NewUID() string {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 122))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return "2.25." + n.String()
}

// WriteSeries writes v (int16 HU, geometry as Series.Affine describes it)
// as a CT series of single-frame files in dir, one per slice, and returns
// their paths. It is the inverse of Discover and Series.Volume: reading the
// files back gives v's voxels and affine. Each file is written atomically.
func WriteSeries(dir string, v *volume.Volume, opts WriteOptions) ([]string, error) {
	if err := v.Check(); err != nil {
		return nil, err
	}
	if v.DType != volume.Int16 {
		return nil, fmt.Errorf("WriteSeries: %v volume; CT series are int16 HU", v.DType)
	}
	ts := opts.TransferSyntax
	if ts == "" {
		ts = tsExplicitLE
	}
	var order binary.ByteOrder = binary.LittleEndian
	switch ts {
	case tsExplicitLE, tsImplicitLE:
	case tsExplicitBE:
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("WriteSeries: %w: transfer syntax %s", ErrUnsupported, ts)
	}
	slope, inter := opts.Slope, opts.Intercept
	if slope == 0 {
		slope, inter = 1, -1024
	}
	bitsStored := opts.BitsStored
	if bitsStored == 0 {
		bitsStored = 16
	}
	for _, u := range []*string{&opts.StudyUID, &opts.SeriesUID, &opts.FrameOfReferenceUID} {
		if *u == "" {
			*u = NewUID()
		}
	}
	imageType := opts.ImageType
	if imageType == nil {
		imageType = []string{"ORIGINAL", "PRIMARY", "AXIAL"}
	}
	name := opts.Name
	if name == nil {
		name = func(k int) string { return fmt.Sprintf("slice-%04d.dcm", k) }
	}
	instance := opts.InstanceNumber
	if instance == nil {
		instance = func(k int) int { return k + 1 }
	}

	// Undo the NIfTI conventions: RAS+ to LPS, rows bottom-up to top-down.
	cols, rows, nk := v.Dim[0], v.Dim[1], v.Dim[2]
	a := v.Affine
	var c0, c1, c2, origin [3]float64
	for r := range 3 {
		sign := 1.0
		if r < 2 {
			sign = -1
		}
		c0[r] = sign * a[r][0]
		c1[r] = -sign * a[r][1]
		c2[r] = sign * a[r][2]
		origin[r] = sign*a[r][3] - float64(rows-1)*c1[r]
	}
	dc, dr := norm(c0), norm(c1)
	orient := []float64{c0[0] / dc, c0[1] / dc, c0[2] / dc, c1[0] / dr, c1[1] / dr, c1[2] / dr}
	thickness := math.Abs(dot(c2, cross(scale(c0, 1/dc), scale(c1, 1/dr))))

	lo, hi := 0, 1<<bitsStored-1
	if opts.Signed {
		lo, hi = -(1 << (bitsStored - 1)), 1<<(bitsStored-1)-1
	}
	plane := cols * rows
	var paths []string
	buf := make([]byte, 2*plane)
	for k := range nk {
		for r := range rows {
			src := v.I16[k*plane+(rows-1-r)*cols:]
			for c := range cols {
				x := (float64(src[c]) - inter) / slope
				s := int(math.Round(x))
				if math.Abs(x-float64(s)) > 1e-9 || s < lo || s > hi {
					return nil, fmt.Errorf("WriteSeries: HU %d is not representable with slope %g, intercept %g in %d bits", src[c], slope, inter, bitsStored)
				}
				raw := uint16(s)
				if !opts.Signed {
					raw &= uint16(1<<bitsStored - 1)
				}
				if opts.JunkHighBits {
					raw &= uint16(1<<bitsStored - 1)
					raw |= ^uint16(1<<bitsStored - 1)
				}
				order.PutUint16(buf[2*(r*cols+c):], raw)
			}
		}
		pos := origin
		for r := range 3 {
			pos[r] += float64(k) * c2[r]
		}
		sop := NewUID()
		ds := dicom.Dataset{}
		add := func(t tag.Tag, val any) error {
			e, err := dicom.NewElement(t, val)
			if err != nil {
				return fmt.Errorf("WriteSeries: %v: %w", tag.DebugString(t), err)
			}
			ds.Elements = append(ds.Elements, e)
			return nil
		}
		pr := 0
		if opts.Signed {
			pr = 1
		}
		const ctImage = "1.2.840.10008.5.1.4.1.1.2"
		for _, kv := range []struct {
			t tag.Tag
			v any
		}{
			{tag.FileMetaInformationVersion, []byte{0, 1}},
			{tag.MediaStorageSOPClassUID, []string{ctImage}},
			{tag.MediaStorageSOPInstanceUID, []string{sop}},
			{tag.TransferSyntaxUID, []string{ts}},
			{tag.ImageType, imageType},
			{tag.SOPClassUID, []string{ctImage}},
			{tag.SOPInstanceUID, []string{sop}},
			{tag.Modality, []string{"CT"}},
			{tag.SliceThickness, []string{ds6(thickness)}},
			{tag.StudyInstanceUID, []string{opts.StudyUID}},
			{tag.SeriesInstanceUID, []string{opts.SeriesUID}},
			{tag.SeriesNumber, []string{strconv.Itoa(opts.SeriesNumber)}},
			{tag.InstanceNumber, []string{strconv.Itoa(instance(k))}},
			{tag.ImagePositionPatient, []string{ds6(pos[0]), ds6(pos[1]), ds6(pos[2])}},
			{tag.ImageOrientationPatient, dsList(orient)},
			{tag.FrameOfReferenceUID, []string{opts.FrameOfReferenceUID}},
			{tag.SamplesPerPixel, []int{1}},
			{tag.PhotometricInterpretation, []string{"MONOCHROME2"}},
			{tag.Rows, []int{rows}},
			{tag.Columns, []int{cols}},
			{tag.PixelSpacing, []string{ds6(dr), ds6(dc)}},
			{tag.BitsAllocated, []int{16}},
			{tag.BitsStored, []int{bitsStored}},
			{tag.HighBit, []int{bitsStored - 1}},
			{tag.PixelRepresentation, []int{pr}},
			{tag.RescaleIntercept, []string{ds6(inter)}},
			{tag.RescaleSlope, []string{ds6(slope)}},
		} {
			if err := add(kv.t, kv.v); err != nil {
				return nil, err
			}
		}
		ds.Elements = append(ds.Elements, opts.Extra...)
		if err := add(tag.PixelData, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: buf}); err != nil {
			return nil, err
		}
		slices.SortStableFunc(ds.Elements, func(x, y *dicom.Element) int {
			return cmpTag(x.Tag, y.Tag)
		})
		var out bytes.Buffer
		if err := dicom.Write(&out, ds, dicom.SkipVRVerification()); err != nil {
			return nil, fmt.Errorf("WriteSeries: %w", err)
		}
		p := filepath.Join(dir, name(k))
		if err := atomicfile.WriteFile(p, out.Bytes(), 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func cmpTag(a, b tag.Tag) int {
	x, y := uint32(a.Group)<<16|uint32(a.Element), uint32(b.Group)<<16|uint32(b.Element)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// ds6 formats a decimal string (at most 16 characters).
func ds6(x float64) string {
	if x == 0 {
		return "0"
	}
	for p := 10; p >= 1; p-- {
		s := strconv.FormatFloat(x, 'g', p, 64)
		if len(s) <= 16 {
			return s
		}
	}
	return strconv.FormatFloat(x, 'g', 1, 64)
}

func dsList(xs []float64) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = ds6(x)
	}
	return out
}
