// Package nnunet lays out medcad's training data in the nnU-Net v2 raw
// dataset format (dataset.json, imagesTr/<case>_0000.nii.gz,
// labelsTr/<case>.nii.gz), so nnU-Net trains on exactly what medcad
// prepared. It also converts one de-identified DICOM case into that layout,
// which is the pipeline's per-case ingest step.
package nnunet

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/medcad/medcad/internal/plural"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/medcad/medcad/internal/atomicfile"
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

// Sides of the held-out split, as dataset pointers record them.
const (
	SideTrain = "train"
	SideTest  = "test"
)

// SplitPath is where an ingested case's recorded side lives inside a
// folder of ingested cases: split/<case>.txt, holding "train" or "test".
func SplitPath(dir, caseID string) string {
	return filepath.Join(dir, "split", caseID+".txt")
}

// WriteSplit records a case's side of the held-out split next to its
// ingested files, for Assemble; side "" records nothing (Assemble then
// splits the case by the hash of its id).
func WriteSplit(out, caseID, side string) error {
	switch side {
	case "":
		return nil
	case SideTrain, SideTest:
	default:
		return fmt.Errorf("case %s: split %q: want %q or %q", caseID, side, SideTrain, SideTest)
	}
	p := SplitPath(out, caseID)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, []byte(side+"\n"), 0o644)
}

// readSplit returns a case's recorded side, "" when none is recorded.
func readSplit(dir, caseID string) (string, error) {
	b, err := os.ReadFile(SplitPath(dir, caseID))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	side := strings.TrimSpace(string(b))
	if side != SideTrain && side != SideTest {
		return "", fmt.Errorf("%s: %q: want %q or %q: %w", SplitPath(dir, caseID), truncate(side), SideTrain, SideTest, ErrCase)
	}
	return side, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
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
		return nil, fmt.Errorf("case %s: no CT series (%s skipped): %w", caseID, plural.Of(len(scan.Skipped), "file"), ErrCase)
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

// AssembleOptions configure Assemble.
type AssembleOptions struct {
	Name       string
	LabelRules string
	// Holdout is the fraction of labelled cases held out for evaluation
	// (imagesTs/, labelsTs/) among the cases whose side was not recorded
	// at ingest (WriteSplit): those are split by a hash of their id, with
	// at least one on each side when there are two or more. Recorded
	// sides (data add writes them into the dataset pointers) always win.
	Holdout float64
}

// Split says which side of the holdout split a case is on.
type Split struct {
	Train []string `json:"train"`
	Test  []string `json:"test"`
}

// Assemble builds an nnU-Net raw dataset in out from the per-case folders
// under casesDir (each holding imagesTr/ and labelsTr/ as IngestCase
// writes them, and split/<case>.txt as WriteSplit does): training cases go
// to imagesTr/ and labelsTr/, held-out cases to imagesTs/ and labelsTs/,
// each labelled case on its recorded side, files are hard-linked (copied across
// file systems), and dataset.json counts the training cases.
func Assemble(casesDir, out string, opts AssembleOptions) (*Split, error) {
	ids, err := CaseIDs(casesDir)
	if err != nil {
		return nil, err
	}
	var labelled, unrecorded []string
	split := &Split{}
	for _, id := range ids {
		if _, err := os.Stat(LabelPath(casesDir, id)); err != nil {
			continue
		}
		labelled = append(labelled, id)
		side, err := readSplit(casesDir, id)
		switch {
		case err != nil:
			return nil, err
		case side == SideTest:
			split.Test = append(split.Test, id)
		case side == SideTrain:
			split.Train = append(split.Train, id)
		default:
			unrecorded = append(unrecorded, id)
		}
	}
	if len(labelled) == 0 {
		return nil, fmt.Errorf("%s: no labelled case to train on: %w", casesDir, ErrCase)
	}
	rest := holdout(unrecorded, opts.Holdout)
	split.Train = append(split.Train, rest.Train...)
	split.Test = append(split.Test, rest.Test...)
	slices.Sort(split.Train)
	slices.Sort(split.Test)
	if len(split.Train) == 0 {
		return nil, fmt.Errorf("%s: every labelled case is held out, none to train on: %w", casesDir, ErrCase)
	}
	test := map[string]bool{}
	for _, id := range split.Test {
		test[id] = true
	}
	for _, id := range ids {
		img, lbl := "imagesTr", "labelsTr"
		if test[id] {
			img, lbl = "imagesTs", "labelsTs"
		}
		if err := linkOrCopy(ImagePath(casesDir, id), filepath.Join(out, img, id+"_0000.nii.gz")); err != nil {
			return nil, err
		}
		if l := LabelPath(casesDir, id); fileExists(l) {
			if err := linkOrCopy(l, filepath.Join(out, lbl, id+".nii.gz")); err != nil {
				return nil, err
			}
		}
	}
	dj := DatasetJSON{
		Name:         opts.Name,
		Description:  "prepared by medcad from de-identified DICOM",
		ChannelNames: map[string]string{"0": "CT"},
		Labels:       map[string]int{"background": 0, "bone": 1},
		NumTraining:  len(split.Train),
		FileEnding:   ".nii.gz",
		LabelRules:   opts.LabelRules,
	}
	b, err := json.MarshalIndent(dj, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(out, "dataset.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return split, nil
}

// holdout splits case ids whose side was not recorded by the first 8
// bytes of SHA-256 of each id: a case is held out when its hash falls
// below the fraction (gitops.HashSide). With two or more cases, each side
// gets at least one: the case with the smallest hash is held out, or the
// one with the largest is trained on. That fallback moves cases when a
// batch arrives, which is why data add records sides instead.
func holdout(ids []string, fraction float64) *Split {
	sp := &Split{}
	if fraction <= 0 || len(ids) < 2 {
		sp.Train = ids
		return sp
	}
	hash := func(id string) uint64 {
		sum := sha256.Sum256([]byte(id))
		return binary.BigEndian.Uint64(sum[:8])
	}
	byHash := slices.Clone(ids)
	slices.SortFunc(byHash, func(a, b string) int { return cmp.Compare(hash(a), hash(b)) })
	for _, id := range byHash {
		if float64(hash(id)) < fraction*math.MaxUint64 {
			sp.Test = append(sp.Test, id)
		} else {
			sp.Train = append(sp.Train, id)
		}
	}
	switch {
	case len(sp.Test) == 0:
		sp.Test, sp.Train = byHash[:1], byHash[1:]
	case len(sp.Train) == 0:
		sp.Test, sp.Train = byHash[:len(byHash)-1], byHash[len(byHash)-1:]
	}
	slices.Sort(sp.Train)
	slices.Sort(sp.Test)
	return sp
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func linkOrCopy(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	_ = os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(dst, data, 0o644)
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

// Version is the version of what IngestCase and Assemble write (the
// layout, the conversion, the held-out split); cache keys of the ingest
// and assemble stages depend on it. 2: recorded sides (split/<case>.txt).
const Version = "2"
