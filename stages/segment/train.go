package segment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/medcad/medcad/stages/metrics"
	"github.com/medcad/medcad/stages/nnunet"
	"github.com/medcad/medcad/stages/volume"
)

// Case is one training case of an nnU-Net raw dataset.
type Case struct {
	ID    string
	Image string // imagesTr/<id>_0000.nii.gz
	Label string // labelsTr/<id>.nii.gz
}

// ReadDataset lists the training cases of an nnU-Net v2 raw dataset folder
// (dataset.json, imagesTr/<id>_0000.nii.gz, labelsTr/<id>.nii.gz), sorted
// by id. Every image needs its label and the reverse.
func ReadDataset(dir string) ([]Case, error) {
	dj := filepath.Join(dir, "dataset.json")
	data, err := os.ReadFile(dj)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: missing (not an nnU-Net raw dataset): %w", dj, ErrDataset)
	}
	if err != nil {
		return nil, err
	}
	meta, err := parseDatasetJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dj, err)
	}
	images, err := filepath.Glob(filepath.Join(dir, "imagesTr", "*_0000.nii.gz"))
	if err != nil {
		return nil, err
	}
	labels, err := filepath.Glob(filepath.Join(dir, "labelsTr", "*.nii.gz"))
	if err != nil {
		return nil, err
	}
	var cases []Case
	seen := map[string]bool{}
	for _, img := range images {
		id := strings.TrimSuffix(filepath.Base(img), "_0000.nii.gz")
		lab := filepath.Join(dir, "labelsTr", id+".nii.gz")
		if _, err := os.Stat(lab); err != nil {
			return nil, fmt.Errorf("%s: missing label for image %s: %w", lab, filepath.Base(img), ErrDataset)
		}
		seen[id] = true
		cases = append(cases, Case{ID: id, Image: img, Label: lab})
	}
	for _, lab := range labels {
		if id := strings.TrimSuffix(filepath.Base(lab), ".nii.gz"); !seen[id] {
			return nil, fmt.Errorf("%s: label without image imagesTr/%s_0000.nii.gz: %w", lab, id, ErrDataset)
		}
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%s: no training cases in imagesTr/: %w", dir, ErrDataset)
	}
	if meta.NumTraining > 0 && meta.NumTraining != len(cases) {
		return nil, fmt.Errorf("%s: numTraining is %d but imagesTr/ has %d cases: %w", dj, meta.NumTraining, len(cases), ErrDataset)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].ID < cases[j].ID })
	return cases, nil
}

// parseDatasetJSON parses and checks dataset.json for the built-in model:
// one channel, NIfTI-gz files, a "bone" label of 1 when labels are given.
// Errors wrap ErrDataset and are one line.
func parseDatasetJSON(data []byte) (nnunet.DatasetJSON, error) {
	var meta nnunet.DatasetJSON
	if err := json.Unmarshal(data, &meta); err != nil {
		return meta, fmt.Errorf("%s: %w", firstLine(err.Error()), ErrDataset)
	}
	if len(meta.ChannelNames) != 1 {
		return meta, fmt.Errorf("%d channels, the built-in model takes one CT channel: %w", len(meta.ChannelNames), ErrDataset)
	}
	if meta.FileEnding != "" && meta.FileEnding != ".nii.gz" {
		return meta, fmt.Errorf("file_ending %q, want \".nii.gz\": %w", meta.FileEnding, ErrDataset)
	}
	if meta.NumTraining < 0 {
		return meta, fmt.Errorf("numTraining %d is negative: %w", meta.NumTraining, ErrDataset)
	}
	if v, ok := meta.Labels["bone"]; len(meta.Labels) > 0 && (!ok || v != 1) {
		return meta, fmt.Errorf("labels must map \"bone\" to 1: %w", ErrDataset)
	}
	return meta, nil
}

