package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/medcad/medcad/stages/segment"
	"github.com/medcad/medcad/stages/volume"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func newSegmentCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "segment",
		Short: "Train and run the built-in CPU bone segmentation model",
		Long: `Train and run medcad's built-in bone segmentation model (a body
localizer, a multi-scale voxel classifier and a refinement step; see
docs/models.md), or the classical threshold baseline it must beat.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newSegmentTrainCmd(a), newSegmentPredictCmd(a), newSegmentBaselineCmd(a))
	return cmd
}

type segmentTrainOptions struct {
	data, out, params string
	seed              uint64
}

func newSegmentTrainCmd(a *app) *cobra.Command {
	var opts segmentTrainOptions
	cmd := &cobra.Command{
		Use:         "train --data NNUNET_DIR --out MODEL",
		Annotations: algorithm(segment.Algorithm),
		Short:       "Train a bone model on an nnU-Net raw dataset",
		Long: `Train the built-in bone model on every case of an nnU-Net v2 raw dataset
(dataset.json, imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz) and
write the model file. The same data, params and seed give a byte-identical
model (the same digest). Prints cases, samples, seconds and the
training-set Dice.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.data == "" || opts.out == "" {
				return usagef("segment train: --data and --out are required")
			}
			return runSegmentTrain(cmd.Context(), a, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.data, "data", "", "nnU-Net raw dataset `DIR`")
	f.StringVar(&opts.out, "out", "", "model `FILE` to write")
	f.StringVar(&opts.params, "params", "", "training params TOML `FILE` (keys in docs/models.md)")
	f.Uint64Var(&opts.seed, "seed", 1, "training seed")
	return cmd
}

func runSegmentTrain(ctx context.Context, a *app, opts segmentTrainOptions) error {
	p := segment.DefaultParams()
	if opts.params != "" {
		var err error
		if p, err = segment.LoadParams(opts.params); err != nil {
			return err
		}
	}
	var bar *progressbar.ProgressBar
	step := ""
	progress := func(s string, done, total int) {
		a.log.Debug("train", "step", s, "done", done, "total", total)
		if !a.progressOn() || a.json {
			return
		}
		if s != step {
			if bar != nil {
				bar.Finish()
			}
			step = s
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(a.err),
				progressbar.OptionSetDescription(s), progressbar.OptionClearOnFinish())
		}
		bar.Set(done)
	}
	res, err := segment.Train(ctx, segment.TrainOptions{Data: opts.data, Out: opts.out, Params: p, Seed: opts.seed, Progress: progress})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.out, "cases:             %d\n", res.Cases)
	fmt.Fprintf(a.out, "samples:           %d\n", res.Samples)
	fmt.Fprintf(a.out, "seconds:           %.1f\n", res.Seconds)
	fmt.Fprintf(a.out, "training-set Dice: %.4f\n", res.TrainDice)
	fmt.Fprintf(a.out, "model:             %s\n", res.Model)
	fmt.Fprintf(a.out, "digest:            %s\n", res.Digest)
	return nil
}

type segmentMapOptions struct {
	in, out   string
	model     string
	threshold string
	keep      float64
}

func newSegmentPredictCmd(a *app) *cobra.Command {
	var opts segmentMapOptions
	cmd := &cobra.Command{
		Use:         "predict --model MODEL --in CT.nii.gz|DIR --out MASK.nii.gz|DIR",
		Annotations: algorithm(segment.Algorithm),
		Short:       "Segment bone in CT volumes with a trained model",
		Long: `Segment bone in one CT volume, or in every .nii/.nii.gz file of a folder
(nnU-Net naming: <case>_0000.nii.gz gives <case>.nii.gz). Masks are uint8
(1 = bone) with the input's shape and affine. A file that fails is
reported and the others go on; the exit code is then 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.model == "" || opts.in == "" || opts.out == "" {
				return usagef("segment predict: --model, --in and --out are required")
			}
			m, digest, err := segment.ReadModel(opts.model)
			if err != nil {
				return err
			}
			a.log.Debug("model", "path", opts.model, "digest", digest)
			return runSegmentMap(cmd.Context(), a, opts, func(ctx context.Context, ct *volume.Volume) (*volume.Volume, error) {
				return segment.Predict(ctx, m, ct)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.model, "model", "", "model `FILE`")
	f.StringVar(&opts.in, "in", "", "CT `PATH`: a NIfTI file or a folder of them")
	f.StringVar(&opts.out, "out", "", "mask `PATH`: a file, or a folder when --in is one")
	return cmd
}

func newSegmentBaselineCmd(a *app) *cobra.Command {
	var opts segmentMapOptions
	cmd := &cobra.Command{
		Use:         "baseline --threshold HU --in CT.nii.gz|DIR --out MASK.nii.gz|DIR",
		Annotations: algorithm(segment.Algorithm),
		Short:       "Classical baseline: HU threshold plus the largest components",
		Long: `Segment bone the classical way: voxels above --threshold HU, keeping the
6-connected components with at least --keep-fraction of the largest
one's voxels. Same files and folders as predict.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.threshold == "" || opts.in == "" || opts.out == "" {
				return usagef("segment baseline: --threshold, --in and --out are required")
			}
			t, err := strconv.ParseFloat(opts.threshold, 64)
			if err != nil || math.IsNaN(t) || math.IsInf(t, 0) {
				return usagef("segment baseline: --threshold %q is not a number of HU", opts.threshold)
			}
			if !(opts.keep > 0 && opts.keep <= 1) {
				return usagef("segment baseline: --keep-fraction %v: want (0, 1]", opts.keep)
			}
			return runSegmentMap(cmd.Context(), a, opts, func(ctx context.Context, ct *volume.Volume) (*volume.Volume, error) {
				return segment.Baseline(ctx, ct, segment.BaselineOptions{ThresholdHU: t, KeepFraction: opts.keep})
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.threshold, "threshold", "", "HU threshold")
	f.Float64Var(&opts.keep, "keep-fraction", 0.1, "keep components with at least this fraction of the largest")
	f.StringVar(&opts.in, "in", "", "CT `PATH`: a NIfTI file or a folder of them")
	f.StringVar(&opts.out, "out", "", "mask `PATH`: a file, or a folder when --in is one")
	return cmd
}

func runSegmentMap(ctx context.Context, a *app, opts segmentMapOptions, seg segment.Segmenter) error {
	// A folder's failed files are reported as they happen; a single file's
	// error is the command's error.
	st, _ := os.Stat(opts.in)
	folder := st != nil && st.IsDir()
	res, err := segment.MapFiles(ctx, segment.MapOptions{In: opts.in, Out: opts.out, Segment: seg, Done: func(r segment.FileResult) {
		if r.Error != "" && folder {
			fmt.Fprintf(a.err, "medcad: %s\n", r.Error)
			return
		}
		a.log.Debug("segmented", "in", r.In, "out", r.Out, "bone_voxels", r.BoneVoxels)
	}})
	if a.json && res != nil {
		if jerr := a.printJSON(res); jerr != nil {
			return jerr
		}
	} else {
		for _, r := range res {
			if r.Error == "" {
				fmt.Fprintf(a.out, "%s\t%s\tbone %d voxels\n", r.In, r.Out, r.BoneVoxels)
			}
		}
	}
	return err
}
