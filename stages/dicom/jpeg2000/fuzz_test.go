package jpeg2000

import (
	"os"
	"runtime"
	"testing"
)

func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// FuzzDecode: arbitrary input never panics or hangs, and allocates no
// more than a bound in the image size and the input's length (a SIZ
// marker claiming a huge image, or length fields claiming gigabytes,
// allocate nothing of that size). Seeds: testdata/*.j2k.
func FuzzDecode(f *testing.F) {
	for _, c := range seedCases {
		if b, err := os.ReadFile(seedPath(c)); err == nil {
			f.Add(b, uint8(c.w), uint8(c.h))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, w, h uint8) {
		cols, rows := int(w)%64+1, int(h)%64+1
		dst := make([]uint16, cols*rows)
		var err error
		n := allocated(func() {
			err = Decode(b, cols, rows, dst)
			_, _ = ReadInfo(b)
			_, _ = Length(b)
		})
		if limit := uint64(1<<20 + 16*len(b) + 1024*cols*rows); n > limit {
			t.Fatalf("allocated %d bytes for a %d-byte stream and a %d×%d image (err %v)", n, len(b), cols, rows, err)
		}
	})
}
