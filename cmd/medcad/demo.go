package main

import (
	"fmt"
	"os"

	"github.com/BurntSushi/toml"
	"github.com/medcad/medcad/gitops"
	"github.com/spf13/cobra"
)

type demoOptions struct {
	dir  string
	keep bool
}

func newDemoCmd(a *app) *cobra.Command {
	var opts demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the medcad lifecycle on synthetic CT in a scratch project",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(a, opts)
		},
	}
	cmd.Flags().StringVar(&opts.dir, "dir", "", "project folder (default: a new temporary folder)")
	cmd.Flags().BoolVar(&opts.keep, "keep", false, "keep the temporary project folder")
	return cmd
}

func runDemo(a *app, opts demoOptions) error {
	dir := opts.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "medcad-demo-")
		if err != nil {
			return err
		}
		dir = tmp
		if !opts.keep {
			defer os.RemoveAll(tmp)
		}
	}
	fmt.Fprintf(a.err, "==> medcad init %s\n", dir)
	if _, err := gitops.Scaffold(dir, false); err != nil {
		return err
	}
	cfg, err := gitops.LoadConfig(dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(a.err, "==> effective configuration")
	return toml.NewEncoder(a.out).Encode(cfg)
}
