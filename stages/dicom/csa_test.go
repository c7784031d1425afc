package dicom

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
)

// csaTag is one tag of a hand-built CSA header: its values, then empty
// items up to nItems (as Siemens writes 6 items for a vm of 1).
type csaTag struct {
	name   string
	vm     int
	values []string
	nItems int
}

// csaBytes encodes a CSA2 header ("SV10"), or a CSA1 one (no magic, item
// lengths offset by the first tag's item count, values padded by 1–4
// bytes).
func csaBytes(csa1 bool, tags ...csaTag) []byte {
	le := binary.LittleEndian
	var b []byte
	if !csa1 {
		b = append(b, "SV10\x04\x03\x02\x01"...)
	}
	b = le.AppendUint32(b, uint32(len(tags)))
	b = le.AppendUint32(b, 77)
	firstItems := 0
	for i, t := range tags {
		n := max(t.nItems, len(t.values))
		if i == 0 {
			firstItems = n
		}
		name := make([]byte, 64)
		copy(name, t.name)
		b = append(b, name...)
		b = le.AppendUint32(b, uint32(t.vm))
		b = append(b, "DS\x00\x00"...)
		b = le.AppendUint32(b, 3)
		b = le.AppendUint32(b, uint32(n))
		b = le.AppendUint32(b, 77)
		for j := range n {
			var v []byte
			if j < len(t.values) {
				v = append([]byte(t.values[j]), 0)
			}
			x0 := len(v)
			if csa1 {
				x0 += firstItems
			}
			for _, x := range []int{x0, len(v), 77, len(v)} {
				b = le.AppendUint32(b, uint32(x))
			}
			pad := (4 - len(v)%4) % 4
			if csa1 {
				pad = 4 - len(v)%4
			}
			b = append(b, v...)
			b = append(b, make([]byte, pad)...)
		}
	}
	return b
}

// TestCSA reads hand-built CSA2 and CSA1 headers: numbers with their
// padding, values past vm ignored, empty items skipped.
func TestCSA(t *testing.T) {
	t.Parallel()
	tags := []csaTag{
		{name: "EchoLinePosition", vm: 1, values: []string{"64"}, nItems: 6},
		{name: "NumberOfImagesInMosaic", vm: 1, values: []string{"30      "}, nItems: 6},
		{name: "SliceNormalVector", vm: 3, values: []string{"0.1", "-0.2", "0.97467943"}, nItems: 6},
		{name: "Empty", vm: 1, nItems: 6},
		{name: "Extra", vm: 1, values: []string{"1", "2"}},
	}
	for _, csa1 := range []bool{false, true} {
		h, err := parseCSA(csaBytes(csa1, tags...))
		if err != nil {
			t.Fatalf("CSA1 %v: %v", csa1, err)
		}
		if v, ok := h.floats("NumberOfImagesInMosaic", 1); !ok || v[0] != 30 {
			t.Errorf("CSA1 %v: NumberOfImagesInMosaic %v %v, want 30", csa1, v, ok)
		}
		if v, ok := h.floats("SliceNormalVector", 3); !ok || !slices.Equal(v, []float64{0.1, -0.2, 0.97467943}) {
			t.Errorf("CSA1 %v: SliceNormalVector %v %v", csa1, v, ok)
		}
		if v, ok := h.floats("Empty", 1); ok {
			t.Errorf("CSA1 %v: Empty reads %v", csa1, v)
		}
		if v, ok := h.floats("Extra", 1); !ok || v[0] != 1 {
			t.Errorf("CSA1 %v: Extra reads %v %v, want its first value only (vm 1)", csa1, v, ok)
		}
		if _, ok := h.floats("Missing", 1); ok {
			t.Errorf("CSA1 %v: a missing tag reads", csa1)
		}
	}
}

// TestCSANibabel reads the CSA headers nibabel ships as test data
// (Siemens DWI mosaics, b = 0 and 1000): the values nibabel's reader
// gives.
func TestCSANibabel(t *testing.T) {
	t.Parallel()
	dir := "/usr/lib/python3/dist-packages/nibabel/nicom/tests/data"
	for _, f := range []string{"csa2_b0.bin", "csa2_b1000.bin"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			testenv.Missing(t, dir+" (Debian package python3-nibabel)")
		}
		h, err := parseCSA(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if v, ok := h.floats("NumberOfImagesInMosaic", 1); !ok || v[0] != 48 {
			t.Errorf("%s: NumberOfImagesInMosaic %v %v, want 48", f, v, ok)
		}
		if v, ok := h.floats("SliceNormalVector", 3); !ok || !slices.Equal(v, []float64{0, 0.00523632, 0.99998629}) {
			t.Errorf("%s: SliceNormalVector %v %v", f, v, ok)
		}
	}
	// 1001 items in one tag, which nibabel refuses: within the bytes, so
	// read.
	if b, err := os.ReadFile(filepath.Join(dir, "csa_str_1001n_items.bin")); err == nil {
		if _, err := parseCSA(b); err != nil {
			t.Errorf("csa_str_1001n_items.bin: %v", err)
		}
	}
}

// TestCSABroken: truncated headers and hostile counts are errors.
func TestCSABroken(t *testing.T) {
	t.Parallel()
	good := csaBytes(false, csaTag{name: "NumberOfImagesInMosaic", vm: 1, values: []string{"30"}, nItems: 6})
	hostileTags := slices.Clone(good)
	binary.LittleEndian.PutUint32(hostileTags[8:], 1<<31)
	hostileItems := slices.Clone(good)
	binary.LittleEndian.PutUint32(hostileItems[16+76:], 1<<30)
	hostileLength := slices.Clone(good)
	binary.LittleEndian.PutUint32(hostileLength[16+84+4:], 1<<30)
	for name, b := range map[string][]byte{
		"empty":          nil,
		"magic only":     []byte("SV10\x04\x03\x02\x01"),
		"no tags":        csaBytes(false),
		"truncated":      good[:len(good)-20],
		"tag truncated":  good[:16+40],
		"hostile tags":   hostileTags,
		"hostile items":  hostileItems,
		"hostile length": hostileLength,
	} {
		if _, err := parseCSA(b); !errors.Is(err, errCSA) {
			t.Errorf("%s: %v, want a CSA error", name, err)
		}
	}
}

// FuzzCSA: any bytes parse or fail without a panic, and the parse and
// look-ups allocate no more than the header's size.
func FuzzCSA(f *testing.F) {
	f.Add(csaBytes(false, csaTag{name: "NumberOfImagesInMosaic", vm: 1, values: []string{"30"}, nItems: 6},
		csaTag{name: "SliceNormalVector", vm: 3, values: []string{"0", "0", "1"}, nItems: 6}))
	f.Add(csaBytes(true, csaTag{name: "A", vm: 1, values: []string{"1"}, nItems: 2},
		csaTag{name: "NumberOfImagesInMosaic", vm: 1, values: []string{"4"}, nItems: 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := allocated(func() {
			if h, err := parseCSA(b); err == nil {
				h.floats("NumberOfImagesInMosaic", 1)
				h.floats("SliceNormalVector", 3)
			}
		})
		// The slack covers the fuzzing engine's own allocations, which the
		// process-wide counter also sees; a hostile count would claim far
		// more.
		if n > uint64(len(b))+64<<10 {
			t.Fatalf("%d bytes allocated for a %d-byte header", n, len(b))
		}
	})
}
