package deid

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Problems checkBounds finds.
var (
	errLength    = errors.New("a length field claims more bytes than the file holds")
	errTruncated = errors.New("truncated: the file ends inside an element or sequence")
	errDepth     = fmt.Errorf("sequences nested deeper than %d", maxDepth)
)

// Budget of a deflated data set: what its declared pixel data needs
// (Rows × Columns × SamplesPerPixel × BitsAllocated/8 × NumberOfFrames,
// as the data set itself declares them before its pixels) plus
// deflateAllowance for everything else, and never more than maxInflated.
// The inflated stream is walked, not held, so a deflate bomb costs the
// walk's buffer only, and the parser, run afterwards, inflates at most
// the budget.
const (
	deflateAllowance = 64 << 20
	maxInflated      = 512 << 20
)

// checkBounds walks the element headers of a whole DICOM file in b and
// fails when any defined length is larger than what is left of the file
// (or of the sequence or item holding it), when sequences nest deeper
// than maxDepth, or when a deflated data set inflates beyond its budget.
//
// Why by hand: suyashkumar/dicom allocates a value's length before reading
// it, so a 200-byte file claiming a 4 GB value would allocate 4 GB, and it
// parses nested sequences by recursion, so a million nested sequences
// overflow the stack (a fatal error, not a panic). This walk reads headers
// only, with an explicit stack, and bounds every one of them, so that the
// parser, run afterwards, never allocates beyond the file nor recurses
// deeper than maxDepth. It does not judge anything else; the parser does.
func checkBounds(b []byte) error {
	pos := 0
	if len(b) >= 132 && string(b[128:132]) == "DICM" {
		pos = 132
	}
	bo := binary.ByteOrder(binary.LittleEndian)
	implicit := true
	// File meta: group 0002, always explicit VR little endian.
	if pos == 132 {
		ts := ""
		for pos+8 <= len(b) && binary.LittleEndian.Uint16(b[pos:]) == 0x0002 {
			el := binary.LittleEndian.Uint16(b[pos+2:])
			hdr, n, err := explicitHeader(b[pos:min(pos+12, len(b))], binary.LittleEndian)
			if err != nil {
				return err
			}
			if n == undefined || pos+hdr+n > len(b) {
				return errLength
			}
			if el == 0x0010 {
				ts = string(bytes.TrimRight(b[pos+hdr:pos+hdr+n], " \x00"))
			}
			pos += hdr + n
		}
		switch ts {
		case "1.2.840.10008.1.2":
		case "1.2.840.10008.1.2.2":
			bo, implicit = binary.BigEndian, false
		case deflatedExplicitVRLE:
			fr := flate.NewReader(bytes.NewReader(b[pos:]))
			defer fr.Close()
			w := headerWalk{src: &streamSource{r: bufio.NewReaderSize(fr, 64<<10), budget: deflateAllowance}, bo: binary.LittleEndian}
			if err := w.walk(); err != nil {
				var ferr flate.CorruptInputError
				if errors.As(err, &ferr) {
					return fmt.Errorf("deflated data set: %w", err)
				}
				return err
			}
			return nil
		default:
			implicit = false // every other transfer syntax is explicit VR little endian
		}
	}
	w := headerWalk{src: &byteSource{b: b, pos: int64(pos)}, bo: bo, implicit: implicit}
	return w.walk()
}

const undefined = -1

// explicitHeader decodes an explicit VR element header at the start of b:
// its size and the value length (undefined for 0xFFFFFFFF).
func explicitHeader(b []byte, bo binary.ByteOrder) (int, int, error) {
	if len(b) < 8 {
		return 0, 0, errLength
	}
	var n uint32
	hdr := 8
	if bo.Uint16(b) == 0xFFFE {
		n = bo.Uint32(b[4:])
	} else if longLength(string(b[4:6])) {
		if len(b) < 12 {
			return 0, 0, errLength
		}
		n, hdr = bo.Uint32(b[8:]), 12
	} else {
		n = uint32(bo.Uint16(b[6:]))
	}
	if n == 0xFFFFFFFF {
		return hdr, undefined, nil
	}
	return hdr, int(n), nil
}

