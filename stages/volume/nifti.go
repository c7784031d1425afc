package volume

// NIfTI-1 is written by hand: it is a fixed 348-byte header followed by the
// raw voxels, and no maintained Go library reads and writes it with the
// sform/qform conventions dcm2niix and nibabel use.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"github.com/klauspost/pgzip"
	"github.com/medcad/medcad/internal/atomicfile"
)

// ErrFormat means the input is not a NIfTI-1 file this package can read.
var ErrFormat = errors.New("not a supported NIfTI-1 file")

// NIfTI-1 constants used here.
const (
	hdrSize    = 348
	voxOffset  = 352 // header + 4-byte extension flag
	codeUint8  = 2
	codeInt16  = 4
	codeInt32  = 8
	codeFloat  = 16
	codeDouble = 64
	codeInt8   = 256
	codeUint16 = 512
	unitsMM    = 2
	xformScan  = 1 // NIFTI_XFORM_SCANNER_ANAT, what dcm2niix writes

	// maxVoxels bounds what a header may claim (2^31 voxels = 8 GiB of
	// float32), so a corrupt dim field cannot ask for an absurd buffer.
	maxVoxels = 1 << 31
	// maxDeflateRatio is deflate's largest expansion (258 bytes from 2
	// bits, rounded up): a gzip file of n bytes holds at most this many
	// times n bytes of data.
	maxDeflateRatio = 1100
)

// Read reads a NIfTI-1 volume from a .nii or .nii.gz file; gzip is
// detected from the content, not the name. Voxels are scaled by scl_slope
// and scl_inter when those are set (see Decode).
func Read(path string) (*Volume, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	v, err := decode(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// Decode reads a NIfTI-1 volume (plain or gzipped) from r.
//
// int16, uint8 and float32 voxels are returned as they are; int8 becomes
// Int16, and uint16, int32 and float64 become Float32. A scl_slope other
// than 0 or 1, or a scl_inter other than 0, is applied: the result stays
// Int16 (or Uint8) when the input is integer, slope and intercept are
// integers and every scaled value fits, and becomes Float32 otherwise.
// Only 3-D images are read (dim[4..7] must be 1). The affine comes from
// the sform when sform_code > 0, else from the qform when qform_code > 0,
// else from pixdim alone.
func Decode(r io.Reader) (*Volume, error) { return decode(r, -1) }

// decode reads from r; size is the byte size of r when known, else -1, and
// bounds what the header may claim.
func decode(r io.Reader, size int64) (*Volume, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(2)
	if err != nil {
		return nil, fmt.Errorf("%w: file too short", ErrFormat)
	}
	var src io.Reader = br
	limit := size
	if magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrFormat, err)
		}
		defer zr.Close()
		src = zr
		if size >= 0 {
			limit = size * maxDeflateRatio
		}
	}
	var raw [voxOffset]byte
	if _, err := io.ReadFull(src, raw[:hdrSize]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrFormat, shortRead(err))
	}
	h, err := parseHeader(raw[:hdrSize])
	if err != nil {
		return nil, err
	}
	if h.voxOffset < hdrSize {
		return nil, fmt.Errorf("%w: vox_offset %d is inside the header", ErrFormat, h.voxOffset)
	}
	need := h.voxOffset + h.nbytes
	if limit >= 0 && need > limit {
		return nil, fmt.Errorf("%w: header claims %d bytes of voxels, file holds at most %d", ErrFormat, h.nbytes, limit-h.voxOffset)
	}
	if _, err := io.CopyN(io.Discard, src, h.voxOffset-hdrSize); err != nil {
		return nil, fmt.Errorf("%w: extensions: %v", ErrFormat, shortRead(err))
	}
	// The buffer grows as data arrives, so a lying header on a stream of
	// unknown size costs at most what the stream really holds.
	var buf bytes.Buffer
	buf.Grow(int(min(h.nbytes, 64<<20)))
	if _, err := io.CopyN(&buf, src, h.nbytes); err != nil {
		return nil, fmt.Errorf("%w: voxel data: %v (want %d bytes)", ErrFormat, shortRead(err), h.nbytes)
	}
	return h.volume(buf.Bytes())
}

