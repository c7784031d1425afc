package main

import (
	"fmt"

	"github.com/medcad/medcad/gitops"
	"github.com/spf13/cobra"
)

type initOptions struct {
	dir    string
	force  bool
	runner string
}

func newInitCmd(a *app) *cobra.Command {
	var opts initOptions
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Scaffold a medcad project (git repository, medcad.toml, workflow)",
		Long: `Scaffold a medcad project in DIR (default: the current directory).

Creates a git repository when DIR is not inside one, medcad.toml with
commented defaults, .gitignore, data/ and models/, the GitHub workflow
.github/workflows/medcad.yml and a short README. Existing files are kept
unless --force; running init twice changes nothing.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.dir = a.workDir()
			if len(args) == 1 {
				opts.dir = a.path(args[0])
			}
			if opts.runner != "" && opts.runner != "ec2" {
				return usagef("--runner %q: want ec2 (or leave it out for GitHub-hosted runners)", opts.runner)
			}
			return runInit(a, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.force, "force", false, "overwrite existing files")
	cmd.Flags().StringVar(&opts.runner, "runner", "", "\"ec2\": a workflow that trains on ephemeral EC2 GPU runners (medcad runner)")
	return cmd
}

func runInit(a *app, opts initOptions) error {
	res, err := gitops.ScaffoldWith(opts.dir, gitops.ScaffoldOptions{Force: opts.force, Runner: opts.runner})
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(res)
	}
	if res.GitInit {
		fmt.Fprintf(a.out, "initialized git repository in %s\n", opts.dir)
	}
	for _, p := range res.Created {
		fmt.Fprintf(a.out, "created  %s\n", p)
	}
	for _, p := range res.Written {
		fmt.Fprintf(a.out, "replaced %s\n", p)
	}
	for _, p := range res.Kept {
		fmt.Fprintf(a.out, "kept     %s (exists; --force overwrites)\n", p)
	}
	return nil
}