// longLength reports whether an explicit VR has a 4-byte length field.
func longLength(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// source is what headerWalk reads: a file in memory or an inflating stream.
type source interface {
	// peek returns the next n bytes without consuming them; io.EOF when
	// the data set ends exactly here, errTruncated when it ends sooner.
	peek(n int) ([]byte, error)
	// skip consumes n bytes (a value the walk does not look into).
	skip(n int64) error
	// room reports whether n more bytes can follow: within the file, or
	// within the inflation budget.
	room(n int64) error
	offset() int64
	// declare raises the budget to what the declared pixel data needs.
	declare(pixelBytes int64)
}

// byteSource is a data set held in memory.
type byteSource struct {
	b   []byte
	pos int64
}

func (s *byteSource) peek(n int) ([]byte, error) {
	switch rest := int64(len(s.b)) - s.pos; {
	case rest == 0:
		return nil, io.EOF
	case rest < int64(n):
		return nil, errTruncated
	}
	return s.b[s.pos : s.pos+int64(n)], nil
}

func (s *byteSource) skip(n int64) error {
	if err := s.room(n); err != nil {
		return err
	}
	s.pos += n
	return nil
}

func (s *byteSource) room(n int64) error {
	if n > int64(len(s.b))-s.pos {
		return errLength
	}
	return nil
}

func (s *byteSource) offset() int64 { return s.pos }
func (s *byteSource) declare(int64) {}

// streamSource is an inflating data set, read once and never held.
type streamSource struct {
	r      *bufio.Reader
	pos    int64
	budget int64
}

// errBomb means a deflated data set inflates beyond what it declares.
var errBomb = errors.New("the deflated data set inflates beyond its declared size")

func (s *streamSource) peek(n int) ([]byte, error) {
	b, err := s.r.Peek(n)
	switch {
	case len(b) == n:
		return b, nil
	case len(b) == 0 && err == io.EOF:
		return nil, io.EOF
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return nil, errTruncated
	}
	return nil, err
}

func (s *streamSource) skip(n int64) error {
	if err := s.room(n); err != nil {
		return err
	}
	m, err := s.r.Discard(int(n))
	s.pos += int64(m)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errLength
	}
	return err
}

func (s *streamSource) room(n int64) error {
	if s.pos+n > s.budget {
		return fmt.Errorf("%w (more than %d bytes)", errBomb, s.budget)
	}
	return nil
}

func (s *streamSource) offset() int64 { return s.pos }

func (s *streamSource) declare(pixelBytes int64) {
	s.budget = min(deflateAllowance+pixelBytes, maxInflated)
}

// open is a sequence or item the walk is inside.
type open struct {
	end      int64 // offset where it ends; undefined when delimited
	sequence bool  // a sequence (or encapsulated pixel data), not an item
	pixels   bool  // encapsulated pixel data: its items are fragments
}

// headerWalk checks every header of a data set with an explicit stack.
type headerWalk struct {
	src      source
	bo       binary.ByteOrder
	implicit bool
	stack    []open
	depth    int // sequences open
	// declared image size, from the top-level image pixel module
	rows, cols, samples, bits, frames int64
}

