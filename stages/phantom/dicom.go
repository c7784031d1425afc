package phantom

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/medcad/medcad/internal/atomicfile"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// DICOM constants of the series written here.
const (
	ctImageStorage       = "1.2.840.10008.5.1.4.1.1.2"
	explicitVRLittle     = "1.2.840.10008.1.2.1"
	implementationUID    = "1.2.826.0.1.3680043.10.1471.1" // medcad phantom writer
	implementationVer    = "MEDCAD_PHANTOM1"
	dicomSliceFileFormat = "IM%05d.dcm"
)

// uid derives a stable DICOM UID (2.25.<decimal>) for a purpose
// ("study", "sop/3", …) of case idx of the series with this seed.
func uid(seed uint64, idx int, purpose string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("medcad-phantom/%d/%d/%s", seed, idx, purpose)))
	return "2.25." + new(big.Int).SetBytes(h[:15]).String()
}

// WriteDICOM writes c's CT as a DICOM series into dir, one file per slice
// (CT Image Storage, explicit VR little endian). Headers carry the case's
// fake patient identity. Files are written to temporary names, synced and
// renamed.
func WriteDICOM(dir string, c *Case) error {
	seed, idx := c.Seed, c.Index
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	nx, ny, nz := c.CT.Dim[0], c.CT.Dim[1], c.CT.Dim[2]
	sp := c.CT.Spacing()
	aff := c.CT.Affine
	p := c.Facts.Patient
	study, series, frame := uid(seed, idx, "study"), uid(seed, idx, "series"), uid(seed, idx, "frame")
	intercept := 0
	pixelRep, bitsStored := 1, 16
	if c.Facts.BitsStored == 12 {
		// Unsigned 12-bit storage, as many scanners write: HU = stored − 1024.
		intercept, pixelRep, bitsStored = -1024, 0, 12
	}
	// Pixel (column c, row r) of slice k is voxel (c, ny−1−r, k): rows run
	// from anterior to posterior, as DICOM's LPS axes want.
	ipp0 := [3]float64{-aff[0][3], -(aff[1][3] + float64(ny-1)*aff[1][1]), aff[2][3]}
	for k := range nz {
		pix := make([]byte, 2*nx*ny)
		for r := range ny {
			j := ny - 1 - r
			for col := range nx {
				hu := int(c.CT.I16[c.CT.Index(col, j, k)])
				binary.LittleEndian.PutUint16(pix[2*(r*nx+col):], uint16(int16(hu-intercept)))
			}
		}
		sop := uid(seed, idx, fmt.Sprintf("sop/%d", k))
		z := ipp0[2] + float64(k)*aff[2][2]
		b := &builder{}
		b.add(tag.FileMetaInformationVersion, []byte{0, 1})
		b.add(tag.MediaStorageSOPClassUID, []string{ctImageStorage})
		b.add(tag.MediaStorageSOPInstanceUID, []string{sop})
		b.add(tag.TransferSyntaxUID, []string{explicitVRLittle})
		b.add(tag.ImplementationClassUID, []string{implementationUID})
		b.add(tag.ImplementationVersionName, []string{implementationVer})
		b.add(tag.SpecificCharacterSet, []string{"ISO_IR 100"})
		b.add(tag.ImageType, []string{"ORIGINAL", "PRIMARY", "AXIAL"})
		b.add(tag.SOPClassUID, []string{ctImageStorage})
		b.add(tag.SOPInstanceUID, []string{sop})
		b.add(tag.StudyDate, []string{p.StudyDate})
		b.add(tag.SeriesDate, []string{p.StudyDate})
		b.add(tag.ContentDate, []string{p.StudyDate})
		b.add(tag.StudyTime, []string{p.StudyTime})
		b.add(tag.SeriesTime, []string{p.StudyTime})
		b.add(tag.AccessionNumber, []string{p.Accession})
		b.add(tag.Modality, []string{"CT"})
		b.add(tag.Manufacturer, []string{"MEDCAD"})
		b.add(tag.InstitutionName, []string{p.Institution})
		b.add(tag.ReferringPhysicianName, []string{p.Referrer})
		b.add(tag.StudyDescription, []string{"CT PHANTOM"})
		b.add(tag.SeriesDescription, []string{"AXIAL " + ds(sp[2]) + "MM"})
		b.add(tag.ManufacturerModelName, []string{"PHANTOM"})
		b.add(tag.PatientName, []string{p.Name})
		b.add(tag.PatientID, []string{p.ID})
		b.add(tag.PatientBirthDate, []string{p.BirthDate})
		b.add(tag.PatientSex, []string{p.Sex})
		b.add(tag.BodyPartExamined, []string{"PELVIS"})
		b.add(tag.SliceThickness, []string{ds(sp[2])})
		b.add(tag.KVP, []string{"120"})
		b.add(tag.PatientPosition, []string{"HFS"})
		b.add(tag.StudyInstanceUID, []string{study})
		b.add(tag.SeriesInstanceUID, []string{series})
		b.add(tag.StudyID, []string{"1"})
		b.add(tag.SeriesNumber, []string{"2"})
		b.add(tag.InstanceNumber, []string{strconv.Itoa(k + 1)})
		b.add(tag.ImagePositionPatient, []string{ds(ipp0[0]), ds(ipp0[1]), ds(z)})
		b.add(tag.ImageOrientationPatient, []string{"1", "0", "0", "0", "1", "0"})
		b.add(tag.FrameOfReferenceUID, []string{frame})
		b.add(tag.PositionReferenceIndicator, []string{""})
		b.add(tag.SliceLocation, []string{ds(z)})
		b.add(tag.SamplesPerPixel, []int{1})
		b.add(tag.PhotometricInterpretation, []string{"MONOCHROME2"})
		b.add(tag.Rows, []int{ny})
		b.add(tag.Columns, []int{nx})
		b.add(tag.PixelSpacing, []string{ds(sp[1]), ds(sp[0])})
		b.add(tag.BitsAllocated, []int{16})
		b.add(tag.BitsStored, []int{bitsStored})
		b.add(tag.HighBit, []int{bitsStored - 1})
		b.add(tag.PixelRepresentation, []int{pixelRep})
		b.add(tag.WindowCenter, []string{"400"})
		b.add(tag.WindowWidth, []string{"1800"})
		b.add(tag.RescaleIntercept, []string{strconv.Itoa(intercept)})
		b.add(tag.RescaleSlope, []string{"1"})
		b.add(tag.RescaleType, []string{"HU"})
		b.add(tag.PixelData, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: pix})
		if b.err != nil {
			return fmt.Errorf("slice %d: %w", k+1, b.err)
		}
		sort.Slice(b.elems, func(x, y int) bool {
			a, c := b.elems[x].Tag, b.elems[y].Tag
			return a.Group < c.Group || a.Group == c.Group && a.Element < c.Element
		})
		if err := atomicfile.Write(filepath.Join(dir, fmt.Sprintf(dicomSliceFileFormat, k+1)), 0o644, func(f io.Writer) error {
			return dicom.Write(f, dicom.Dataset{Elements: b.elems})
		}); err != nil {
			return err
		}
	}
	return nil
}

// ds formats a decimal string (VR DS, at most 16 characters).
func ds(x float64) string {
	for prec := 10; prec > 0; prec-- {
		s := strconv.FormatFloat(x, 'g', prec, 64)
		if len(s) <= 16 {
			return s
		}
	}
	return "0"
}

type builder struct {
	elems []*dicom.Element
	err   error
}

func (b *builder) add(t tag.Tag, v any) {
	e, err := dicom.NewElement(t, v)
	if err != nil {
		if b.err == nil {
			b.err = fmt.Errorf("element %v: %w", t, err)
		}
		return
	}
	b.elems = append(b.elems, e)
}
