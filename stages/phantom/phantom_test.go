package phantom

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages/volume"
)

func gen(t *testing.T, opts Options, i int) *Case {
	t.Helper()
	c, err := Generate(context.Background(), opts, i)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	a := gen(t, Options{Seed: 7}, 2)
	b := gen(t, Options{Seed: 7}, 2)
	if !slices.Equal(a.CT.I16, b.CT.I16) || !slices.Equal(a.Label.U8, b.Label.U8) || a.CT.Affine != b.CT.Affine {
		t.Fatal("same seed and case gave different volumes")
	}
	if diff := cmp.Diff(a.Facts, b.Facts); diff != "" {
		t.Fatalf("facts differ (-a +b):\n%s", diff)
	}
	c := gen(t, Options{Seed: 8}, 2)
	if c.CT.Dim == a.CT.Dim && slices.Equal(a.CT.I16, c.CT.I16) {
		t.Fatal("different seeds gave the same volume")
	}
	d := gen(t, Options{Seed: 7}, 3)
	if d.CT.Dim == a.CT.Dim && slices.Equal(a.CT.I16, d.CT.I16) {
		t.Fatal("different cases gave the same volume")
	}
}

// interior returns the HU of voxels whose 5×5 in-plane neighbourhood and
// both slice neighbours are of tissue tt (so blur barely reaches them).
func interior(c *Case, tt Tissue) []float64 {
	nx, ny, nz := c.CT.Dim[0], c.CT.Dim[1], c.CT.Dim[2]
	var out []float64
	for k := 1; k < nz-1; k++ {
		for j := 2; j < ny-2; j++ {
			for i := 2; i < nx-2; i++ {
				ok := true
				for dj := -2; dj <= 2 && ok; dj++ {
					for di := -2; di <= 2 && ok; di++ {
						ok = Tissue(c.Tissue.U8[c.CT.Index(i+di, j+dj, k)]) == tt
					}
				}
				ok = ok && Tissue(c.Tissue.U8[c.CT.Index(i, j, k-1)]) == tt && Tissue(c.Tissue.U8[c.CT.Index(i, j, k+1)]) == tt
				if ok {
					out = append(out, float64(c.CT.I16[c.CT.Index(i, j, k)]))
				}
			}
		}
	}
	return out
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	sort.Float64s(s)
	return s[len(s)/2]
}

// TestStructureHU checks that every structure, and every confounder, is
// present in a set of cases with the HU range the issue asks for (the
// median of the structure's interior voxels, so noise averages out; a
// margin allows for residual partial volume).
func TestStructureHU(t *testing.T) {
	t.Parallel()
	ranges := map[Tissue][2]float64{
		Fat: {-120, 70}, Muscle: {-120, 70}, Cortical: {950, 2000}, Canal: {0, 60},
		Trabecular: {80, 550}, Vessel: {150, 450}, Plaque: {500, 1200}, Table: {250, 700}, Metal: {2600, 3071},
	}
	seen := map[Tissue]int{}
	osteo := 0
	// Plaques and implants are a few voxels across: blur lowers their
	// interior, so their brightest voxel is checked instead.
	small := map[Tissue]bool{Plaque: true, Metal: true}
	for i := range 10 {
		c := gen(t, Options{Seed: 11}, i)
		for tt, r := range ranges {
			if small[tt] {
				peak, n := -1e9, 0
				for v, x := range c.Tissue.U8 {
					if Tissue(x) == tt {
						peak, n = max(peak, float64(c.CT.I16[v])), n+1
					}
				}
				if n == 0 {
					continue
				}
				seen[tt]++
				if peak < r[0]*0.8 || peak > r[1]+4*c.Facts.NoiseHU {
					t.Errorf("case %d: %v peak HU %.0f outside [%g, %g]", i, tt, peak, r[0], r[1])
				}
				continue
			}
			v := interior(c, tt)
			if len(v) < 5 {
				continue
			}
			seen[tt]++
			// Allow 4 standard errors of the median for the noise.
			se := 4 * 1.25 * c.Facts.NoiseHU / math.Sqrt(float64(len(v)))
			if m := median(v); m < r[0]-se || m > r[1]+se {
				t.Errorf("case %d: %v median HU %.0f outside [%g, %g] ± %.0f (%d voxels)", i, tt, m, r[0], r[1], se, len(v))
			}
		}
		if c.Facts.Osteoporotic {
			osteo++
			if v := interior(c, Trabecular); len(v) > 5 {
				if m := median(v); m < 75 || m > 205 {
					t.Errorf("case %d: osteoporotic trabecular median %.0f outside [80, 200]", i, m)
				}
			}
		}
		if c.Facts.NoiseHU < 5 || c.Facts.NoiseHU > 30 {
			t.Errorf("case %d: noise %g HU", i, c.Facts.NoiseHU)
		}
		sp := c.CT.Spacing()
		if sp[0] < 0.6 || sp[0] > 1.0 || sp[1] != sp[0] || sp[2] < 0.625 || sp[2] > 3 {
			t.Errorf("case %d: spacing %v", i, sp)
		}
		if d := c.CT.Dim; d[0] < 80 || d[0] > 110 || d[2] < 50 || d[2] > 80 {
			t.Errorf("case %d: small case has shape %v", i, d)
		}
	}
	for _, tt := range []Tissue{Fat, Muscle, Cortical, Trabecular, Canal, Vessel, Plaque, Table, Metal} {
		if seen[tt] == 0 {
			t.Errorf("no case has %v", tt)
		}
	}
	if osteo == 0 {
		t.Error("no osteoporotic case among 10")
	}
}

