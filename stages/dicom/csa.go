package dicom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// The Siemens CSA header is a private element, (0029,xx10) "CSA Image
// Header Info" under the creator "SIEMENS CSA HEADER", holding a list of
// named tags, each with a value multiplicity, a VR and items of text, all
// little-endian:
//
//	CSA2: "SV10" \4\3\2\1, n_tags uint32, unused uint32
//	CSA1: n_tags uint32, unused uint32
//	each tag: name [64]byte (NUL-terminated), vm int32, vr [4]byte,
//	          syngodt int32, n_items int32, xx int32
//	each item: 4 × int32, then the value padded to 4 bytes
//
// In CSA2 the item's length is its second int32 and the value is padded
// with 0–3 bytes. In CSA1 (read as SPM's spm_dicom_header does) the
// length is the first int32 minus the first tag's n_items, the padding
// 1–4 bytes, and an item whose length falls outside the header ends its
// tag. Items past vm, and empty ones, hold no value.

// errCSA wraps every CSA parse failure; the messages name sizes and
// counts, never values.
var errCSA = errors.New("Siemens CSA header")

const (
	csaTagSize  = 64 + 4 + 4 + 4 + 4 + 4
	csaItemHead = 16
)

// walkCSA checks the whole header b and calls visit, when not nil, with
// each value item and the name of its tag. It allocates nothing: the
// slices passed point into b.
func walkCSA(b []byte, visit func(name, value []byte)) error {
	csa1 := !bytes.HasPrefix(b, []byte("SV10"))
	p := 0
	if !csa1 {
		p = 8
	}
	if len(b) < p+8 {
		return fmt.Errorf("%w: %d bytes, shorter than its preamble", errCSA, len(b))
	}
	nTags := binary.LittleEndian.Uint32(b[p:])
	p += 8
	if nTags == 0 || uint64(nTags)*csaTagSize > uint64(len(b)-p) {
		return fmt.Errorf("%w: %d tags cannot fit in %d bytes", errCSA, nTags, len(b))
	}
	firstItems := 0
	for t := range int(nTags) {
		if len(b)-p < csaTagSize {
			return fmt.Errorf("%w: tag %d of %d is truncated", errCSA, t+1, nTags)
		}
		name := b[p : p+64]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		vm := int32(binary.LittleEndian.Uint32(b[p+64:]))
		nItems := int32(binary.LittleEndian.Uint32(b[p+76:]))
		p += csaTagSize
		if nItems < 0 || int64(nItems)*csaItemHead > int64(len(b)-p) {
			return fmt.Errorf("%w: tag %d claims %d items, more than its %d bytes can hold", errCSA, t+1, nItems, len(b)-p)
		}
		if t == 0 {
			firstItems = int(nItems)
		}
		for i := range int(nItems) {
			if len(b)-p < csaItemHead {
				return fmt.Errorf("%w: item %d of tag %d is truncated", errCSA, i+1, t+1)
			}
			n := int64(int32(binary.LittleEndian.Uint32(b[p+4:])))
			if csa1 {
				n = int64(int32(binary.LittleEndian.Uint32(b[p:]))) - int64(firstItems)
			}
			p += csaItemHead
			if n < 0 || n > int64(len(b)-p) {
				if csa1 {
					break
				}
				return fmt.Errorf("%w: item %d of tag %d claims %d bytes, %d are left", errCSA, i+1, t+1, n, len(b)-p)
			}
			value := b[p : p+int(n)]
			pad := (4 - int(n)%4) % 4
			if csa1 {
				pad = 4 - int(n)%4 // 1 to 4 bytes, as SPM reads CSA1
			}
			p = min(p+int(n)+pad, len(b))
			if visit != nil && n > 0 && (vm <= 0 || int32(i) < vm) {
				visit(name, value)
			}
		}
	}
	return nil
}

// csaHeader is a checked CSA header.
type csaHeader []byte

// parseCSA checks that b is a well-formed CSA header.
func parseCSA(b []byte) (csaHeader, error) {
	if err := walkCSA(b, nil); err != nil {
		return nil, err
	}
	return csaHeader(b), nil
}

// text returns the values of tag name, NUL-terminated text trimmed of
// spaces, pointing into the header.
func (h csaHeader) text(name string, visit func(v []byte)) {
	_ = walkCSA(h, func(n, v []byte) {
		if string(n) == name {
			if i := bytes.IndexByte(v, 0); i >= 0 {
				v = v[:i]
			}
			visit(bytes.TrimSpace(v))
		}
	})
}

// floats returns exactly want numeric values of tag name, or false when
// the tag is absent or holds anything else.
func (h csaHeader) floats(name string, want int) ([]float64, bool) {
	var out []float64
	ok := true
	h.text(name, func(v []byte) {
		if !ok {
			return
		}
		x, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) || len(out) == want {
			ok = false
			return
		}
		out = append(out, x)
	})
	return out, ok && len(out) == want
}
