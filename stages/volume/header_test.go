package volume

import (
	"bytes"
	"compress/gzip"
	"path/filepath"
	"slices"
	"testing"
)

// TestReadHeader: a file Write writes has no text anywhere; text in the
// header fields, an extension and the gzip wrapper is named field by
// field; the grid and voxel size are read without the voxels.
func TestReadHeader(t *testing.T) {
	t.Parallel()
	v := New(Uint8, [3]int{5, 4, 3}, Identity([3]float64{1, 1, 2}))
	path := filepath.Join(t.TempDir(), "l.nii.gz")
	if err := Write(path, v); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.Dim != v.Dim || h.Datatype != "uint8" || h.VoxelBytes != 60 || len(h.Text) != 0 || h.Affine.MaxDiff(v.Affine) > 1e-6 {
		t.Errorf("header %+v", h)
	}

	var raw bytes.Buffer
	if err := Encode(&raw, v); err != nil {
		t.Fatal(err)
	}
	b := raw.Bytes()
	copy(b[148:], "x")
	copy(b[228:], "x")
	copy(b[328:], "x")
	b[348] = 1
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Name, zw.Comment, zw.Extra = "n", "c", []byte{1, 2, 0, 0}
	zw.Write(b)
	zw.Close()
	h, err = DecodeHeader(&z)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"aux_file", "descrip", "gzip comment", "gzip extra field", "gzip file name", "header extensions", "intent_name"}
	got := slices.Sorted(slices.Values(h.Text))
	if !slices.Equal(got, want) {
		t.Errorf("text fields %q, want %q", got, want)
	}
	if _, err := DecodeHeader(bytes.NewReader(b[:200])); err == nil {
		t.Error("a truncated header was read")
	}
}

// FuzzDecodeHeader: any input gives a header or an error, never a panic;
// a header read is within the limits Decode enforces.
func FuzzDecodeHeader(f *testing.F) {
	var raw bytes.Buffer
	Encode(&raw, New(Uint8, [3]int{2, 2, 2}, Identity([3]float64{1, 1, 1})))
	f.Add(raw.Bytes())
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(raw.Bytes())
	zw.Close()
	f.Add(z.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := DecodeHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		if n := int64(h.Dim[0]) * int64(h.Dim[1]) * int64(h.Dim[2]); n > maxVoxels || h.VoxelBytes < n {
			t.Fatalf("header %+v beyond the limits", h)
		}
	})
}
