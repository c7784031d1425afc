package jpeg2000

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
)

// testImage is a CT-like slice: a disc of soft tissue with a brighter
// ring and noise, scaled to depth bits.
func testImage(w, h, depth int, signed bool, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]int, w*h)
	maxv := 1<<depth - 1
	for y := range h {
		for x := range w {
			dx, dy := float64(x)-float64(w)/2, float64(y)-float64(h)/2
			r := math.Hypot(dx/float64(w), dy/float64(h))
			v := 0.1
			switch {
			case r < 0.3:
				v = 0.45 + 0.05*math.Sin(float64(x)/3)
			case r < 0.38:
				v = 0.9
			}
			v += rng.NormFloat64() * 0.02
			s := int(v * float64(maxv))
			s = max(0, min(maxv, s))
			if signed {
				s -= 1 << (depth - 1)
			}
			out[y*w+x] = s
		}
	}
	return out
}

// writeRaw writes samples as OpenJPEG's .raw: big-endian, 1 byte up to 8
// bits, else 2.
func writeRaw(path string, s []int, depth int) error {
	var b []byte
	for _, v := range s {
		if depth <= 8 {
			b = append(b, byte(v))
		} else {
			b = binary.BigEndian.AppendUint16(b, uint16(v))
		}
	}
	return os.WriteFile(path, b, 0o644)
}

