package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/gitrepo"
	"github.com/spf13/cobra"
)

func newRunsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List, show, compare and share training run records (git refs refs/medcad/runs/*)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List run records, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repo, err := a.repo()
			if err != nil {
				return err
			}
			runs, err := gitops.ListRuns(repo)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(runs)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTAGE\tCOMMIT\tDATASETS\tMETRICS")
			for _, r := range runs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Stage, shortCommit(r.Commit, r.Dirty), strings.Join(sortedKeys(r.Datasets), ","), metricsLine(r.Metrics))
			}
			return tw.Flush()
		},
	}, &cobra.Command{
		Use:   "show ID",
		Short: "Print one run record (an id prefix is enough)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := a.repo()
			if err != nil {
				return err
			}
			r, err := gitops.LoadRun(repo, args[0])
			if err != nil {
				return err
			}
			return a.printJSON(r)
		},
	}, &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two runs: params, datasets and metrics side by side",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := a.repo()
			if err != nil {
				return err
			}
			ra, err := gitops.LoadRun(repo, args[0])
			if err != nil {
				return err
			}
			rb, err := gitops.LoadRun(repo, args[1])
			if err != nil {
				return err
			}
			return printRunDiff(a, ra, rb)
		},
	})
	for _, dir := range []string{"push", "pull"} {
		var remote string
		c := &cobra.Command{
			Use:   dir,
			Short: map[string]string{"push": "Push run records to a git remote", "pull": "Fetch run records from a git remote"}[dir],
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				repo, err := a.repo()
				if err != nil {
					return err
				}
				if dir == "push" {
					err = gitops.PushRuns(cmd.Context(), repo, gitrepo.Remote{Name: remote, Token: os.Getenv("GITHUB_TOKEN")})
				} else {
					err = gitops.PullRuns(cmd.Context(), repo, gitrepo.Remote{Name: remote, Token: os.Getenv("GITHUB_TOKEN")})
				}
				if err != nil {
					return fmt.Errorf("runs %s %s: %w", dir, remote, err)
				}
				runs, err := gitops.ListRuns(repo)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.err, "%s %sed (%s)\n", plural(len(runs), "run record"), dir, remote)
				return nil
			},
		}
		c.Flags().StringVar(&remote, "remote", "origin", "git remote name")
		cmd.AddCommand(c)
	}
	return cmd
}

// repo opens the git repository holding the working directory (or -C DIR).
func (a *app) repo() (*git.Repository, error) {
	repo, err := gitrepo.Open(a.workDir())
	if err != nil {
		return nil, fmt.Errorf("not in a git repository (run 'medcad init'): %w", err)
	}
	return repo, nil
}

func printRunDiff(a *app, ra, rb *gitops.Run) error {
	type row struct{ section, key, a, b string }
	var rows []row
	add := func(section string, ma, mb map[string]string) {
		keys := map[string]bool{}
		for k := range ma {
			keys[k] = true
		}
		for k := range mb {
			keys[k] = true
		}
		for _, k := range sortedKeys(keys) {
			rows = append(rows, row{section, k, orDash(ma[k]), orDash(mb[k])})
		}
	}
	add("param", ra.Params, rb.Params)
	add("data", shortDigests(ra.Datasets), shortDigests(rb.Datasets))
	add("metric", formatMetrics(ra.Metrics), formatMetrics(rb.Metrics))
	add("env", shortDigests(map[string]cas.ID{"lock": ra.Env}), shortDigests(map[string]cas.ID{"lock": rb.Env}))
	if a.json {
		out := make([]map[string]string, len(rows))
		for i, r := range rows {
			out[i] = map[string]string{"section": r.section, "key": r.key, "a": r.a, "b": r.b}
		}
		return a.printJSON(out)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\t\t%s\t%s\t\n", ra.ID, rb.ID)
	for _, r := range rows {
		mark := ""
		if r.a != r.b {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.section, r.key, r.a, r.b, mark)
	}
	return tw.Flush()
}

func formatMetrics(m map[string]float64) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprintf("%.4f", v)
	}
	return out
}

func metricsLine(m map[string]float64) string {
	keys := sortedKeys(m)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%.4f", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// shortDigests shortens each digest for tables; a zero one is "".
func shortDigests(m map[string]cas.ID) map[string]string {
	out := map[string]string{}
	for k, id := range m {
		out[k] = ""
		if !id.IsZero() {
			out[k] = id.Short()
		}
	}
	return out
}

func shortCommit(c string, dirty bool) string {
	if len(c) > 10 {
		c = c[:10]
	}
	if dirty {
		c += "+dirty"
	}
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
