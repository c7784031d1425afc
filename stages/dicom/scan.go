package dicom

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// Transfer syntax UIDs this package reads or names in errors.
const (
	tsImplicitLE     = "1.2.840.10008.1.2"
	tsExplicitLE     = "1.2.840.10008.1.2.1"
	tsDeflated       = "1.2.840.10008.1.2.1.99"
	tsExplicitBE     = "1.2.840.10008.1.2.2"
	tsRLE            = "1.2.840.10008.1.2.5"
	tsJPEGLossless14 = "1.2.840.10008.1.2.4.57"
	tsJPEGLosslessSV = "1.2.840.10008.1.2.4.70"
	tsJPEGBaseline   = "1.2.840.10008.1.2.4.50"
	tsJPEGExtended   = "1.2.840.10008.1.2.4.51"
	tsJPEGLS         = "1.2.840.10008.1.2.4.80"
	tsJPEGLSNear     = "1.2.840.10008.1.2.4.81"
)

// unsupportedTS names the compressed transfer syntaxes that are refused,
// with the program that decompresses them.
var unsupportedTS = map[string]string{
	"1.2.840.10008.1.2.4.55":  "JPEG Full Progression (lossy, retired)",
	"1.2.840.10008.1.2.4.100": "MPEG2",
	"1.2.840.10008.1.2.4.102": "MPEG-4 AVC/H.264",
	"1.2.840.10008.1.2.4.201": "HTJ2K Lossless",
	"1.2.840.10008.1.2.4.203": "HTJ2K",
}

// TransferSyntaxName returns a short readable name of a transfer syntax UID.
func TransferSyntaxName(uid string) string {
	switch uid {
	case tsImplicitLE:
		return "Implicit VR Little Endian"
	case tsExplicitLE:
		return "Explicit VR Little Endian"
	case tsDeflated:
		return "Deflated Explicit VR Little Endian"
	case tsExplicitBE:
		return "Explicit VR Big Endian"
	case tsRLE:
		return "RLE Lossless"
	case tsJPEGLossless14:
		return "JPEG Lossless (process 14)"
	case tsJPEGLosslessSV:
		return "JPEG Lossless SV1"
	case tsJPEGBaseline:
		return "JPEG Baseline (lossy)"
	case tsJPEGExtended:
		return "JPEG Extended (lossy)"
	case tsJPEGLS:
		return "JPEG-LS Lossless"
	case tsJPEGLSNear:
		return "JPEG-LS Near-Lossless"
	case tsJPEG2000Lossless:
		return "JPEG 2000 Lossless"
	case tsJPEG2000:
		return "JPEG 2000"
	}
	if n, ok := unsupportedTS[uid]; ok {
		return n
	}
	return "unknown transfer syntax " + uid
}

// tsError is the error for a transfer syntax that is not decoded, naming
// it and how to decompress it.
func tsError(ts string) error {
	if name, ok := unsupportedTS[ts]; ok {
		return fmt.Errorf("%w: transfer syntax %s (%s); decompress first with `gdcmconv --raw IN OUT` or `dcmdjpeg IN OUT`", ErrUnsupported, name, ts)
	}
	return fmt.Errorf("%w: unknown transfer syntax %q; decompress first with `gdcmconv --raw IN OUT`", ErrUnsupported, printable(ts))
}

