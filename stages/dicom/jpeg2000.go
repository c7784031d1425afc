package dicom

// JPEG 2000 (transfer syntaxes .90 lossless and .91) is decoded by the
// pure-Go decoder in the jpeg2000 package; here frames are cut from the
// fragments and each code stream's declared image is checked against the
// DICOM header before anything of its size is allocated.

import (
	"errors"
	"fmt"

	"github.com/medcad/medcad/stages/dicom/jpeg2000"
)

const (
	tsJPEG2000Lossless = "1.2.840.10008.1.2.4.90"
	tsJPEG2000         = "1.2.840.10008.1.2.4.91"
)

func isJPEG2000(ts string) bool { return ts == tsJPEG2000Lossless || ts == tsJPEG2000 }

// j2kError classifies a decoder error as unsupported or corrupt.
func j2kError(err error) error {
	if errors.Is(err, jpeg2000.ErrUnsupported) {
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

// splitJPEG2000 returns one code stream per frame: each fragment when
// there is one per frame, otherwise the concatenated fragments cut at the
// end of each code stream (padding between them skipped). Each stream must
// declare the header's grayscale image.
func splitJPEG2000(fragments [][]byte, in *Instance) ([][]byte, error) {
	frames := len(in.Frames)
	out := fragments
	if len(fragments) != frames {
		var all []byte
		for _, f := range fragments {
			all = append(all, f...)
		}
		out = make([][]byte, 0, frames)
		for len(out) < frames {
			for len(all) >= 2 && !(all[0] == 0xff && all[1] == 0x4f) && !(len(all) >= 8 && all[4] == 'j' && all[5] == 'P') {
				all = all[1:]
			}
			if len(all) < 2 {
				return nil, fmt.Errorf("%w: %d JPEG 2000 code streams for %d frames", ErrCorrupt, len(out), frames)
			}
			n, err := jpeg2000.Length(all)
			if err != nil {
				return nil, fmt.Errorf("frame %d: %w", len(out)+1, j2kError(err))
			}
			out = append(out, all[:n])
			all = all[n:]
		}
	}
	for i, s := range out {
		info, err := jpeg2000.ReadInfo(s)
		if err != nil {
			return nil, fmt.Errorf("frame %d: %w", i+1, j2kError(err))
		}
		switch {
		case info.Components != 1:
			return nil, fmt.Errorf("frame %d: %w: JPEG 2000 image with %d components (colour); only grayscale is supported", i+1, ErrUnsupported, info.Components)
		case info.Width != in.Columns || info.Height != in.Rows:
			return nil, fmt.Errorf("frame %d: %w: JPEG 2000 image is %d×%d, DICOM header says %d×%d", i+1, ErrCorrupt, info.Width, info.Height, in.Columns, in.Rows)
		case info.Depth > in.BitsAllocated:
			return nil, fmt.Errorf("frame %d: %w: JPEG 2000 image of %d-bit samples, BitsAllocated is %d", i+1, ErrCorrupt, info.Depth, in.BitsAllocated)
		}
	}
	return out, nil
}

// decodeJPEG2000 decodes one frame's code stream into dst.
func decodeJPEG2000(b []byte, rows, cols int, dst []uint16) error {
	if err := jpeg2000.Decode(b, cols, rows, dst); err != nil {
		return j2kError(err)
	}
	return nil
}
