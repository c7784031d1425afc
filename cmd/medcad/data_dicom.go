package main

import (
	"context"
	"fmt"

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
// key (intake.KeyFile).
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
		return intake.WriteKey(p.Root, name, keep)
	}
	return func(ctx context.Context, src, out string) ([]gitops.DatasetCase, []string, error) {
		key, err := deid.LoadKey(cfg.KeyPath(p.Root))
		if err != nil {
			return nil, nil, err
		}
		res, err := intake.Prepare(ctx, src, out, intake.Options{
			Deid:   deid.New(key, deid.Options{}),
			Series: dicom.Options{Strict: cfg.Data.Strict},
		})
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

// printRefused writes one line per refused case on stderr.
func printRefused(a *app, refused []string) {
	for _, r := range refused {
		fmt.Fprintf(a.err, "medcad: case refused: %s\n", r)
	}
}