// printable cuts s to 64 characters and replaces bytes outside printable
// ASCII, for messages about malformed values that are not patient data
// (UIDs of transfer syntaxes).
func printable(s string) string {
	b := []byte(s)
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// Errors callers test.
var (
	// ErrNotDICOM means a file is neither a DICOM Part 10 file nor a bare
	// implicit VR little endian dataset.
	ErrNotDICOM = errors.New("not a DICOM file")
	// ErrCorrupt means a DICOM file is truncated or its structure is
	// inconsistent.
	ErrCorrupt = errors.New("corrupt DICOM file")
	// ErrUnsupported means a valid DICOM file uses an encoding this
	// package does not decode (a transfer syntax, a pixel format).
	ErrUnsupported = errors.New("unsupported DICOM encoding")
	// ErrNoImage means the file has no pixel data or no geometry.
	ErrNoImage = errors.New("no usable image")
)

// maxDepth bounds sequence nesting.
const maxDepth = 16

// maxInflate bounds the inflated size of a deflated dataset.
const maxInflate = 1 << 30

const undefinedLength = 0xffffffff

// layout is what the structural scan learns about a file.
type layout struct {
	ts       string // transfer syntax UID; tsImplicitLE when there is no meta header
	meta     bool   // the file has a preamble and meta header
	dataset  int    // offset of the dataset (after the meta group)
	explicit bool
	order    binary.ByteOrder
	// data is what the parser reads: the file, or for a deflated file an
	// equivalent explicit VR little endian one. Header elements end at
	// pixelAt, the offset of the top-level pixel data element (len(data)
	// when there is none).
	data    []byte
	pixelAt int
	// hasPixels says the file has top-level pixel data; pixelBytes is its
	// size (for encapsulated data, fragments with item headers).
	hasPixels  bool
	pixelBytes int64
	// native or fragments (basic offset table dropped) hold the pixel
	// data when the whole file was scanned.
	native    []byte
	fragments [][]byte
	// pixelOW says the pixel data's VR is OW: in big endian files its
	// bytes are swapped in 16-bit words, which matters for 1-bit data.
	pixelOW bool
}

// errNeedWhole means a scan of the first bytes of a file needs the rest.
var errNeedWhole = errors.New("need the whole file")

// scanFile checks the structure of a file held in memory before the
// parser sees it: every length field must fit inside what holds it, so no
// length can make the parser allocate beyond the file's size. b is the
// whole file, or its first bytes when len(b) < size: then the scan stops
// at the pixel data, or returns errNeedWhole.
func scanFile(b []byte, size int64) (layout, error) {
	l := layout{data: b}
	if len(b) >= 132 && string(b[128:132]) == "DICM" {
		l.meta = true
		off, ts, err := scanMeta(b, 132)
		if err != nil {
			if int64(len(b)) < size {
				return l, errNeedWhole
			}
			return l, err
		}
		l.dataset, l.ts = off, ts
		if _, _, err := uid.ParseTransferSyntaxUID(ts); err != nil {
			return l, tsError(ts)
		}
	} else if bareExplicit(b, size) {
		// A dataset without preamble and meta header in explicit VR little
		// endian: wrap it in a meta header naming its syntax, which is how
		// the parser learns it (it assumes implicit VR otherwise).
		l.meta, l.ts = true, tsExplicitLE
		head := make([]byte, 132)
		copy(head[128:], "DICM")
		l.data = rebuild(head, b)
		l.dataset = len(l.data) - len(b)
		size += int64(l.dataset)
		b = l.data
	} else {
		l.ts = tsImplicitLE
	}
	switch l.ts {
	case tsImplicitLE:
		l.order = binary.LittleEndian
	case tsExplicitBE:
		l.order, l.explicit = binary.BigEndian, true
	default: // explicit little endian, deflated and every encapsulated syntax
		l.order, l.explicit = binary.LittleEndian, true
	}
	if l.ts == tsDeflated {
		if int64(len(b)) < size {
			return l, errNeedWhole
		}
		inflated, err := inflate(b[l.dataset:], int64(len(b)))
		if err != nil {
			return l, err
		}
		l.data = rebuild(b[:l.dataset], inflated)
		l.dataset = len(l.data) - len(inflated)
		size = int64(len(l.data))
	}
	if !l.meta && !plausibleStart(l.data, size) {
		return l, fmt.Errorf("%w (no preamble or meta header, and no data element starts at byte 0)", ErrNotDICOM)
	}
	s := scanner{b: l.data, size: size, order: l.order, explicit: l.explicit, pixelAt: -1}
	err := s.dataset(l.dataset, int(size), 0, !l.meta)
	if errors.Is(err, errNeedWhole) {
		return l, err
	}
	if err != nil && !errors.Is(err, errStopAtPixels) {
		if !l.meta {
			return l, fmt.Errorf("%w (no DICOM preamble, and not an implicit VR little endian dataset: %v)", ErrNotDICOM, err)
		}
		return l, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	l.pixelAt = len(l.data)
	if s.pixelAt >= 0 {
		l.pixelAt, l.hasPixels, l.pixelBytes = s.pixelAt, true, s.pixelBytes
		l.native, l.fragments, l.pixelOW = s.native, s.fragments, s.pixelOW
	}
	return l, nil
}

// bareExplicit reports whether b starts with an explicit VR little endian
// element of group 0x0002 to 0x0028 (usually 0x0008): a known VR after the
// tag and a length that fits a file of size bytes. Read as implicit VR, the
// VR's letters would make a length of at least 16 KiB for the first
// element, which no real dataset has.
func bareExplicit(b []byte, size int64) bool {
	if len(b) < 12 {
		return false
	}
	g := binary.LittleEndian.Uint16(b)
	if g < 0x0002 || g > 0x0028 || g%2 != 0 {
		return false
	}
	vr := string(b[4:6])
	if !knownVR(vr) {
		return false
	}
	if longVR(vr) {
		vl := binary.LittleEndian.Uint32(b[8:])
		return b[6] == 0 && b[7] == 0 && (vl == undefinedLength || int64(vl) <= size-12)
	}
	return int64(binary.LittleEndian.Uint16(b[6:])) <= size-8
}

func knownVR(vr string) bool {
	switch vr {
	case "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US",
		"OB", "OD", "OF", "OL", "OW", "SQ", "UN", "UC", "UR", "UT":
		return true
	}
	return false
}

// plausibleStart reports whether b starts with an implicit VR element of
// group 0x0002 to 0x0028 with a length that fits a file of size bytes.
func plausibleStart(b []byte, size int64) bool {
	if len(b) < 8 {
		return false
	}
	g := binary.LittleEndian.Uint16(b)
	vl := binary.LittleEndian.Uint32(b[4:])
	return g >= 0x0002 && g <= 0x0028 && g%2 == 0 && (vl == undefinedLength || int64(vl) <= size-8)
}

// scanMeta reads the explicit VR little endian group 0002 at off and
// returns where the dataset starts and the transfer syntax.
func scanMeta(b []byte, off int) (int, string, error) {
	ts := ""
	for off+8 <= len(b) {
		g := binary.LittleEndian.Uint16(b[off:])
		if g != 0x0002 {
			break
		}
		e := binary.LittleEndian.Uint16(b[off+2:])
		vr := string(b[off+4 : off+6])
		var vl, hdr int
		if longVR(vr) {
			if off+12 > len(b) {
				return 0, "", fmt.Errorf("%w: meta header truncated", ErrCorrupt)
			}
			vl, hdr = int(binary.LittleEndian.Uint32(b[off+8:])), 12
		} else {
			vl, hdr = int(binary.LittleEndian.Uint16(b[off+6:])), 8
		}
		if vl < 0 || off+hdr+vl > len(b) || vl == undefinedLength {
			return 0, "", fmt.Errorf("%w: meta element (0002,%04x) length %d runs past the end of the file", ErrCorrupt, e, vl)
		}
		if e == 0x0010 {
			ts = string(bytes.TrimRight(b[off+hdr:off+hdr+vl], " \x00"))
		}
		off += hdr + vl
	}
	if ts == "" {
		return 0, "", fmt.Errorf("%w: meta header has no transfer syntax", ErrCorrupt)
	}
	return off, ts, nil
}

// inflate decompresses a deflated dataset, refusing more than deflate can
// expand a file of size bytes to (and more than maxInflate).
func inflate(z []byte, size int64) ([]byte, error) {
	limit := min(size*1100, maxInflate)
	r := flate.NewReader(bytes.NewReader(z))
	defer r.Close()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: deflated dataset: %v", ErrCorrupt, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: deflated dataset expands beyond %d bytes", ErrCorrupt, limit)
	}
	return buf.Bytes(), nil
}