func shortRead(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("file truncated")
	}
	return err
}

// header is the part of a NIfTI-1 header this package uses.
type header struct {
	order     binary.ByteOrder
	dim       [3]int
	datatype  int16
	bitpix    int16
	pixdim    [8]float32
	voxOffset int64
	nbytes    int64
	slope     float32
	inter     float32
	qformCode int16
	sformCode int16
	quatern   [3]float32
	qoffset   [3]float32
	srow      [3][4]float32
}

func parseHeader(b []byte) (*header, error) {
	h := &header{order: binary.LittleEndian}
	switch {
	case binary.LittleEndian.Uint32(b[0:]) == hdrSize:
	case binary.BigEndian.Uint32(b[0:]) == hdrSize:
		h.order = binary.BigEndian
	default:
		return nil, fmt.Errorf("%w: sizeof_hdr is not 348", ErrFormat)
	}
	if m := string(b[344:348]); m != "n+1\x00" && m != "ni1\x00" {
		return nil, fmt.Errorf("%w: magic %q is not NIfTI-1", ErrFormat, strings.TrimRight(m, "\x00"))
	}
	o := h.order
	i16 := func(off int) int16 { return int16(o.Uint16(b[off:])) }
	f32 := func(off int) float32 { return math.Float32frombits(o.Uint32(b[off:])) }
	ndim := int(i16(40))
	if ndim < 1 || ndim > 7 {
		return nil, fmt.Errorf("%w: dim[0] = %d", ErrFormat, ndim)
	}
	n := int64(1)
	for d := 1; d <= 7; d++ {
		v := int(i16(40 + 2*d))
		if d > ndim {
			v = 1
		}
		if v < 1 {
			return nil, fmt.Errorf("%w: dim[%d] = %d", ErrFormat, d, v)
		}
		if d <= 3 {
			h.dim[d-1] = v
		} else if v != 1 {
			return nil, fmt.Errorf("%w: %d-D image (dim[%d] = %d); only 3-D volumes are supported", ErrFormat, ndim, d, v)
		}
		n *= int64(v)
	}
	if n > maxVoxels {
		return nil, fmt.Errorf("%w: %d voxels is more than the supported %d", ErrFormat, n, int64(maxVoxels))
	}
	h.datatype = i16(70)
	h.bitpix = i16(72)
	size, ok := typeSize[h.datatype]
	if !ok {
		return nil, fmt.Errorf("%w: datatype %d is not supported (int8, uint8, int16, uint16, int32, float32, float64 are)", ErrFormat, h.datatype)
	}
	h.nbytes = n * int64(size)
	for d := range 8 {
		h.pixdim[d] = f32(76 + 4*d)
	}
	vo := f32(108)
	if vo != vo || vo < 0 || vo > 1<<30 || vo != float32(int64(vo)) {
		return nil, fmt.Errorf("%w: vox_offset %g", ErrFormat, vo)
	}
	h.voxOffset = int64(vo)
	if h.voxOffset == 0 { // allowed for .hdr/.img pairs; single files start at 352
		h.voxOffset = voxOffset
	}
	h.slope, h.inter = f32(112), f32(116)
	h.qformCode, h.sformCode = i16(252), i16(254)
	for k := range 3 {
		h.quatern[k] = f32(256 + 4*k)
		h.qoffset[k] = f32(268 + 4*k)
		for c := range 4 {
			h.srow[k][c] = f32(280 + 16*k + 4*c)
		}
	}
	return h, nil
}

