package dicom

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
)

// frameDecoder turns one file's raw pixel data into Hounsfield units.
type frameDecoder struct {
	in   *Instance
	px   *pixels
	jls  [][]byte // JPEG and JPEG 2000: one code stream per frame, split once
	luts *lutCache
}

// lut maps every 16-bit raw sample to its int16 value; flags marks the
// samples that clamp (1) or round (2). One table replaces the per-sample
// masking, sign extension, rescale and clamping.
type lut struct {
	hu    [1 << 16]int16
	flags [1 << 16]uint8
}

// lutCache shares tables between the files of a series (they usually
// share BitsStored, sign and rescale).
type lutCache struct {
	mu sync.Mutex
	m  map[converter]*lut
}

func newLUTCache() *lutCache { return &lutCache{m: map[converter]*lut{}} }

func (c *lutCache) get(conv converter) *lut {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.m[conv]; ok {
		return t
	}
	t := &lut{}
	for raw := range 1 << 16 {
		var st huStats
		t.hu[raw] = conv.hu(conv.stored(uint32(raw)), &st)
		if st.clamped > 0 {
			t.flags[raw] |= 1
		}
		if st.fractional > 0 {
			t.flags[raw] |= 2
		}
	}
	c.m[conv] = t
	return t
}

// stats counts one sample's flags.
func (t *lut) stats(flags uint8, st *huStats) {
	if flags&1 != 0 {
		st.clamped++
	}
	if flags&2 != 0 {
		st.fractional++
	}
}

// huStats counts what converting a frame changed.
type huStats struct {
	clamped    int // values outside int16, clamped
	fractional int // values with a fractional part, rounded
}

func (s *huStats) add(o huStats) { s.clamped += o.clamped; s.fractional += o.fractional }

// checkPixelFormat rejects what the decoders cannot handle, naming it.
func (in *Instance) checkPixelFormat() error {
	if in.Samples != 1 {
		return fmt.Errorf("%w: %d samples per pixel (%s); only grayscale is supported", ErrUnsupported, in.Samples, in.Photometric)
	}
	switch in.BitsAllocated {
	case 8, 16:
	case 1, 32:
		// Packed bits are native only; 32-bit samples native or RLE.
		native := in.TransferSyntax == tsImplicitLE || in.TransferSyntax == tsExplicitLE || in.TransferSyntax == tsExplicitBE || in.TransferSyntax == tsDeflated
		if !native && (in.BitsAllocated == 1 || in.TransferSyntax != tsRLE) {
			return fmt.Errorf("%w: BitsAllocated %d in %s; only native%s pixel data is supported at this depth", ErrUnsupported, in.BitsAllocated,
				TransferSyntaxName(in.TransferSyntax), map[bool]string{true: " or RLE"}[in.BitsAllocated == 32])
		}
	default:
		return fmt.Errorf("%w: BitsAllocated %d; only 1, 8, 16 and 32 are supported", ErrUnsupported, in.BitsAllocated)
	}
	if in.BitsStored < 1 || in.BitsStored > in.BitsAllocated || in.HighBit < in.BitsStored-1 || in.HighBit >= in.BitsAllocated {
		return fmt.Errorf("%w: BitsStored %d, HighBit %d in %d bits", ErrCorrupt, in.BitsStored, in.HighBit, in.BitsAllocated)
	}
	switch in.TransferSyntax {
	case tsImplicitLE, tsExplicitLE, tsExplicitBE, tsDeflated, tsRLE, tsJPEGLossless14, tsJPEGLosslessSV, tsJPEGLS, tsJPEGLSNear,
		tsJPEG2000Lossless, tsJPEG2000:
		return nil
	case tsJPEGExtended:
		if in.BitsStored > 12 {
			return fmt.Errorf("%w: JPEG Extended holds 8- or 12-bit samples, the header says BitsStored %d", ErrCorrupt, in.BitsStored)
		}
		return nil
	case tsJPEGBaseline:
		if in.BitsStored > 8 {
			return fmt.Errorf("%w: JPEG Baseline holds 8-bit samples, the header says BitsStored %d", ErrCorrupt, in.BitsStored)
		}
		return nil
	}
	return tsError(in.TransferSyntax)
}

