package dicom

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/stages/volume"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// PHI planted in every fixture: no output of medcad may contain it.
var fixturePHI = []string{"DOE^JANE", "MRN-0042-XYZ", "19700101", "St. Elsewhere Hospital"}

func phiElements(t testing.TB) []*dicom.Element {
	t.Helper()
	var out []*dicom.Element
	for _, kv := range []struct {
		t tag.Tag
		v []string
	}{
		{tag.PatientName, []string{fixturePHI[0]}},
		{tag.PatientID, []string{fixturePHI[1]}},
		{tag.PatientBirthDate, []string{fixturePHI[2]}},
		{tag.InstitutionName, []string{fixturePHI[3]}},
	} {
		e, err := dicom.NewElement(kv.t, kv.v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// rotation returns the affine with orthonormal axes u, v, w scaled by sp.
func frame(u, v, w [3]float64, sp, o [3]float64) volume.Affine {
	var a volume.Affine
	for r := range 3 {
		a[r] = [4]float64{u[r] * sp[0], v[r] * sp[1], w[r] * sp[2], o[r]}
	}
	a[3][3] = 1
	return a
}

func rotate(deg float64, axis int, p [3]float64) [3]float64 {
	c, s := math.Cos(deg*math.Pi/180), math.Sin(deg*math.Pi/180)
	i, j := (axis+1)%3, (axis+2)%3
	q := p
	q[i] = c*p[i] - s*p[j]
	q[j] = s*p[i] + c*p[j]
	return q
}

// fixture is one test series folder written with suyashkumar/dicom.
type fixture struct {
	name string
	// warnings expected on the (first) series, as substrings.
	warnings []string
	// diff: compare with dcm2niix.
	diff bool
	// refFix undoes a known dcm2niix difference on its voxel values.
	refFix func(float64) float64
	// skipped files expected.
	skipped int
	write   func(t testing.TB, dir string) []*volume.Volume
}

func shuffledNames(seed uint64, n int) func(int) string {
	perm := rand.New(rand.NewPCG(seed, 2)).Perm(n)
	return func(k int) string { return fmt.Sprintf("IM%05d", perm[k]*7+3) }
}

func writeOrFatal(t testing.TB, dir string, v *volume.Volume, o WriteOptions) {
	t.Helper()
	if _, err := WriteSeries(dir, v, o); err != nil {
		t.Fatal(err)
	}
}

func fixtures() []fixture {
	ax := axial([3]float64{0.75, 0.75, 2.5}, [3]float64{95.5, -110.25, -310})
	x, y, z := [3]float64{1, 0, 0}, [3]float64{0, 1, 0}, [3]float64{0, 0, 1}
	neg := func(p [3]float64) [3]float64 { return [3]float64{-p[0], -p[1], -p[2]} }
	return []fixture{
		{name: "axial-shuffled", diff: true, write: func(t testing.TB, dir string) []*volume.Volume {
			v := phantom([3]int{32, 28, 9}, ax, 1)
			writeOrFatal(t, dir, v, WriteOptions{Name: shuffledNames(1, 9), InstanceNumber: func(k int) int { return 100 - k }, Extra: phiElements(t)})
			return []*volume.Volume{v}
		}},
		{name: "sagittal", diff: true, write: func(t testing.TB, dir string) []*volume.Volume {
			// i runs posterior→anterior, j inferior→superior (bottom-up rows), k right→left.
			v := phantom([3]int{30, 26, 8}, frame(y, z, neg(x), [3]float64{0.9, 0.8, 1.5}, [3]float64{60, -100, -80}), 2)
			writeOrFatal(t, dir, v, WriteOptions{Name: shuffledNames(2, 8)})
			return []*volume.Volume{v}
		}},
		{name: "oblique", diff: true, write: func(t testing.TB, dir string) []*volume.Volume {
			u, w := rotate(20, 2, rotate(-15, 0, neg(x))), rotate(20, 2, rotate(-15, 0, z))
			vv := rotate(20, 2, rotate(-15, 0, y))
			v := phantom([3]int{26, 30, 7}, frame(u, vv, w, [3]float64{0.8, 0.8, 3}, [3]float64{10, 20, -30}), 3)
			writeOrFatal(t, dir, v, WriteOptions{})
			return []*volume.Volume{v}
		}},
		{name: "big-endian", diff: true, write: func(t testing.TB, dir string) []*volume.Volume {
			v := phantom([3]int{20, 18, 6}, ax, 4)
			writeOrFatal(t, dir, v, WriteOptions{TransferSyntax: tsExplicitBE})
			return []*volume.Volume{v}
		}},
		{name: "implicit", diff: true, write: func(t testing.TB, dir string) []*volume.Volume {
			v := phantom([3]int{20, 18, 6}, ax, 5)
			writeOrFatal(t, dir, v, WriteOptions{TransferSyntax: tsImplicitLE})
			return []*volume.Volume{v}
		}},
		// dcm2niix v1.0.20220720 keeps only the low 12 bits of a signed
		// 12-bit value without sign extension (-1003 becomes 3093); medcad
		// sign-extends as PS3.5 8.1.1 says, so the comparison undoes it.
		{name: "signed-12bit", diff: true, refFix: func(x float64) float64 {
			if x >= 2048 {
				return x - 4096
			}
			return x
		}, write: func(t testing.TB, dir string) []*volume.Volume {
			v := phantom([3]int{20, 18, 6}, ax, 6)
			writeOrFatal(t, dir, v, WriteOptions{BitsStored: 12, Signed: true, Slope: 1, Intercept: 0})
			return []*volume.Volume{v}
		}},
		// Ones above BitsStored: the stored value is the low 12 bits,
		// sign-extended (PS3.5 8.1.1).
		{name: "signed-12bit-junk-high-bits", write: func(t testing.TB, dir string) []*volume.Volume {
			v := phantom([3]int{20, 18, 6}, ax, 6)
			writeOrFatal(t, dir, v, WriteOptions{BitsStored: 12, Signed: true, Slope: 1, Intercept: 0, JunkHighBits: true})
			return []*volume.Volume{v}
		}},
		{name: "slope", diff: true, write: func(t testing.TB, dir string) []*volume.Volume {
			v := phantom([3]int{20, 18, 6}, ax, 7)
			writeOrFatal(t, dir, v, WriteOptions{Slope: 0.5, Intercept: -1024})
			return []*volume.Volume{v}
		}},
		{name: "two-series-and-localizer", diff: true, skipped: 2, write: func(t testing.TB, dir string) []*volume.Volume {
			a := phantom([3]int{20, 18, 6}, ax, 8)
			b := phantom([3]int{16, 16, 5}, axial([3]float64{1, 1, 1.25}, [3]float64{0, 0, 0}), 9)
			seriesA := NewUID()
			writeOrFatal(t, dir, a, WriteOptions{SeriesUID: seriesA, SeriesNumber: 2, Name: func(k int) string { return fmt.Sprintf("a%d.dcm", k) }})
			writeOrFatal(t, dir, b, WriteOptions{SeriesNumber: 3, Name: func(k int) string { return fmt.Sprintf("b%d.dcm", k) }})
			// A coronal localizer in series A, and a text file.
			loc := phantom([3]int{24, 12, 1}, frame(neg(x), z, y, [3]float64{1.5, 1.5, 1}, [3]float64{100, 0, -400}), 10)
			writeOrFatal(t, dir, loc, WriteOptions{SeriesUID: seriesA, SeriesNumber: 2, ImageType: []string{"ORIGINAL", "PRIMARY", "LOCALIZER"}, Name: func(int) string { return "scout.dcm" }})
			if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a DICOM file, just notes\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return []*volume.Volume{a, b}
		}},
		{name: "missing-slice", warnings: []string{"missing slices: 1 gap(s) in a 2.50 mm grid"}, write: func(t testing.TB, dir string) []*volume.Volume {
			v := phantom([3]int{20, 18, 7}, ax, 11)
			writeOrFatal(t, dir, v, WriteOptions{})
			if err := os.Remove(filepath.Join(dir, "slice-0003.dcm")); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
		{name: "gantry-tilt", warnings: []string{"gantry tilt 12.0°"}, write: func(t testing.TB, dir string) []*volume.Volume {
			a := ax
			// Each slice moves 2.5 mm along z and 2.5·tan(12°) mm anteriorly.
			a[1][2] = 2.5 * math.Tan(12*math.Pi/180)
			v := phantom([3]int{20, 18, 6}, a, 12)
			writeOrFatal(t, dir, v, WriteOptions{})
			return []*volume.Volume{v}
		}},
	}
}

// suyashTestdata returns suyashkumar/dicom's testdata folder in the module cache.
func suyashTestdata(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/suyashkumar/dicom").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "testdata")
}
