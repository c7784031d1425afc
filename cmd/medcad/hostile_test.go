package main

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/internal/dicomtest"
	"github.com/medcad/medcad/stages/phantom"
)

// Generators of the hostile-input corpus: files a careless export or an
// attacker could deliver. They are built by the tests (a few MB each)
// rather than committed, because they unfold to gigabytes.

// phantomBatch writes n phantom CT cases (DICOM and label.nii.gz in
// DIR/<case>/) and returns the folder and each case's folder name.
func phantomBatch(t *testing.T, n int, seed uint64) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "delivery")
	opts := phantom.Options{Seed: seed, Size: phantom.Small, LabelRules: phantom.RulesV2}
	if _, err := phantom.WriteDataset(context.Background(), phantom.DatasetOptions{Options: opts, Dir: dir, Cases: n, Format: phantom.FormatDICOM}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return dir, names
}

// deepSequences is a DICOM file of levels nested sequences (undefined
// lengths, as a stack-overflow attack writes them): 20 bytes a level.
func deepSequences(levels int) []byte {
	const u = 0xFFFFFFFF
	var b bytes.Buffer
	b.Write(dicomtest.Part10("1.2.840.10008.1.2.1"))
	b.Write(dicomtest.Element(0x0008, 0x0016, "UI", 26, []byte("1.2.840.10008.5.1.4.1.1.2\x00")))
	open := append(dicomtest.Element(0x0008, 0x1140, "SQ", u, nil), dicomtest.Element(0xFFFE, 0xE000, "", u, nil)...)
	closing := append(dicomtest.Element(0xFFFE, 0xE00D, "", 0, nil), dicomtest.Element(0xFFFE, 0xE0DD, "", 0, nil)...)
	for range levels {
		b.Write(open)
	}
	for range levels {
		b.Write(closing)
	}
	return b.Bytes()
}

// zeroBomb returns a raw deflate stream of prefix followed by n zero
// bytes (n ≥ 1 MiB), built without compressing n bytes: one block that
// decodes to 1 MiB of zeros, written after zeros, refers only to zeros,
// so repeating it is a valid stream.
func zeroBomb(prefix []byte, n int64) []byte {
	const chunk = 1 << 20
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	w.Write(prefix)
	lead := n % chunk
	if lead == 0 {
		lead = chunk
	}
	w.Write(make([]byte, lead))
	w.Flush()
	head := bytes.Clone(out.Bytes())
	out.Reset()
	w.Write(make([]byte, chunk))
	w.Flush()
	block := bytes.Clone(out.Bytes())
	out.Reset()
	w.Close()
	tail := out.Bytes()
	var b bytes.Buffer
	b.Write(head)
	for range (n - lead) / chunk {
		b.Write(block)
	}
	b.Write(tail)
	return b.Bytes()
}

// deflateBomb is a deflated-syntax DICOM file whose data set inflates to
// more than n bytes: a small image header and an n-byte OB value of zeros.
func deflateBomb(n int64) []byte {
	head := dicomtest.Element(0x0008, 0x0016, "UI", 26, []byte("1.2.840.10008.5.1.4.1.1.2\x00"))
	head = append(head, dicomtest.Element(0x0008, 0x0018, "UI", 18, []byte("1.2.3.4.5.6.7.8.9\x00"))...)
	head = append(head, dicomtest.Element(0x0009, 0x1001, "OB", uint32(n), nil)...)
	return append(dicomtest.Part10("1.2.840.10008.1.2.1.99"), zeroBomb(head, n)...)
}

// niftiHeader is a 352-byte NIfTI-1 header (identity affine, 1 mm
// voxels) of a dim volume of datatype code and bits per voxel.
func niftiHeader(dim [3]int, code, bitpix int16) []byte {
	h := make([]byte, 352)
	le := binary.LittleEndian
	le.PutUint32(h, 348)
	le.PutUint16(h[40:], 3)
	for i, d := range dim {
		le.PutUint16(h[42+2*i:], uint16(d))
	}
	for i := 3; i < 7; i++ {
		le.PutUint16(h[42+2*i:], 1)
	}
	le.PutUint16(h[70:], uint16(code))
	le.PutUint16(h[72:], uint16(bitpix))
	for i := range 4 {
		le.PutUint32(h[76+4*i:], 0x3f800000) // 1.0
	}
	le.PutUint32(h[108:], 0x43b00000) // vox_offset 352.0
	copy(h[344:], "n+1\x00")
	return h
}

// labelBomb is a gzipped NIfTI label (a few MB) whose header claims dim
// voxels of datatype code and whose voxels are really there, as zeros.
func labelBomb(dim [3]int, code, bitpix int16) []byte {
	hdr := niftiHeader(dim, code, bitpix)
	n := int64(dim[0]) * int64(dim[1]) * int64(dim[2]) * int64(bitpix/8)
	crc := crc32.ChecksumIEEE(hdr)
	zeros := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(zeros)) {
		crc = crc32.Update(crc, crc32.IEEETable, zeros[:min(left, int64(len(zeros)))])
	}
	out := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}
	out = append(out, zeroBomb(hdr, n)...)
	out = binary.LittleEndian.AppendUint32(out, crc)
	return binary.LittleEndian.AppendUint32(out, uint32(n+int64(len(hdr))))
}

// writeFile writes data at path, making its folder.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lineWith returns the first line of out that contains s.
func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
