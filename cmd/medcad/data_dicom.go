package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/stages/dicom"
	"github.com/medcad/medcad/stages/dicom/deid"
	"github.com/medcad/medcad/stages/intake"
)

// dicomIngest is data add's DICOM mode: every case folder is de-identified
// (PS3.15 Annex E basic profile, keyed UIDs and case ids), validated as one
// CT series with a label on its grid, and only the de-identified files are
// stored. Refused cases are reported and the others go on. stored records
// the delivery folder of each stored case in the local re-identification
// key (intake.KeyFile) and, on a terminal only, prints which delivery
// folder became which case (stderr: the folder names may be PHI, so they
// never reach a log or a pipe).
func dicomIngest(a *app, p *gitops.Project, name string) (ingest gitops.IngestFunc, stored func([]gitops.DatasetCase) error) {
	cfg := p.Config
	var origins map[string]string
	stored = func(cases []gitops.DatasetCase) error {
		keep := map[string]string{}
		for _, c := range cases {
			if f, ok := origins[c.ID]; ok {
				keep[c.ID] = f
			}
		}
		if err := intake.WriteKey(p.Root, name, keep); err != nil {
			return err
		}
		printOrigins(a, keep)
		return nil
	}
	return func(ctx context.Context, src, out string) ([]gitops.DatasetCase, []string, error) {
		key, err := deid.LoadKey(cfg.KeyPath(p.Root))
		if err != nil {
			return nil, nil, err
		}
		prog, finish := a.meter("de-identifying")
		res, err := intake.Prepare(ctx, src, out, intake.Options{
			Deid:     deid.New(key, deid.Options{}),
			Series:   dicom.Options{Strict: cfg.Data.Strict},
			Progress: prog,
		})
		finish()
		var refused []string
		if res != nil {
			for _, r := range res.Refused {
				refused = append(refused, r.String())
			}
		}
		if err != nil {
			printRefused(a, refused)
			return nil, nil, err
		}
		origins = res.Origins
		fmt.Fprintf(a.err, "de-identified %s (%s)\n", plural(len(res.Cases), "case"), cfg.Data.DeidProfile)
		return res.Cases, refused, nil
	}, stored
}

// printOrigins writes, on a terminal only, one line per stored case: the
// delivery folder it came from and its case id, in folder order.
func printOrigins(a *app, origins map[string]string) {
	if !a.isTerminal(a.err) || len(origins) == 0 {
		return
	}
	ids := slices.Collect(maps.Keys(origins))
	slices.SortFunc(ids, func(x, y string) int { return strings.Compare(origins[x], origins[y]) })
	fmt.Fprintf(a.err, "case ids (kept only in %s, never pushed):\n", intake.KeyFile)
	for _, id := range ids {
		fmt.Fprintf(a.err, "  %s -> %s\n", origins[id], id)
	}
}

// printRefused writes one line per refused case on stderr.
func printRefused(a *app, refused []string) {
	for _, r := range refused {
		fmt.Fprintf(a.err, "medcad: case refused: %s\n", r)
	}
}