// newFrameDecoder prepares the decoding of one file's frames; luts may be
// shared between files.
func newFrameDecoder(in *Instance, px *pixels, luts *lutCache) (*frameDecoder, error) {
	if err := in.checkPixelFormat(); err != nil {
		return nil, err
	}
	d := &frameDecoder{in: in, px: px, luts: luts}
	n := len(in.Frames)
	switch in.TransferSyntax {
	case tsRLE:
		if px.native != nil {
			return nil, fmt.Errorf("%w: RLE transfer syntax with native pixel data", ErrCorrupt)
		}
		if len(px.fragments) < n {
			return nil, fmt.Errorf("%w: %d RLE fragments for %d frames", ErrCorrupt, len(px.fragments), n)
		}
	case tsJPEGLossless14, tsJPEGLosslessSV, tsJPEGLS, tsJPEGLSNear, tsJPEGBaseline, tsJPEGExtended:
		if px.native != nil {
			return nil, fmt.Errorf("%w: JPEG transfer syntax with native pixel data", ErrCorrupt)
		}
		streams, err := splitJPEG(px.fragments, n, in.TransferSyntax == tsJPEGLS || in.TransferSyntax == tsJPEGLSNear)
		if err != nil {
			return nil, err
		}
		// Each code stream must declare the header's image before anything
		// of that size is allocated (its byte count says nothing: JPEG-LS
		// codes a uniform line in a few bits).
		for i, s := range streams {
			if err := checkJPEGFrame(s, in); err != nil {
				return nil, fmt.Errorf("frame %d: %w", i+1, err)
			}
		}
		d.jls = streams
	case tsJPEG2000Lossless, tsJPEG2000:
		if px.native != nil {
			return nil, fmt.Errorf("%w: JPEG 2000 transfer syntax with native pixel data", ErrCorrupt)
		}
		streams, err := splitJPEG2000(px.fragments, in)
		if err != nil {
			return nil, err
		}
		d.jls = streams
	default:
		if px.native == nil {
			return nil, fmt.Errorf("%w: encapsulated pixel data in a native transfer syntax", ErrCorrupt)
		}
		if need := in.pixelDataBytes(); int64(len(px.native)) < need {
			return nil, fmt.Errorf("%w: pixel data holds %d bytes, %d frames of %d×%d need %d", ErrCorrupt, len(px.native), n, in.Columns, in.Rows, need)
		}
	}
	return d, nil
}

// target is where a frame goes: int16 HU, float32 when rescaling gives
// fractional values outside CT (or for 32-bit samples), uint8 for the
// labels of a 1-bit Segmentation.
type target struct {
	i16 []int16
	f32 []float32
	u8  []uint8
}

// decode writes frame f into dst (Rows*Columns values), rows in reverse
// order when flip is set (the NIfTI convention dcm2niix uses). scratch is
// reused between calls.
func (d *frameDecoder) decode(f int, dst target, flip bool, scratch *[]uint16) (huStats, error) {
	in := d.in
	n := in.Rows * in.Columns
	conv := newConverter(in, in.Frames[f])
	switch {
	case in.BitsAllocated == 1:
		return huStats{}, d.unpackBits(f, dst, flip)
	case in.BitsAllocated == 32 && in.TransferSyntax == tsRLE:
		// The four byte planes interleaved, most significant first: big
		// endian native data.
		raw := make([]byte, 4*n)
		if err := decodeRLE32(d.px.fragments[f], in.Rows, in.Columns, raw); err != nil {
			return huStats{}, fmt.Errorf("frame %d: %w", f+1, err)
		}
		return conv.write(raw, 4, binary.BigEndian, dst, in.Columns, flip), nil
	}
	switch in.TransferSyntax {
	case tsRLE, tsJPEGLossless14, tsJPEGLosslessSV, tsJPEGLS, tsJPEGLSNear, tsJPEGBaseline, tsJPEGExtended, tsJPEG2000Lossless, tsJPEG2000:
		if cap(*scratch) < n {
			*scratch = make([]uint16, n)
		}
		s := (*scratch)[:n]
		var err error
		switch in.TransferSyntax {
		case tsRLE:
			err = decodeRLE(d.px.fragments[f], in.Rows, in.Columns, in.BitsAllocated, s)
		case tsJPEGLS, tsJPEGLSNear:
			err = decodeJPEGLS(d.jls[f], in.Rows, in.Columns, s)
		case tsJPEGBaseline:
			err = decodeJPEGBaseline(d.jls[f], in.Rows, in.Columns, s)
		case tsJPEGExtended:
			err = decodeJPEGDCT(d.jls[f], in.Rows, in.Columns, s)
		case tsJPEG2000Lossless, tsJPEG2000:
			err = decodeJPEG2000(d.jls[f], in.Rows, in.Columns, s)
		default:
			err = decodeJPEGLossless(d.jls[f], in.Rows, in.Columns, s)
		}
		if err != nil {
			return huStats{}, fmt.Errorf("frame %d: %w", f+1, err)
		}
		if dst.f32 != nil {
			conv.floats(func(i int) uint32 { return uint32(s[i]) }, dst.f32, in.Columns, flip)
			return huStats{}, nil
		}
		if in.BitsAllocated == 16 {
			return d.luts.get(conv).samples(s, dst.i16, in.Columns, flip), nil
		}
		return conv.samples(s, dst.i16, in.Columns, flip), nil
	default:
		size := in.BitsAllocated / 8
		raw := d.px.native[f*n*size : (f+1)*n*size]
		var order binary.ByteOrder = binary.LittleEndian
		if in.TransferSyntax == tsExplicitBE {
			order = binary.BigEndian
		}
		if size == 2 && dst.f32 == nil {
			return d.luts.get(conv).native(raw, order, dst.i16, in.Columns, flip), nil
		}
		return conv.write(raw, size, order, dst, in.Columns, flip), nil
	}
}

