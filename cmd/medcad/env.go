package main

import (
	"context"
	"fmt"
	"os/exec"
	"text/tabwriter"

	"github.com/medcad/medcad/gitops"
	"github.com/spf13/cobra"
)

func newEnvCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Show the environment lock and check an installed Python environment against it",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the environment lock files, their digests and locked packages",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEnvShow(a)
		},
	})
	var python string
	check := &cobra.Command{
		Use:   "check",
		Short: "Compare the packages installed in a Python environment with uv.lock; exit 3 on drift",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEnvCheck(cmd.Context(), a, python)
		},
	}
	check.Flags().StringVar(&python, "python", "", "the environment's python (default: .venv/bin/python, else python3 on PATH)")
	cmd.AddCommand(check)
	return cmd
}

// readEnvLocks reads every lock file named in [env] lock.
func readEnvLocks(a *app) ([]*gitops.EnvLock, error) {
	root, cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if len(cfg.Env.Lock) == 0 {
		return nil, fmt.Errorf("%s: [env] lock lists no lock file (e.g. lock = [\"uv.lock\"])", gitops.ConfigFile)
	}
	locks := make([]*gitops.EnvLock, 0, len(cfg.Env.Lock))
	for _, f := range cfg.Env.Lock {
		l, err := gitops.ReadEnvLock(root, f)
		if err != nil {
			return nil, err
		}
		locks = append(locks, l)
	}
	return locks, nil
}

func runEnvShow(a *app) error {
	locks, err := readEnvLocks(a)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(locks)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	for _, l := range locks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", l.File, l.Digest, plural(len(l.Packages), "package"))
		for _, p := range l.Packages {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.Name, p.Version, p.Source)
		}
	}
	return tw.Flush()
}

func runEnvCheck(ctx context.Context, a *app, python string) error {
	locks, err := readEnvLocks(a)
	if err != nil {
		return err
	}
	if python == "" {
		python = defaultPython()
	}
	ver, installed, err := gitops.Installed(ctx, python)
	if err != nil {
		return err
	}
	var locked []gitops.Package
	for _, l := range locks {
		locked = append(locked, l.Packages...)
	}
	drift := gitops.Compare(locked, installed)
	if a.json {
		if err := a.printJSON(map[string]any{"python": ver, "drift": drift}); err != nil {
			return err
		}
	} else {
		for _, d := range drift {
			fmt.Fprintln(a.out, d)
		}
	}
	if len(drift) > 0 {
		return fmt.Errorf("%d packages differ from the lock: %w", len(drift), errCheckFailed)
	}
	if !a.json {
		fmt.Fprintf(a.out, "environment matches the lock (%s, Python %s)\n", plural(len(installed), "package"), ver)
	}
	return nil
}

// defaultPython prefers the project's uv virtualenv.
func defaultPython() string {
	if _, err := exec.LookPath(".venv/bin/python"); err == nil {
		return ".venv/bin/python"
	}
	return "python3"
}
