package jpeg2000

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/*.j2k with opj_compress")

// seedCases are small code streams kept in testdata (written by
// opj_compress with -update-seeds), so that decoding is tested and fuzzed
// without OpenJPEG installed. All lossless: each decodes to testImage.
var seedCases = []opjCase{
	{"seed-8bit", 16, 16, 8, false, false, []string{"-n", "3"}},
	{"seed-12bit-tiles", 23, 17, 12, false, false, []string{"-n", "2", "-t", "12,9", "-r", "5,1", "-p", "RPCL"}},
	{"seed-16bit-signed-modes", 19, 21, 16, true, false, []string{"-n", "3", "-M", "63", "-b", "8,8", "-p", "PCRL"}},
	{"seed-12bit-sop-eph", 24, 24, 12, false, false, []string{"-n", "2", "-SOP", "-EPH", "-r", "3,1"}},
	{"seed-12bit-tileparts", 20, 20, 12, false, false, []string{"-n", "2", "-r", "4,1", "-p", "CPRL", "-c", "[4,4]", "-TP", "R"}},
}

func seedPath(c opjCase) string {
	sign := "u"
	if c.signed {
		sign = "s"
	}
	return filepath.Join("testdata", fmt.Sprintf("%s_%dx%d_%d%s.j2k", c.name, c.w, c.h, c.depth, sign))
}

// TestSeeds decodes the stored code streams to the images they were made
// from (and rewrites them first with -update-seeds).
func TestSeeds(t *testing.T) {
	for i, c := range seedCases {
		seed := uint64(100 + i)
		if *updateSeeds {
			dir := t.TempDir()
			_, cs := c.compress(t, dir, seed)
			if err := os.WriteFile(seedPath(c), cs, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cs, err := os.ReadFile(seedPath(c))
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]uint16, c.w*c.h)
		if err := Decode(cs, c.w, c.h, dst); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := testImage(c.w, c.h, c.depth, c.signed, seed)
		for k, v := range toInt(dst, c.depth, c.signed) {
			if v != want[k] {
				t.Fatalf("%s: sample %d = %d, want %d", c.name, k, v, want[k])
			}
		}
	}
}