// loadCase reads a case's CT and label and checks that they match.
func loadCase(c Case) (ct, label *volume.Volume, err error) {
	ct, err = volume.Read(c.Image)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", err, ErrDataset)
	}
	label, err = volume.Read(c.Label)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", err, ErrDataset)
	}
	if err := volume.SameGrid(ct, label, metrics.GridTolerance); err != nil {
		return nil, nil, fmt.Errorf("%s: label does not match image %s: %w: %w", c.Label, filepath.Base(c.Image), err, ErrDataset)
	}
	if err := metrics.CheckLabelMap(label); err != nil {
		return nil, nil, fmt.Errorf("%s: %w: %w", c.Label, err, ErrDataset)
	}
	return ct, label, nil
}

// TrainOptions configure Train.
type TrainOptions struct {
	Data   string // nnU-Net raw dataset folder
	Out    string // model file to write
	Params Params
	Seed   uint64
	// Progress, when set, hears about each step: "features" per case,
	// "epochs" per epoch, "calibrate" per case.
	Progress func(step string, done, total int)
}

// TrainResult reports a training run.
type TrainResult struct {
	Model     string    `json:"model"`
	Digest    string    `json:"digest"`
	Cases     int       `json:"cases"`
	Samples   int       `json:"samples"`
	Seconds   float64   `json:"seconds"`
	TrainDice float64   `json:"train_dice"`
	CaseDice  []float64 `json:"case_dice"`
	Threshold float64   `json:"threshold"`
	FillHoles bool      `json:"fill_holes"`
}

// Train fits a model on every case of the dataset in opts.Data and writes
// it to opts.Out.
func Train(ctx context.Context, opts TrainOptions) (*TrainResult, error) {
	start := time.Now()
	if err := opts.Params.Validate(); err != nil {
		return nil, err
	}
	progress := func(step string, done, total int) {
		if opts.Progress != nil {
			opts.Progress(step, done, total)
		}
	}
	cases, err := ReadDataset(opts.Data)
	if err != nil {
		return nil, err
	}
	m := &Model{
		Format: Format, Version: Version, Kind: "mlp", Labels: []string{"background", "bone"},
		Localizer: Localizer{BodyMinHU: opts.Params.BodyMinHU, MarginMM: 3},
		Features:  opts.Params.features(),
		Refine:    Refine{Threshold: 0.5, MinComponentMM3: opts.Params.MinComponentMM3},
	}
	set, dataset, err := sampleCases(ctx, cases, m, opts, progress)
	if err != nil {
		return nil, err
	}
	mlp, err := trainMLP(ctx, set, fit{opts.Params, opts.Seed, func(e int) { progress("epochs", e, opts.Params.Epochs) }})
	if err != nil {
		return nil, err
	}
	m.MLP = mlp
	nSamples := len(set.y)
	set = samples{} // let the collector have the samples during calibration
	if err := calibrate(ctx, m, cases, progress); err != nil {
		return nil, err
	}
	// Training-set Dice, measured with the metrics package.
	res := &TrainResult{Model: opts.Out, Cases: len(cases), Samples: nSamples, Threshold: m.Refine.Threshold, FillHoles: m.Refine.FillHoles}
	var sum float64
	for _, c := range cases {
		ct, label, err := loadCase(c)
		if err != nil {
			return nil, err
		}
		pred, err := Predict(ctx, m, ct)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Image, err)
		}
		r, err := metrics.Evaluate(ctx, label, pred, metrics.Options{})
		if err != nil {
			return nil, err
		}
		res.CaseDice = append(res.CaseDice, r.Dice)
		sum += r.Dice
	}
	res.TrainDice = sum / float64(len(cases))
	m.Training = Training{
		Trainer: "medcad segment train", Dataset: dataset,
		Cases: len(cases), Samples: nSamples, Seed: opts.Seed, Params: opts.Params, TrainDice: res.TrainDice,
	}
	if res.Digest, err = WriteModel(opts.Out, m); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// sampleCases computes the features of every case and draws class-balanced
