// Command quality measures the built-in bone model against the threshold
// baseline on held-out phantoms: it generates training and test sets
// (label rules v2, small), trains, searches the best single threshold on
// the training cases, and prints per-case Dice and HD95 for both.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/medcad/medcad/internal/realct"
	"github.com/medcad/medcad/stages/metrics"
	"github.com/medcad/medcad/stages/phantom"
	"github.com/medcad/medcad/stages/segment"
	"github.com/medcad/medcad/stages/volume"
)

func main() {
	train := flag.Int("train", 12, "training cases")
	test := flag.Int("test", 8, "test cases")
	trainSeed := flag.Uint64("train-seed", 1, "phantom seed of the training set")
	testSeed := flag.Uint64("test-seed", 2, "phantom seed of the test set")
	seed := flag.Uint64("seed", 1, "training seed")
	dir := flag.String("dir", "", "work folder (default: a temporary one)")
	jsonOut := flag.Bool("json", false, "JSON output")
	rules := flag.String("label-rules", phantom.RulesV2, "label rules of both sets: v1 or v2")
	params := flag.String("params", "", "training params TOML (default: the defaults)")
	real := flag.String("real", realct.CraniumPath, "real head CT (InVesalius project) to score against its bone preset; skipped when missing")
	flag.Parse()
	if err := run(context.Background(), config{*train, *test, *trainSeed, *testSeed, *seed, *dir, *rules, *real, *params, *jsonOut}); err != nil {
		fmt.Fprintln(os.Stderr, "quality:", err)
		os.Exit(1)
	}
}

type caseResult struct {
	ID           string  `json:"id"`
	Osteoporotic bool    `json:"osteoporotic"`
	Metal        bool    `json:"metal"`
	Dice         float64 `json:"dice"`
	HD95         float64 `json:"hd95_mm"`
	BaseDice     float64 `json:"baseline_dice"`
	BaseHD95     float64 `json:"baseline_hd95_mm"`
}

type config struct {
	nTrain, nTest             int
	trainSeed, testSeed, seed uint64
	dir, rules, real, params  string
	jsonOut                   bool
}

