package volume

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"
)

// Header is what a NIfTI-1 file declares ahead of its voxels: enough to
// check a file against the grid it must have before any voxel is read,
// and the fields that can carry free text (identity, in a hospital's
// export), in the header and in its gzip wrapper.
type Header struct {
	Dim        [3]int
	Affine     Affine
	Datatype   string // the stored type: "uint8", "int16", "float64", …
	VoxelBytes int64  // bytes of voxel data the header declares
	// Text names the fields that hold anything: "descrip", "aux_file",
	// "intent_name", "db_name", "data_type", "header extensions" (an
	// extension flag or bytes between the header and the voxels), "gzip
	// file name", "gzip comment", "gzip extra field". A file Write
	// writes has none.
	Text []string
}

var datatypeNames = map[int16]string{
	codeUint8: "uint8", codeInt8: "int8", codeInt16: "int16", codeUint16: "uint16",
	codeInt32: "int32", codeFloat: "float32", codeDouble: "float64",
}

// ReadHeader reads the header of the NIfTI-1 file at path (plain or
// gzipped, detected from the content), never its voxels.
func ReadHeader(path string) (*Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := DecodeHeader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// DecodeHeader reads a NIfTI-1 header from r, as ReadHeader.
func DecodeHeader(r io.Reader) (*Header, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil {
		return nil, fmt.Errorf("%w: file too short", ErrFormat)
	}
	out := &Header{}
	var src io.Reader = br
	if magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrFormat, err)
		}
		defer zr.Close()
		if zr.Name != "" {
			out.Text = append(out.Text, "gzip file name")
		}
		if zr.Comment != "" {
			out.Text = append(out.Text, "gzip comment")
		}
		if len(zr.Extra) > 0 {
			out.Text = append(out.Text, "gzip extra field")
		}
		src = zr
	}
	var raw [voxOffset]byte
	if _, err := io.ReadFull(src, raw[:hdrSize]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrFormat, shortRead(err))
	}
	h, err := parseHeader(raw[:hdrSize])
	if err != nil {
		return nil, err
	}
	aff, err := h.affine()
	if err != nil {
		return nil, err
	}
	out.Dim, out.Affine, out.Datatype, out.VoxelBytes = h.dim, aff, datatypeNames[h.datatype], h.nbytes
	for _, f := range []struct {
		name     string
		from, to int
	}{{"data_type", 4, 14}, {"db_name", 14, 32}, {"descrip", 148, 228}, {"aux_file", 228, 252}, {"intent_name", 328, 344}} {
		if strings.Trim(string(raw[f.from:f.to]), "\x00 ") != "" {
			out.Text = append(out.Text, f.name)
		}
	}
	ext, err := io.ReadFull(src, raw[hdrSize:voxOffset])
	if (ext == 4 && raw[hdrSize] != 0) || h.voxOffset > voxOffset {
		out.Text = append(out.Text, "header extensions")
	}
	if ext < 4 && err != nil && h.nbytes > 0 {
		return nil, fmt.Errorf("%w: voxel data: file truncated", ErrFormat)
	}
	return out, nil
}
