package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/medcad/medcad/stages/dicom"
	"github.com/medcad/medcad/stages/nnunet"
	"github.com/spf13/cobra"
)

// newStageCmd groups the built-in pipeline steps that medcad.toml stages
// call (the scaffolded pipeline runs ingest and assemble).
func newStageCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stage",
		Short: "Built-in pipeline steps used by medcad.toml stages (ingest, assemble)",
		Long: `Built-in pipeline steps that the stages of medcad.toml call; the pipeline
'medcad init' scaffolds runs them as

  ingest  (foreach = "case"):
    medcad stage ingest --case {case} --image {case.image} --label {case.label} --out {out}
  dataset:
    medcad stage assemble --cases {ingest.out} --out {out}

They are ordinary commands: run them by hand to debug one case. Their
cache key holds the version of what they compute, not medcad's build.`,
	}
	var ing struct {
		caseID, image, label, split, out string
		strict, resample                 bool
	}
	ingest := &cobra.Command{
		Use:         "ingest --case ID --image DIR [--label DIR] --out DIR",
		Annotations: algorithm(nnunet.Version),
		Short:       "Convert one case's de-identified DICOM series (and label) into the nnU-Net layout",
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ing.caseID == "" || ing.image == "" || ing.out == "" {
				return usagef("stage ingest: --case, --image and --out are required")
			}
			label := ""
			if ing.label != "" {
				label = filepath.Join(ing.label, "label.nii.gz")
				if _, err := os.Stat(label); err != nil {
					return fmt.Errorf("case %s: %s: no label.nii.gz", ing.caseID, ing.label)
				}
			}
			if ing.split != "" && label == "" {
				return usagef("stage ingest: --split %s: an unlabelled case has no side", ing.split)
			}
			if err := nnunet.IngestCase(cmd.Context(), ing.caseID, ing.image, label, ing.out, dicom.Options{Strict: ing.strict, Resample: ing.resample}); err != nil {
				return err
			}
			return nnunet.WriteSplit(ing.out, ing.caseID, ing.split)
		},
	}
	ingest.Flags().StringVar(&ing.caseID, "case", "", "case id")
	ingest.Flags().StringVar(&ing.image, "image", "", "folder of the case's DICOM files")
	ingest.Flags().StringVar(&ing.label, "label", "", "folder holding the case's label.nii.gz (optional)")
	ingest.Flags().StringVar(&ing.split, "split", "", "the case's recorded side of the held-out split, \"train\" or \"test\" ({case.split}); empty: assemble splits it by hash")
	ingest.Flags().StringVar(&ing.out, "out", "", "output folder (imagesTr/, labelsTr/)")
	ingest.Flags().BoolVar(&ing.strict, "strict", false, "series irregularities are errors")
	ingest.Flags().BoolVar(&ing.resample, "resample", false, "resample irregular series to a uniform grid")

	var asm struct {
		cases, out string
		opts       nnunet.AssembleOptions
	}
	assemble := &cobra.Command{
		Use:         "assemble --cases DIR --out DIR",
		Annotations: algorithm(nnunet.Version),
		Short:       "Assemble ingested cases into an nnU-Net raw dataset with dataset.json",
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asm.cases == "" || asm.out == "" {
				return usagef("stage assemble: --cases and --out are required")
			}
			if asm.opts.Holdout < 0 || asm.opts.Holdout >= 1 {
				return usagef("stage assemble: --holdout %v: want [0, 1)", asm.opts.Holdout)
			}
			split, err := nnunet.Assemble(asm.cases, asm.out, asm.opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.err, "nnU-Net dataset in %s: %s for training, %d held out for evaluation\n", asm.out, plural(len(split.Train), "case"), len(split.Test))
			return nil
		},
	}
	assemble.Flags().StringVar(&asm.cases, "cases", "", "folder of ingested cases")
	assemble.Flags().StringVar(&asm.out, "out", "", "nnU-Net raw dataset folder to write")
	assemble.Flags().StringVar(&asm.opts.Name, "name", "medcad", "dataset name in dataset.json")
	assemble.Flags().StringVar(&asm.opts.LabelRules, "label-rules", "", "labelling rules version recorded in dataset.json")
	assemble.Flags().Float64Var(&asm.opts.Holdout, "holdout", 0.25, "fraction held out among labelled cases whose side was not recorded at ingest (imagesTs/, labelsTs/)")
	cmd.AddCommand(ingest, assemble)
	return cmd
}
