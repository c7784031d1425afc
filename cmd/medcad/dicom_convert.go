package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/medcad/medcad/internal/atomicfile"
	"github.com/medcad/medcad/stages/dicom"
	"github.com/medcad/medcad/stages/dicom/deid"
	"github.com/medcad/medcad/stages/volume"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// dicomInspectOptions are the flags of `medcad dicom inspect`.
type dicomInspectOptions struct {
	paths  []string
	strict bool
}

func newDicomInspectCmd(a *app) *cobra.Command {
	var opts dicomInspectOptions
	cmd := &cobra.Command{
		Use:   "inspect PATH... [--json] [--strict]",
		Short: "List the DICOM series found under PATHs, with their geometry and warnings",
		Long: `Walk PATHs (files or folders), read every DICOM header and assemble the
images into series: grouped by SeriesInstanceUID and orientation, LOCALIZER
images in series of their own ("localizer": true in --json), slices sorted
by ImagePositionPatient along the slice normal.

Stdout: one row per series: id, modality, slices, shape (columns × rows ×
slices), voxel spacing in mm, orientation code of the converted volume
(as nibabel's aff2axcodes), transfer syntax and warnings (uneven spacing,
missing or duplicate slices, gantry tilt). No tag value that could identify
a patient is printed. Files that are not DICOM, or are broken, are listed
on stderr as "skipped PATH: reason". On a terminal only, stderr also says
which source folder each series-NN came from (folder names can name a
patient, so they never go to a pipe, a file or a log).

Exit 0; 3 when a series cannot be converted (with --strict: also when one
is irregular); 1 when no DICOM image is found.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.paths = a.paths(args)
			return runDicomInspect(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.strict, "strict", false, "treat uneven spacing, missing or duplicate slices and gantry tilt as errors")
	return cmd
}

// seriesRecord is one series in inspect and convert output, and the
// sidecar JSON of convert. It holds no patient data: UIDs only when
// de-identified with the project key.
type seriesRecord struct {
	ID                 string         `json:"id"`
	Image              string         `json:"image,omitempty"`
	Sidecar            string         `json:"sidecar,omitempty"`
	Modality           string         `json:"modality"`
	SeriesNumber       int            `json:"series_number,omitempty"`
	Slices             int            `json:"slices"`
	Shape              [3]int         `json:"shape"`
	SpacingMM          [3]float64     `json:"spacing_mm"`
	Orientation        string         `json:"orientation"`
	Affine             *[4][4]float64 `json:"affine,omitempty"`
	DType              string         `json:"dtype,omitempty"`
	TransferSyntax     string         `json:"transfer_syntax"`
	TransferSyntaxName string         `json:"transfer_syntax_name"`
	Files              int            `json:"files"`
	Warnings           []string       `json:"warnings"`
	Error              string         `json:"error,omitempty"`
	Localizer          bool           `json:"localizer,omitempty"`
	Segment            int            `json:"segment,omitempty"`
	UIDs               *deidUIDs      `json:"uids,omitempty"`
}

// deidUIDs are a series' UIDs after de-identification with the project key
// (the same mapping as `medcad dicom deid`).
type deidUIDs struct {
	CaseID string `json:"case_id"`
	Study  string `json:"study_instance_uid"`
	Series string `json:"series_instance_uid"`
}

func newRecord(s *dicom.Series) seriesRecord {
	r := seriesRecord{
		ID: s.ID, Modality: s.Modality, SeriesNumber: s.SeriesNumber, Slices: s.Slices,
		Shape: s.Dim, SpacingMM: roundSpacing(s.Spacing), Orientation: s.Orientation,
		TransferSyntax: s.TransferSyntax, TransferSyntaxName: dicom.TransferSyntaxName(s.TransferSyntax),
		Files: len(s.Files), Warnings: s.Warnings, Localizer: s.Localizer, Segment: s.Segment,
	}
	if r.Warnings == nil {
		r.Warnings = []string{}
	}
	if s.Err != nil {
		r.Error = s.Err.Error()
	}
	return r
}

func roundSpacing(s [3]float64) [3]float64 {
	for i := range s {
		s[i] = float64(int64(s[i]*1e6+0.5)) / 1e6
	}
	return s
}

// discover runs dicom.Discover and reports skipped files on stderr.
func discover(ctx context.Context, a *app, paths []string, opts dicom.Options) (*dicom.Scan, error) {
	scan, err := dicom.Discover(ctx, paths, opts)
	if err != nil {
		return nil, err
	}
	for _, n := range scan.Skipped {
		fmt.Fprintf(a.err, "skipped %s: %s\n", n.Path, n.Reason)
	}
	a.log.Debug("discovered", "series", len(scan.Series), "skipped", len(scan.Skipped))
	if len(scan.Series) == 0 {
		return nil, fmt.Errorf("no DICOM image series found in %s", strings.Join(paths, ", "))
	}
	return scan, nil
}

func runDicomInspect(ctx context.Context, a *app, opts dicomInspectOptions) error {
	scan, err := discover(ctx, a, opts.paths, dicom.Options{Strict: opts.strict, AllImages: true})
	if err != nil {
		return err
	}
	recs := make([]seriesRecord, len(scan.Series))
	failed := 0
	for i, s := range scan.Series {
		recs[i] = newRecord(s)
		if s.Err != nil {
			failed++
		}
	}
	if a.json {
		if err := a.printJSON(recs); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERIES\tMODALITY\tSLICES\tSHAPE\tSPACING_MM\tORIENT\tTRANSFER_SYNTAX\tWARNINGS")
		for _, r := range recs {
			notes := strings.Join(r.Warnings, "; ")
			if r.Localizer {
				notes = strings.TrimSuffix("localizer; "+notes, "; ")
			}
			if r.Error != "" {
				notes = "ERROR: " + r.Error
			}
			if notes == "" {
				notes = "-"
			}
			slices, shape, spacing, orient := fmt.Sprint(r.Slices), fmt.Sprintf("%dx%dx%d", r.Shape[0], r.Shape[1], r.Shape[2]),
				fmt.Sprintf("%.3gx%.3gx%.3g", r.SpacingMM[0], r.SpacingMM[1], r.SpacingMM[2]), r.Orientation
			if r.Error != "" { // no geometry was computed
				slices, shape, spacing, orient = "-", "-", "-", "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Modality, slices, shape, spacing, orient, r.TransferSyntaxName, notes)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if a.isTerminal(a.err) {
			printSeriesFolders(a, scan.Series)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d series cannot be converted: %w", failed, len(recs), errCheckFailed)
	}
	return nil
}

// dicomConvertOptions are the flags of `medcad dicom convert`.
type dicomConvertOptions struct {
	paths    []string
	out      string
	strict   bool
	resample bool
	gzip     bool
	keyFile  string
}

func newDicomConvertCmd(a *app) *cobra.Command {
	var opts dicomConvertOptions
	cmd := &cobra.Command{
		Use:         "convert PATH... --out DIR [--json] [--strict] [--resample] [--key-file F]",
		Annotations: algorithm(dicom.Version),
		Short:       "Convert DICOM series to NIfTI volumes (Hounsfield units for CT) with JSON sidecars",
		Long: `Convert every DICOM series found under PATHs (see 'medcad dicom inspect')
to DIR/<id>.nii.gz and a sidecar DIR/<id>.json.

Volumes are NIfTI-1, as dcm2niix writes them: CT as int16 Hounsfield units
(stored value sign-extended from BitsStored, × RescaleSlope +
RescaleIntercept), rows stored bottom-up, sform and qform = the voxel to
RAS+ mm affine. Every grayscale transfer syntax is decoded: native
(implicit/explicit VR, little/big endian, deflated), RLE Lossless, JPEG
Lossless, JPEG Baseline and Extended, JPEG-LS lossless and near-lossless,
JPEG 2000 lossless and lossy. Colour images and non-image objects are
refused, naming the reason.
As dcm2niix does, convert also writes localizers, Segmentation objects (uint8
0/1 labels, a series per segment) and RT Dose grids (float32 dose: stored
value × DoseGridScaling, in the file's DoseUnits); 'medcad data add' and the
pipeline leave these out.

The sidecar holds shape, spacing, orientation, affine, transfer syntax and
warnings; no patient attribute. With --key-file it also holds the case id
and the study and series UIDs de-identified with that project key (the same
mapping as 'medcad dicom deid'); without it, UIDs are left out.

Irregular series (uneven spacing, missing or duplicate slices, gantry tilt)
convert with warnings; --strict refuses them, --resample interpolates them
onto a uniform orthogonal grid. A series that fails is reported on stderr
and the others still convert; no partial file is left behind.

Stdout: "ID<TAB>OUTPUT" per converted series; with --json one JSON array
holding one object per series (with its output paths, or its error). Exit 0 when every series converted, 3 when
some could not be, 1 on other errors.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.paths = a.paths(args)
			return runDicomConvert(cmd.Context(), a, opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.out, "out", "o", "", "write volumes and sidecars to `DIR` (required)")
	f.BoolVar(&opts.strict, "strict", false, "refuse series with uneven spacing, missing or duplicate slices or gantry tilt")
	f.BoolVar(&opts.resample, "resample", false, "resample irregular series to a uniform orthogonal grid")
	f.BoolVar(&opts.gzip, "gzip", true, "write .nii.gz (parallel gzip); --gzip=false writes .nii")
	f.StringVar(&opts.keyFile, "key-file", "", "project key `FILE`: add de-identified UIDs and the case id to the sidecars")
	return cmd
}

func runDicomConvert(ctx context.Context, a *app, opts dicomConvertOptions) error {
	if opts.out == "" {
		return usagef("dicom convert: --out DIR is required")
	}
	if opts.strict && opts.resample {
		return usagef("dicom convert: --strict and --resample exclude each other")
	}
	var d *deid.Deidentifier
	if opts.keyFile != "" {
		key, err := deid.LoadKey(opts.keyFile)
		if err != nil {
			return err
		}
		d = deid.New(key, deid.Options{})
	}
	scan, err := discover(ctx, a, opts.paths, dicom.Options{Strict: opts.strict, Resample: opts.resample, AllImages: true})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(opts.out, 0o755); err != nil {
		return err
	}
	ext := ".nii.gz"
	if !opts.gzip {
		ext = ".nii"
	}
	var bar *progressbar.ProgressBar
	if a.progressOn() && !a.json {
		bar = progressbar.NewOptions(len(scan.Series), progressbar.OptionSetWriter(a.err),
			progressbar.OptionSetDescription("converting"), progressbar.OptionClearOnFinish())
	}
	failed := 0
	recs := []seriesRecord{}
	for _, s := range scan.Series {
		rec, err := convertSeries(ctx, s, opts.out, ext, d)
		if bar != nil {
			bar.Add(1)
		}
		if errors.Is(err, context.Canceled) {
			return err
		}
		if err != nil {
			failed++
			fmt.Fprintf(a.err, "medcad: %s (%s): %v\n", s.ID, seriesFiles(s, err), err)
			rec.Error = err.Error()
		}
		if a.json {
			recs = append(recs, rec)
		} else if err == nil {
			fmt.Fprintf(a.out, "%s\t%s\n", rec.ID, rec.Image)
		}
		for _, w := range rec.Warnings {
			fmt.Fprintf(a.err, "warning: %s: %s\n", s.ID, w)
		}
	}
	if a.json {
		if err := a.printJSON(recs); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d series not converted: %w", failed, len(scan.Series), errCheckFailed)
	}
	return nil
}

// printSeriesFolders tells, on stderr, which folder each series came
// from, relative to the working directory (-C). Folder names can name a
// patient, so this is a re-identification aid for the person at the
// terminal: never printed to a pipe, a file or a log (docs/deid.md).
func printSeriesFolders(a *app, series []*dicom.Series) {
	fmt.Fprintln(a.err, "source folders (shown on a terminal only: folder names may identify a patient):")
	for _, s := range series {
		var dirs []string
		for _, f := range s.Files {
			d := filepath.Dir(f)
			if rel, err := filepath.Rel(a.workDir(), d); err == nil && !strings.HasPrefix(rel, "..") {
				d = rel
			}
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
		switch len(dirs) {
		case 0:
		case 1:
			fmt.Fprintf(a.err, "  %s  %s\n", s.ID, dirs[0])
		default:
			fmt.Fprintf(a.err, "  %s  %s (and %s)\n", s.ID, dirs[0], plural(len(dirs)-1, "other folder"))
		}
	}
}

// seriesFiles says where a series' error is: its file count, and its
// first and last files when the error names none of the series' files
// itself (a problem of the whole series, such as a gantry tilt).
func seriesFiles(s *dicom.Series, err error) string {
	n := plural(len(s.Files), "file")
	msg := err.Error()
	if len(s.Files) == 0 || slices.ContainsFunc(s.Files, func(f string) bool { return strings.Contains(msg, f) }) {
		return n
	}
	if len(s.Files) == 1 {
		return n + ": " + s.Files[0]
	}
	return fmt.Sprintf("%s: %s … %s", n, s.Files[0], s.Files[len(s.Files)-1])
}

// convertSeries writes one series' volume and sidecar; on error neither
// file is left behind.
func convertSeries(ctx context.Context, s *dicom.Series, dir, ext string, d *deid.Deidentifier) (seriesRecord, error) {
	rec := newRecord(s)
	if s.Err != nil {
		return rec, s.Err
	}
	v, err := s.Volume(ctx)
	if rec.Warnings = s.Warnings; rec.Warnings == nil {
		rec.Warnings = []string{} // [] in the sidecar, as documented, not null
	}
	if err != nil {
		return rec, err
	}
	rec.Image = filepath.Join(dir, s.ID+ext)
	rec.Sidecar = filepath.Join(dir, s.ID+".json")
	rec.Shape = v.Dim
	aff := [4][4]float64(v.Affine)
	rec.Affine = &aff
	rec.DType = v.DType.String()
	if d != nil {
		study, series := s.UIDs()
		rec.UIDs = &deidUIDs{CaseID: d.CaseID(study), Study: d.UID(study), Series: d.UID(series)}
	}
	if err := volume.WriteWith(rec.Image, v, volume.WriteOptions{Description: "medcad dicom convert"}); err != nil {
		return rec, err
	}
	side, err := json.MarshalIndent(rec, "", "  ")
	if err == nil {
		err = atomicfile.WriteFile(rec.Sidecar, append(side, '\n'), 0o644)
	}
	if err != nil {
		os.Remove(rec.Image)
		return rec, err
	}
	return rec, nil
}
