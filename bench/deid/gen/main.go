// Command gen writes a synthetic CT series for the de-identification
// benchmark: N slices of SIZE×SIZE 16-bit pixels, explicit VR little
// endian, with patient data in the usual places, written with
// suyashkumar/dicom.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

func main() {
	n := flag.Int("n", 300, "slices")
	size := flag.Int("size", 512, "rows and columns")
	out := flag.String("out", "series", "output folder")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < *n; i++ {
		b, err := slice(i, *size)
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*out, fmt.Sprintf("IM%05d.dcm", i)), b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func slice(i, size int) ([]byte, error) {
	const root = "1.2.826.0.1.3680043.2.1125.99"
	pix := make([]byte, 2*size*size)
	for p := 0; p < size*size; p++ {
		binary.LittleEndian.PutUint16(pix[2*p:], uint16((p+i*31)%4096))
	}
	inst := fmt.Sprintf("%s.4.%d", root, i+1)
	pairs := []struct {
		t tag.Tag
		v any
	}{
		{tag.FileMetaInformationVersion, []byte{0, 1}},
		{tag.MediaStorageSOPClassUID, []string{"1.2.840.10008.5.1.4.1.1.2"}},
		{tag.MediaStorageSOPInstanceUID, []string{inst}},
		{tag.TransferSyntaxUID, []string{"1.2.840.10008.1.2.1"}},
		{tag.SpecificCharacterSet, []string{"ISO_IR 100"}},
		{tag.ImageType, []string{"ORIGINAL", "PRIMARY", "AXIAL"}},
		{tag.SOPClassUID, []string{"1.2.840.10008.5.1.4.1.1.2"}},
		{tag.SOPInstanceUID, []string{inst}},
		{tag.StudyDate, []string{"20200102"}},
		{tag.SeriesDate, []string{"20200102"}},
		{tag.StudyTime, []string{"120000"}},
		{tag.AccessionNumber, []string{"A123456"}},
		{tag.Modality, []string{"CT"}},
		{tag.InstitutionName, []string{"General Hospital"}},
		{tag.ReferringPhysicianName, []string{"Who^Doctor"}},
		{tag.StudyDescription, []string{"CT THORAX"}},
		{tag.PatientName, []string{"Bench^Patient"}},
		{tag.PatientID, []string{"P0001"}},
		{tag.PatientBirthDate, []string{"19700101"}},
		{tag.PatientSex, []string{"F"}},
		{tag.SliceThickness, []string{"1"}},
		{tag.StudyInstanceUID, []string{root + ".1"}},
		{tag.SeriesInstanceUID, []string{root + ".2"}},
		{tag.StudyID, []string{"S1"}},
		{tag.SeriesNumber, []string{"1"}},
		{tag.InstanceNumber, []string{fmt.Sprint(i + 1)}},
		{tag.ImagePositionPatient, []string{"-128", "-128", fmt.Sprint(i)}},
		{tag.ImageOrientationPatient, []string{"1", "0", "0", "0", "1", "0"}},
		{tag.FrameOfReferenceUID, []string{root + ".3"}},
		{tag.SamplesPerPixel, []int{1}},
		{tag.PhotometricInterpretation, []string{"MONOCHROME2"}},
		{tag.Rows, []int{size}},
		{tag.Columns, []int{size}},
		{tag.PixelSpacing, []string{"0.5", "0.5"}},
		{tag.BitsAllocated, []int{16}},
		{tag.BitsStored, []int{12}},
		{tag.HighBit, []int{11}},
		{tag.PixelRepresentation, []int{0}},
		{tag.RescaleIntercept, []string{"-1024"}},
		{tag.RescaleSlope, []string{"1"}},
		{tag.PixelData, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: pix}},
	}
	var ds dicom.Dataset
	for _, p := range pairs {
		e, err := dicom.NewElement(p.t, p.v)
		if err != nil {
			return nil, err
		}
		ds.Elements = append(ds.Elements, e)
	}
	// A private block, as scanners write.
	v, _ := dicom.NewValue([]string{"VENDOR PRIVATE"})
	ds.Elements = append(ds.Elements[:len(ds.Elements)-1], &dicom.Element{Tag: tag.Tag{Group: 0x0029, Element: 0x0010}, RawValueRepresentation: "LO", Value: v}, ds.Elements[len(ds.Elements)-1])
	var buf bytes.Buffer
	err := dicom.Write(&buf, ds, dicom.SkipVRVerification())
	return buf.Bytes(), err
}
