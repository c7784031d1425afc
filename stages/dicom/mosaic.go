package dicom

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// A Siemens MOSAIC image holds the slices of one MR volume as tiles of a
// single frame: NumberOfImagesInMosaic slices in a grid of
// ceil(sqrt(n)) × ceil(sqrt(n)) tiles, read row by row, each
// Rows/grid × Columns/grid pixels. Tile row t starts t·(Rows·Columns/grid)
// pixels into the frame (integer division): row t·Rows/grid when the grid
// divides Rows, and as dcm2niix reads it when it does not.
// Its ImagePositionPatient is the corner of the whole frame as if it were
// one image; the slices advance along the CSA header's SliceNormalVector
// by SpacingBetweenSlices (else SliceThickness).

// mosaic is how an Instance's tiles lie in its stored frame.
type mosaic struct {
	whole *Instance // the file as stored: one frame of the whole grid
	grid  int       // tiles per side
}

// isMosaic reports whether ImageType names a MOSAIC.
func isMosaic(imageType []string) bool {
	for _, v := range imageType {
		if strings.EqualFold(strings.TrimSpace(v), "MOSAIC") {
			return true
		}
	}
	return false
}

// expandMosaic turns an instance read as one frame of the whole grid
// into one frame per tile, with the tile size as Rows and Columns and
// each tile's position.
func (in *Instance) expandMosaic(top []*dicom.Element) error {
	if len(in.Frames) != 1 {
		return fmt.Errorf("%w: a MOSAIC image with %d frames", ErrUnsupported, len(in.Frames))
	}
	if !strings.Contains(strings.ToUpper(str(top, tag.Manufacturer)), "SIEMENS") {
		// dcm2niix splits only Siemens mosaics; read as one image, a grid of
		// tiles would be wrong.
		return fmt.Errorf("%w: a MOSAIC image not from Siemens (its tiles' layout is unknown)", ErrUnsupported)
	}
	var csa csaHeader
	if b := privateBytes(top, 0x0029, "SIEMENS CSA HEADER", 0x10); b != nil {
		h, err := parseCSA(b)
		if err != nil {
			return fmt.Errorf("%w: MOSAIC image: %v", ErrCorrupt, err)
		}
		csa = h
	}
	n := 0
	if v, ok := csa.floats("NumberOfImagesInMosaic", 1); ok {
		if v[0] != math.Trunc(v[0]) || v[0] < 0 || v[0] > 1<<20 {
			return fmt.Errorf("%w: MOSAIC image: NumberOfImagesInMosaic is not a count", ErrCorrupt)
		}
		n = int(v[0])
	} else if b := privateBytes(top, 0x0019, "SIEMENS MR HEADER", 0x0A); len(b) >= 2 {
		n = int(binary.LittleEndian.Uint16(b))
	} else if e := privateElement(top, 0x0019, "SIEMENS MR HEADER", 0x0A); e != nil {
		n = integer([]*dicom.Element{e}, e.Tag)
	} else {
		return fmt.Errorf("%w: MOSAIC image without NumberOfImagesInMosaic (CSA header or (0019,xx0A)); a de-identifier that removes private elements removes it: convert before de-identifying", ErrCorrupt)
	}
	if n < 1 {
		return fmt.Errorf("%w: MOSAIC image with NumberOfImagesInMosaic %d", ErrCorrupt, n)
	}
	grid := int(math.Ceil(math.Sqrt(float64(n))))
	tileRows, tileCols := in.Rows/grid, in.Columns/grid
	if tileRows < 1 || tileCols < 1 {
		return fmt.Errorf("%w: MOSAIC image: %d tiles do not fit in %d×%d pixels", ErrCorrupt, n, in.Columns, in.Rows)
	}

	whole := *in
	whole.Frames = in.Frames[:1:1]
	base := in.Frames[0]
	if base.HasPosition && base.HasOrient {
		x := [3]float64(base.Orientation[:3])
		y := [3]float64(base.Orientation[3:])
		normal := cross(x, y)
		if v, ok := csa.floats("SliceNormalVector", 3); ok && norm([3]float64(v)) > 0.5 {
			normal = [3]float64(v)
		}
		if l := norm(normal); l > 0 {
			normal = scale(normal, 1/l)
		}
		// The position of the first tile: the whole frame's corner moved by
		// half the frame minus half a tile (in tiles of Rows/grid pixels,
		// not rounded, as nibabel and dcm2niix compute it).
		sp := base.Spacing
		if !base.HasSpacing {
			sp = [2]float64{1, 1}
		}
		alongRow := (float64(in.Columns) - float64(in.Columns)/float64(grid)) / 2 * sp[1]
		alongCol := (float64(in.Rows) - float64(in.Rows)/float64(grid)) / 2 * sp[0]
		for r := range 3 {
			base.Position[r] += x[r]*alongRow + y[r]*alongCol
		}
		step := scale(normal, sliceSpacing(in, base))
		in.Frames = make([]Frame, n)
		for k := range in.Frames {
			in.Frames[k] = base
			for r := range 3 {
				in.Frames[k].Position[r] = base.Position[r] + float64(k)*step[r]
			}
		}
	} else {
		in.Frames = make([]Frame, n)
		for k := range in.Frames {
			in.Frames[k] = base
		}
	}
	in.Rows, in.Columns = tileRows, tileCols
	in.mosaic = &mosaic{whole: &whole, grid: grid}
	return nil
}

