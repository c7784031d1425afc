package deid

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// phiStrings are the identifying values the fixtures hold; none may appear
// in any de-identified output, error or log.
var phiStrings = []string{
	"Doe^John^PHI", "MRN-5551234", "19610704", "058Y", "ACC99887766",
	"St Elsewhere", "Secret Lane", "Referrer^PHI", "CTSTATION42", "JOHN DOE",
	"Operator^Olga", "REQ-PHI-1", "Nested^Secret", "Deep Nested Clinic",
	"OTHER-ID-777", "HOSP-ISSUER", "ACME PRIVATE CREATOR", "private-phi-value",
	"PRIVATEBYTES", "overlay comment PHI", "CURVEPHI", "20190314", "PHI_AETITLE",
	"STUDY-PHI-1", "SN-998877", "Protocol of John", "UN-CODED ADDRESS",
	fixtureStudyUID, fixtureSeriesUID, fixtureFrameUID,
}

const (
	fixtureRoot      = "1.2.826.0.1.3680043.2.1125.77"
	fixtureStudyUID  = fixtureRoot + ".1.4242"
	fixtureSeriesUID = fixtureRoot + ".2.4242"
	fixtureFrameUID  = fixtureRoot + ".3.4242"
	fixtureSyncUID   = fixtureRoot + ".5.4242"
	ctImageStorage   = "1.2.840.10008.5.1.4.1.1.2"
)

func fixtureSOPUID(i int) string { return fmt.Sprintf("%s.4.4242.%d", fixtureRoot, i+1) }

// fixture describes a CT series written by the tests.
type fixture struct {
	slices         int
	rows, cols     int
	transferSyntax string // default explicit VR little endian
	burnedIn       bool
	enhanced       bool // SOP class Enhanced CT (its type-1 rules)
}

func el(t *testing.T, tg tag.Tag, data any) *dicom.Element {
	t.Helper()
	e, err := dicom.NewElement(tg, data)
	if err != nil {
		t.Fatalf("NewElement %v: %v", tg, err)
	}
	return e
}

// raw builds an element with an explicit VR (tags the dictionary lacks).
func raw(t *testing.T, g, e uint16, vr string, data any) *dicom.Element {
	t.Helper()
	v, err := dicom.NewValue(data)
	if err != nil {
		t.Fatal(err)
	}
	return &dicom.Element{Tag: tag.Tag{Group: g, Element: e}, ValueRepresentation: tag.GetVRKind(tag.Tag{Group: g, Element: e}, vr), RawValueRepresentation: vr, Value: v}
}

func seq(t *testing.T, tg tag.Tag, items ...[]*dicom.Element) *dicom.Element {
	t.Helper()
	e := el(t, tg, items)
	e.ValueLength = tag.VLUndefinedLength
	return e
}

// pixels returns slice i's deterministic raw pixel bytes.
func (f fixture) pixels(i int, bo binary.ByteOrder) []byte {
	b := make([]byte, 2*f.rows*f.cols)
	for p := 0; p < f.rows*f.cols; p++ {
		bo.PutUint16(b[2*p:], uint16((p*7+i*13)%4096))
	}
	return b
}

