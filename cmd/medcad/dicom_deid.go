package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/stages/dicom/deid"
	"github.com/spf13/cobra"
)

// dicomDeidOptions are the flags of `medcad dicom deid`.
type dicomDeidOptions struct {
	paths     []string
	out       string
	keyFile   string
	keepDates bool
	shiftDays int
	shift     bool // --shift-dates was given
}

func newDicomDeidCmd(a *app) *cobra.Command {
	var opts dicomDeidOptions
	cmd := &cobra.Command{
		Use:   "deid PATH... --out DIR [--key-file F] [--keep-dates | --shift-dates DAYS]",
		Short: "De-identify DICOM files (PS3.15 Annex E Basic Profile)",
		Long: `De-identify DICOM files with the Basic Application Level Confidentiality
Profile of DICOM PS3.15 Annex E: every attribute of table E.1-1 gets its
action at every nesting level, private, curve and overlay groups are removed,
and UIDs are replaced by 2.25.<decimal> derived from a keyed hash (HMAC-SHA-256
with the project key), so the same input always maps to the same output.

Files are written under --out with the layout they had under each folder
argument (a file argument lands at DIR/<its name>). Pixel data is copied
untouched and the transfer syntax is kept (deflated becomes explicit VR
little endian). A bad file gets one error line naming it; the rest go on.
Files that are not DICOM inside folders are skipped with a note.

Dates are removed by default; --keep-dates keeps them (option 113106) and
--shift-dates DAYS moves every date by DAYS days (option 113107).

The key is --key-file, or data.key_file of medcad.toml (default
.medcad/project.key), created with 32 random bytes and mode 0600 when
missing. It is never printed.

Stdout: one line per written file, "CASE-ID<TAB>OUTPUT"; with --json one
object per file. Exit 0 when every DICOM file was written, 1 otherwise.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.paths = a.paths(args)
			opts.shift = cmd.Flags().Changed("shift-dates")
			return runDicomDeid(cmd.Context(), a, opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.out, "out", "o", "", "write de-identified files under `DIR` (required)")
	f.StringVar(&opts.keyFile, "key-file", "", "project key `FILE` (default: data.key_file of medcad.toml, .medcad/project.key)")
	f.BoolVar(&opts.keepDates, "keep-dates", false, "keep dates and times (Retain Longitudinal Temporal Information, Full Dates)")
	f.IntVar(&opts.shiftDays, "shift-dates", 0, "shift every date by `DAYS` days (Retain Longitudinal Temporal Information, Modified Dates)")
	return cmd
}

// deidRecord is one file in `dicom deid --json` output.
type deidRecord struct {
	In      string `json:"in"`
	Out     string `json:"out,omitempty"`
	CaseID  string `json:"case_id,omitempty"`
	Series  string `json:"series_uid,omitempty"` // de-identified
	Skipped bool   `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
}

func runDicomDeid(ctx context.Context, a *app, opts dicomDeidOptions) error {
	if opts.out == "" {
		return usagef("dicom deid: --out DIR is required")
	}
	if opts.keepDates && opts.shift {
		return usagef("dicom deid: --keep-dates and --shift-dates exclude each other")
	}
	if opts.shift && (opts.shiftDays < -36500 || opts.shiftDays > 36500) {
		return usagef("dicom deid: --shift-dates %d: want at most 36500 days either way", opts.shiftDays)
	}
	keyFile, err := projectKeyFile(a, opts.keyFile)
	if err != nil {
		return err
	}
	key, err := deid.LoadKey(keyFile)
	if err != nil {
		return err
	}
	if st, err := os.Stat(keyFile); err == nil && st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(a.err, "warning: key file %s is readable by others (mode %04o); run: chmod 600 %s\n", keyFile, st.Mode().Perm(), keyFile)
	}
	dopts := deid.Options{}
	switch {
	case opts.keepDates:
		dopts.Dates = deid.DatesKeep
	case opts.shift:
		dopts.Dates, dopts.ShiftDays = deid.DatesShift, opts.shiftDays
	}
	finish := func() {}
	if !a.json {
		var prog cas.Progress
		prog, finish = a.meter("de-identifying")
		dopts.Progress = prog
	}
	d := deid.New(key, dopts)
	a.log.Debug("dicom deid", "inputs", len(opts.paths), "out", opts.out, "dates", int(dopts.Dates))

	var records []deidRecord
	written, failed, skipped := 0, 0, 0
	err = d.Tree(ctx, opts.paths, opts.out, func(r deid.Result) {
		if r.Err != nil {
			clearBar(dopts.Progress) // the note or error goes on a line of its own
		}
		rec := deidRecord{In: r.In, Out: r.Out, CaseID: r.Info.CaseID, Series: r.Info.SeriesUID, Skipped: r.Skipped}
		switch {
		case r.Skipped:
			skipped++
			rec.Error = r.Err.Error()
			a.log.Debug("skipped", "file", r.In)
			if !a.json {
				fmt.Fprintf(a.err, "note: skipped %v\n", r.Err)
			}
		case r.Err != nil:
			failed++
			rec.Error = r.Err.Error()
			if !a.json {
				fmt.Fprintf(a.err, "error: %v\n", r.Err)
			}
		default:
			written++
			if !a.json {
				fmt.Fprintf(a.out, "%s\t%s\n", r.Info.CaseID, r.Out)
			}
		}
		records = append(records, rec)
	})
	finish()
	if err != nil {
		return err
	}
	if a.json {
		if records == nil {
			records = []deidRecord{}
		}
		if err := a.printJSON(records); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.err, "de-identified %s into %s; %d skipped, %d failed\n", plural(written, "file"), opts.out, skipped, failed)
	}
	switch {
	case failed > 0:
		return fmt.Errorf("dicom deid: %s failed", plural(failed, "file"))
	case written == 0:
		return errors.New("dicom deid: no DICOM files found")
	}
	return nil
}