// rebuild returns a Part 10 file holding the original preamble, a meta
// group naming explicit VR little endian, and the inflated dataset.
func rebuild(head, dataset []byte) []byte {
	ts := []byte(tsExplicitLE + "\x00")
	var meta bytes.Buffer
	elem := func(e uint16, vr string, val []byte) {
		binary.Write(&meta, binary.LittleEndian, [2]uint16{0x0002, e})
		meta.WriteString(vr)
		binary.Write(&meta, binary.LittleEndian, uint16(len(val)))
		meta.Write(val)
	}
	elem(0x0010, "UI", ts)
	var out bytes.Buffer
	out.Write(head[:132])
	gl := make([]byte, 4)
	binary.LittleEndian.PutUint32(gl, uint32(meta.Len()))
	elem0 := bytes.Buffer{}
	binary.Write(&elem0, binary.LittleEndian, [2]uint16{0x0002, 0x0000})
	elem0.WriteString("UL")
	binary.Write(&elem0, binary.LittleEndian, uint16(4))
	elem0.Write(gl)
	out.Write(elem0.Bytes())
	out.Write(meta.Bytes())
	out.Write(dataset)
	return out.Bytes()
}

// longVR reports whether an explicit VR has a 4-byte length, as
// suyashkumar/dicom reads it.
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OW", "SQ", "UN", "UC", "UR", "UT", "NA":
		return true
	}
	return false
}