var typeSize = map[int16]int{
	codeUint8: 1, codeInt8: 1, codeInt16: 2, codeUint16: 2,
	codeInt32: 4, codeFloat: 4, codeDouble: 8,
}

// affine chooses the voxel-to-RAS+ transform as nibabel does.
func (h *header) affine() (Affine, error) {
	var a Affine
	a[3][3] = 1
	switch {
	case h.sformCode > 0:
		for r := range 3 {
			for c := range 4 {
				a[r][c] = float64(h.srow[r][c])
			}
		}
	case h.qformCode > 0:
		b, c, d := float64(h.quatern[0]), float64(h.quatern[1]), float64(h.quatern[2])
		q := 1 - (b*b + c*c + d*d)
		var aa float64
		if q < 0 {
			s := 1 / math.Sqrt(b*b+c*c+d*d)
			b, c, d = b*s, c*s, d*s
		} else {
			aa = math.Sqrt(q)
		}
		rot := [3][3]float64{
			{aa*aa + b*b - c*c - d*d, 2 * (b*c - aa*d), 2 * (b*d + aa*c)},
			{2 * (b*c + aa*d), aa*aa + c*c - b*b - d*d, 2 * (c*d - aa*b)},
			{2 * (b*d - aa*c), 2 * (c*d + aa*b), aa*aa + d*d - c*c - b*b},
		}
		qfac := 1.0
		if h.pixdim[0] < 0 {
			qfac = -1
		}
		for r := range 3 {
			for col := range 3 {
				s := math.Abs(float64(h.pixdim[col+1]))
				if col == 2 {
					s *= qfac
				}
				a[r][col] = rot[r][col] * s
			}
			a[r][3] = float64(h.qoffset[r])
		}
	default:
		for k := range 3 {
			a[k][k] = math.Abs(float64(h.pixdim[k+1]))
		}
	}
	for r := range 3 {
		for c := range 4 {
			if x := a[r][c]; math.IsNaN(x) || math.IsInf(x, 0) {
				return a, fmt.Errorf("%w: affine holds %v", ErrFormat, x)
			}
		}
	}
	det := a[0][0]*(a[1][1]*a[2][2]-a[1][2]*a[2][1]) - a[0][1]*(a[1][0]*a[2][2]-a[1][2]*a[2][0]) + a[0][2]*(a[1][0]*a[2][1]-a[1][1]*a[2][0])
	if det == 0 {
		return a, fmt.Errorf("%w: singular affine (zero voxel size?)", ErrFormat)
	}
	return a, nil
}

// volume converts the raw voxel bytes to a Volume, applying the scaling.
func (h *header) volume(data []byte) (*Volume, error) {
	aff, err := h.affine()
	if err != nil {
		return nil, err
	}
	n := h.dim[0] * h.dim[1] * h.dim[2]
	o := h.order
	slope, inter := float64(h.slope), float64(h.inter)
	if slope == 0 || math.IsNaN(slope) || math.IsInf(slope, 0) {
		slope = 1 // scl_slope = 0 means "no scaling"
	}
	if math.IsNaN(inter) || math.IsInf(inter, 0) {
		inter = 0
	}
	scaled := slope != 1 || inter != 0
	v := &Volume{Dim: h.dim, Affine: aff}
	switch {
	case h.datatype == codeInt16 && !scaled:
		v.DType, v.I16 = Int16, make([]int16, n)
		for i := range v.I16 {
			v.I16[i] = int16(o.Uint16(data[2*i:]))
		}
		return v, nil
	case h.datatype == codeUint8 && !scaled:
		v.DType, v.U8 = Uint8, data[:n:n]
		return v, nil
	case h.datatype == codeFloat && !scaled:
		v.DType, v.F32 = Float32, make([]float32, n)
		for i := range v.F32 {
			v.F32[i] = math.Float32frombits(o.Uint32(data[4*i:]))
		}
		return v, nil
	}
	// General path: read every value as float64, scale, then pick the
	// narrowest exact type.
	at := h.reader(data)
	integer := h.datatype != codeFloat && h.datatype != codeDouble &&
		slope == math.Trunc(slope) && inter == math.Trunc(inter)
	if integer {
		fitsU8 := h.datatype == codeUint8 && slope > 0 && inter >= 0
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range n {
			x := at(i)*slope + inter
			lo, hi = min(lo, x), max(hi, x)
		}
		switch {
		case fitsU8 && hi <= math.MaxUint8:
			v.DType, v.U8 = Uint8, make([]uint8, n)
			for i := range v.U8 {
				v.U8[i] = uint8(at(i)*slope + inter)
			}
			return v, nil
		case lo >= math.MinInt16 && hi <= math.MaxInt16:
			v.DType, v.I16 = Int16, make([]int16, n)
			for i := range v.I16 {
				v.I16[i] = int16(at(i)*slope + inter)
			}
			return v, nil
		}
	}
	v.DType, v.F32 = Float32, make([]float32, n)
	for i := range v.F32 {
		v.F32[i] = float32(at(i)*slope + inter)
	}
	return v, nil
}

