package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/medcad/medcad/action/promote"
	"github.com/medcad/medcad/internal/atomicfile"
	"github.com/medcad/medcad/reports"
	"github.com/spf13/cobra"
)

type auditOptions struct {
	format    string
	out       string
	gitRemote string
}

func newAuditCmd(a *app) *cobra.Command {
	opts := auditOptions{format: "md", gitRemote: "origin"}
	cmd := &cobra.Command{
		Use:   "audit REF [--format md|html|json] [--out FILE]",
		Short: "Print the lineage document of one model version for an auditor",
		Long: `Print the audit document of one promoted model version: its datasets
(batches, case counts, label rules, de-identification profile, manifest and
pointer digests), the code commit and pull request, the environment lock
and its packages, the params, the evaluation (per-metric mean with its 95%
bootstrap interval, every case), the gates and their verdict against the
baseline version, who approved and merged it, when it was promoted, whether
it is a rollback (of which version, by whom, why) and the chain's other
versions. Cases appear by their pseudonymous ids only.

The production chain is read and verified as 'medcad model' does it (a
forged or reordered record is an error naming it, exit code 3); the
manifest is read at the record's commit and checked against its digest.

REF is production, vN, N or the tag models/<model>/vN. --format md
(default) is Markdown; html is one self-contained page laid out for A4
printing; json is for machines (--json is the same as --format json).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAudit(cmd.Context(), a, args[0], opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.format, "format", "md", "md, html or json")
	f.StringVar(&opts.out, "out", "", "write the document to `FILE` (atomically) instead of stdout")
	f.StringVar(&opts.gitRemote, "git-remote", "origin", "git `REMOTE` to fetch the model tags from when there is no store")
	return cmd
}

func runAudit(ctx context.Context, a *app, ref string, opts auditOptions) error {
	if a.json {
		opts.format = "json"
	}
	switch opts.format {
	case "md", "html", "json":
	default:
		return usagef("audit: --format %q: want md, html or json", opts.format)
	}
	p, err := a.project(ctx)
	if err != nil {
		return err
	}
	c, err := promote.ReadChain(ctx, p, os.Getenv(promote.KeyEnv), opts.gitRemote)
	if err != nil {
		return err
	}
	r, err := c.Resolve(ref)
	if err != nil {
		return err
	}
	in, err := promote.AuditInput(ctx, p, c, r)
	if err != nil {
		return err
	}
	in.Generated = time.Now()
	doc, err := reports.NewAudit(in)
	if err != nil {
		return err
	}
	var body []byte
	switch opts.format {
	case "json":
		body, err = reports.AuditJSON(doc)
	case "html":
		body, err = reports.AuditHTML(doc)
	default:
		body = []byte(reports.AuditMarkdown(doc))
	}
	if err != nil {
		return err
	}
	if opts.out == "" {
		_, err = a.out.Write(body)
		return err
	}
	if err := atomicfile.WriteFile(opts.out, body, 0o644); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	fmt.Fprintf(a.err, "wrote %s (%s v%d)\n", opts.out, doc.Model, doc.Version)
	return nil
}
