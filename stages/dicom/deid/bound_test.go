package deid

import (
	"errors"
	"testing"

	"github.com/medcad/medcad/internal/dicomtest"
)

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
		dicomtest.Element(0x0002, 0x0000, "UL", 4, []byte{28, 0, 0, 0}),
		dicomtest.Element(0x0002, 0x0010, "UI", 20, []byte("1.2.840.10008.1.2.1\x00")),
	)
	head := cat(preamble, meta)
	name := dicomtest.Element(0x0010, 0x0010, "PN", 4, []byte("A^B "))
	item := func(body ...[]byte) []byte {
		return cat(dicomtest.Element(0xFFFE, 0xE000, "", u, nil), cat(body...), dicomtest.Element(0xFFFE, 0xE00D, "", 0, nil))
	}
	sq := func(items ...[]byte) []byte {
		return cat(dicomtest.Element(0x0008, 0x1140, "SQ", u, nil), cat(items...), dicomtest.Element(0xFFFE, 0xE0DD, "", 0, nil))
	}
	fragment := func(b []byte) []byte { return dicomtest.Element(0xFFFE, 0xE000, "", uint32(len(b)), b) }
	pixels := func(frags ...[]byte) []byte {
		return cat(dicomtest.Element(0x7FE0, 0x0010, "OB", u, nil), fragment(nil), cat(frags...), dicomtest.Element(0xFFFE, 0xE0DD, "", 0, nil))
	}
	// A fragment whose bytes look like a header claiming 4 GB: fragments
	// are skipped whole, never read as elements.
	tricky := dicomtest.Element(0x0009, 0x1001, "OB", 0xFFFFFF00, []byte{1, 2})
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"flat", cat(head, name), nil},
		{"no preamble, implicit", []byte{0x10, 0, 0x10, 0, 4, 0, 0, 0, 'A', '^', 'B', ' '}, nil},
		{"nested sequence", cat(head, sq(item(name, sq(item(name)))), name), nil},
		{"encapsulated pixels", cat(head, name, pixels(fragment(tricky), fragment([]byte{9, 9}))), nil},
		{"4 GB value", cat(head, dicomtest.Element(0x0009, 0x1001, "OB", 0xFFFFFFF0, []byte{1, 2, 3, 4})), errLength},
		{"4 GB value inside an item", cat(head, sq(item(dicomtest.Element(0x0009, 0x1001, "OB", 0xFFFFFF00, []byte{1})))), errLength},
		{"4 GB fragment", cat(head, dicomtest.Element(0x7FE0, 0x0010, "OB", u, nil), dicomtest.Element(0xFFFE, 0xE000, "", 0xFFFFFF00, []byte{1})), errLength},
		{"value cut short", cat(head, name[:len(name)-2]), errLength},
		{"header cut short", cat(head, name[:5]), errTruncated},
		{"sequence never closed", cat(head, dicomtest.Element(0x0008, 0x1140, "SQ", u, nil), dicomtest.Element(0xFFFE, 0xE000, "", u, nil), name), errTruncated},
		{"meta claims too much", cat(preamble, dicomtest.Element(0x0002, 0x0010, "UI", 200, []byte("1.2"))), errLength},
	} {
		if got := checkBounds(tc.b); !errors.Is(got, tc.want) {
			t.Errorf("%s: checkBounds = %v, want %v", tc.name, got, tc.want)
		}
	}
}