// reader returns a function reading voxel i of data as float64.
func (h *header) reader(data []byte) func(i int) float64 {
	o := h.order
	switch h.datatype {
	case codeUint8:
		return func(i int) float64 { return float64(data[i]) }
	case codeInt8:
		return func(i int) float64 { return float64(int8(data[i])) }
	case codeInt16:
		return func(i int) float64 { return float64(int16(o.Uint16(data[2*i:]))) }
	case codeUint16:
		return func(i int) float64 { return float64(o.Uint16(data[2*i:])) }
	case codeInt32:
		return func(i int) float64 { return float64(int32(o.Uint32(data[4*i:]))) }
	case codeFloat:
		return func(i int) float64 { return float64(math.Float32frombits(o.Uint32(data[4*i:]))) }
	default: // codeDouble
		return func(i int) float64 { return math.Float64frombits(o.Uint64(data[8*i:])) }
	}
}

// WriteOptions tune Write.
type WriteOptions struct {
	// Level is the gzip level for .nii.gz (default pgzip.BestSpeed: CT
	// compresses within a few percent of the default level at several
	// times the speed).
	Level int
	// Description goes to the header's 80-byte descrip field.
	Description string
}

// Write writes v to path as NIfTI-1: gzipped in parallel when the name ends
// in .gz, plain otherwise. The file appears complete or not at all: the
// data go to a temporary file in the same folder, which is synced and then
// renamed over path.
func Write(path string, v *Volume) error { return WriteWith(path, v, WriteOptions{}) }

// WriteWith is Write with options.
func WriteWith(path string, v *Volume, opts WriteOptions) error {
	if err := v.Check(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	gz := strings.HasSuffix(path, ".gz")
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		if !gz {
			return encode(w, v, opts.Description)
		}
		level := opts.Level
		if level == 0 {
			level = pgzip.BestSpeed
		}
		zw, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return err
		}
		if err := zw.SetConcurrency(1<<20, 2*runtime.GOMAXPROCS(0)); err != nil {
			return err
		}
		if err := encode(zw, v, opts.Description); err != nil {
			return err
		}
		return zw.Close()
	})
}

// Encode writes v to w as an uncompressed NIfTI-1 stream (.nii).
func Encode(w io.Writer, v *Volume) error {
	if err := v.Check(); err != nil {
		return err
	}
	return encode(w, v, "")
}