// dataset builds slice i of the fixture series.
func (f fixture) dataset(t *testing.T, i int) dicom.Dataset {
	t.Helper()
	ts := f.transferSyntax
	if ts == "" {
		ts = explicitVRLittleEndian
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if ts == "1.2.840.10008.1.2.2" {
		bo = binary.BigEndian
	}
	class := ctImageStorage
	if f.enhanced {
		class = enhancedCTSOPClass
	}
	burned := "NO"
	if f.burnedIn {
		burned = "YES"
	}
	pd := el(t, tag.PixelData, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: f.pixels(i, bo)})
	es := []*dicom.Element{
		el(t, tag.FileMetaInformationVersion, []byte{0, 1}),
		el(t, tag.MediaStorageSOPClassUID, []string{class}),
		el(t, tag.MediaStorageSOPInstanceUID, []string{fixtureSOPUID(i)}),
		el(t, tag.TransferSyntaxUID, []string{ts}),
		el(t, tag.ImplementationClassUID, []string{"1.2.826.0.1.3680043.9.9999"}),
		el(t, tag.SourceApplicationEntityTitle, []string{"PHI_AETITLE"}),
		raw(t, 0x0008, 0x0000, "UL", []int{1234}), // a stale group length
		el(t, tag.SpecificCharacterSet, []string{"ISO_IR 100"}),
		el(t, tag.ImageType, []string{"ORIGINAL", "PRIMARY", "AXIAL"}),
		el(t, tag.InstanceCreationDate, []string{"20190314"}),
		el(t, tag.SOPClassUID, []string{class}),
		el(t, tag.SOPInstanceUID, []string{fixtureSOPUID(i)}),
		el(t, tag.StudyDate, []string{"20190314"}),
		el(t, tag.SeriesDate, []string{"20190314"}),
		el(t, tag.AcquisitionDate, []string{"20190314"}),
		el(t, tag.ContentDate, []string{"20190314"}),
		el(t, tag.AcquisitionDateTime, []string{"20190314101530.5+0100"}),
		el(t, tag.StudyTime, []string{"101530"}),
		el(t, tag.ContentTime, []string{"101531"}),
		el(t, tag.AccessionNumber, []string{"ACC99887766"}),
		el(t, tag.Modality, []string{"CT"}),
		el(t, tag.Manufacturer, []string{"ACME"}),
		el(t, tag.InstitutionName, []string{"St Elsewhere Hospital"}),
		el(t, tag.InstitutionAddress, []string{"12 Secret Lane"}),
		el(t, tag.ReferringPhysicianName, []string{"Dr^Referrer^PHI"}),
		el(t, tag.StationName, []string{"CTSTATION42"}),
		el(t, tag.StudyDescription, []string{"CT CHEST FOR JOHN DOE"}),
		el(t, tag.OperatorsName, []string{"Operator^Olga"}),
		seq(t, tag.ReferencedImageSequence, []*dicom.Element{
			el(t, tag.ReferencedSOPClassUID, []string{ctImageStorage}),
			el(t, tag.ReferencedSOPInstanceUID, []string{fixtureSOPUID(0)}),
		}),
		seq(t, tag.AnatomicRegionSequence, []*dicom.Element{
			el(t, tag.CodeValue, []string{"T-D3000"}),
			el(t, tag.CodingSchemeDesignator, []string{"SRT"}),
			el(t, tag.PatientName, []string{"Nested^Secret"}),
			seq(t, tag.AnatomicRegionModifierSequence, []*dicom.Element{
				el(t, tag.InstitutionName, []string{"Deep Nested Clinic"}),
				el(t, tag.CodeValue, []string{"G-A101"}),
			}),
		}),
		seq(t, tag.RequestAttributesSequence, []*dicom.Element{
			el(t, tag.RequestedProcedureID, []string{"REQ-PHI-1"}),
		}),
		el(t, tag.PatientName, []string{"Doe^John^PHI"}),
		el(t, tag.PatientID, []string{"MRN-5551234"}),
		el(t, tag.PatientBirthDate, []string{"19610704"}),
		el(t, tag.PatientSex, []string{"M"}),
		el(t, tag.PatientAge, []string{"058Y"}),
		seq(t, tag.OtherPatientIDsSequence, []*dicom.Element{
			el(t, tag.PatientID, []string{"OTHER-ID-777"}),
			el(t, tag.IssuerOfPatientID, []string{"HOSP-ISSUER"}),
		}),
		raw(t, 0x0009, 0x0010, "LO", []string{"ACME PRIVATE CREATOR"}),
		raw(t, 0x0009, 0x1001, "LO", []string{"private-phi-value John"}),
		raw(t, 0x0029, 0x1010, "OB", []byte("PRIVATEBYTES")),
		el(t, tag.DeviceSerialNumber, []string{"SN-998877"}),
		el(t, tag.ProtocolName, []string{"Protocol of John"}),
		el(t, tag.SliceThickness, []string{"1.0"}),
		el(t, tag.StudyInstanceUID, []string{fixtureStudyUID}),
		el(t, tag.SeriesInstanceUID, []string{fixtureSeriesUID}),
		el(t, tag.StudyID, []string{"STUDY-PHI-1"}),
		el(t, tag.SeriesNumber, []string{"3"}),
		el(t, tag.InstanceNumber, []string{fmt.Sprint(i + 1)}),
		el(t, tag.ImagePositionPatient, []string{"-100", "-100", fmt.Sprint(i)}),
		el(t, tag.ImageOrientationPatient, []string{"1", "0", "0", "0", "1", "0"}),
		el(t, tag.FrameOfReferenceUID, []string{fixtureFrameUID}),
		raw(t, 0x0020, 0x0200, "UN", []byte(fixtureSyncUID)),     // a UID sent as UN
		raw(t, 0x0010, 0x1040, "UN", []byte("UN-CODED ADDRESS")), // Patient's Address as UN
		el(t, tag.SamplesPerPixel, []int{1}),
		el(t, tag.PhotometricInterpretation, []string{"MONOCHROME2"}),
		el(t, tag.Rows, []int{f.rows}),
		el(t, tag.Columns, []int{f.cols}),
		el(t, tag.PixelSpacing, []string{"0.5", "0.5"}),
		el(t, tag.BitsAllocated, []int{16}),
		el(t, tag.BitsStored, []int{12}),
		el(t, tag.HighBit, []int{11}),
		el(t, tag.PixelRepresentation, []int{0}),
		raw(t, 0x0028, 0x0301, "CS", []string{burned}),
		el(t, tag.RescaleIntercept, []string{"-1024"}),
		el(t, tag.RescaleSlope, []string{"1"}),
		raw(t, 0x5000, 0x3000, "OB", []byte("CURVEPHI")),
		raw(t, 0x6000, 0x0010, "US", []int{f.rows}),
		raw(t, 0x6000, 0x4000, "LT", []string{"overlay comment PHI"}),
		pd,
	}
	sortElements(es)
	return dicom.Dataset{Elements: es}
}

// bytes returns slice i encoded as a DICOM file.
func (f fixture) bytes(t *testing.T, i int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := dicom.Write(&buf, f.dataset(t, i), dicom.SkipVRVerification()); err != nil {
		t.Fatalf("writing fixture: %v", err)
	}
	return buf.Bytes()
}

// write writes the series into dir with shuffled file names and returns
// the paths, slice order.
func (f fixture) write(t *testing.T, dir string) []string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := 0; i < f.slices; i++ {
		p := filepath.Join(dir, fmt.Sprintf("IM%04d", (i*7919)%1000))
		if err := os.WriteFile(p, f.bytes(t, i), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// byteOrder returns the byte order of a transfer syntax.
func byteOrder(ts string) binary.ByteOrder {
	if ts == "1.2.840.10008.1.2.2" {
		return binary.BigEndian
	}
	return binary.LittleEndian
}