func (w *headerWalk) walk() error {
	for {
		// Close what ends here; a value that ran past its container's end
		// was refused when it was read.
		for len(w.stack) > 0 && w.stack[len(w.stack)-1].end == w.src.offset() {
			w.pop()
		}
		b, err := w.src.peek(8)
		if err == io.EOF {
			if len(w.stack) > 0 {
				return errTruncated
			}
			return nil
		}
		if err != nil {
			return err
		}
		group, elem := w.bo.Uint16(b), w.bo.Uint16(b[2:])
		hdr, n, vr := 8, undefined, ""
		if group == 0xFFFE || w.implicit {
			if v := w.bo.Uint32(b[4:]); v != 0xFFFFFFFF {
				n = int(v)
			}
		} else {
			vr = string(b[4:6])
			if longLength(vr) {
				if b, err = w.src.peek(12); err != nil {
					return errTruncated
				}
			}
			hdr, n, _ = explicitHeader(b, w.bo)
		}
		if err := w.src.skip(int64(hdr)); err != nil {
			return errTruncated
		}
		top := w.top()
		switch {
		case group == 0xFFFE && (elem == 0xE00D || elem == 0xE0DD): // delimiters
			if top != nil && top.end == undefined {
				w.pop()
			}
			continue
		case n == undefined:
			pixels := group == 0x7FE0 && elem == 0x0010
			seq := !(group == 0xFFFE && elem == 0xE000)
			if err := w.push(open{end: undefined, sequence: seq, pixels: pixels}); err != nil {
				return err
			}
			continue
		}
		if err := w.fits(int64(n)); err != nil {
			return err
		}
		switch {
		case group == 0xFFFE && elem == 0xE000 && (top == nil || !top.pixels):
			// an item of a sequence: walk its elements
			if err := w.push(open{end: w.src.offset() + int64(n)}); err != nil {
				return err
			}
			continue
		case vr == "SQ" || (vr == "" && group != 0xFFFE && isSequenceTag(group, elem)):
			// a defined-length sequence: walk its items
			if err := w.push(open{end: w.src.offset() + int64(n), sequence: true}); err != nil {
				return err
			}
			continue
		case len(w.stack) == 0 && group == 0x0028 && n <= 16:
			if err := w.declared(elem, n); err != nil {
				return err
			}
			continue
		}
		if err := w.src.skip(int64(n)); err != nil {
			return err
		}
	}
}

// fits checks that n bytes fit in what holds them: the open item or
// sequence, and the file or the inflation budget.
func (w *headerWalk) fits(n int64) error {
	if top := w.top(); top != nil && top.end != undefined && w.src.offset()+n > top.end {
		return errLength
	}
	return w.src.room(n)
}

func (w *headerWalk) top() *open {
	if len(w.stack) == 0 {
		return nil
	}
	return &w.stack[len(w.stack)-1]
}

func (w *headerWalk) push(o open) error {
	if o.sequence {
		if w.depth++; w.depth > maxDepth {
			return errDepth
		}
	}
	w.stack = append(w.stack, o)
	return nil
}

func (w *headerWalk) pop() {
	if w.stack[len(w.stack)-1].sequence {
		w.depth--
	}
	w.stack = w.stack[:len(w.stack)-1]
}

// declared reads a small top-level image pixel module value and raises
// the inflation budget to what the declared pixels need.
func (w *headerWalk) declared(elem uint16, n int) error {
	b, err := w.src.peek(n)
	if err != nil {
		return errLength
	}
	us := func() int64 {
		if n < 2 {
			return 0
		}
		return int64(w.bo.Uint16(b))
	}
	switch elem {
	case 0x0002:
		w.samples = us()
	case 0x0008: // NumberOfFrames, IS
		if v, err := strconv.ParseInt(strings.Trim(string(b), " \x00"), 10, 32); err == nil && v > 0 {
			w.frames = v
		}
	case 0x0010:
		w.rows = us()
	case 0x0011:
		w.cols = us()
	case 0x0100:
		w.bits = us()
	}
	// In floating point: the product of five declared numbers can
	// overflow an int64; the budget is capped far below that anyway.
	need := float64(w.rows) * float64(w.cols) * float64(max(w.samples, 1)) * float64((w.bits+7)/8) * float64(max(w.frames, 1))
	w.src.declare(int64(min(need, maxInflated)))
	return w.src.skip(int64(n))
}

// isSequenceTag reports whether the dictionary gives the tag VR SQ.
func isSequenceTag(group, elem uint16) bool {
	info, err := tag.Find(tag.Tag{Group: group, Element: elem})
	return err == nil && len(info.VRs) > 0 && info.VRs[0] == "SQ"
}