func run(ctx context.Context, cfg config) error {
	nTrain, nTest, trainSeed, testSeed, seed, dir, jsonOut := cfg.nTrain, cfg.nTest, cfg.trainSeed, cfg.testSeed, cfg.seed, cfg.dir, cfg.jsonOut
	if dir == "" {
		d, err := os.MkdirTemp("", "medcad-quality")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	trainDir := filepath.Join(dir, "train")
	if _, err := phantom.WriteDataset(ctx, phantom.DatasetOptions{Options: phantom.Options{Seed: trainSeed, LabelRules: cfg.rules}, Dir: trainDir, Cases: nTrain}); err != nil {
		return err
	}
	params := segment.DefaultParams()
	if cfg.params != "" {
		p, err := segment.LoadParams(cfg.params)
		if err != nil {
			return err
		}
		params = p
	}
	t0 := time.Now()
	res, err := segment.Train(ctx, segment.TrainOptions{Data: trainDir, Out: filepath.Join(dir, "model.toml"), Params: params, Seed: seed})
	if err != nil {
		return err
	}
	trainSec := time.Since(t0).Seconds()
	m, _, err := segment.ReadModel(filepath.Join(dir, "model.toml"))
	if err != nil {
		return err
	}
	// Best single threshold on the training cases.
	cases, err := segment.ReadDataset(trainDir)
	if err != nil {
		return err
	}
	var cts, labels []*volume.Volume
	for _, c := range cases {
		ct, err := volume.Read(c.Image)
		if err != nil {
			return err
		}
		lab, err := volume.Read(c.Label)
		if err != nil {
			return err
		}
		cts, labels = append(cts, ct), append(labels, lab)
	}
	bestT, bestD := 0.0, -1.0
	for t := 100.0; t <= 1000; t += 25 {
		var sum float64
		for i := range cts {
			p, err := segment.Baseline(ctx, cts[i], segment.BaselineOptions{ThresholdHU: t})
			if err != nil {
				return err
			}
			sum += dice(labels[i], p)
		}
		if sum/float64(len(cts)) > bestD {
			bestT, bestD = t, sum/float64(len(cts))
		}
	}
	var out []caseResult
	var md, mh, bd, bh float64
	for i := range nTest {
		c, err := phantom.Generate(ctx, phantom.Options{Seed: testSeed, LabelRules: cfg.rules}, i)
		if err != nil {
			return err
		}
		pred, err := segment.Predict(ctx, m, c.CT)
		if err != nil {
			return err
		}
		r, err := metrics.Evaluate(ctx, c.Label, pred, metrics.Options{})
		if err != nil {
			return err
		}
		base, err := segment.Baseline(ctx, c.CT, segment.BaselineOptions{ThresholdHU: bestT})
		if err != nil {
			return err
		}
		rb, err := metrics.Evaluate(ctx, c.Label, base, metrics.Options{})
		if err != nil {
			return err
		}
		out = append(out, caseResult{ID: c.ID, Osteoporotic: c.Facts.Osteoporotic, Metal: c.Facts.Metal, Dice: r.Dice, HD95: r.HD95, BaseDice: rb.Dice, BaseHD95: rb.HD95})
		md += r.Dice / float64(nTest)
		mh += r.HD95 / float64(nTest)
		bd += rb.Dice / float64(nTest)
		bh += rb.HD95 / float64(nTest)
	}
	real, err := scoreReal(ctx, cfg.real, m, bestT)
	if err != nil {
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"train": res, "train_seconds": trainSec, "baseline_threshold_hu": bestT, "cases": out,
			"mean_dice": md, "mean_hd95_mm": mh, "baseline_mean_dice": bd, "baseline_mean_hd95_mm": bh, "real_ct": real})
	}
	fmt.Printf("training: %d cases, %d samples, %.1f s, training-set Dice %.4f, threshold %.2f, fill holes %v, digest %s\n",
		res.Cases, res.Samples, trainSec, res.TrainDice, res.Threshold, res.FillHoles, res.Digest)
	fmt.Printf("baseline: best threshold on the training cases %.0f HU (training Dice %.4f)\n\n", bestT, bestD)
	fmt.Printf("| case | osteoporotic | metal | model Dice | model HD95 mm | baseline Dice | baseline HD95 mm |\n|---|---|---|---|---|---|---|\n")
	for _, r := range out {
		fmt.Printf("| %s | %v | %v | %.4f | %.2f | %.4f | %.2f |\n", r.ID, r.Osteoporotic, r.Metal, r.Dice, r.HD95, r.BaseDice, r.BaseHD95)
	}
	fmt.Printf("| **mean** | | | **%.4f** | **%.2f** | **%.4f** | **%.2f** |\n", md, mh, bd, bh)
	fmt.Printf("\nDice margin over the baseline: %+.4f\n", md-bd)
	if real == nil {
		fmt.Printf("\nreal CT: skipped, %s is missing (apt-get install invesalius-examples)\n", cfg.real)
		return nil
	}
	fmt.Printf("\nreal CT (Cranium head CT, %d×%d×%d) against the InVesalius bone preset (%d…%d HU, largest components), model trained on the phantoms above:\n",
		real.Dim[0], real.Dim[1], real.Dim[2], realct.BoneMinHU, realct.BoneMaxHU)
	fmt.Printf("| model Dice | model HD95 mm | baseline Dice (%.0f HU) | baseline HD95 mm |\n|---|---|---|---|\n", bestT)
	fmt.Printf("| %.4f | %.2f | %.4f | %.2f |\n", real.Dice, real.HD95, real.BaseDice, real.BaseHD95)
	return nil
}

// realResult scores a model on a real CT against its reference mask.
type realResult struct {
	Dim      [3]int  `json:"shape"`
	Dice     float64 `json:"dice"`
	HD95     float64 `json:"hd95_mm"`
	BaseDice float64 `json:"baseline_dice"`
	BaseHD95 float64 `json:"baseline_hd95_mm"`
}

// scoreReal scores m and the threshold baseline at thresholdHU on the real
// CT at path against its bone preset; nil when the file is missing.
func scoreReal(ctx context.Context, path string, m *segment.Model, thresholdHU float64) (*realResult, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil
	}
	ct, err := realct.ReadInv3(path)
	if err != nil {
		return nil, err
	}
	ref := realct.BonePreset(ct)
	pred, err := segment.Predict(ctx, m, ct)
	if err != nil {
		return nil, err
	}
	r, err := metrics.Evaluate(ctx, ref, pred, metrics.Options{})
	if err != nil {
		return nil, err
	}
	base, err := segment.Baseline(ctx, ct, segment.BaselineOptions{ThresholdHU: thresholdHU})
	if err != nil {
		return nil, err
	}
	rb, err := metrics.Evaluate(ctx, ref, base, metrics.Options{})
	if err != nil {
		return nil, err
	}
	return &realResult{Dim: ct.Dim, Dice: r.Dice, HD95: r.HD95, BaseDice: rb.Dice, BaseHD95: rb.HD95}, nil
}

func dice(truth, pred *volume.Volume) float64 {
	inter, a, b := 0, 0, 0
	for v := range truth.U8 {
		t, p := truth.U8[v] != 0, pred.U8[v] != 0
		if t {
			a++
		}
		if p {
			b++
		}
		if t && p {
			inter++
		}
	}
	if a+b == 0 {
		return 1
	}
	return 2 * float64(inter) / float64(a+b)
}