// samples among the candidate voxels (half bone, half not, per case). It
// also returns the dataset digest: SHA-256 over the files' bytes in case
// order.
func sampleCases(ctx context.Context, cases []Case, m *Model, opts TrainOptions, progress func(string, int, int)) (samples, string, error) {
	set := samples{nIn: len(m.Features.List)}
	nIn := set.nIn
	digest := sha256.New()
	bone, other := 0, 0
	for ci, c := range cases {
		if err := ctx.Err(); err != nil {
			return set, "", err
		}
		ct, label, err := loadCase(c)
		if err != nil {
			return set, "", err
		}
		for _, p := range []string{c.Image, c.Label} {
			if err := hashFile(digest, p); err != nil {
				return set, "", err
			}
		}
		w, err := localize(ct, m.Localizer)
		if err != nil {
			return set, "", fmt.Errorf("%s: %w", c.Image, err)
		}
		fs := extract(w, m.Features)
		var pos, neg []int
		flat := make([]float32, 0, fs.rows()*nIn)
		for _, ch := range fs.chunks {
			for r, v := range ch.idx {
				if label.U8[w.fullIndex(int(v))] != 0 {
					pos = append(pos, len(flat)/nIn)
				} else {
					neg = append(neg, len(flat)/nIn)
				}
				flat = append(flat, ch.x[r*nIn:(r+1)*nIn]...)
			}
		}
		bone, other = bone+len(pos), other+len(neg)
		rng := rand.New(rand.NewPCG(opts.Seed, uint64(ci)))
		half := opts.Params.SamplesPerCase / 2
		for class, idx := range [][]int{neg, pos} {
			for _, r := range pick(rng, idx, half) {
				set.x = append(set.x, flat[r*nIn:(r+1)*nIn]...)
				set.y = append(set.y, uint8(class))
			}
		}
		progress("features", ci+1, len(cases))
	}
	if bone == 0 || other == 0 {
		return set, "", fmt.Errorf("%s: the labels have no bone, or nothing but bone, among the candidate voxels: %w", opts.Data, ErrDataset)
	}
	return set, "sha256:" + hex.EncodeToString(digest.Sum(nil)), nil
}

// pick returns n distinct elements of set (all of them when it is
// smaller), chosen by a partial Fisher–Yates shuffle of a copy.
func pick(r *rand.Rand, set []int, n int) []int {
	s := append([]int(nil), set...)
	n = min(n, len(s))
	for i := range n {
		j := i + r.IntN(len(s)-i)
		s[i], s[j] = s[j], s[i]
	}
	return s[:n]
}

func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(h, f)
	return err
}

// calibrate chooses the probability threshold and whether to fill holes
// by the mean training-set Dice: labels that call the marrow bone want
// holes filled, cortex-only labels do not.
func calibrate(ctx context.Context, m *Model, cases []Case, progress func(string, int, int)) error {
	thresholds := []float64{0.3, 0.4, 0.5, 0.6, 0.7}
	type choice struct {
		t    float64
		fill bool
	}
	var choices []choice
	for _, fill := range []bool{false, true} {
		for _, t := range thresholds {
			choices = append(choices, choice{t, fill})
		}
	}
	score := make([]float64, len(choices))
	n := m.MLP.net()
	for ci, c := range cases {
		if err := ctx.Err(); err != nil {
			return err
		}
		ct, label, err := loadCase(c)
		if err != nil {
			return err
		}
		w, err := localize(ct, m.Localizer)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Image, err)
		}
		fs := extract(w, m.Features)
		prob := n.score(fs)
		truth := 0
		for _, v := range label.U8 {
			if v != 0 {
				truth++
			}
		}
		for i, ch := range choices {
			r := m.Refine
			r.Threshold, r.FillHoles = ch.t, ch.fill
			mask := refine(w, fs, prob, r, m.Features.MaxHoleMM2, m.Localizer.BodyMinHU)
			inter, pred := 0, 0
			for v, in := range mask {
				if in {
					pred++
					if label.U8[w.fullIndex(v)] != 0 {
						inter++
					}
				}
			}
			if truth+pred > 0 {
				score[i] += 2 * float64(inter) / float64(truth+pred)
			} else {
				score[i]++
			}
		}
		progress("calibrate", ci+1, len(cases))
	}
	best := 0
	for i := range choices {
		if score[i] > score[best]+1e-12 {
			best = i
		}
	}
	m.Refine.Threshold, m.Refine.FillHoles = choices[best].t, choices[best].fill
	return nil
}
