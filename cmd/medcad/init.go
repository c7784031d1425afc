package main

import (
	"fmt"

	"github.com/medcad/medcad/gitops"
	"github.com/spf13/cobra"
)

type initOptions struct {
	dir   string
	force bool
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
			return runInit(a, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.force, "force", false, "overwrite existing files")
	return cmd
}

func runInit(a *app, opts initOptions) error {
	res, err := gitops.Scaffold(opts.dir, opts.force)
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
