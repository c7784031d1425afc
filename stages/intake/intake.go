// Package intake turns a hospital's delivery of DICOM scans into what
// medcad stores: a folder of de-identified files, one sub-folder per case
// named by its pseudonymous case id, with the case's label map beside its
// images, and the [[case]] entries of the dataset pointer. Nothing that
// leaves this package holds PHI: case ids are keyed hashes, warnings are
// phrased without tag values, and the original files are never copied.
package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/internal/atomicfile"
	"github.com/medcad/medcad/stages/dicom"
	"github.com/medcad/medcad/stages/dicom/deid"
	"github.com/medcad/medcad/stages/volume"
)

// LabelFile is a case's label map in a delivered case folder, beside its
// DICOM files. In the prepared batch it moves to labels/<case id>.nii.gz,
// so a case's folder holds only its images.
const LabelFile = "label.nii.gz"

// LabelPath is where a case's label lands in a prepared batch.
func LabelPath(staging, caseID string) string {
	return filepath.Join(staging, "labels", caseID+".nii.gz")
}

// gridTolerance is how far (mm) a label's affine may differ from the image's.
const gridTolerance = 1e-3

// ErrNoCases means the input held no case that could be ingested.
var ErrNoCases = errors.New("no case could be ingested")

// Options configure an intake.
type Options struct {
	Deid   *deid.Deidentifier
	Series dicom.Options // Strict turns series warnings into refusals
}

// Refusal is a case folder that was not ingested, with the reason in one
// line (it names the folder, never a tag value).
type Refusal struct {
	Folder string
	Reason string
}

func (r Refusal) String() string { return r.Folder + ": " + r.Reason }

// Result is a prepared batch.
type Result struct {
	Cases   []gitops.DatasetCase // sorted by id; Image and Label digests unset
	Refused []Refusal
}

// IsDICOMBatch reports whether dir looks like a delivery of DICOM cases: a
// file with the DICOM preamble in one of its first sub-folders. It looks at
// a few files of a few folders only, so asking costs nothing on a large
// non-DICOM dataset.
func IsDICOMBatch(dir string) bool {
	const folders, filesPerFolder = 8, 8
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	seen := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if seen++; seen > folders {
			return false
		}
		checked := 0
		found := errors.New("found")
		err := filepath.WalkDir(filepath.Join(dir, e.Name()), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if checked++; checked > filesPerFolder {
				return filepath.SkipAll
			}
			if hasPreamble(p) {
				return found
			}
			return nil
		})
		if errors.Is(err, found) {
			return true
		}
	}
	return false
}

// hasPreamble reports whether the file starts with the 128-byte DICOM
// preamble and "DICM".
func hasPreamble(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [132]byte
	n, _ := io.ReadFull(f, head[:])
	return n == 132 && string(head[128:]) == "DICM"
}

// Prepare de-identifies every case folder (a sub-folder of input) into
// staging/<case id>/, puts its label at staging/labels/<case id>.nii.gz,
// checks each series and label, and returns the cases.
// A case that cannot be ingested is refused with its reason; the others go
// on. staging must not exist yet.
func Prepare(ctx context.Context, input, staging string, opts Options) (*Result, error) {
	entries, err := os.ReadDir(input)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return nil, err
	}
	res := &Result{}
	seen := map[string]string{} // case id → folder
	for i, e := range entries {
		if !e.IsDir() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		folder := filepath.Join(input, e.Name())
		c, err := prepareCase(ctx, folder, filepath.Join(staging, fmt.Sprintf(".case-%d", i)), staging, seen, opts)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res.Refused = append(res.Refused, Refusal{Folder: folder, Reason: err.Error()})
			continue
		}
		res.Cases = append(res.Cases, *c)
	}
	sort.Slice(res.Cases, func(i, j int) bool { return res.Cases[i].ID < res.Cases[j].ID })
	if len(res.Cases) == 0 {
		return res, fmt.Errorf("%s: %w", input, ErrNoCases)
	}
	return res, nil
}

func prepareCase(ctx context.Context, folder, tmp, staging string, seen map[string]string, opts Options) (*gitops.DatasetCase, error) {
	defer os.RemoveAll(tmp)
	var caseID string
	var failed []string
	err := opts.Deid.Tree(ctx, []string{folder}, tmp, func(r deid.Result) {
		switch {
		case r.Skipped:
		case r.Err != nil:
			failed = append(failed, r.Err.Error())
		case caseID == "":
			caseID = r.Info.CaseID
		case caseID != r.Info.CaseID:
			failed = append(failed, "holds more than one study (one study per case folder)")
		}
	})
	if err != nil {
		return nil, err
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("%s", failed[0])
	}
	if caseID == "" {
		return nil, errors.New("no DICOM files")
	}
	if other, dup := seen[caseID]; dup {
		return nil, fmt.Errorf("same study as %s (case %s)", other, caseID)
	}
	scan, err := dicom.Discover(ctx, []string{tmp}, opts.Series)
	if err != nil {
		return nil, err
	}
	if len(scan.Series) != 1 {
		return nil, fmt.Errorf("%d image series, want one per case", len(scan.Series))
	}
	s := scan.Series[0]
	if s.Err != nil {
		return nil, s.Err
	}
	c := &gitops.DatasetCase{
		ID: caseID, Modality: s.Modality, Slices: s.Slices,
		Shape: s.Dim[:], SpacingMM: roundSpacing(s.Spacing), Warnings: s.Warnings,
	}
	var label []byte
	if lbl := filepath.Join(folder, LabelFile); exists(lbl) {
		if err := checkLabel(ctx, s, lbl); err != nil {
			return nil, err
		}
		if label, err = os.ReadFile(lbl); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, filepath.Join(staging, caseID)); err != nil {
		return nil, err
	}
	if label != nil {
		dst := LabelPath(staging, caseID)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(dst, label, 0o644); err != nil {
			return nil, err
		}
	}
	seen[caseID] = folder
	return c, nil
}

// checkLabel refuses a label map that does not fit the image grid.
func checkLabel(ctx context.Context, s *dicom.Series, label string) error {
	lbl, err := volume.Read(label)
	if err != nil {
		return fmt.Errorf("label: %w", err)
	}
	if lbl.DType != volume.Uint8 {
		return fmt.Errorf("label %s is %s, want uint8 label values", LabelFile, lbl.DType)
	}
	img := &volume.Volume{Dim: s.Dim, Affine: s.Affine}
	if err := volume.SameGrid(img, lbl, gridTolerance); err != nil {
		return fmt.Errorf("label does not match the image: %v", err)
	}
	return nil
}

func roundSpacing(s [3]float64) []float64 {
	out := make([]float64, 3)
	for i, v := range s {
		out[i] = float64(int64(v*1e4+0.5)) / 1e4
	}
	return out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