// projectKeyFile returns the key file to use: the flag, else medcad.toml's
// data.key_file, else the default.
func projectKeyFile(a *app, flag string) (string, error) {
	if flag != "" {
		return a.path(flag), nil
	}
	root, cfg, err := a.config()
	if errors.Is(err, gitops.ErrNoProject) {
		return a.path(gitops.Default().Data.KeyFile), nil
	}
	if err != nil {
		return "", err
	}
	return cfg.KeyPath(root), nil
}

// dicomScanPHIOptions are the arguments of `medcad dicom scan-phi`.
type dicomScanPHIOptions struct {
	paths []string
}

// scanRecord is one file in `dicom scan-phi --json` output.
type scanRecord struct {
	File       string   `json:"file"`
	Attributes []string `json:"attributes"`
}

func newDicomScanPHICmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "scan-phi PATH...",
		Short: "List DICOM files that still hold attributes the de-identification profile removes or replaces",
		Long: `Scan DICOM files (folders are walked) for attributes that the PS3.15
Annex E Basic Profile removes or replaces: private, curve and overlay groups,
table E.1-1 attributes still holding a value, UIDs that are neither standard
nor replaced (2.25.<decimal>), and dates unless the file declares that dates
were kept or shifted. Only attribute names and tags are printed, never values.

Stdout: one line per file with findings, "FILE: ATTRIBUTE, ATTRIBUTE…";
with --json a list of {file, attributes}. Exit 0 when clean, 3 when any file
holds such attributes, 1 when a file could not be read.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDicomScanPHI(cmd.Context(), a, dicomScanPHIOptions{paths: a.paths(args)})
		},
	}
}

func runDicomScanPHI(ctx context.Context, a *app, opts dicomScanPHIOptions) error {
	records := []scanRecord{}
	checked, failed := 0, 0
	err := deid.ScanTree(ctx, opts.paths, func(r deid.ScanResult) {
		switch {
		case r.Skipped:
			if !a.json {
				fmt.Fprintf(a.err, "note: skipped %v\n", r.Err)
			}
		case r.Err != nil:
			failed++
			fmt.Fprintf(a.err, "error: %v\n", r.Err)
		default:
			checked++
			if len(r.Found) > 0 {
				records = append(records, scanRecord{File: r.Path, Attributes: r.Found})
				if !a.json {
					fmt.Fprintf(a.out, "%s: %s\n", r.Path, strings.Join(r.Found, ", "))
				}
			}
		}
	})
	if err != nil {
		return err
	}
	if a.json {
		if err := a.printJSON(records); err != nil {
			return err
		}
	}
	switch {
	case len(records) > 0:
		return fmt.Errorf("scan-phi: %d of %s hold attributes the profile removes or replaces: %w", len(records), plural(checked, "file"), errCheckFailed)
	case failed > 0:
		return fmt.Errorf("scan-phi: %s could not be read", plural(failed, "file"))
	case checked == 0:
		return errors.New("scan-phi: no DICOM files found")
	}
	if !a.json {
		fmt.Fprintf(a.err, "scan-phi: %s clean\n", plural(checked, "file"))
	}
	return nil
}
