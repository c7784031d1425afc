package volume

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/medcad/medcad/internal/testenv"
)

// rotZ returns the affine with rotation about z by deg degrees, spacing s
// and origin o.
func rotZ(deg float64, s, o [3]float64) Affine {
	c, n := math.Cos(deg*math.Pi/180), math.Sin(deg*math.Pi/180)
	return Affine{
		{c * s[0], -n * s[1], 0, o[0]},
		{n * s[0], c * s[1], 0, o[1]},
		{0, 0, s[2], o[2]},
		{0, 0, 0, 1},
	}
}

// testAffines covers the geometries dcm2niix writes: axial CT (x flipped,
// y flipped: DICOM LPS rows/columns in RAS+), sagittal, oblique, and a
// right-handed frame.
func testAffines() map[string]Affine {
	return map[string]Affine{
		"identity": Identity([3]float64{1, 1, 1}),
		"axial-dcm2niix": {
			{-0.78125, 0, 0, 199.6},
			{0, -0.78125, 0, 176.3},
			{0, 0, 2.5, -310.25},
			{0, 0, 0, 1},
		},
		"sagittal": {
			{0, 0, -1.2, 80},
			{0.9, 0, 0, -100},
			{0, -0.9, 0, 120},
			{0, 0, 0, 1},
		},
		"oblique":      rotZ(17, [3]float64{0.7, 0.8, 3}, [3]float64{-10, 20, 30}),
		"oblique-left": rotZ(-133, [3]float64{0.5, 0.5, -1.25}, [3]float64{1, 2, 3}),
	}
}

func testVolume(dt DType, dim [3]int, aff Affine) *Volume {
	v := New(dt, dim, aff)
	for n := range v.Len() {
		switch dt {
		case Int16:
			v.I16[n] = int16(n*37%4096 - 1024)
		case Uint8:
			v.U8[n] = uint8(n % 3)
		case Float32:
			v.F32[n] = float32(n)*0.25 - 7
		}
	}
	return v
}

func affineCmp(tol float64) cmp.Option { return cmpopts.EquateApprox(0, tol) }

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, aff := range testAffines() {
		for _, dt := range []DType{Int16, Uint8, Float32} {
			for _, ext := range []string{".nii", ".nii.gz"} {
				v := testVolume(dt, [3]int{5, 4, 3}, aff)
				p := filepath.Join(dir, name+"-"+dt.String()+ext)
				if err := Write(p, v); err != nil {
					t.Fatal(err)
				}
				got, err := Read(p)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(v, got, affineCmp(1e-5)); diff != "" {
					t.Errorf("%s: round trip (-want +got):\n%s", p, diff)
				}
			}
		}
	}
}

// TestQformMatchesSform decodes each written file from its qform alone and
// checks it gives the same affine as the sform.
func TestQformMatchesSform(t *testing.T) {
	t.Parallel()
	for name, aff := range testAffines() {
		var buf bytes.Buffer
		if err := Encode(&buf, testVolume(Uint8, [3]int{2, 2, 2}, aff)); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		binary.LittleEndian.PutUint16(b[254:], 0) // sform_code = 0
		v, err := Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if d := v.Affine.MaxDiff(aff); d > 1e-4 {
			t.Errorf("%s: qform affine differs by %g:\n got %v\nwant %v", name, d, v.Affine, aff)
		}
	}
}

