package segment

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages/metrics"
	"github.com/medcad/medcad/stages/phantom"
	"github.com/medcad/medcad/stages/volume"
)

// quickParams train in about a second on a few small cases.
func quickParams() Params {
	p := DefaultParams()
	p.Epochs, p.SamplesPerCase, p.Hidden = 3, 6000, 12
	return p
}

// dataset writes an nnU-Net phantom dataset once per (seed, cases).
var datasets sync.Map

func dataset(t *testing.T, seed uint64, cases int) string {
	t.Helper()
	key := [2]uint64{seed, uint64(cases)}
	if d, ok := datasets.Load(key); ok {
		return d.(string)
	}
	dir, err := os.MkdirTemp("", "segment-test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := phantom.WriteDataset(context.Background(), phantom.DatasetOptions{Options: phantom.Options{Seed: seed}, Dir: dir, Cases: cases}); err != nil {
		t.Fatal(err)
	}
	datasets.Store(key, dir)
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	datasets.Range(func(_, v any) bool { os.RemoveAll(v.(string)); return true })
	os.Exit(code)
}

func train(t *testing.T, data string, seed uint64) (*TrainResult, []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "model.toml")
	res, err := Train(context.Background(), TrainOptions{Data: data, Out: out, Params: quickParams(), Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

func TestTrainDeterministic(t *testing.T) {
	data := dataset(t, 31, 3)
	a, fa := train(t, data, 5)
	b, fb := train(t, data, 5)
	if a.Digest != b.Digest || string(fa) != string(fb) {
		t.Fatalf("two trainings with seed 5 gave %s and %s", a.Digest, b.Digest)
	}
	if a.Digest != Digest(fa) {
		t.Fatalf("reported digest %s, file digest %s", a.Digest, Digest(fa))
	}
	c, _ := train(t, data, 6)
	if c.Digest == a.Digest {
		t.Fatal("seeds 5 and 6 gave the same model")
	}
	if a.Cases != 3 || a.Samples != 3*6000 || a.TrainDice < 0.9 {
		t.Fatalf("result %+v", a)
	}
	// The canonical encoding round-trips byte for byte.
	m, err := Decode(fa)
	if err != nil {
		t.Fatal(err)
	}
	again, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(fa), string(again)); d != "" {
		t.Fatalf("Encode(Decode(file)) differs:\n%s", d)
	}
}

// TestQualitySmall is the small version of bench/segment's quality table:
// trained on 4 phantoms, tested on 3 held-out ones (another seed), the
// model beats the best threshold baseline found on the training cases.
func TestQualitySmall(t *testing.T) {
	ctx := context.Background()
	data := dataset(t, 41, 4)
	out := filepath.Join(t.TempDir(), "model.toml")
	if _, err := Train(ctx, TrainOptions{Data: data, Out: out, Params: quickParams(), Seed: 1}); err != nil {
		t.Fatal(err)
	}
	m, _, err := ReadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := ReadDataset(data)
	if err != nil {
		t.Fatal(err)
	}
	bestT, bestD := 0.0, -1.0
	for th := 150.0; th <= 900; th += 50 {
		var sum float64
		for _, c := range cases {
			ct, lab, err := loadCase(c)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Baseline(ctx, ct, BaselineOptions{ThresholdHU: th})
			if err != nil {
				t.Fatal(err)
			}
			r, err := metrics.Evaluate(ctx, lab, p, metrics.Options{})
			if err != nil {
				t.Fatal(err)
			}
			sum += r.Dice
		}
		if sum > bestD {
			bestT, bestD = th, sum
		}
	}
	var model, base, hd float64
	const n = 3
	for i := range n {
		c, err := phantom.Generate(ctx, phantom.Options{Seed: 42}, i)
		if err != nil {
			t.Fatal(err)
		}
		pred, err := Predict(ctx, m, c.CT)
		if err != nil {
			t.Fatal(err)
		}
		if err := volume.SameGrid(c.CT, pred, 0); err != nil || pred.DType != volume.Uint8 {
			t.Fatalf("prediction grid: %v, dtype %v", err, pred.DType)
		}
		r, err := metrics.Evaluate(ctx, c.Label, pred, metrics.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Baseline(ctx, c.CT, BaselineOptions{ThresholdHU: bestT})
		if err != nil {
			t.Fatal(err)
		}
		rb, err := metrics.Evaluate(ctx, c.Label, b, metrics.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: model Dice %.4f HD95 %.2f mm; baseline (%g HU) Dice %.4f", c.ID, r.Dice, r.HD95, bestT, rb.Dice)
		model, base, hd = model+r.Dice/n, base+rb.Dice/n, hd+r.HD95/n
	}
	if model < 0.95 || hd > 3 || model < base+0.03 {
		t.Errorf("mean Dice %.4f (want ≥ 0.95), HD95 %.2f mm (want ≤ 3), baseline Dice %.4f (want ≥ 0.03 below)", model, hd, base)
	}
}

// TestPredictGeometry: the mask has the input's shape and affine, also for
// an oblique affine and a float32 CT, and the localizer drops the table.
func TestPredictGeometry(t *testing.T) {
	ctx := context.Background()
	_, file := train(t, dataset(t, 31, 3), 1)
	m, err := Decode(file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := phantom.Generate(ctx, phantom.Options{Seed: 77}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.CT.Affine[0][1], c.CT.Affine[1][0] = 0.1, -0.1
	f := volume.New(volume.Float32, c.CT.Dim, c.CT.Affine)
	for i, v := range c.CT.I16 {
		f.F32[i] = float32(v)
	}
	for _, ct := range []*volume.Volume{c.CT, f} {
		pred, err := Predict(ctx, m, ct)
		if err != nil {
			t.Fatal(err)
		}
		if pred.Dim != ct.Dim || pred.Affine != ct.Affine || pred.DType != volume.Uint8 {
			t.Fatalf("mask %v %v %v, input %v %v", pred.Dim, pred.Affine, pred.DType, ct.Dim, ct.Affine)
		}
		for v, x := range pred.U8 {
			if x > 1 {
				t.Fatalf("voxel %d = %d, want 0 or 1", v, x)
			}
			if x == 1 && phantom.Tissue(c.Tissue.U8[v]) == phantom.Table {
				t.Fatalf("voxel %d on the table labelled bone", v)
			}
		}
	}
	// An all-air volume has no body: an empty mask, not an error.
	air := volume.New(volume.Int16, [3]int{8, 8, 4}, c.CT.Affine)
	for i := range air.I16 {
		air.I16[i] = -1000
	}
	pred, err := Predict(ctx, m, air)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range pred.U8 {
		if x != 0 {
			t.Fatal("bone found in air")
		}
	}
}

// TestSlabsInvariant: features do not depend on the slab size.
func TestSlabsInvariant(t *testing.T) {
	t.Parallel()
	c, err := phantom.Generate(context.Background(), phantom.Options{Seed: 3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := DefaultParams()
	p.MeanRadiiMM = []float64{1, 3, 7, 12}
	w, err := localize(c.CT, Localizer{BodyMinHU: -400, MarginMM: 3})
	if err != nil {
		t.Fatal(err)
	}
	flat := func(fs featureSet) ([]int32, []float32) {
		var idx []int32
		var x []float32
		for _, c := range fs.chunks {
			idx, x = append(idx, c.idx...), append(x, c.x...)
		}
		return idx, x
	}
	i1, x1 := flat(extractSlabs(w, p.features(), 1000))
	for _, slab := range []int{1, 3, 16} {
		i2, x2 := flat(extractSlabs(w, p.features(), slab))
		if !cmp.Equal(i1, i2) || !cmp.Equal(x1, x2) {
			t.Fatalf("slab %d: features differ from the whole-volume features", slab)
		}
	}
}

func TestBaseline(t *testing.T) {
	t.Parallel()
	v := volume.New(volume.Int16, [3]int{10, 4, 1}, volume.Identity([3]float64{1, 1, 1}))
	for j := range 4 {
		for i, h := range []int16{500, 500, 500, 500, 0, 900, 0, 0, 200, 2000} {
			v.I16[v.Index(i, j, 0)] = h
		}
	}
	got, err := Baseline(context.Background(), v, BaselineOptions{ThresholdHU: 300, KeepFraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint8{1, 1, 1, 1, 0, 0, 0, 0, 0, 0} // 16-voxel block kept; 4-voxel columns (<50 %) dropped
	for j := range 4 {
		if d := cmp.Diff(want, got.U8[j*10:(j+1)*10]); d != "" {
			t.Fatalf("row %d (-want +got):\n%s", j, d)
		}
	}
}

// oneLine fails unless err is a single line containing all of want.
func oneLine(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q lacks %q", msg, w)
		}
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestBadDatasets(t *testing.T) {
	src := dataset(t, 31, 3)
	for _, tc := range []struct {
		name   string
		break_ func(dir string) error
		want   []string
	}{
		{"no dataset.json", func(d string) error { return os.Remove(filepath.Join(d, "dataset.json")) }, []string{"dataset.json: missing"}},
		{"numTraining mismatch", func(d string) error {
			for _, f := range []string{"imagesTr/phantom_002_0000.nii.gz", "labelsTr/phantom_002.nii.gz"} {
				if err := os.Remove(filepath.Join(d, f)); err != nil {
					return err
				}
			}
			return nil
		}, []string{"dataset.json: numTraining is 3 but imagesTr/ has 2 cases"}},
		{"missing label", func(d string) error { return os.Remove(filepath.Join(d, "labelsTr", "phantom_001.nii.gz")) },
			[]string{"labelsTr/phantom_001.nii.gz: missing label for image phantom_001_0000.nii.gz"}},
		{"label without image", func(d string) error {
			return os.Remove(filepath.Join(d, "imagesTr", "phantom_002_0000.nii.gz"))
		}, []string{"phantom_002.nii.gz: label without image"}},
		{"empty", func(d string) error {
			for _, s := range []string{"imagesTr", "labelsTr"} {
				if err := os.RemoveAll(filepath.Join(d, s)); err != nil {
					return err
				}
			}
			return nil
		}, []string{"no training cases"}},
		{"label/image mismatch", func(d string) error {
			other := filepath.Join(d, "labelsTr", "phantom_000.nii.gz")
			b, err := os.ReadFile(filepath.Join(d, "labelsTr", "phantom_001.nii.gz"))
			if err != nil {
				return err
			}
			return os.WriteFile(other, b, 0o644)
		}, []string{"labelsTr/phantom_000.nii.gz: label does not match image phantom_000_0000.nii.gz"}},
		{"no bone in any label", func(d string) error {
			for _, id := range []string{"phantom_000", "phantom_001", "phantom_002"} {
				path := filepath.Join(d, "labelsTr", id+".nii.gz")
				v, err := volume.Read(path)
				if err != nil {
					return err
				}
				clear(v.U8)
				if err := volume.Write(path, v); err != nil {
					return err
				}
			}
			return nil
		}, []string{"the labels have no bone"}},
		{"corrupt image", func(d string) error {
			return os.WriteFile(filepath.Join(d, "imagesTr", "phantom_000_0000.nii.gz"), []byte("not a nifti"), 0o644)
		}, []string{"phantom_000_0000.nii.gz"}},
		{"bad dataset.json", func(d string) error {
			return os.WriteFile(filepath.Join(d, "dataset.json"), []byte("{"), 0o644)
		}, []string{"dataset.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, src)
			if err := tc.break_(dir); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "m.toml")
			_, err := Train(context.Background(), TrainOptions{Data: dir, Out: out, Params: quickParams(), Seed: 1})
			oneLine(t, err, tc.want...)
			if !errors.Is(err, ErrDataset) {
				t.Errorf("error %v is not ErrDataset", err)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a model was written despite the error")
			}
		})
	}
}

func TestBadModels(t *testing.T) {
	_, good := train(t, dataset(t, 31, 3), 1)
	s := string(good)
	for _, tc := range []struct {
		name, text string
		want       string
	}{
		{"empty", "", "format"},
		{"garbage", "\x00\x01binary", "line 1"},
		{"truncated", s[:len(s)/2], "line"},
		{"wrong format", strings.Replace(s, Format, "other-model", 1), "format \"other-model\""},
		{"future version", strings.Replace(s, "version = 1", "version = 2", 1), "version 2"},
		{"unknown key", strings.Replace(s, "version = 1", "version = 1\nextra = true", 1), "unknown key \"extra\""},
		{"unknown feature", strings.Replace(s, `kind = "gradient"`, `kind = "magic"`, 1), "unknown kind \"magic\""},
		{"nan weight", regexp.MustCompile(`(?m)^(\s*)b2 = .*$`).ReplaceAllString(s, "${1}b2 = nan"), "non-finite"},
		{"zero std", strings.Replace(s, "std = [", "std = [0.0, ", 1), "mlp"},
		{"negative hole bound", regexp.MustCompile(`(?m)^(\s*)max_hole_mm2 = .*$`).ReplaceAllString(s, "${1}max_hole_mm2 = -1.0"), "max_hole_mm2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.toml")
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := ReadModel(path)
			oneLine(t, err, path, tc.want)
			if !errors.Is(err, ErrModel) {
				t.Errorf("error %v is not ErrModel", err)
			}
		})
	}
}

func TestLoadParams(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text, want string
	}{
		{"ok", "hidden = 8\nmean_radii_mm = [2.0]\n", ""},
		{"unknown", "hiden = 8\n", "unknown key hiden"},
		{"syntax", "hidden = \n", ":1:"},
		{"range", "epochs = 0\n", "epochs = 0"},
		{"hole bound", "max_hole_mm2 = -5.0\n", "max_hole_mm2 = -5"},
		{"type", "hidden = \"many\"\n", "params.toml"},
	} {
		path := filepath.Join(dir, "params.toml")
		if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := LoadParams(path)
		if tc.want == "" {
			if err != nil || p.Hidden != 8 || len(p.MeanRadiiMM) != 1 || p.Epochs != DefaultParams().Epochs {
				t.Errorf("%s: %+v, %v", tc.name, p, err)
			}
			continue
		}
		oneLine(t, err, path, tc.want)
		if !errors.Is(err, ErrParams) {
			t.Errorf("%s: %v is not ErrParams", tc.name, err)
		}
	}
}

func TestMapFiles(t *testing.T) {
	t.Parallel()
	data := dataset(t, 31, 3)
	dir := copyDir(t, filepath.Join(data, "imagesTr"))
	if err := os.WriteFile(filepath.Join(dir, "broken_0000.nii.gz"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "masks")
	seg := func(ctx context.Context, ct *volume.Volume) (*volume.Volume, error) {
		return Baseline(ctx, ct, BaselineOptions{ThresholdHU: 300})
	}
	res, err := MapFiles(context.Background(), MapOptions{In: dir, Out: out, Segment: seg})
	oneLine(t, err, "1 of 4 files failed")
	if len(res) != 4 || !strings.Contains(res[0].Error, "broken_0000.nii.gz") {
		t.Fatalf("results %+v", res)
	}
	for _, id := range []string{"phantom_000", "phantom_001", "phantom_002"} {
		mask, err := volume.Read(filepath.Join(out, id+".nii.gz"))
		if err != nil {
			t.Fatal(err)
		}
		ct, err := volume.Read(filepath.Join(dir, id+"_0000.nii.gz"))
		if err != nil {
			t.Fatal(err)
		}
		if err := volume.SameGrid(ct, mask, 1e-6); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// TestBaselineMatchesScipy runs bench/segment/baseline.py (nibabel and
// scipy.ndimage) as the oracle: the masks must be identical.
func TestBaselineMatchesScipy(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t, "scipy", "nibabel")
	dir := t.TempDir()
	for i := range 2 {
		c, err := phantom.Generate(context.Background(), phantom.Options{Seed: 13}, i)
		if err != nil {
			t.Fatal(err)
		}
		in := filepath.Join(dir, "ct.nii.gz")
		if err := volume.Write(in, c.CT); err != nil {
			t.Fatal(err)
		}
		for _, th := range []float64{150, 600} {
			got, err := Baseline(context.Background(), c.CT, BaselineOptions{ThresholdHU: th})
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "scipy.nii.gz")
			cmd := exec.Command(py, "../../bench/segment/baseline.py", fmt.Sprint(th), in, out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("baseline.py: %v\n%s", err, b)
			}
			want, err := volume.Read(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := volume.SameGrid(want, got, 1e-4); err != nil {
				t.Fatal(err)
			}
			diff := 0
			for v := range got.U8 {
				if got.U8[v] != want.U8[v] {
					diff++
				}
			}
			if diff != 0 {
				t.Errorf("case %d, %g HU: %d voxels differ from scipy", i, th, diff)
			}
		}
	}
}

// TestLabelRulesV1: on cortex-only labels (12 training cases, as in the
// issue's quality setting) the calibration turns hole filling off, and the
// model still finds the cortex on held-out cases.
func TestLabelRulesV1(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := phantom.WriteDataset(ctx, phantom.DatasetOptions{Options: phantom.Options{Seed: 51, LabelRules: phantom.RulesV1}, Dir: dir, Cases: 12}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.toml")
	res, err := Train(ctx, TrainOptions{Data: dir, Out: out, Params: DefaultParams(), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.FillHoles || res.TrainDice < 0.9 {
		t.Fatalf("v1 training: fill holes %v, training Dice %.4f", res.FillHoles, res.TrainDice)
	}
	m, _, err := ReadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	var mean float64
	for i := range n {
		c, err := phantom.Generate(ctx, phantom.Options{Seed: 52, LabelRules: phantom.RulesV1}, i)
		if err != nil {
			t.Fatal(err)
		}
		pred, err := Predict(ctx, m, c.CT)
		if err != nil {
			t.Fatal(err)
		}
		r, err := metrics.Evaluate(ctx, c.Label, pred, metrics.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s (v1): Dice %.4f HD95 %.2f mm, %d true and %d predicted bone voxels", c.ID, r.Dice, r.HD95, r.TruthVoxels, r.PredVoxels)
		mean += r.Dice / n
	}
	if mean < 0.93 {
		t.Errorf("v1 held-out mean Dice %.4f, want ≥ 0.93", mean)
	}
}