// TestThresholdFails shows why the confounders matter: at any single HU
// threshold, some non-bone voxels are brighter than some bone voxels.
func TestConfoundersOverlapBone(t *testing.T) {
	t.Parallel()
	c := gen(t, Options{Seed: 11}, 0)
	minBone, maxOther := 1e9, -1e9
	for v, tt := range c.Tissue.U8 {
		h := float64(c.CT.I16[v])
		switch Tissue(tt) {
		case Trabecular:
			minBone = min(minBone, h)
		case Vessel, Table:
			maxOther = max(maxOther, h)
		}
	}
	if maxOther <= minBone {
		t.Fatalf("vessels/table (max %g HU) never reach trabecular bone (min %g HU)", maxOther, minBone)
	}
}

// TestLabelRules checks the partial-volume labels: every voxel whose
// neighbourhood is all bone (by the rules) is labelled, every label lies
// on or next to bone, the added surface voxels are bright, and v2 adds
// the bone interior to v1's cortex.
func TestLabelRules(t *testing.T) {
	t.Parallel()
	v1 := gen(t, Options{Seed: 3, LabelRules: RulesV1}, 1)
	v2 := gen(t, Options{Seed: 3, LabelRules: RulesV2}, 1)
	if !slices.Equal(v1.CT.I16, v2.CT.I16) {
		t.Fatal("label rules changed the CT")
	}
	d := v1.CT.Dim
	muscle := median(interior(v1, Muscle))
	for _, c := range []*Case{v1, v2} {
		rules := c.Facts.Rules
		// near reports whether all / any of the 3×3×3 neighbourhood's
		// centres are bone. For any, bone is v2's (the whole bone): a thin
		// cortex, such as an endplate between two slices' centres, is
		// labelled by its partial volume though no centre lies in it, and
		// it always borders the rest of its bone.
		near := func(i, j, k int, all bool) bool {
			rr := rules
			if !all {
				rr = RulesV2
			}
			for dk := -1; dk <= 1; dk++ {
				for dj := -1; dj <= 1; dj++ {
					for di := -1; di <= 1; di++ {
						a, b, e := min(max(i+di, 0), d[0]-1), min(max(j+dj, 0), d[1]-1), min(max(k+dk, 0), d[2]-1)
						if IsBone(Tissue(c.Tissue.U8[c.CT.Index(a, b, e)]), rr) != all {
							return !all
						}
					}
				}
			}
			return all
		}
		centre, labelled, surface := 0, 0, 0
		var surfaceHU float64
		for k := range d[2] {
			for j := range d[1] {
				for i := range d[0] {
					v := c.CT.Index(i, j, k)
					bone := IsBone(Tissue(c.Tissue.U8[v]), rules)
					lab := c.Label.U8[v] == 1
					if bone {
						centre++
					}
					if lab {
						labelled++
					}
					switch {
					case near(i, j, k, true) && !lab:
						t.Fatalf("%s: voxel (%d,%d,%d) inside bone is not labelled", rules, i, j, k)
					case lab && !near(i, j, k, false):
						t.Fatalf("%s: voxel (%d,%d,%d) labelled bone with no bone next to it", rules, i, j, k)
					case lab && !bone:
						surface++
						surfaceHU += float64(c.CT.I16[v])
					}
				}
			}
		}
		if surface == 0 || labelled <= centre/2 {
			t.Fatalf("%s: %d labelled voxels, %d bone voxel centres, %d partial-volume surface voxels", rules, labelled, centre, surface)
		}
		// Surface voxels are bone because bone brightens them.
		if m := surfaceHU / float64(surface); m < muscle+LabelExcessHU/2 {
			t.Errorf("%s: partial-volume surface voxels average %.0f HU, soft tissue %.0f", rules, m, muscle)
		}
	}
	n1, n2 := 0, 0
	for v := range v1.Label.U8 {
		if v1.Label.U8[v] > v2.Label.U8[v] {
			t.Fatalf("voxel %d is v1 bone but not v2 bone", v)
		}
		n1 += int(v1.Label.U8[v])
		n2 += int(v2.Label.U8[v])
	}
	if n1 == 0 || n2 <= n1 {
		t.Fatalf("v1 has %d bone voxels, v2 %d: v2 must add the bone interior", n1, n2)
	}
}

