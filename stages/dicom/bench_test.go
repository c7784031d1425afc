package dicom

import (
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
)

// BenchmarkSlice measures parse plus decode of one 512×512 CT slice, the
// per-slice cost of conversion (goal: under 1 ms).
func BenchmarkSlice(b *testing.B) {
	dir := b.TempDir()
	v := phantom([3]int{512, 512, 1}, axial([3]float64{0.7, 0.7, 1}, [3]float64{}), 61)
	if _, err := WriteSeries(dir, v, WriteOptions{}); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "slice-0000.dcm")
	dst := make([]int16, 512*512)
	var scratch []uint16
	luts := newLUTCache()
	b.SetBytes(512 * 512 * 2)
	for b.Loop() {
		in, px, err := readInstance(path, true)
		if err != nil {
			b.Fatal(err)
		}
		dec, err := newFrameDecoder(in, px, luts)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dec.decode(0, target{i16: dst}, true, &scratch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeader measures the header-only read of Discover.
func BenchmarkHeader(b *testing.B) {
	dir := b.TempDir()
	v := phantom([3]int{512, 512, 1}, axial([3]float64{0.7, 0.7, 1}, [3]float64{}), 61)
	if _, err := WriteSeries(dir, v, WriteOptions{}); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "slice-0000.dcm")
	for b.Loop() {
		if _, err := ReadHeader(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJPEGLSSlice measures decoding one 512×512 CT slice (noise of
// 15 HU, as bench/dicom's series) compressed losslessly by dcmtk's
// dcmcjpls: the per-slice figure bench/dicom/jpegls.sh compares with
// dcmdjpls.
func BenchmarkJPEGLSSlice(b *testing.B) {
	bin := testenv.LookPath(b, "dcmcjpls")
	dir := b.TempDir()
	v := phantom([3]int{512, 512, 1}, axial([3]float64{0.7, 0.7, 1}, [3]float64{}), 61)
	rng := rand.New(rand.NewPCG(62, 1))
	for i, x := range v.I16 {
		v.I16[i] = int16(min(max(float64(x)+rng.NormFloat64()*15, -1024), 3071))
	}
	if _, err := WriteSeries(dir, v, WriteOptions{}); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "slice-0000.dcm")
	if out, err := exec.Command(bin, path, path+".jls").CombinedOutput(); err != nil {
		b.Fatalf("dcmcjpls: %v\n%s", err, out)
	}
	in, px, err := readInstance(path+".jls", true)
	if err != nil {
		b.Fatal(err)
	}
	dec, err := newFrameDecoder(in, px, newLUTCache())
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]int16, 512*512)
	var scratch []uint16
	b.SetBytes(512 * 512 * 2)
	for b.Loop() {
		if _, err := dec.decode(0, target{i16: dst}, true, &scratch); err != nil {
			b.Fatal(err)
		}
	}
}
