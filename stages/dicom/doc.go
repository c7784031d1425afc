// Package dicom turns folders of DICOM files into volumes: discovery,
// series assembly, pixel decoding and Hounsfield units, and the writing of
// CT series (for phantoms and test fixtures).
//
// Use:
//
//	scan, err := dicom.Discover(ctx, []string{dir}, dicom.Options{})
//	for _, s := range scan.Series {   // scan.Skipped: files that are not images, with why
//		if s.Err != nil { … }          // this series cannot become a volume
//		v, err := s.Volume(ctx)        // *volume.Volume, int16 HU for CT
//	}
//
// Headers are parsed by suyashkumar/dicom (header elements only; the
// library never sees the pixel data). Written by hand, and why:
//
//   - A structural scan of every file (scan.go) before the parser sees it:
//     each length field must fit inside what holds it, so a corrupt or
//     hostile file cannot make the parser allocate more than the file's
//     size, and the scan locates the pixel data, so that it is decoded in
//     place, without the parser's per-sample processing or a copy. A header
//     read looks at the first 64 KiB only. Deflated datasets are inflated
//     (bounded) here.
//   - Pixel decoding (pixels.go): 8/16-bit native data in either byte
//     order, the stored value taken from BitsStored/HighBit and
//     sign-extended when PixelRepresentation = 1 (the parser returns
//     16-bit samples unsigned), × RescaleSlope + RescaleIntercept through a
//     per-series lookup table; RLE Lossless (PS3.5 Annex G).
//   - JPEG Lossless, process 14 with all predictors and SV1 (jpegll.go):
//     no reachable Go library decodes it.
//   - JPEG-LS lossless and near-lossless, ITU-T T.87 (jpegls.go): no Go
//     module that decodes it is reachable (CharLS is C++). JPEG Baseline
//     goes through the standard library's image/jpeg (jpegbase.go); JPEG
//     Extended, 12-bit, by hand with libjpeg's integer IDCT (jpegdct.go).
//   - Files without a File Meta header, implicit or explicit VR little
//     endian (the first element is tried as a group 0002–0028 element).
//   - Series assembly (series.go), following dcm2niix's conventions so that
//     outputs match it voxel for voxel: group by SeriesInstanceUID and
//     orientation (LOCALIZER images apart, or left out without
//     Options.AllImages), sort by ImagePositionPatient on
//     the slice normal, spacing from the sorted positions, warnings for
//     uneven spacing, missing or duplicate slices and gantry tilt, rows
//     stored bottom-up with the voxel-to-RAS+ affine. Enhanced multi-frame
//     images take their geometry and rescale from the functional groups.
//   - Siemens MOSAIC images (mosaic.go) split into their tiles, each with
//     its position, as dcm2niix does; the count and slice normal come from
//     the Siemens CSA header, parsed by a bounded reader (csa.go).
//
// Nothing here prints. Errors and warnings name files, tags and numbers,
// never the value of a patient, study or text attribute (a malformed
// number, such as NumberOfFrames "1A", is quoted): the UIDs used for
// grouping stay unexported (see Series.UIDs, for de-identification only).
package dicom
