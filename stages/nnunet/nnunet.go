// Package nnunet lays out medcad's training data in the nnU-Net v2 raw
// dataset format (dataset.json, imagesTr/<case>_0000.nii.gz,
// labelsTr/<case>.nii.gz), so nnU-Net trains on exactly what medcad
// prepared. It also converts one de-identified DICOM case into that layout,
// which is the pipeline's per-case ingest step.
package nnunet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/stages/dicom"
	"github.com/medcad/medcad/stages/volume"
)

// DatasetJSON is nnU-Net v2's dataset.json.
type DatasetJSON struct {
	Name         string            `json:"name"`
	Description  string            `json:"description,omitempty"`
	ChannelNames map[string]string `json:"channel_names"`
	Labels       map[string]int    `json:"labels"`
	NumTraining  int               `json:"numTraining"`
	FileEnding   string            `json:"file_ending"`
	LabelRules   string            `json:"label_rules,omitempty"`
}

// ErrCase means a case cannot be ingested (no CT series, a label that does
// not fit the image, …).
var ErrCase = errors.New("case refused")

// gridTolerance is how far (mm) a label's affine may differ from its image's.
const gridTolerance = 1e-3

// ImagePath and LabelPath are a case's files inside a dataset folder.
func ImagePath(dir, caseID string) string {
	return filepath.Join(dir, "imagesTr", caseID+"_0000.nii.gz")
}

// LabelPath is where a case's label map lives inside a dataset folder.
func LabelPath(dir, caseID string) string {
	return filepath.Join(dir, "labelsTr", caseID+".nii.gz")
}

// IngestCase converts the CT series found under imageDir into
// out/imagesTr/<case>_0000.nii.gz and, when labelFile is not empty, checks
// that the label map shares the image's grid and writes it to
// out/labelsTr/<case>.nii.gz. It refuses a folder with no CT series or
// with several.
func IngestCase(ctx context.Context, caseID, imageDir, labelFile, out string, opts dicom.Options) error {
	ct, err := CaseVolume(ctx, caseID, imageDir, opts)
	if err != nil {
		return err
	}
	if labelFile != "" {
		lbl, err := volume.Read(labelFile)
		if err != nil {
			return fmt.Errorf("case %s: label: %w", caseID, err)
		}
		if err := volume.SameGrid(ct, lbl, gridTolerance); err != nil {
			return fmt.Errorf("case %s: label does not match the image: %v: %w", caseID, err, ErrCase)
		}
		if lbl.DType != volume.Uint8 {
			return fmt.Errorf("case %s: label is %s, want uint8: %w", caseID, lbl.DType, ErrCase)
		}
		if err := writeVolume(LabelPath(out, caseID), lbl); err != nil {
			return err
		}
	}
	return writeVolume(ImagePath(out, caseID), ct)
}

// CaseVolume reads the single CT series of a case folder as Hounsfield
// units.
func CaseVolume(ctx context.Context, caseID, imageDir string, opts dicom.Options) (*volume.Volume, error) {
	scan, err := dicom.Discover(ctx, []string{imageDir}, opts)
	if err != nil {
		return nil, fmt.Errorf("case %s: %w", caseID, err)
	}
	var cts []*dicom.Series
	for _, s := range scan.Series {
		if s.Modality == "CT" || s.Modality == "" {
			cts = append(cts, s)
		}
	}
	switch {
	case len(cts) == 0:
		return nil, fmt.Errorf("case %s: no CT series (%d files skipped): %w", caseID, len(scan.Skipped), ErrCase)
	case len(cts) > 1:
		return nil, fmt.Errorf("case %s: %d CT series, want one per case: %w", caseID, len(cts), ErrCase)
	case cts[0].Err != nil:
		return nil, fmt.Errorf("case %s: %s: %w", caseID, cts[0].Err, ErrCase)
	}
	return cts[0].Volume(ctx)
}

func writeVolume(path string, v *volume.Volume) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return volume.Write(path, v)
}

// Assemble builds an nnU-Net raw dataset in out from the per-case folders
// under casesDir (each holding imagesTr/ and labelsTr/ as IngestCase
// writes them): the files are hard-linked (copied across file systems) and
// dataset.json counts the labelled cases.
func Assemble(casesDir, out, name, labelRules string) (int, error) {
	n := 0
	for _, sub := range []string{"imagesTr", "labelsTr"} {
		files, err := filepath.Glob(filepath.Join(casesDir, sub, "*.nii.gz"))
		if err != nil {
			return 0, err
		}
		sort.Strings(files)
		if err := os.MkdirAll(filepath.Join(out, sub), 0o755); err != nil {
			return 0, err
		}
		for _, f := range files {
			dst := filepath.Join(out, sub, filepath.Base(f))
			if err := linkOrCopy(f, dst); err != nil {
				return 0, err
			}
			if sub == "labelsTr" {
				n++
			}
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: no labelled case to train on: %w", casesDir, ErrCase)
	}
	dj := DatasetJSON{
		Name:         name,
		Description:  "prepared by medcad from de-identified DICOM",
		ChannelNames: map[string]string{"0": "CT"},
		Labels:       map[string]int{"background": 0, "bone": 1},
		NumTraining:  n,
		FileEnding:   ".nii.gz",
		LabelRules:   labelRules,
	}
	b, err := json.MarshalIndent(dj, "", "  ")
	if err != nil {
		return 0, err
	}
	return n, gitops.WriteFileAtomic(filepath.Join(out, "dataset.json"), append(b, '\n'), 0o644)
}

func linkOrCopy(src, dst string) error {
	_ = os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return gitops.WriteFileAtomic(dst, data, 0o644)
}

// CaseIDs lists the cases of an nnU-Net dataset's imagesTr folder.
func CaseIDs(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "imagesTr", "*_0000.nii.gz"))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(files))
	for _, f := range files {
		ids = append(ids, strings.TrimSuffix(filepath.Base(f), "_0000.nii.gz"))
	}
	sort.Strings(ids)
	return ids, nil
}