// scanner walks a dataset checking lengths and nesting. Offsets up to size
// are valid; b may hold fewer bytes (a prefix of the file), and reading
// past it gives errNeedWhole.
type scanner struct {
	b        []byte
	size     int64
	order    binary.ByteOrder
	explicit bool
	// Top-level pixel data, when found.
	pixelAt    int
	pixelBytes int64
	native     []byte
	fragments  [][]byte
	pixelOW    bool
	collect    bool // items are the top-level pixel data's fragments
}

// errStopAtPixels ends a prefix scan at the pixel data.
var errStopAtPixels = errors.New("stopped at pixel data")

// need checks that n bytes at off are held in b.
func (s *scanner) need(off, n int, what string) error {
	if off+n <= len(s.b) {
		return nil
	}
	if int64(len(s.b)) < s.size {
		return errNeedWhole
	}
	return fmt.Errorf("%s at offset %d runs past the end", what, off)
}

func (s *scanner) tag(off int) (uint16, uint16) {
	return s.order.Uint16(s.b[off:]), s.order.Uint16(s.b[off+2:])
}

// dataset walks elements from off to end. With strict, top-level tags must
// ascend (used to recognise bare datasets).
func (s *scanner) dataset(off, end, depth int, strict bool) error {
	var last uint32
	for off < end {
		next, g, e, err := s.element(off, end, depth)
		if err != nil {
			return err
		}
		if g == 0xfffe {
			return fmt.Errorf("unexpected item tag (fffe,%04x) at offset %d", e, off)
		}
		if t := uint32(g)<<16 | uint32(e); strict {
			if t <= last && off > 0 {
				return fmt.Errorf("tags out of order at offset %d", off)
			}
			last = t
		}
		off = next
	}
	return nil
}

// element checks the element at off and returns the offset after it.
func (s *scanner) element(off, end, depth int) (int, uint16, uint16, error) {
	if off+8 > end {
		return 0, 0, 0, fmt.Errorf("element header at offset %d runs past the end", off)
	}
	if err := s.need(off, 8, "element header"); err != nil {
		return 0, 0, 0, err
	}
	g, e := s.tag(off)
	var vr string
	var vl uint32
	hdr := 8
	if s.explicit {
		vr = string(s.b[off+4 : off+6])
		if longVR(vr) {
			if off+12 > end {
				return 0, 0, 0, fmt.Errorf("element (%04x,%04x) header runs past the end", g, e)
			}
			if err := s.need(off, 12, "element header"); err != nil {
				return 0, 0, 0, err
			}
			vl, hdr = s.order.Uint32(s.b[off+8:]), 12
		} else {
			vl = uint32(s.order.Uint16(s.b[off+6:]))
			if vl == 0xffff {
				vl = undefinedLength
			}
		}
	} else {
		vl = s.order.Uint32(s.b[off+4:])
		vr = implicitVR(g, e)
	}
	body := off + hdr
	pixels := g == 0x7fe0 && e == 0x0010 && depth == 0
	if pixels {
		s.pixelAt, s.pixelOW = off, vr == "OW"
	}
	if vl == undefinedLength {
		switch {
		case g == 0x7fe0 && e == 0x0010:
			if pixels && int64(len(s.b)) < s.size {
				s.pixelBytes = int64(end - body)
				return 0, g, e, errStopAtPixels
			}
			s.collect = pixels
			n, err := s.items(body, end, depth, true)
			s.collect = false
			if err == nil && pixels {
				s.pixelBytes = int64(n - body)
			}
			return n, g, e, err
		case vr == "SQ" || vr == "UN":
			n, err := s.items(body, end, depth, false)
			return n, g, e, err
		case vr == "OB" || vr == "OW":
			n, err := s.items(body, end, depth, true)
			return n, g, e, err
		default:
			return 0, 0, 0, fmt.Errorf("element (%04x,%04x) has undefined length but VR %s", g, e, printableVR(vr))
		}
	}
	if int64(vl) > int64(end-body) {
		return 0, 0, 0, fmt.Errorf("element (%04x,%04x) claims %d bytes, %d remain", g, e, vl, end-body)
	}
	next := body + int(vl)
	if pixels {
		s.pixelBytes = int64(vl)
		if next > len(s.b) {
			return 0, g, e, errStopAtPixels
		}
		s.native = s.b[body:next:next]
	}
	if vr == "SQ" {
		if _, err := s.items(body, next, depth, false); err != nil {
			return 0, 0, 0, err
		}
	}
	return next, g, e, nil
}

