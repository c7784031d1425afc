package deid

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Problems checkBounds finds.
var (
	errLength    = errors.New("a length field claims more bytes than the file holds")
	errTruncated = errors.New("truncated: the file ends inside an element or sequence")
)

// checkBounds walks the element headers of a whole DICOM file in b and
// fails when any defined length is larger than what is left of the file.
//
// Why by hand: suyashkumar/dicom allocates a value's length before reading
// it, so a 200-byte file claiming a 4 GB value would allocate 4 GB. This
// walk reads headers only (tags, VRs, lengths) and bounds every one of
// them, so that the parser, run afterwards, never allocates beyond the
// file. It does not judge anything else; the parser does.
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
			hdr, n, err := encoding{b: b, bo: binary.LittleEndian}.header(pos)
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
		case "1.2.840.10008.1.2.1.99":
			inflated, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(b[pos:])), maxFileBytes+1))
			if err != nil {
				return fmt.Errorf("deflated data set: %w", err)
			}
			if len(inflated) > maxFileBytes {
				return fmt.Errorf("deflated data set inflates beyond %d bytes", maxFileBytes)
			}
			return encoding{b: inflated, bo: binary.LittleEndian}.walk(0)
		default:
			implicit = false // every other transfer syntax is explicit VR little endian
		}
	}
	return encoding{b: b, bo: bo, implicit: implicit}.walk(pos)
}

const undefined = -1

// encoding is a data set's bytes and transfer syntax.
type encoding struct {
	b        []byte
	bo       binary.ByteOrder
	implicit bool
}

// header decodes the element header at pos: its size and the value length
// (undefined for 0xFFFFFFFF).
func (c encoding) header(pos int) (int, int, error) {
	b, bo, implicit := c.b, c.bo, c.implicit
	if pos+8 > len(b) {
		return 0, 0, errLength
	}
	group := bo.Uint16(b[pos:])
	var n uint32
	hdr := 8
	switch {
	case group == 0xFFFE || implicit:
		n = bo.Uint32(b[pos+4:])
	default:
		switch string(b[pos+4 : pos+6]) {
		case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
			if pos+12 > len(b) {
				return 0, 0, errLength
			}
			n, hdr = bo.Uint32(b[pos+8:]), 12
		default:
			n = uint32(bo.Uint16(b[pos+6:]))
		}
	}
	if n == 0xFFFFFFFF {
		return hdr, undefined, nil
	}
	return hdr, int(n), nil
}

// walk checks every header from pos to the end of b. Sequences and
// their items are walked into, whatever their length; the items of
// encapsulated pixel data (fragments) are skipped over whole.
func (c encoding) walk(pos int) error {
	b, bo, implicit := c.b, c.bo, c.implicit
	level := 0     // undefined-length values open
	fragments := 0 // level of the open encapsulated pixel data, 0 when none
	for pos < len(b) {
		if pos+8 > len(b) {
			return errTruncated
		}
		group, elem := bo.Uint16(b[pos:]), bo.Uint16(b[pos+2:])
		hdr, n, err := c.header(pos)
		if err != nil {
			return errTruncated
		}
		vr := ""
		if !implicit && group != 0xFFFE {
			vr = string(b[pos+4 : pos+6])
		}
		pos += hdr
		switch {
		case group == 0xFFFE && (elem == 0xE00D || elem == 0xE0DD): // delimiters
			if level > 0 {
				if level == fragments {
					fragments = 0
				}
				level--
			}
			continue
		case n == undefined:
			level++
			if group == 0x7FE0 && elem == 0x0010 {
				fragments = level
			}
			continue
		case n > len(b)-pos:
			return errLength
		case group == 0xFFFE && elem == 0xE000 && (fragments == 0 || level != fragments):
			continue // an item of a sequence: walk its elements
		case vr == "SQ" || (vr == "" && group != 0xFFFE && isSequenceTag(group, elem)):
			continue // a defined-length sequence: walk its items
		}
		pos += n
	}
	if level > 0 {
		return errTruncated
	}
	return nil
}

// isSequenceTag reports whether the dictionary gives the tag VR SQ.
func isSequenceTag(group, elem uint16) bool {
	info, err := tag.Find(tag.Tag{Group: group, Element: elem})
	return err == nil && len(info.VRs) > 0 && info.VRs[0] == "SQ"
}