func encode(w io.Writer, v *Volume, descrip string) error {
	hdr, err := makeHeader(v, descrip)
	if err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if littleEndianHost() {
		// NIfTI here is little endian, as the machine: write the voxels'
		// memory as it is instead of encoding it value by value.
		var b []byte
		switch v.DType {
		case Uint8:
			b = v.U8
		case Int16:
			b = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v.I16))), 2*len(v.I16))
		default:
			b = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v.F32))), 4*len(v.F32))
		}
		_, err = w.Write(b)
		return err
	}
	switch v.DType {
	case Uint8:
		_, err = w.Write(v.U8)
		return err
	case Int16:
		return writeChunks(w, len(v.I16), 2, func(b []byte, i int) {
			binary.LittleEndian.PutUint16(b, uint16(v.I16[i]))
		})
	default:
		return writeChunks(w, len(v.F32), 4, func(b []byte, i int) {
			binary.LittleEndian.PutUint32(b, math.Float32bits(v.F32[i]))
		})
	}
}

// littleEndianHost reports whether the machine stores integers little
// endian (as NIfTI files written here are).
func littleEndianHost() bool {
	return binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}

// writeChunks encodes n values of size bytes through a fixed buffer.
func writeChunks(w io.Writer, n, size int, put func(b []byte, i int)) error {
	const chunk = 1 << 16
	buf := make([]byte, chunk*size)
	for start := 0; start < n; start += chunk {
		end := min(start+chunk, n)
		b := buf[:(end-start)*size]
		for i := start; i < end; i++ {
			put(b[(i-start)*size:], i)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// makeHeader builds the 352-byte header (with the empty extension flag).
func makeHeader(v *Volume, descrip string) ([]byte, error) {
	for _, d := range v.Dim {
		if d > math.MaxInt16 {
			return nil, fmt.Errorf("dimension %v: NIfTI-1 allows at most %d per axis: %w", v.Dim, math.MaxInt16, ErrShape)
		}
	}
	b := make([]byte, voxOffset)
	le := binary.LittleEndian
	put16 := func(off int, x int16) { le.PutUint16(b[off:], uint16(x)) }
	putF := func(off int, x float64) { le.PutUint32(b[off:], math.Float32bits(float32(x))) }
	le.PutUint32(b[0:], hdrSize)
	b[38] = 'r'
	put16(40, 3)
	for d := range 3 {
		put16(42+2*d, int16(v.Dim[d]))
	}
	for d := 3; d < 7; d++ {
		put16(42+2*d, 1)
	}
	var code, bitpix int16
	switch v.DType {
	case Uint8:
		code, bitpix = codeUint8, 8
	case Int16:
		code, bitpix = codeInt16, 16
	case Float32:
		code, bitpix = codeFloat, 32
	}
	put16(70, code)
	put16(72, bitpix)

	q := quaternion(v.Affine)
	putF(76, q.qfac)
	for d := range 3 {
		putF(80+4*d, q.pixdim[d])
	}
	for d := 3; d < 7; d++ {
		putF(80+4*d, 1)
	}
	putF(108, voxOffset)
	putF(112, 1) // scl_slope: voxels are stored as they are
	b[123] = unitsMM
	copy(b[148:148+79], descrip)
	put16(252, xformScan)
	put16(254, xformScan)
	for k := range 3 {
		putF(256+4*k, q.bcd[k])
		putF(268+4*k, v.Affine[k][3])
		for c := range 4 {
			putF(280+16*k+4*c, v.Affine[k][c])
		}
	}
	copy(b[344:], "n+1\x00")
	return b, nil
}

// quatern is the qform form of an affine.
type quatern struct {
	bcd    [3]float64
	pixdim [3]float64
	qfac   float64
}

// quaternion converts the rotation part of a to a unit quaternion, voxel
// sizes and qfac as nifti1_io's nifti_mat44_to_quatern does: the columns
// are normalised, a left-handed frame flips the third (qfac = -1), and a
// matrix that is not quite orthogonal (a tilted gantry) is replaced by its
// nearest rotation, since a qform cannot hold shear; the sform keeps it.
func quaternion(a Affine) quatern {
	var q quatern
	var m [3][3]float64
	for c := range 3 {
		s := math.Sqrt(a[0][c]*a[0][c] + a[1][c]*a[1][c] + a[2][c]*a[2][c])
		q.pixdim[c] = s
		if s == 0 { // degenerate: substitute the axis
			m[c][c] = 1
			q.pixdim[c] = 1
			continue
		}
		for r := range 3 {
			m[r][c] = a[r][c] / s
		}
	}
	m = nearestRotation(m)
	det := det3(m)
	q.qfac = 1
	if det < 0 {
		q.qfac = -1
		for r := range 3 {
			m[r][2] = -m[r][2]
		}
	}
	// Rotation matrix to quaternion (a, b, c, d) with a >= 0.
	tr := m[0][0] + m[1][1] + m[2][2] + 1
	var qa, qb, qc, qd float64
	if tr > 0.5 {
		qa = 0.5 * math.Sqrt(tr)
		qb = 0.25 * (m[2][1] - m[1][2]) / qa
		qc = 0.25 * (m[0][2] - m[2][0]) / qa
		qd = 0.25 * (m[1][0] - m[0][1]) / qa
	} else {
		xd := 1 + m[0][0] - (m[1][1] + m[2][2])
		yd := 1 + m[1][1] - (m[0][0] + m[2][2])
		zd := 1 + m[2][2] - (m[0][0] + m[1][1])
		switch {
		case xd > 1:
			qb = 0.5 * math.Sqrt(xd)
			qc = 0.25 * (m[0][1] + m[1][0]) / qb
			qd = 0.25 * (m[0][2] + m[2][0]) / qb
			qa = 0.25 * (m[2][1] - m[1][2]) / qb
		case yd > 1:
			qc = 0.5 * math.Sqrt(yd)
			qb = 0.25 * (m[0][1] + m[1][0]) / qc
			qd = 0.25 * (m[1][2] + m[2][1]) / qc
			qa = 0.25 * (m[0][2] - m[2][0]) / qc
		default:
			qd = 0.5 * math.Sqrt(zd)
			qb = 0.25 * (m[0][2] + m[2][0]) / qd
			qc = 0.25 * (m[1][2] + m[2][1]) / qd
			qa = 0.25 * (m[1][0] - m[0][1]) / qd
		}
		if qa < 0 {
			qb, qc, qd = -qb, -qc, -qd
		}
	}
	q.bcd = [3]float64{qb, qc, qd}
	return q
}

// nearestRotation returns the orthogonal matrix nearest to m (its polar
// factor), by the Newton iteration X <- (X + X^-T) / 2.
func nearestRotation(m [3][3]float64) [3][3]float64 {
	x := m
	for range 30 {
		inv, ok := inverse3(x)
		if !ok {
			return m
		}
		var next [3][3]float64
		diff := 0.0
		for r := range 3 {
			for c := range 3 {
				next[r][c] = 0.5 * (x[r][c] + inv[c][r])
				diff = max(diff, math.Abs(next[r][c]-x[r][c]))
			}
		}
		x = next
		if diff < 1e-12 {
			break
		}
	}
	return x
}

func det3(m [3][3]float64) float64 {
	return m[0][0]*(m[1][1]*m[2][2]-m[1][2]*m[2][1]) -
		m[0][1]*(m[1][0]*m[2][2]-m[1][2]*m[2][0]) +
		m[0][2]*(m[1][0]*m[2][1]-m[1][1]*m[2][0])
}

func inverse3(m [3][3]float64) ([3][3]float64, bool) {
	d := det3(m)
	if d == 0 || math.IsNaN(d) {
		return m, false
	}
	var inv [3][3]float64
	for r := range 3 {
		for c := range 3 {
			r1, r2 := (c+1)%3, (c+2)%3
			c1, c2 := (r+1)%3, (r+2)%3
			inv[r][c] = (m[r1][c1]*m[r2][c2] - m[r1][c2]*m[r2][c1]) / d
		}
	}
	return inv, true
}