// write converts native samples of size bytes into dst.
func (c *converter) write(raw []byte, size int, order binary.ByteOrder, dst target, cols int, flip bool) huStats {
	if dst.f32 != nil {
		at := func(i int) uint32 { return uint32(raw[i]) }
		switch size {
		case 2:
			at = func(i int) uint32 { return uint32(order.Uint16(raw[2*i:])) }
		case 4:
			at = func(i int) uint32 { return order.Uint32(raw[4*i:]) }
		}
		c.floats(at, dst.f32, cols, flip)
		return huStats{}
	}
	return c.native(raw, size, order, dst.i16, cols, flip)
}

// unpackBits writes 1-bit frame f as 0/1 labels. Frames are packed one
// after another without padding, so a frame may start inside a byte;
// within a byte the first pixel is the least significant bit (PS3.5
// 8.1.1, D.2). Big endian data of VR OW has its bytes swapped in 16-bit
// words.
func (d *frameDecoder) unpackBits(f int, dst target, flip bool) error {
	in := d.in
	cols, rows := in.Columns, in.Rows
	n := rows * cols
	raw := d.px.native
	swap := in.TransferSyntax == tsExplicitBE && d.px.ow
	if dst.u8 == nil {
		return fmt.Errorf("%w: 1-bit pixel data outside a Segmentation", ErrUnsupported)
	}
	bit := int64(f) * int64(n)
	for r := range rows {
		out := dst.u8[r*cols : (r+1)*cols]
		if flip {
			out = dst.u8[(rows-1-r)*cols : (rows-r)*cols]
		}
		for i := range out {
			b := bit >> 3
			if swap {
				b ^= 1
			}
			out[i] = raw[b] >> (bit & 7) & 1
			bit++
		}
	}
	return nil
}

// native converts 16-bit native pixel data through the table.
func (t *lut) native(raw []byte, order binary.ByteOrder, dst []int16, cols int, flip bool) huStats {
	var st huStats
	rows := len(dst) / cols
	var seen uint8
	for r := range rows {
		out := dst[r*cols : (r+1)*cols]
		if flip {
			out = dst[(rows-1-r)*cols : (rows-r)*cols]
		}
		src := raw[2*r*cols : 2*(r+1)*cols]
		if order == binary.LittleEndian {
			for i := range out {
				x := uint16(src[2*i]) | uint16(src[2*i+1])<<8
				out[i] = t.hu[x]
				seen |= t.flags[x]
			}
		} else {
			for i := range out {
				x := uint16(src[2*i])<<8 | uint16(src[2*i+1])
				out[i] = t.hu[x]
				seen |= t.flags[x]
			}
		}
	}
	if seen != 0 { // rare: count exactly
		for i := 0; i+1 < len(raw); i += 2 {
			x := uint16(raw[i]) | uint16(raw[i+1])<<8
			if order != binary.LittleEndian {
				x = uint16(raw[i])<<8 | uint16(raw[i+1])
			}
			t.stats(t.flags[x], &st)
		}
	}
	return st
}

