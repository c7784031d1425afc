package metrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages/volume"
)

// goldenFile is testdata/golden.json, written by testdata/reference.py.
type goldenFile struct {
	TolerancesMM []float64 `json:"tolerances_mm"`
	Cases        []struct {
		Name      string     `json:"name"`
		Dim       [3]int     `json:"dim"`
		SpacingMM [3]float64 `json:"spacing_mm"`
		Metrics   struct {
			Dice, IoU            float64
			HD, HD95, ASSD, MASD *float64
			NSD                  map[string]float64
			TruthVoxels          int `json:"truth_voxels"`
			PredVoxels           int `json:"pred_voxels"`
			Flags                []string
		} `json:"metrics"`
	} `json:"cases"`
}

func readGolden(t *testing.T, data []byte) goldenFile {
	t.Helper()
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("golden.json: %v", err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("golden.json: no cases")
	}
	return g
}

func readCase(t *testing.T, name string, dim [3]int, spacing [3]float64) *volume.Volume {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "cases", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	v := volume.New(volume.Uint8, dim, volume.Identity(spacing))
	if len(b) != len(v.U8) {
		t.Fatalf("%s: %d bytes, want %d", name, len(b), len(v.U8))
	}
	copy(v.U8, b)
	return v
}

func relClose(got, want float64) bool {
	if math.IsInf(got, 1) && math.IsInf(want, 1) {
		return true
	}
	return math.Abs(got-want) <= 1e-6*math.Max(1, math.Abs(want))
}

// TestGoldenScipy compares every metric with the values computed by the
// independent numpy/scipy reference (testdata/reference.py) to 1e-6
// relative.
func TestGoldenScipy(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	g := readGolden(t, data)
	inf := func(p *float64) float64 {
		if p == nil {
			return math.Inf(1)
		}
		return *p
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			truth := readCase(t, c.Name+".truth.u8.gz", c.Dim, c.SpacingMM)
			pred := readCase(t, c.Name+".pred.u8.gz", c.Dim, c.SpacingMM)
			r, err := Evaluate(context.Background(), truth, pred, Options{TolerancesMM: g.TolerancesMM})
			if err != nil {
				t.Fatal(err)
			}
			w := c.Metrics
			checks := []struct {
				name      string
				got, want float64
			}{
				{"dice", r.Dice, w.Dice}, {"iou", r.IoU, w.IoU},
				{"hd", r.HD, inf(w.HD)}, {"hd95", r.HD95, inf(w.HD95)},
				{"assd", r.ASSD, inf(w.ASSD)}, {"masd", r.MASD, inf(w.MASD)},
			}
			for _, ch := range checks {
				if !relClose(ch.got, ch.want) {
					t.Errorf("%s = %.17g, scipy reference %.17g", ch.name, ch.got, ch.want)
				}
			}
			if diff := cmp.Diff(w.NSD, r.NSD, cmpopts.EquateApprox(1e-6, 0)); diff != "" {
				t.Errorf("nsd (-scipy +go):\n%s", diff)
			}
			if r.TruthVoxels != w.TruthVoxels || r.PredVoxels != w.PredVoxels {
				t.Errorf("voxels = %d/%d, want %d/%d", r.TruthVoxels, r.PredVoxels, w.TruthVoxels, w.PredVoxels)
			}
			if diff := cmp.Diff(w.Flags, r.Flags, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("flags (-scipy +go):\n%s", diff)
			}
		})
	}
}

// TestGoldenReproducible reruns the reference script with Debian's scipy on
// the committed cases and checks that it still produces golden.json, so the
// committed values are what the reference computes.
func TestGoldenReproducible(t *testing.T) {
	py := testenv.Python(t, "numpy", "scipy")
	t.Parallel()
	cmd := exec.Command(py, "testdata/reference.py", "compute", "testdata")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference.py: %v\n%s", err, stderr.Bytes())
	}
	committed, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	want, got := readGolden(t, committed), readGolden(t, out)
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(1e-12, 0)); diff != "" {
		t.Errorf("reference.py no longer reproduces golden.json (-committed +rerun):\n%s", diff)
	}
}
