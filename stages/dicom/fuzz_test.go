package dicom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// allocated returns the bytes allocated while running f.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// parseBytes runs the scan and header parse on a whole file's bytes.
func parseBytes(data []byte) (*Instance, *pixels, error) {
	l, err := scanFile(data, int64(len(data)))
	if err != nil {
		return nil, nil, err
	}
	in, err := parseInstance(l)
	if err != nil {
		return nil, nil, err
	}
	return in, &pixels{native: l.native, fragments: l.fragments, ow: l.pixelOW}, nil
}

// decodeAll runs the whole header-and-pixel path on one file's bytes.
func decodeAll(data []byte) error {
	in, px, err := parseBytes(data)
	if err != nil {
		return err
	}
	if in.mosaic != nil { // its tiles come from one stored frame
		in = in.mosaic.whole
	}
	dec, err := newFrameDecoder(in, px, newLUTCache())
	if err != nil {
		return err
	}
	plane := in.Rows * in.Columns
	if plane > 1<<22 {
		// A compressed frame whose code stream declares what the header
		// does may legitimately be large whatever its byte count; the
		// fuzzer would only measure the allocation of its size.
		return errors.New("test harness: frame larger than 4 Mi samples not decoded")
	}
	// The targets Series.Volume picks: uint8 labels for 1-bit data,
	// float32 (and int16, for 32-bit CT) for 32-bit samples, else int16.
	targets := []target{{i16: make([]int16, plane)}}
	switch in.BitsAllocated {
	case 1:
		targets = []target{{u8: make([]uint8, plane)}}
	case 32:
		targets = append(targets, target{f32: make([]float32, plane)})
	}
	var scratch []uint16
	for f := range in.Frames {
		for _, dst := range targets {
			if _, err := dec.decode(f, dst, true, &scratch); err != nil {
				return err
			}
		}
	}
	return nil
}

// FuzzParse feeds arbitrary files to the header-and-pixel path: no panic,
// no hang, and no allocation driven by a length field beyond what the
// file's size allows (a header claiming 4 GB of pixels must not allocate
// 4 GB). Seeds: testdata/fuzz/FuzzParse (small fixtures in every transfer
// syntax, written by TestWriteFuzzSeeds with -update-seeds).
func FuzzParse(f *testing.F) {
	f.Add([]byte("DICM"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var err error
		n := allocated(func() {
			err = decodeAll(data)
			// The header read looks at a prefix first.
			if l, perr := scanFile(data[:len(data)/2], int64(len(data))); perr == nil {
				parseInstance(l)
			}
		})
		// Allowed: a few copies of the file, its decoded pixels (at most
		// maxExpansion times the file) and fixed tables (Huffman look-ups).
		// A JPEG or JPEG-LS frame is bounded by its declared image (≤ 4 Mi
		// samples here): the frame, its scratch and the line buffers.
		limit := uint64(len(data))*(2*maxExpansion+16) + 4<<20 + 3*2*(1<<22)*boolInt(jpegSyntax(data))
		if n > limit {
			t.Fatalf("allocated %d bytes for a %d-byte file (err %v)", n, len(data), err)
		}
	})
}

