// Package intake turns a hospital's delivery of DICOM scans into what
// medcad stores: a folder of de-identified files, one sub-folder per case
// named by its pseudonymous case id, with the case's label map beside its
// images, and the [[case]] entries of the dataset pointer. Nothing that
// leaves this package holds PHI: case ids are keyed hashes, every stored
// path is rebuilt from de-identified facts (CaseImagePath), warnings are
// phrased without tag values, labels are rewritten with a clean header,
// and the original files are never copied. Which delivery folder became
// which case is kept only in the local re-identification key (reid.go).
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
	"github.com/medcad/medcad/gitops/cas"
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
	// Progress, when set, counts the delivery's files (and bytes) as
	// they are de-identified; it reaches the total announced, refused
	// cases included.
	Progress cas.Progress
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
	// Origins maps each prepared case id to the delivery folder it came
	// from: the re-identification key (WriteKey), never stored.
	Origins map[string]string
}

// CaseImagePath is where the n-th image (from 1, in slice order) of a
// case's series is stored, relative to the case folder:
// <modality>/<series number>/IM<nnnnn>.dcm. Only de-identified facts name
// it: the original folder and file names are never kept.
func CaseImagePath(modality string, seriesNumber, n int) string {
	return fmt.Sprintf("%s/%d/IM%05d.dcm", modalityDir(modality), max(seriesNumber, 0), n)
}

// modalityDir is a modality as a folder name: a defined term (letters and
// digits, as PS3.3 spells them), else OT (other).
func modalityDir(m string) string {
	if m == "" || len(m) > 16 {
		return "OT"
	}
	for _, c := range m {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return "OT"
		}
	}
	return m
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
	res := &Result{Origins: map[string]string{}}
	seen := res.Origins // case id → folder
	var folders []string
	var work []caseWork
	for _, e := range entries {
		if e.IsDir() {
			folders = append(folders, filepath.Join(input, e.Name()))
			work = append(work, measure(folders[len(folders)-1]))
		}
	}
	if opts.Progress != nil {
		var t caseWork
		for _, w := range work {
			t.files, t.bytes = t.files+w.files, t.bytes+w.bytes
		}
		opts.Progress.Total(t.files, t.bytes)
	}
	for i, folder := range folders {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := prepareCase(ctx, folder, filepath.Join(staging, fmt.Sprintf(".case-%d", i)), staging, seen, opts, work[i])
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

// caseWork is what de-identifying a case folder reads: its files and bytes.
type caseWork struct {
	files int
	bytes int64
}

// measure counts the regular files under folder and their bytes (what
// cannot be read counts as nothing: the de-identification reports it).
func measure(folder string) caseWork {
	var w caseWork
	filepath.WalkDir(folder, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				w.files, w.bytes = w.files+1, w.bytes+fi.Size()
			}
		}
		return nil
	})
	return w
}

func prepareCase(ctx context.Context, folder, tmp, staging string, seen map[string]string, opts Options, work caseWork) (*gitops.DatasetCase, error) {
	defer os.RemoveAll(tmp)
	var caseID string
	var failed []string
	var done caseWork // progress reported for this case, at most work
	if opts.Progress != nil {
		// The case's files count as done however it ends.
		defer func() { opts.Progress.Done(work.files-done.files, work.bytes-done.bytes) }()
	}
	err := opts.Deid.TreeNumbered(ctx, []string{folder}, tmp, func(r deid.Result) {
		if opts.Progress != nil && done.files < work.files {
			var n int64
			if fi, err := os.Stat(r.In); err == nil {
				n = min(fi.Size(), work.bytes-done.bytes)
			}
			done.files, done.bytes = done.files+1, done.bytes+n
			opts.Progress.Done(1, n)
		}
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
	var label *volume.Volume
	if lbl := filepath.Join(folder, LabelFile); exists(lbl) {
		if label, err = readLabel(s, lbl); err != nil {
			return nil, err
		}
	}
	caseDir := filepath.Join(staging, ".named-"+caseID)
	defer os.RemoveAll(caseDir)
	if err := nameImages(tmp, caseDir, s); err != nil {
		return nil, err
	}
	if left := len(scan.Skipped); left > 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%d files outside the image series left out (localizers, non-image objects)", left))
	}
	if err := os.Rename(caseDir, filepath.Join(staging, caseID)); err != nil {
		return nil, err
	}
	if label != nil {
		dst := LabelPath(staging, caseID)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		// Written by medcad's NIfTI writer: voxels, grid and nothing else
		// (no descrip, aux_file, intent_name, extensions, gzip name).
		if err := volume.Write(dst, label); err != nil {
			return nil, err
		}
		if h, err := volume.ReadHeader(dst); err != nil || len(h.Text) > 0 { // fail closed
			os.Remove(dst)
			return nil, fmt.Errorf("label %s: the rewritten label does not read back clean", LabelFile)
		}
	}
	seen[caseID] = folder
	return c, nil
}

// nameImages moves the series' de-identified files from tmp into caseDir
// under the names CaseImagePath gives them, in slice order; files outside
// the series stay behind (and are removed with tmp).
func nameImages(tmp, caseDir string, s *dicom.Series) error {
	for i, f := range s.Files {
		dst := filepath.Join(caseDir, filepath.FromSlash(CaseImagePath(s.Modality, s.SeriesNumber, i+1)))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(f, dst); err != nil {
			return err
		}
	}
	return nil
}

// maxLabelBytes caps a label's voxel data (uint8 on the image grid).
const maxLabelBytes = 1 << 31

// readLabel reads a case's label map: its header is checked against the
// image grid first (shape, affine, uint8), so a header claiming a huge
// volume or a wider voxel type is refused before any voxel is read, and
// the voxels read are at most the image's voxel count.
func readLabel(s *dicom.Series, path string) (*volume.Volume, error) {
	hdr, err := volume.ReadHeader(path)
	if err != nil {
		return nil, fmt.Errorf("label: %w", err)
	}
	img := &volume.Volume{Dim: s.Dim, Affine: s.Affine}
	if err := volume.SameGrid(img, &volume.Volume{Dim: hdr.Dim, Affine: hdr.Affine}, gridTolerance); err != nil {
		return nil, fmt.Errorf("label does not match the image: %v", err)
	}
	if hdr.Datatype != "uint8" {
		return nil, fmt.Errorf("label %s is %s, want uint8 label values", LabelFile, hdr.Datatype)
	}
	if want := int64(s.Dim[0]) * int64(s.Dim[1]) * int64(s.Dim[2]); hdr.VoxelBytes != want || want > maxLabelBytes {
		return nil, fmt.Errorf("label %s declares %d bytes of voxels, the image grid holds %d", LabelFile, hdr.VoxelBytes, want)
	}
	lbl, err := volume.Read(path)
	if err != nil {
		return nil, fmt.Errorf("label: %w", err)
	}
	if lbl.DType != volume.Uint8 {
		return nil, fmt.Errorf("label %s is %s, want uint8 label values", LabelFile, lbl.DType)
	}
	if err := volume.SameGrid(img, lbl, gridTolerance); err != nil {
		return nil, fmt.Errorf("label does not match the image: %v", err)
	}
	return lbl, nil
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
