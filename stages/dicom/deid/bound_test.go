package deid

import (
	"encoding/binary"
	"errors"
	"testing"
)

// elemLE encodes an explicit VR little endian element header and value.
func elemLE(group, elem uint16, vr string, length uint32, value []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, group)
	b = binary.LittleEndian.AppendUint16(b, elem)
	switch {
	case group == 0xFFFE:
		b = binary.LittleEndian.AppendUint32(b, length)
	case vr == "OB" || vr == "OW" || vr == "SQ" || vr == "UN" || vr == "UT":
		b = append(b, vr[0], vr[1], 0, 0)
		b = binary.LittleEndian.AppendUint32(b, length)
	default:
		b = append(b, vr[0], vr[1])
		b = binary.LittleEndian.AppendUint16(b, uint16(length))
	}
	return append(b, value...)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestCheckBounds(t *testing.T) {
	t.Parallel()
	const u = 0xFFFFFFFF
	preamble := append(make([]byte, 128), "DICM"...)
	meta := cat(
		elemLE(0x0002, 0x0000, "UL", 4, []byte{28, 0, 0, 0}),
		elemLE(0x0002, 0x0010, "UI", 20, []byte("1.2.840.10008.1.2.1\x00")),
	)
	head := cat(preamble, meta)
	name := elemLE(0x0010, 0x0010, "PN", 4, []byte("A^B "))
	item := func(body ...[]byte) []byte {
		return cat(elemLE(0xFFFE, 0xE000, "", u, nil), cat(body...), elemLE(0xFFFE, 0xE00D, "", 0, nil))
	}
	sq := func(items ...[]byte) []byte {
		return cat(elemLE(0x0008, 0x1140, "SQ", u, nil), cat(items...), elemLE(0xFFFE, 0xE0DD, "", 0, nil))
	}
	fragment := func(b []byte) []byte { return elemLE(0xFFFE, 0xE000, "", uint32(len(b)), b) }
	pixels := func(frags ...[]byte) []byte {
		return cat(elemLE(0x7FE0, 0x0010, "OB", u, nil), fragment(nil), cat(frags...), elemLE(0xFFFE, 0xE0DD, "", 0, nil))
	}
	// A fragment whose bytes look like a header claiming 4 GB: fragments
	// are skipped whole, never read as elements.
	tricky := elemLE(0x0009, 0x1001, "OB", 0xFFFFFF00, []byte{1, 2})
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"flat", cat(head, name), nil},
		{"no preamble, implicit", []byte{0x10, 0, 0x10, 0, 4, 0, 0, 0, 'A', '^', 'B', ' '}, nil},
		{"nested sequence", cat(head, sq(item(name, sq(item(name)))), name), nil},
		{"encapsulated pixels", cat(head, name, pixels(fragment(tricky), fragment([]byte{9, 9}))), nil},
		{"4 GB value", cat(head, elemLE(0x0009, 0x1001, "OB", 0xFFFFFFF0, []byte{1, 2, 3, 4})), errLength},
		{"4 GB value inside an item", cat(head, sq(item(elemLE(0x0009, 0x1001, "OB", 0xFFFFFF00, []byte{1})))), errLength},
		{"4 GB fragment", cat(head, elemLE(0x7FE0, 0x0010, "OB", u, nil), elemLE(0xFFFE, 0xE000, "", 0xFFFFFF00, []byte{1})), errLength},
		{"value cut short", cat(head, name[:len(name)-2]), errLength},
		{"header cut short", cat(head, name[:5]), errTruncated},
		{"sequence never closed", cat(head, elemLE(0x0008, 0x1140, "SQ", u, nil), elemLE(0xFFFE, 0xE000, "", u, nil), name), errTruncated},
		{"meta claims too much", cat(preamble, elemLE(0x0002, 0x0010, "UI", 200, []byte("1.2"))), errLength},
	} {
		if got := checkBounds(tc.b); !errors.Is(got, tc.want) {
			t.Errorf("%s: checkBounds = %v, want %v", tc.name, got, tc.want)
		}
	}
}