// readRaw reads opj_decompress's .rawl output (little-endian).
func readRaw(path string, n, depth int, signed bool) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := make([]int, n)
	for i := range out {
		switch {
		case depth <= 8 && signed:
			out[i] = int(int8(b[i]))
		case depth <= 8:
			out[i] = int(b[i])
		case signed:
			out[i] = int(int16(binary.LittleEndian.Uint16(b[2*i:])))
		default:
			out[i] = int(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}
	return out, nil
}

// opjCase is one image compressed by opj_compress with args.
type opjCase struct {
	name          string
	w, h, depth   int
	signed, lossy bool
	args          []string
}

var opjCases = []opjCase{
	{"8bit", 64, 48, 8, false, false, nil},
	{"12bit-odd", 127, 93, 12, false, false, nil},
	{"16bit", 96, 80, 16, false, false, nil},
	{"16bit-signed", 77, 61, 16, true, false, nil},
	{"12bit-signed", 50, 41, 12, true, false, nil},
	{"tiles", 127, 93, 12, false, false, []string{"-t", "32,40"}},
	{"tiles-offset", 100, 70, 12, false, false, []string{"-t", "33,21", "-d", "5,3", "-T", "2,1", "-n", "3"}},
	{"precincts", 127, 93, 12, false, false, []string{"-c", "[64,64],[32,32],[16,16]"}},
	{"codeblocks", 127, 93, 12, false, false, []string{"-b", "16,8"}},
	{"codeblocks-wide", 127, 93, 12, false, false, []string{"-b", "64,16"}},
	{"levels-1", 127, 93, 12, false, false, []string{"-n", "1"}},
	{"levels-6", 200, 150, 12, false, false, []string{"-n", "6"}},
	{"levels-0", 40, 30, 12, false, false, []string{"-n", "1", "-b", "4,4"}},
	{"LRCP-layers", 127, 93, 12, false, false, []string{"-p", "LRCP", "-r", "20,10,1"}},
	{"RLCP", 127, 93, 12, false, false, []string{"-p", "RLCP", "-r", "20,10,1", "-c", "[32,32]"}},
	{"RPCL", 127, 93, 12, false, false, []string{"-p", "RPCL", "-r", "20,10,1", "-c", "[32,32]"}},
	{"PCRL", 127, 93, 12, false, false, []string{"-p", "PCRL", "-r", "20,10,1", "-c", "[32,32]"}},
	{"CPRL", 127, 93, 12, false, false, []string{"-p", "CPRL", "-r", "20,10,1", "-c", "[32,32]"}},
	// OpenJPEG writes only the packets the POC lists: not lossless.
	{"POC", 127, 93, 12, false, true, []string{"-r", "20,10,1", "-POC", "T1=0,0,1,4,1,LRCP/T1=0,0,3,6,1,RPCL"}},
	{"bypass", 127, 93, 16, false, false, []string{"-M", "1"}},
	{"reset", 127, 93, 12, false, false, []string{"-M", "2"}},
	{"termall", 127, 93, 12, false, false, []string{"-M", "4"}},
	{"vsc", 127, 93, 12, false, false, []string{"-M", "8"}},
	{"segsym", 127, 93, 12, false, false, []string{"-M", "32"}},
	{"all-modes", 127, 93, 16, true, false, []string{"-M", "63", "-r", "30,5,1"}},
	{"bypass-termall-layers", 127, 93, 12, false, false, []string{"-M", "5", "-r", "40,8,1"}},
	{"sop-eph", 127, 93, 12, false, false, []string{"-SOP", "-EPH", "-r", "10,1"}},
	{"tileparts", 127, 93, 12, false, false, []string{"-t", "64,64", "-TP", "R", "-p", "RLCP"}},
	{"plt-tlm", 127, 93, 12, false, false, []string{"-PLT", "-TLM", "-t", "64,64"}},
	{"roi", 127, 93, 12, false, false, []string{"-ROI", "c=0,U=0"}},
	{"jp2", 64, 48, 12, false, false, nil},
	{"lossy-8bit", 64, 48, 8, false, true, []string{"-I", "-r", "5"}},
	{"lossy-12bit", 127, 93, 12, false, true, []string{"-I", "-r", "10"}},
	{"lossy-16bit-signed", 96, 80, 16, true, true, []string{"-I", "-r", "8"}},
	{"lossy-layers", 127, 93, 12, false, true, []string{"-I", "-r", "40,10,2"}},
	{"lossy-quality", 127, 93, 12, false, true, []string{"-I", "-q", "40"}},
	{"lossy-tiles-modes", 127, 93, 12, false, true, []string{"-I", "-r", "6", "-t", "50,40", "-M", "63", "-p", "PCRL", "-c", "[32,32]"}},
	{"lossy-levels-1", 127, 93, 12, false, true, []string{"-I", "-r", "6", "-n", "1"}},
	{"lossless-truncated-layers", 127, 93, 12, false, true, []string{"-r", "20"}},
}

// compress writes the case's image and compresses it; it returns the
// original samples and the code stream.
func (c opjCase) compress(t testing.TB, dir string, seed uint64) ([]int, []byte) {
	t.Helper()
	img := testImage(c.w, c.h, c.depth, c.signed, seed)
	if err := writeRaw(filepath.Join(dir, "in.raw"), img, c.depth); err != nil {
		t.Fatal(err)
	}
	return img, c.compressRaw(t, dir)
}

// compressRaw compresses dir/in.raw into dir/out.j2k (or .jp2).
func (c opjCase) compressRaw(t testing.TB, dir string) []byte {
	t.Helper()
	bin := testenv.LookPath(t, "opj_compress")
	raw := filepath.Join(dir, "in.raw")
	ext := ".j2k"
	if strings.HasPrefix(c.name, "jp2") {
		ext = ".jp2"
	}
	out := filepath.Join(dir, "out"+ext)
	sign := "u"
	if c.signed {
		sign = "s"
	}
	args := append([]string{"-i", raw, "-o", out, "-F", fmt.Sprintf("%d,%d,1,%d,%s", c.w, c.h, c.depth, sign)}, c.args...)
	if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("opj_compress %v: %v\n%s", args, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reference is opj_decompress's output for a code stream.
func reference(t testing.TB, dir string, c opjCase, cs string) []int {
	t.Helper()
	bin := testenv.LookPath(t, "opj_decompress")
	out := filepath.Join(dir, "ref.rawl") // little-endian
	if b, err := exec.Command(bin, "-i", cs, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("opj_decompress: %v\n%s", err, b)
	}
	ref, err := readRaw(out, c.w*c.h, c.depth, c.signed)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func toInt(s []uint16, depth int, signed bool) []int {
	out := make([]int, len(s))
	for i, v := range s {
		if signed {
			x := int(v) & (1<<depth - 1)
			if x >= 1<<(depth-1) {
				x -= 1 << depth
			}
			out[i] = x
		} else {
			out[i] = int(v)
		}
	}
	return out
}

// TestOpenJPEG decodes images compressed by OpenJPEG's opj_compress:
// lossless ones must equal the original, lossy ones opj_decompress's
// output within ±1 (the count of ±1 samples is logged).
func TestOpenJPEG(t *testing.T) {
	t.Parallel()
	for i, c := range opjCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			img, cs := c.compress(t, dir, uint64(i))
			info, err := ReadInfo(cs)
			if err != nil {
				t.Fatal(err)
			}
			if info.Width != c.w || info.Height != c.h || info.Depth != c.depth || info.Signed != c.signed || info.Components != 1 {
				t.Fatalf("info %+v", info)
			}
			dst := make([]uint16, c.w*c.h)
			if err := Decode(cs, c.w, c.h, dst); err != nil {
				t.Fatal(err)
			}
			got := toInt(dst, c.depth, c.signed)
			want := img
			if c.lossy {
				name := filepath.Join(dir, "out.j2k")
				want = reference(t, dir, c, name)
			}
			off, bad := 0, 0
			for k := range got {
				switch d := got[k] - want[k]; {
				case d == 0:
				case !c.lossy || d > 1 || d < -1:
					if bad < 5 {
						t.Errorf("sample (%d,%d) = %d, want %d", k%c.w, k/c.w, got[k], want[k])
					}
					bad++
				default:
					off++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d samples differ", bad, len(got))
			}
			if c.lossy {
				t.Logf("%d of %d samples differ by ±1 from opj_decompress", off, len(got))
			}
		})
	}
}