// samples converts decoded 16-bit samples through the table.
func (t *lut) samples(s []uint16, dst []int16, cols int, flip bool) huStats {
	var st huStats
	rows := len(dst) / cols
	var seen uint8
	for r := range rows {
		out := dst[r*cols : (r+1)*cols]
		if flip {
			out = dst[(rows-1-r)*cols : (rows-r)*cols]
		}
		for i, x := range s[r*cols : (r+1)*cols] {
			out[i] = t.hu[x]
			seen |= t.flags[x]
		}
	}
	if seen != 0 {
		for _, x := range s {
			t.stats(t.flags[x], &st)
		}
	}
	return st
}

// floats writes stored × slope + intercept as float32.
func (c *converter) floats(raw func(i int) uint32, dst []float32, cols int, flip bool) {
	rows := len(dst) / cols
	for r := range rows {
		out := dst[r*cols : (r+1)*cols]
		if flip {
			out = dst[(rows-1-r)*cols : (rows-r)*cols]
		}
		for i := range out {
			out[i] = float32(float64(c.stored(raw(r*cols+i)))*c.slope + c.intercept)
		}
	}
}

// converter maps stored values to HU.
type converter struct {
	shift     uint
	mask      uint32
	signBit   uint32
	signed    bool
	slope     float64
	intercept float64
	intSlope  int64 // slope and intercept when both are integers
	intInter  int64
	integer   bool
}

func newConverter(in *Instance, fr Frame) converter {
	c := converter{
		shift:     uint(in.HighBit + 1 - in.BitsStored),
		mask:      uint32(1)<<in.BitsStored - 1,
		signBit:   uint32(1) << (in.BitsStored - 1),
		signed:    in.Signed,
		slope:     fr.Slope,
		intercept: fr.Intercept,
	}
	if fr.Slope == math.Trunc(fr.Slope) && fr.Intercept == math.Trunc(fr.Intercept) &&
		math.Abs(fr.Slope) < 1<<20 && math.Abs(fr.Intercept) < 1<<40 {
		c.integer, c.intSlope, c.intInter = true, int64(fr.Slope), int64(fr.Intercept)
	}
	return c
}

// stored extracts the stored value from a raw sample: the BitsStored bits
// ending at HighBit, sign-extended when PixelRepresentation is 1.
func (c *converter) stored(raw uint32) int64 {
	v := raw >> c.shift & c.mask
	if c.signed && v&c.signBit != 0 {
		return int64(v) - int64(c.mask) - 1
	}
	return int64(v)
}

// hu converts one stored value, counting clamps and roundings.
func (c *converter) hu(v int64, st *huStats) int16 {
	var h int64
	if c.integer {
		h = v*c.intSlope + c.intInter
	} else {
		x := float64(v)*c.slope + c.intercept
		r := math.RoundToEven(x)
		if math.Abs(x-r) > 1e-6 {
			st.fractional++
		}
		h = int64(max(min(r, 1<<40), -(1 << 40)))
	}
	if h > math.MaxInt16 {
		st.clamped++
		return math.MaxInt16
	}
	if h < math.MinInt16 {
		st.clamped++
		return math.MinInt16
	}
	return int16(h)
}

// native converts native samples of size 1, 2 or 4 bytes.
func (c *converter) native(raw []byte, size int, order binary.ByteOrder, dst []int16, cols int, flip bool) huStats {
	var st huStats
	rows := len(dst) / cols
	for r := range rows {
		out := dst[r*cols : (r+1)*cols]
		if flip {
			out = dst[(rows-1-r)*cols : (rows-r)*cols]
		}
		src := raw[r*cols*size : (r+1)*cols*size]
		switch {
		case size == 1:
			for i := range out {
				out[i] = c.hu(c.stored(uint32(src[i])), &st)
			}
		case size == 4:
			for i := range out {
				out[i] = c.hu(c.stored(order.Uint32(src[4*i:])), &st)
			}
		case order == binary.LittleEndian:
			for i := range out {
				out[i] = c.hu(c.stored(uint32(src[2*i])|uint32(src[2*i+1])<<8), &st)
			}
		default:
			for i := range out {
				out[i] = c.hu(c.stored(uint32(src[2*i])<<8|uint32(src[2*i+1])), &st)
			}
		}
	}
	return st
}