func TestHeaderFields(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	aff := testAffines()["axial-dcm2niix"]
	if err := Encode(&buf, testVolume(Int16, [3]int{3, 2, 1}, aff)); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	le := binary.LittleEndian
	f := func(off int) float32 { return math.Float32frombits(le.Uint32(b[off:])) }
	got := map[string]float64{
		"sizeof_hdr":  float64(le.Uint32(b[0:])),
		"dim0":        float64(int16(le.Uint16(b[40:]))),
		"datatype":    float64(int16(le.Uint16(b[70:]))),
		"bitpix":      float64(int16(le.Uint16(b[72:]))),
		"qfac":        float64(f(76)),
		"pixdim1":     float64(f(80)),
		"pixdim3":     float64(f(88)),
		"vox_offset":  float64(f(108)),
		"scl_slope":   float64(f(112)),
		"xyzt_units":  float64(b[123]),
		"qform_code":  float64(int16(le.Uint16(b[252:]))),
		"sform_code":  float64(int16(le.Uint16(b[254:]))),
		"file_length": float64(len(b)),
	}
	want := map[string]float64{
		"sizeof_hdr": 348, "dim0": 3, "datatype": 4, "bitpix": 16,
		// x and y flipped is a rotation by 180° about z: right-handed.
		"qfac": 1, "pixdim1": 0.78125, "pixdim3": 2.5, "vox_offset": 352,
		"scl_slope": 1, "xyzt_units": 2, "qform_code": 1, "sform_code": 1,
		"file_length": 352 + 3*2*1*2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	if string(b[344:348]) != "n+1\x00" {
		t.Errorf("magic %q", b[344:348])
	}
}

// rawHeader builds a little-endian NIfTI-1 single-file header by hand for
// the decoder tests, independently of makeHeader.
func rawHeader(dim [3]int16, datatype, bitpix int16, slope, inter float32) []byte {
	b := make([]byte, 352)
	le := binary.LittleEndian
	le.PutUint32(b, 348)
	le.PutUint16(b[40:], 3)
	for d := range 3 {
		le.PutUint16(b[42+2*d:], uint16(dim[d]))
	}
	le.PutUint16(b[70:], uint16(datatype))
	le.PutUint16(b[72:], uint16(bitpix))
	for d := range 4 {
		le.PutUint32(b[76+4*d:], math.Float32bits(1))
	}
	le.PutUint32(b[108:], math.Float32bits(352))
	le.PutUint32(b[112:], math.Float32bits(slope))
	le.PutUint32(b[116:], math.Float32bits(inter))
	copy(b[344:], "n+1\x00")
	return b
}

func TestDecodeScaling(t *testing.T) {
	t.Parallel()
	le := binary.LittleEndian
	u16 := func(xs ...uint16) []byte {
		b := make([]byte, 2*len(xs))
		for i, x := range xs {
			le.PutUint16(b[2*i:], x)
		}
		return b
	}
	tests := []struct {
		name         string
		datatype     int16
		bitpix       int16
		slope, inter float32
		data         []byte
		want         *Volume
	}{
		{"dcm2niix CT: uint16 raw, intercept -1024", codeUint16, 16, 1, -1024, u16(0, 1024, 3000),
			&Volume{DType: Int16, I16: []int16{-1024, 0, 1976}}},
		{"int16 slope 2", codeInt16, 16, 2, 1, u16(1, 0xffff, 100),
			&Volume{DType: Int16, I16: []int16{3, -1, 201}}},
		{"slope 0 means none", codeInt16, 16, 0, 0, u16(5, 6, 7),
			&Volume{DType: Int16, I16: []int16{5, 6, 7}}},
		{"fractional slope gives float", codeInt16, 16, 0.5, 0, u16(1, 2, 3),
			&Volume{DType: Float32, F32: []float32{0.5, 1, 1.5}}},
		{"overflowing int16 gives float", codeUint16, 16, 1, 0, u16(1, 2, 40000),
			&Volume{DType: Float32, F32: []float32{1, 2, 40000}}},
		{"uint8 with intercept stays uint8", codeUint8, 8, 1, 1, []byte{0, 1, 2},
			&Volume{DType: Uint8, U8: []uint8{1, 2, 3}}},
		{"int8 becomes int16", codeInt8, 8, 1, 0, []byte{0xff, 1, 0x80},
			&Volume{DType: Int16, I16: []int16{-1, 1, -128}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := append(rawHeader([3]int16{3, 1, 1}, tt.datatype, tt.bitpix, tt.slope, tt.inter), tt.data...)
			got, err := Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Dim = [3]int{3, 1, 1}
			tt.want.Affine = Identity([3]float64{1, 1, 1})
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeBigEndian(t *testing.T) {
	t.Parallel()
	// A big-endian header is the little-endian one with every field
	// byte-swapped; build it field by field.
	b := make([]byte, 352+4)
	be := binary.BigEndian
	be.PutUint32(b, 348)
	be.PutUint16(b[40:], 3)
	be.PutUint16(b[42:], 2)
	be.PutUint16(b[44:], 1)
	be.PutUint16(b[46:], 1)
	be.PutUint16(b[70:], codeInt16)
	be.PutUint16(b[72:], 16)
	for d := range 4 {
		be.PutUint32(b[76+4*d:], math.Float32bits(2))
	}
	be.PutUint32(b[108:], math.Float32bits(352))
	copy(b[344:], "n+1\x00")
	be.PutUint16(b[352:], uint16(0xfffe)) // -2
	be.PutUint16(b[354:], 300)
	v, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	want := &Volume{Dim: [3]int{2, 1, 1}, DType: Int16, I16: []int16{-2, 300}, Affine: Identity([3]float64{2, 2, 2})}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDecodeReaders(t *testing.T) {
	t.Parallel()
	v := testVolume(Int16, [3]int{7, 5, 3}, testAffines()["oblique"])
	var plain, zipped bytes.Buffer
	if err := Encode(&plain, v); err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(&zipped)
	zw.Write(plain.Bytes())
	zw.Close()
	for name, data := range map[string][]byte{"plain": plain.Bytes(), "gzip": zipped.Bytes()} {
		{
			r := bytes.NewReader
			got, err := Decode(iotest.OneByteReader(r(data)))
			if err != nil {
				t.Fatalf("%s one-byte: %v", name, err)
			}
			if diff := cmp.Diff(v, got, affineCmp(1e-5)); diff != "" {
				t.Errorf("%s one-byte (-want +got):\n%s", name, diff)
			}
			got, err = Decode(iotest.HalfReader(r(data)))
			if err != nil {
				t.Fatalf("%s half: %v", name, err)
			}
			if diff := cmp.Diff(v, got, affineCmp(1e-5)); diff != "" {
				t.Errorf("%s half (-want +got):\n%s", name, diff)
			}
		}
	}
	if _, err := Decode(iotest.ErrReader(errors.New("disk on fire"))); err == nil {
		t.Error("ErrReader: no error")
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := func() []byte {
		var b bytes.Buffer
		Encode(&b, testVolume(Int16, [3]int{4, 4, 4}, Identity([3]float64{1, 1, 1})))
		return b.Bytes()
	}
	huge := rawHeader([3]int16{32767, 32767, 32767}, codeFloat, 32, 1, 0)
	fourD := good()
	binary.LittleEndian.PutUint16(fourD[40:], 4)
	binary.LittleEndian.PutUint16(fourD[48:], 2)
	badType := good()
	binary.LittleEndian.PutUint16(badType[70:], 128) // RGB
	zeroDim := good()
	binary.LittleEndian.PutUint16(zeroDim[44:], 0)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "file too short"},
		{"text", []byte("hello, world: not an image at all"), "header: file truncated"},
		{"not nifti", bytes.Repeat([]byte{7}, 400), "sizeof_hdr is not 348"},
		{"truncated data", good()[:400], "header claims 128 bytes of voxels, file holds at most 48"},
		{"huge dim", huge, "voxels is more than the supported"},
		{"4-D", fourD, "only 3-D volumes are supported"},
		{"RGB", badType, "datatype 128 is not supported"},
		{"zero dim", zeroDim, "dim[2] = 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".nii")
			if err := os.WriteFile(p, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Read(p)
			if err == nil || !errors.Is(err, ErrFormat) {
				t.Fatalf("Read = %v, want ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), p+": ") {
				t.Errorf("error %q: want the path and %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// TestGzipBomb: a small gzip stream whose header claims a large volume is
// refused from the file size before anything big is allocated.
func TestGzipBomb(t *testing.T) {
	t.Parallel()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(rawHeader([3]int16{1024, 1024, 1024}, codeFloat, 32, 1, 0))
	zw.Close()
	p := filepath.Join(t.TempDir(), "bomb.nii.gz")
	os.WriteFile(p, z.Bytes(), 0o644)
	if _, err := Read(p); err == nil || !strings.Contains(err.Error(), "file holds at most") {
		t.Errorf("Read = %v", err)
	}
	// The stream variant has no size: it must fail on the short data
	// without having grown a 4 GiB buffer.
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	if _, err := Decode(bytes.NewReader(z.Bytes())); err == nil || !strings.Contains(err.Error(), "file truncated") {
		t.Errorf("Decode = %v", err)
	}
	runtime.ReadMemStats(&ms1)
	if grown := ms1.TotalAlloc - ms0.TotalAlloc; grown > 256<<20 {
		t.Errorf("Decode of a %d-byte stream allocated %d MiB", z.Len(), grown>>20)
	}
}

func TestWriteAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "keep.nii.gz")
	v := testVolume(Int16, [3]int{3, 3, 3}, Identity([3]float64{1, 1, 1}))
	if err := Write(p, v); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p)
	bad := &Volume{Dim: [3]int{3, 3, 3}, DType: Int16, I16: make([]int16, 5)}
	if err := Write(p, bad); !errors.Is(err, ErrShape) {
		t.Fatalf("Write of a bad volume = %v, want ErrShape", err)
	}
	tooBig := &Volume{Dim: [3]int{40000, 1, 1}, DType: Uint8, U8: make([]uint8, 40000), Affine: Identity([3]float64{1, 1, 1})}
	if err := Write(p, tooBig); !errors.Is(err, ErrShape) || !strings.HasPrefix(err.Error(), p) {
		t.Fatalf("Write of a 40000-wide volume = %v, want ErrShape naming the file", err)
	}
	after, _ := os.ReadFile(p)
	if !bytes.Equal(before, after) {
		t.Error("a failed Write changed the existing file")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("leftover files: %v", names)
	}
}

// TestNibabel checks with nibabel (Debian's python3-nibabel) that written
// files parse, with the same voxels, affine, sform/qform codes and units.
func TestNibabel(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t, "numpy", "nibabel")
	dir := t.TempDir()
	type ref struct {
		Path   string      `json:"path"`
		Sum    float64     `json:"sum"`
		First  float64     `json:"first"`
		Last   float64     `json:"last"`
		Dtype  string      `json:"dtype"`
		Shape  []int       `json:"shape"`
		Affine [][]float64 `json:"affine"`
		QAff   [][]float64 `json:"qaffine"`
		Codes  []int       `json:"codes"`
		Units  string      `json:"units"`
	}
	var want []ref
	var paths []string
	for name, aff := range testAffines() {
		for _, dt := range []DType{Int16, Uint8, Float32} {
			v := testVolume(dt, [3]int{6, 5, 4}, aff)
			p := filepath.Join(dir, name+"-"+dt.String()+".nii.gz")
			if err := Write(p, v); err != nil {
				t.Fatal(err)
			}
			sum := 0.0
			for n := range v.Len() {
				sum += v.At(n)
			}
			var a [][]float64
			for r := range 4 {
				a = append(a, v.Affine[r][:])
			}
			want = append(want, ref{Path: p, Sum: sum, First: v.At(v.Index(1, 2, 3)), Last: v.At(v.Index(4, 0, 1)),
				Dtype: dt.String(), Shape: v.Dim[:], Affine: a, QAff: a, Codes: []int{1, 1}, Units: "mm"})
			paths = append(paths, p)
		}
	}
	script := `
import json, sys
import nibabel as nib, numpy as np
out = []
for p in sys.argv[1:]:
    im = nib.load(p)
    d = np.asanyarray(im.dataobj)
    h = im.header
    out.append(dict(path=p, sum=float(d.astype(np.float64).sum()),
        first=float(d[1, 2, 3]), last=float(d[4, 0, 1]),
        dtype=str(d.dtype), shape=list(d.shape), affine=im.affine.tolist(),
        qaffine=h.get_qform().tolist(), codes=[int(h['sform_code']), int(h['qform_code'])],
        units=h.get_xyzt_units()[0]))
json.dump(out, sys.stdout)
`
	out, err := exec.Command(py, append([]string{"-c", script}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nibabel: %v\n%s", err, out)
	}
	var got []ref
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-4)); diff != "" {
		t.Errorf("nibabel sees (-want +got):\n%s", diff)
	}
}