func TestFullSize(t *testing.T) {
	t.Parallel()
	for i := range 5 {
		s := newScene(Options{Seed: 1, Size: Full, LabelRules: RulesV2}, i)
		if d := s.dim; d[0] != 512 || d[1] != 512 || d[2] < 280 || d[2] > 320 {
			t.Errorf("full case %d: shape %v", i, d)
		}
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{Size: "huge"}, {LabelRules: "v3"}} {
		if _, err := Generate(context.Background(), o, 0); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if _, err := WriteDataset(context.Background(), DatasetOptions{Dir: t.TempDir(), Cases: 0}); err == nil {
		t.Error("0 cases: no error")
	}
	if _, err := WriteDataset(context.Background(), DatasetOptions{Dir: t.TempDir(), Cases: 1, Format: "png"}); err == nil {
		t.Error("format png: no error")
	}
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "mine.txt"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := WriteDataset(context.Background(), DatasetOptions{Dir: full, Cases: 1})
	if err == nil || !strings.Contains(err.Error(), full+": not empty") {
		t.Errorf("non-empty folder: %v", err)
	}
}

func TestWriteNNUNet(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sum, err := WriteDataset(context.Background(), DatasetOptions{Options: Options{Seed: 5}, Dir: dir, Cases: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 2 || sum[1].ID != "phantom_001" {
		t.Fatalf("summary %+v", sum)
	}
	for i := range 2 {
		c := gen(t, Options{Seed: 5}, i)
		ct, err := volume.Read(filepath.Join(dir, "imagesTr", c.ID+"_0000.nii.gz"))
		if err != nil {
			t.Fatal(err)
		}
		lab, err := volume.Read(filepath.Join(dir, "labelsTr", c.ID+".nii.gz"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ct.I16, c.CT.I16) || !slices.Equal(lab.U8, c.Label.U8) || ct.Affine.MaxDiff(c.CT.Affine) > 1e-4 {
			t.Fatalf("case %d: NIfTI differs from the generated case", i)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "dataset.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"numTraining": 2`, `"file_ending": ".nii.gz"`, `"0": "CT"`, `"bone": 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("dataset.json lacks %s:\n%s", want, b)
		}
	}
}

// TestDICOMOracles checks that dcmtk reads the series and that dcm2niix
// converts it to exactly the generated HU volume and geometry.
func TestDICOMOracles(t *testing.T) {
	t.Parallel()
	dcmdump := testenv.LookPath(t, "dcmdump")
	dcm2niix := testenv.LookPath(t, "dcm2niix")
	for _, idx := range []int{0, 1, 2, 3} {
		c := gen(t, Options{Seed: 21}, idx)
		dir := t.TempDir()
		if err := WriteDICOM(filepath.Join(dir, "CT"), c); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(dcmdump, "-E", filepath.Join(dir, "CT", "IM00001.dcm")).CombinedOutput()
		if err != nil {
			t.Fatalf("dcmdump: %v\n%s", err, out)
		}
		// The fake identity is there for de-identification to remove.
		for _, want := range []string{"CTImageStorage", "LittleEndianExplicit", "(0028,0101) US " + itoa(c.Facts.BitsStored),
			"(0010,0010) PN [" + c.Facts.Patient.Name + "]", "(0010,0020) LO [" + c.Facts.Patient.ID + "]",
			"(0010,0030) DA [" + c.Facts.Patient.BirthDate + "]", "(0008,0080) LO [" + c.Facts.Patient.Institution + "]"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("case %d: dcmdump output lacks %q", idx, want)
			}
		}
		nii := filepath.Join(dir, "nii")
		os.Mkdir(nii, 0o755)
		if out, err := exec.Command(dcm2niix, "-z", "y", "-b", "n", "-f", "ct", "-o", nii, filepath.Join(dir, "CT")).CombinedOutput(); err != nil {
			t.Fatalf("dcm2niix: %v\n%s", err, out)
		}
		got, err := volume.Read(filepath.Join(nii, "ct.nii.gz"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Dim != c.CT.Dim {
			t.Fatalf("case %d: dcm2niix shape %v, want %v", idx, got.Dim, c.CT.Dim)
		}
		if d := got.Affine.MaxDiff(c.CT.Affine); d > 1e-3 {
			t.Errorf("case %d: dcm2niix affine differs by %g mm:\n%v\nwant\n%v", idx, d, got.Affine, c.CT.Affine)
		}
		for v := range c.CT.I16 {
			if got.At(v) != float64(c.CT.I16[v]) {
				t.Fatalf("case %d: voxel %d: dcm2niix %g HU, generated %d", idx, v, got.At(v), c.CT.I16[v])
			}
		}
	}
}