// TestHugeLengthFields: length fields claiming gigabytes are refused
// without allocating them.
func TestHugeLengthFields(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeOrFatal(t, src, phantom([3]int{8, 8, 1}, axial([3]float64{1, 1, 1}, [3]float64{}), 41), WriteOptions{})
	good, err := os.ReadFile(filepath.Join(src, "slice-0000.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(good, []byte{0xe0, 0x7f, 0x10, 0x00, 'O', 'W'})
	j := bytes.Index(good, []byte{0x28, 0x00, 0x10, 0x00, 'U', 'S'}) // Rows
	if i < 0 || j < 0 {
		t.Fatal("fixture layout")
	}
	pixels4G := append([]byte{}, good...)
	binary.LittleEndian.PutUint32(pixels4G[i+8:], 0xfffffff0)
	rows64k := append([]byte{}, good...)
	binary.LittleEndian.PutUint16(rows64k[j+8:], 0xffff)
	for name, data := range map[string][]byte{"pixel data 4 GB": pixels4G, "rows 65535": rows64k} {
		var err error
		n := allocated(func() {
			err = decodeAll(data)
			// The header read looks at a prefix first.
			if l, perr := scanFile(data[:len(data)/2], int64(len(data))); perr == nil {
				parseInstance(l)
			}
		})
		if err == nil {
			t.Errorf("%s: decoded", name)
		}
		if n > 64<<20 {
			t.Errorf("%s: allocated %d MiB", name, n>>20)
		}
		t.Logf("%s: %v (%d KiB allocated)", name, err, n>>10)
	}
}

// packBits encodes with literal and repeat runs (the encoder side of
// unpackBits, for the round trip).
func packBits(src []byte) []byte {
	var out []byte
	for i := 0; i < len(src); {
		j := i + 1
		for j < len(src) && j-i < 128 && src[j] == src[i] {
			j++
		}
		if j-i >= 3 {
			out = append(out, byte(int8(1-(j-i))), src[i])
			i = j
			continue
		}
		j = i
		for j < len(src) && j-i < 128 && !(j+2 < len(src) && src[j] == src[j+1] && src[j] == src[j+2]) {
			j++
		}
		if j == i {
			j = i + 1
		}
		out = append(out, byte(j-i-1))
		out = append(out, src[i:j]...)
		i = j
	}
	if len(out)%2 == 1 {
		out = append(out, 0x80) // no-op padding to an even length
	}
	return out
}

// rleFrame builds a DICOM RLE frame of 16-bit samples.
func rleFrame(samples []uint16) []byte {
	hi, lo := make([]byte, len(samples)), make([]byte, len(samples))
	for i, s := range samples {
		hi[i], lo[i] = byte(s>>8), byte(s)
	}
	a, b := packBits(hi), packBits(lo)
	h := make([]byte, 64)
	binary.LittleEndian.PutUint32(h, 2)
	binary.LittleEndian.PutUint32(h[4:], 64)
	binary.LittleEndian.PutUint32(h[8:], uint32(64+len(a)))
	return append(append(h, a...), b...)
}

// FuzzRLE: decodeRLE never panics on arbitrary input, and any 16-bit
// image survives encode then decode unchanged.
func FuzzRLE(f *testing.F) {
	f.Add([]byte{1, 2, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 9}, uint8(7))
	f.Add(bytes.Repeat([]byte{0xff}, 600), uint8(30))
	f.Fuzz(func(t *testing.T, raw []byte, cols uint8) {
		c := int(cols%64) + 1
		n := len(raw) / 2 / c * c
		if n == 0 {
			return
		}
		// Arbitrary bytes as a frame: must not panic.
		dst := make([]uint16, n)
		_ = decodeRLE(raw, n/c, c, 16, dst)
		if n32 := len(raw) / 4 / c * c; n32 > 0 {
			_ = decodeRLE32(raw, n32/c, c, make([]byte, 4*n32))
		}
		// Round trip.
		samples := make([]uint16, n)
		for i := range samples {
			samples[i] = binary.LittleEndian.Uint16(raw[2*i:])
		}
		got := make([]uint16, n)
		if err := decodeRLE(rleFrame(samples), n/c, c, 16, got); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		for i := range got {
			if got[i] != samples[i] {
				t.Fatalf("sample %d: %d, want %d", i, got[i], samples[i])
			}
		}
	})
}

// FuzzJPEGLossless: arbitrary code streams never panic, hang or allocate
// beyond the image.
func FuzzJPEGLossless(f *testing.F) {
	f.Add([]byte{0xff, 0xd8, 0xff, 0xc3, 0, 11, 16, 0, 2, 0, 2, 1, 1, 0x11, 0, 0xff, 0xd9}, uint8(2), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, rows, cols uint8) {
		r, c := int(rows)%32+1, int(cols)%32+1
		dst := make([]uint16, r*c)
		_ = decodeJPEGLossless(b, r, c, dst)
	})
}

// FuzzJPEGLS: arbitrary JPEG-LS code streams never panic, hang or
// allocate more than the declared image (two line buffers beside the
// frame). Seeds: a minimal stream, with and without LSE and NEAR.
func FuzzJPEGLS(f *testing.F) {
	hdr := func(near byte, lse bool) []byte {
		b := []byte{0xff, 0xd8, 0xff, 0xf7, 0, 11, 12, 0, 3, 0, 5, 1, 1, 0x11, 0}
		if lse {
			b = append(b, 0xff, 0xf8, 0, 13, 1, 0x0f, 0xff, 0, 4, 0, 9, 0, 30, 0, 32)
		}
		b = append(b, 0xff, 0xda, 0, 8, 1, 1, 0, near, 0, 0)
		return b
	}
	for _, near := range []byte{0, 2} {
		for _, lse := range []bool{false, true} {
			f.Add(append(hdr(near, lse), 0x80, 0x12, 0xff, 0x7f, 0x00, 0x55, 0xaa, 0xff, 0xd9), uint8(3), uint8(5))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, rows, cols uint8) {
		r, c := int(rows)%32+1, int(cols)%32+1
		dst := make([]uint16, r*c)
		var err error
		n := allocated(func() { err = decodeJPEGLS(b, r, c, dst) })
		if limit := uint64(4*(c+2)*8 + 16<<10); n > limit {
			t.Fatalf("allocated %d bytes for a %d×%d frame (err %v)", n, c, r, err)
		}
	})
}

// FuzzJPEGBaseline: image/jpeg behind decodeJPEGBaseline never panics.
func FuzzJPEGBaseline(f *testing.F) {
	f.Add([]byte{0xff, 0xd8, 0xff, 0xd9}, uint8(2), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, rows, cols uint8) {
		r, c := int(rows)%32+1, int(cols)%32+1
		_ = decodeJPEGBaseline(b, r, c, make([]uint16, r*c))
	})
}

func boolInt(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// jpegSyntax reports whether a file's transfer syntax is one of the JPEG
// family, whose frames are not bounded by their byte count.
func jpegSyntax(data []byte) bool {
	l, err := scanFile(data, int64(len(data)))
	if err != nil {
		return false
	}
	switch l.ts {
	case tsJPEGLossless14, tsJPEGLosslessSV, tsJPEGLS, tsJPEGLSNear, tsJPEGBaseline, tsJPEGExtended, tsJPEG2000Lossless, tsJPEG2000:
		return true
	}
	return false
}

// FuzzJPEGExtended: arbitrary sequential DCT code streams never panic,
// hang or allocate beyond fixed tables.
func FuzzJPEGExtended(f *testing.F) {
	f.Add([]byte{0xff, 0xd8, 0xff, 0xc1, 0, 11, 12, 0, 2, 0, 2, 1, 1, 0x11, 0, 0xff, 0xd9}, uint8(2), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, rows, cols uint8) {
		r, c := int(rows)%32+1, int(cols)%32+1
		dst := make([]uint16, r*c)
		var err error
		n := allocated(func() { err = decodeJPEGDCT(b, r, c, dst) })
		if n > 8*(1<<17)+64<<10 { // eight Huffman look-up tables
			t.Fatalf("allocated %d bytes (err %v)", n, err)
		}
	})
}