func (c *converter) samples(s []uint16, dst []int16, cols int, flip bool) huStats {
	var st huStats
	rows := len(dst) / cols
	for r := range rows {
		out := dst[r*cols : (r+1)*cols]
		if flip {
			out = dst[(rows-1-r)*cols : (rows-r)*cols]
		}
		src := s[r*cols : (r+1)*cols]
		for i := range out {
			out[i] = c.hu(c.stored(uint32(src[i])), &st)
		}
	}
	return st
}

// decodeRLE decodes one DICOM RLE Lossless frame (PS3.5 Annex G): a
// 64-byte header of segment offsets, then one PackBits segment per byte
// plane, most significant first.
func decodeRLE(b []byte, rows, cols, bitsAllocated int, dst []uint16) error {
	if len(b) < 64 {
		return fmt.Errorf("%w: RLE header truncated", ErrCorrupt)
	}
	nseg := int(binary.LittleEndian.Uint32(b))
	want := bitsAllocated / 8
	if nseg != want {
		return fmt.Errorf("%w: %d RLE segments, %d-bit grayscale needs %d", ErrCorrupt, nseg, bitsAllocated, want)
	}
	return rleSegments(b, nseg, rows*cols, func(s int, plane []byte) {
		shift := uint(8 * (nseg - 1 - s))
		if s == 0 {
			for i, v := range plane {
				dst[i] = uint16(v) << shift
			}
		} else {
			for i, v := range plane {
				dst[i] |= uint16(v) << shift
			}
		}
	})
}

// decodeRLE32 decodes one RLE frame of 32-bit samples into dst (4 bytes a
// sample, big endian): its four segments are the byte planes, most
// significant first.
func decodeRLE32(b []byte, rows, cols int, dst []byte) error {
	if len(b) < 64 {
		return fmt.Errorf("%w: RLE header truncated", ErrCorrupt)
	}
	if nseg := binary.LittleEndian.Uint32(b); nseg != 4 {
		return fmt.Errorf("%w: %d RLE segments, 32-bit grayscale needs 4", ErrCorrupt, nseg)
	}
	return rleSegments(b, 4, rows*cols, func(s int, plane []byte) {
		for i, v := range plane {
			dst[4*i+s] = v
		}
	})
}

// rleSegments unpacks the nseg segments of an RLE frame b, each into a
// plane of n bytes passed to use.
func rleSegments(b []byte, nseg, n int, use func(s int, plane []byte)) error {
	var offs [16]int
	for i := range nseg {
		offs[i] = int(binary.LittleEndian.Uint32(b[4+4*i:]))
	}
	offs[nseg] = len(b)
	plane := make([]byte, n)
	for s := range nseg {
		start, end := offs[s], offs[s+1]
		if start < 64 || end > len(b) || start > end {
			return fmt.Errorf("%w: RLE segment %d offsets out of range", ErrCorrupt, s+1)
		}
		if err := unpackBits(b[start:end], plane); err != nil {
			return fmt.Errorf("%w: RLE segment %d: %v", ErrCorrupt, s+1, err)
		}
		use(s, plane)
	}
	return nil
}

// unpackBits decodes a PackBits segment that must fill dst exactly
// (trailing padding in src is allowed).
func unpackBits(src, dst []byte) error {
	o := 0
	for i := 0; i < len(src) && o < len(dst); {
		h := int8(src[i])
		i++
		switch {
		case h >= 0:
			n := int(h) + 1
			if i+n > len(src) || o+n > len(dst) {
				return fmt.Errorf("literal run of %d overflows", n)
			}
			copy(dst[o:], src[i:i+n])
			i += n
			o += n
		case h != -128:
			n := 1 - int(h)
			if i >= len(src) || o+n > len(dst) {
				return fmt.Errorf("repeat run of %d overflows", n)
			}
			v := src[i]
			i++
			for k := range n {
				dst[o+k] = v
			}
			o += n
		}
	}
	if o != len(dst) {
		return fmt.Errorf("decoded %d of %d bytes", o, len(dst))
	}
	return nil
}