// items walks sequence items (or pixel data fragments, raw) from off: up
// to end when the sequence has a defined length, else up to and including
// the sequence delimiter. It returns the offset after the sequence.
func (s *scanner) items(off, end, depth int, raw bool) (int, error) {
	if depth >= maxDepth {
		return 0, fmt.Errorf("sequences nested deeper than %d", maxDepth)
	}
	topPixels := raw && s.collect
	first := true
	for off < end {
		if off+8 > end {
			return 0, fmt.Errorf("item header at offset %d runs past the end", off)
		}
		if err := s.need(off, 8, "item header"); err != nil {
			return 0, err
		}
		g, e := s.tag(off)
		vl := s.order.Uint32(s.b[off+4:])
		body := off + 8
		switch {
		case g == 0xfffe && e == 0xe0dd: // sequence delimiter
			return body, nil
		case g != 0xfffe || e != 0xe000:
			return 0, fmt.Errorf("expected an item at offset %d, found (%04x,%04x)", off, g, e)
		case vl == undefinedLength && raw:
			return 0, fmt.Errorf("fragment of undefined length at offset %d", off)
		case vl == undefinedLength:
			n, err := s.itemUntilDelimiter(body, end, depth+1)
			if err != nil {
				return 0, err
			}
			off = n
		case int64(vl) > int64(end-body):
			return 0, fmt.Errorf("item at offset %d claims %d bytes, %d remain", off, vl, end-body)
		default:
			next := body + int(vl)
			if err := s.need(body, int(vl), "item"); err != nil {
				return 0, err
			}
			if !raw {
				if err := s.dataset(body, next, depth+1, false); err != nil {
					return 0, err
				}
			} else if topPixels && !first { // the first item is the basic offset table
				s.fragments = append(s.fragments, s.b[body:next:next])
			}
			first = false
			off = next
		}
	}
	return off, nil
}

// itemUntilDelimiter walks an undefined-length item's elements up to and
// including the item delimiter.
func (s *scanner) itemUntilDelimiter(off, end, depth int) (int, error) {
	for off < end {
		if off+8 > end {
			break
		}
		if err := s.need(off, 8, "element header"); err != nil {
			return 0, err
		}
		if g, e := s.tag(off); g == 0xfffe && e == 0xe00d {
			return off + 8, nil
		}
		next, g, e, err := s.element(off, end, depth)
		if err != nil {
			return 0, err
		}
		if g == 0xfffe {
			return 0, fmt.Errorf("unexpected item tag (fffe,%04x) at offset %d", e, off)
		}
		off = next
	}
	return 0, errors.New("item without delimiter runs past the end")
}

// implicitVR returns the VR suyashkumar/dicom assumes for a tag in an
// implicit VR dataset: the dictionary's first, or UN.
func implicitVR(g, e uint16) string {
	t := tag.Tag{Group: g, Element: e}
	if t == tag.PixelData {
		return "OW"
	}
	if info, err := tag.Find(t); err == nil && len(info.VRs) > 0 {
		return info.VRs[0]
	}
	return "UN"
}

func printableVR(vr string) string {
	for _, c := range []byte(vr) {
		if c < 'A' || c > 'Z' {
			return fmt.Sprintf("%q", vr)
		}
	}
	return vr
}
