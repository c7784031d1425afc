package segment

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/medcad/medcad/internal/realct"
	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages/metrics"
)

// realCTMinDice is the Dice the model trained on phantoms alone must reach
// on the real head CT against its bone preset (issue 21's goal is 0.92;
// measured 0.950 and 0.953 for phantom seeds 1 and 3, see docs/models.md).
const realCTMinDice = 0.92

// TestRealHeadCT trains the default model on 12 phantoms only and scores
// it on a real head CT (Debian's invesalius-examples, Cranium) against
// InVesalius's bone preset: cortical tables and diploë, no soft tissue,
// no head holder.
func TestRealHeadCT(t *testing.T) {
	if _, err := os.Stat(realct.CraniumPath); err != nil {
		testenv.Missing(t, realct.CraniumPath+" missing (apt-get install invesalius-examples)")
	}
	if testing.Short() {
		t.Skip("trains a model (about 10 s on 2 cores)")
	}
	t.Parallel()
	ct, err := realct.ReadInv3(realct.CraniumPath)
	if err != nil {
		t.Fatal(err)
	}
	if ct.Dim != [3]int{256, 256, 108} {
		t.Fatalf("Cranium is %v, want 256×256×108", ct.Dim)
	}
	ref := realct.BonePreset(ct)
	out := filepath.Join(t.TempDir(), "model.toml")
	res, err := Train(context.Background(), TrainOptions{Data: dataset(t, 1, 12), Out: out, Params: DefaultParams(), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := ReadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := Predict(context.Background(), m, ct)
	if err != nil {
		t.Fatal(err)
	}
	r, err := metrics.Evaluate(context.Background(), ref, pred, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trained on %d phantoms (training Dice %.4f); real head CT: Dice %.4f, HD95 %.2f mm, %d reference and %d predicted bone voxels",
		res.Cases, res.TrainDice, r.Dice, r.HD95, r.TruthVoxels, r.PredVoxels)
	if r.Dice < realCTMinDice {
		t.Errorf("real head CT Dice %.4f against the bone preset, want ≥ %.2f", r.Dice, realCTMinDice)
	}
	// Soft tissue (below the bone window) must not be called bone in bulk:
	// the brain inside the skull is no hole to fill. Voxels touching the
	// reference bone are its partial-volume surface, not bulk.
	soft := 0
	d := ct.Dim
	for v, p := range pred.U8 {
		if p == 0 || ct.I16[v] >= 100 {
			continue
		}
		i, j, k := v%d[0], (v/d[0])%d[1], v/(d[0]*d[1])
		touches := i > 0 && ref.U8[v-1] != 0 || i < d[0]-1 && ref.U8[v+1] != 0 ||
			j > 0 && ref.U8[v-d[0]] != 0 || j < d[1]-1 && ref.U8[v+d[0]] != 0 ||
			k > 0 && ref.U8[v-d[0]*d[1]] != 0 || k < d[2]-1 && ref.U8[v+d[0]*d[1]] != 0
		if !touches {
			soft++
		}
	}
	if frac := float64(soft) / float64(r.PredVoxels); frac > 0.02 {
		t.Errorf("%.1f%% of the predicted bone is below 100 HU and away from the reference bone (soft tissue, brain)", 100*frac)
	} else {
		t.Logf("%.1f%% of the predicted bone is below 100 HU away from the reference bone", 100*frac)
	}
}
