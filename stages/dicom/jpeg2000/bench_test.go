package jpeg2000

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDecode512 decodes a 512×512 16-bit signed CT-like slice (HU +
// 1024, noise of 15 HU) compressed losslessly by opj_compress with its
// defaults, as bench/dicom's series is.
func BenchmarkDecode512(b *testing.B) {
	dir := b.TempDir()
	img := testImage(512, 512, 12, false, 1)
	for i := range img { // 12-bit levels as 16-bit signed samples, like CT
		img[i] -= 1024
	}
	if err := writeRaw(filepath.Join(dir, "in.raw"), img, 16); err != nil {
		b.Fatal(err)
	}
	c := opjCase{"bench", 512, 512, 16, true, false, nil}
	c.compressRaw(b, dir)
	cs, err := os.ReadFile(filepath.Join(dir, "out.j2k"))
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]uint16, 512*512)
	b.SetBytes(int64(len(dst) * 2))
	b.ResetTimer()
	for b.Loop() {
		if err := Decode(cs, 512, 512, dst); err != nil {
			b.Fatal(err)
		}
	}
}
