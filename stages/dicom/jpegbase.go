package dicom

// JPEG Baseline (process 1, 8-bit, lossy) is decoded by the standard
// library's image/jpeg, grayscale only. checkJPEGFrame reads the frame
// header of any JPEG or JPEG-LS code stream, so that the image a stream
// declares is compared with the DICOM header before anything is decoded.

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
)

// checkJPEGFrame finds the first SOF marker of a code stream and checks
// its size and component count against the DICOM header.
func checkJPEGFrame(b []byte, in *Instance) error {
	st, err := newJPEGStream(b, func(format string, args ...any) error {
		return fmt.Errorf("%w: JPEG code stream: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	})
	if err != nil {
		return err
	}
	for {
		m, seg, err := st.next()
		if err != nil {
			return err
		}
		if m == 0xd9 || m == 0xda {
			return fmt.Errorf("%w: JPEG code stream without frame header", ErrCorrupt)
		}
		if isSOF(m) {
			if len(seg) < 6 {
				return fmt.Errorf("%w: short JPEG frame header", ErrCorrupt)
			}
			rows, cols, nf := int(seg[1])<<8|int(seg[2]), int(seg[3])<<8|int(seg[4]), int(seg[5])
			if nf != 1 {
				return fmt.Errorf("%w: JPEG image with %d components (colour); only grayscale is supported", ErrUnsupported, nf)
			}
			if rows != in.Rows || cols != in.Columns {
				return fmt.Errorf("%w: JPEG image is %d×%d, DICOM header says %d×%d", ErrCorrupt, cols, rows, in.Columns, in.Rows)
			}
			return nil
		}
	}
}

// decodeJPEGBaseline decodes one 8-bit grayscale JPEG image.
func decodeJPEGBaseline(b []byte, rows, cols int, dst []uint16) error {
	// The frame header first: image/jpeg allocates what it declares.
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: JPEG Baseline: %v", ErrCorrupt, err)
	}
	if cfg.Width != cols || cfg.Height != rows {
		return fmt.Errorf("%w: JPEG image is %d×%d, DICOM header says %d×%d", ErrCorrupt, cfg.Width, cfg.Height, cols, rows)
	}
	if cfg.ColorModel != color.GrayModel {
		return fmt.Errorf("%w: JPEG Baseline colour image; only grayscale is supported", ErrUnsupported)
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		if _, ok := err.(jpeg.UnsupportedError); ok {
			return fmt.Errorf("%w: JPEG Baseline: %v", ErrUnsupported, err)
		}
		return fmt.Errorf("%w: JPEG Baseline: %v", ErrCorrupt, err)
	}
	g, ok := img.(*image.Gray)
	if !ok {
		return fmt.Errorf("%w: JPEG Baseline image is %T, only grayscale is supported", ErrUnsupported, img)
	}
	if r := g.Bounds(); r.Dx() != cols || r.Dy() != rows {
		return fmt.Errorf("%w: JPEG image is %d×%d, DICOM header says %d×%d", ErrCorrupt, r.Dx(), r.Dy(), cols, rows)
	}
	for y := range rows {
		row := g.Pix[y*g.Stride : y*g.Stride+cols]
		for x, v := range row {
			dst[y*cols+x] = uint16(v)
		}
	}
	return nil
}