// privateElement finds element (group, xx<<8|offset) of the private block
// whose creator is named creator.
func privateElement(elems []*dicom.Element, group uint16, creator string, offset uint16) *dicom.Element {
	for _, e := range elems {
		if e.Tag.Group != group || e.Tag.Element < 0x10 || e.Tag.Element > 0xFF || e.Value == nil {
			continue
		}
		var name string
		switch v := e.Value.GetValue().(type) {
		case []string:
			if len(v) > 0 {
				name = v[0]
			}
		case []byte:
			name = string(v)
		}
		if strings.TrimRight(strings.TrimSpace(name), "\x00") == creator {
			return find(elems, tag.Tag{Group: group, Element: e.Tag.Element<<8 | offset})
		}
	}
	return nil
}

// privateBytes is the value of a private element read as bytes (OB, or UN
// in an implicit VR file), or nil.
func privateBytes(elems []*dicom.Element, group uint16, creator string, offset uint16) []byte {
	e := privateElement(elems, group, creator, offset)
	if e == nil || e.Value == nil {
		return nil
	}
	b, _ := e.Value.GetValue().([]byte)
	return b
}

// decodeMosaic decodes a mosaic file's stored frame once and copies the
// tiles of slices ks into out. dec decodes m.whole.
func (s *Series) decodeMosaic(in *Instance, dec *frameDecoder, ks []int, out target, plane int, scratch *[]uint16) (huStats, error) {
	m := in.mosaic
	w := m.whole
	var whole target
	if out.f32 != nil {
		whole.f32 = make([]float32, w.Rows*w.Columns)
	} else {
		whole.i16 = make([]int16, w.Rows*w.Columns)
	}
	st, err := dec.decode(0, whole, false, scratch)
	if err != nil {
		return st, fmt.Errorf("%s: %w", in.Path, err)
	}
	flip := !s.resample
	for _, k := range ks {
		tile := s.slices[k].frame
		at := tile/m.grid*(w.Rows*w.Columns/m.grid) + tile%m.grid*in.Columns
		for r := range in.Rows {
			src := at + r*w.Columns
			dr := r
			if flip {
				dr = in.Rows - 1 - r
			}
			dst := k*plane + dr*in.Columns
			if out.f32 != nil {
				copy(out.f32[dst:dst+in.Columns], whole.f32[src:src+in.Columns])
			} else {
				copy(out.i16[dst:dst+in.Columns], whole.i16[src:src+in.Columns])
			}
		}
	}
	return st, nil
}

// warnTimeSeries notes on each mosaic volume that is one of several of
// its series (the time points of an fMRI or diffusion run).
func warnTimeSeries(series []*Series) {
	count := map[string]int{}
	for _, s := range series {
		if s.slices[0].in.mosaic != nil {
			count[s.seriesUID]++
		}
	}
	for _, s := range series {
		if n := count[s.seriesUID]; n > 1 && s.slices[0].in.mosaic != nil {
			s.warn("one of %d mosaics of a time series, each converted as its own volume", n)
		}
	}
}
