package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/medcad/medcad/action/promote"
	"github.com/spf13/cobra"
)

func newModelCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Consume production: list the promoted versions, show one, fetch its artifact",
		Long: `Read the production chain of the project's model: the signed records the
promotion job appended (aliases/<model>/vN.json on the store, mirrored in
the git tags models/<model>/vN). Every record is verified with
[promote] public_key before anything is printed or fetched; a forged or
reordered record is an error naming it (exit code 3). Without a reachable
store the chain is read from the git tags.

REF is production, vN, N or the tag models/<model>/vN.`,
	}
	gitRemote := "origin"
	chain := func(ctx context.Context) (*promote.Chain, error) {
		p, err := a.project(ctx)
		if err != nil {
			return nil, err
		}
		return promote.ReadChain(ctx, p, os.Getenv(promote.KeyEnv), gitRemote)
	}
	cmd.PersistentFlags().StringVar(&gitRemote, "git-remote", "origin", "git `REMOTE` to fetch the model tags from when there is no store")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the promoted versions, newest first, production marked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := chain(cmd.Context())
			if err != nil {
				return err
			}
			return printChain(a, c)
		},
	}
	show := &cobra.Command{
		Use:   "show REF",
		Short: "Show one version's production record",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := chain(cmd.Context())
			if err != nil {
				return err
			}
			r, err := c.Resolve(args[0])
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(r)
			}
			prod := ""
			if r == c.Production() {
				prod = " (production)"
			}
			fmt.Fprintf(a.out, "%s v%d%s, promoted %s\n%s", r.Model, r.Version, prod, r.PromotedAt.Format("2006-01-02 15:04 UTC"), promote.Lineage(r))
			for _, name := range sortedMetricNames(r.Metrics) {
				fmt.Fprintf(a.out, "- %s %.4f\n", name, r.Metrics[name])
			}
			return nil
		},
	}
	var out string
	get := &cobra.Command{
		Use:   "get REF --out DIR",
		Short: "Fetch a version's artifact from the store, verified against its signed record",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("model get: --out DIR is required")
			}
			ctx := cmd.Context()
			p, err := a.project(ctx)
			if err != nil {
				return err
			}
			c, err := promote.ReadChain(ctx, p, os.Getenv(promote.KeyEnv), gitRemote)
			if err != nil {
				return err
			}
			r, err := c.Resolve(args[0])
			if err != nil {
				return err
			}
			res, err := promote.Get(ctx, p, r, a.path(out))
			if err != nil {
				return err
			}
			res.Dir = out
			if a.json {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.out, "%s v%d: %d files, %d bytes in %s (artifact %s, verified)\n", r.Model, r.Version, res.Files, res.Bytes, out, r.Artifact)
			return nil
		},
	}
	get.Flags().StringVar(&out, "out", "", "empty or new `DIR` to write the artifact's files to")
	keygen := &cobra.Command{
		Use:   "keygen",
		Short: "Make a signing secret for the promotion job and print its public key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret, err := promote.NewSecret()
			if err != nil {
				return err
			}
			s, err := promote.NewSigner(secret)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(map[string]string{"secret": secret, "public_key": s.Public().String()})
			}
			fmt.Fprintf(a.out, "MEDCAD_SIGNING_KEY=%s\n[promote]\npublic_key = %q\n", secret, s.Public().String())
			fmt.Fprintln(a.err, "Put MEDCAD_SIGNING_KEY in the secrets of the protected GitHub Environment the promotion job runs in (never in the repository or a pull request's job); commit public_key in medcad.toml.")
			return nil
		},
	}
	cmd.AddCommand(list, show, get, keygen)
	return cmd
}

// printChain lists the versions of a chain, newest first.
func printChain(a *app, c *promote.Chain) error {
	prod := c.Production()
	if a.json {
		type version struct {
			*promote.Record
			Production bool `json:"production"`
		}
		out := struct {
			Model    string    `json:"model"`
			Source   string    `json:"source"`
			Versions []version `json:"versions"`
		}{Model: c.Model, Source: c.Source, Versions: []version{}}
		for i := len(c.Records) - 1; i >= 0; i-- {
			out.Versions = append(out.Versions, version{c.Records[i], c.Records[i] == prod})
		}
		return a.printJSON(out)
	}
	if prod == nil {
		fmt.Fprintf(a.out, "%s: nothing promoted yet\n", c.Model)
		return nil
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\t\tARTIFACT\tPR\tMERGED BY\tPROMOTED\tMETRICS")
	for i := len(c.Records) - 1; i >= 0; i-- {
		r := c.Records[i]
		mark := ""
		if r == prod {
			mark = "production"
		}
		if r.Rollback != nil {
			mark = strings.TrimSpace(mark + fmt.Sprintf(" rollback to v%d", r.Rollback.Of))
		}
		pr, by := "-", r.MergedBy
		if r.PR > 0 {
			pr = fmt.Sprintf("#%d", r.PR)
		}
		if r.Rollback != nil {
			by = r.Rollback.By
		}
		if by == "" {
			by = "-"
		}
		var ms []string
		for _, n := range sortedMetricNames(r.Metrics) {
			ms = append(ms, fmt.Sprintf("%s=%.4f", n, r.Metrics[n]))
		}
		fmt.Fprintf(tw, "v%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Version, mark, r.Artifact.Short(), pr, by, r.PromotedAt.Format("2006-01-02 15:04"), strings.Join(ms, " "))
	}
	return tw.Flush()
}

// sortedMetricNames are a record's metrics in name order.
func sortedMetricNames(m map[string]float64) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
