package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newRootCmd builds the command tree. Every subcommand is constructed here
// from a function newXCmd(a *app) defined in its own file.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "medcad",
		Short:         "MLOps for medical imaging: versioned DICOM data, pipelines, reports and Git-native promotion",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs, // an unknown command is a usage error
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.debug {
				a.log = slog.New(slog.NewTextHandler(a.err, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			if a.dir != "" {
				if fi, err := os.Stat(a.dir); err != nil {
					return usagef("-C %s: %v", a.dir, err)
				} else if !fi.IsDir() {
					return usagef("-C %s: not a folder", a.dir)
				}
				var err error
				cmd.Flags().Visit(func(f *pflag.Flag) {
					if isPathFlag(f.Name) && f.Value.Type() == "string" && err == nil {
						err = f.Value.Set(a.path(f.Value.String()))
					}
				})
				return err
			}
			return nil
		},
	}
	root.PersistentFlags().StringVarP(&a.dir, "directory", "C", "", "run as if medcad was started in `DIR`")
	root.PersistentFlags().BoolVar(&a.json, "json", false, "machine-readable JSON output where the command supports it")
	root.PersistentFlags().BoolVar(&a.debug, "debug", false, "debug logging to stderr")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	root.AddCommand(
		newVersionCmd(a),
		newInitCmd(a),
		newConfigCmd(a),
		newDemoCmd(a),
		newDataCmd(a),    // data.go: dataset versioning (issue 3)
		newGCCmd(a),      // data.go
		newDicomCmd(a),   // dicom.go: DICOM inspect/convert (issue 4); dicom_deid.go: deid, scan-phi
		newEvalCmd(a),    // eval.go: metrics (issue 5)
		newSurfaceCmd(a), // surface.go: marching cubes (issue 5)
		newPhantomCmd(a), // phantom.go: synthetic CT (issue 6)
		newSegmentCmd(a), // segment.go: built-in models (issue 6)
		newEnvCmd(a),     // env.go: environment lock
		newRunsCmd(a),    // runs.go: run records
		newReproCmd(a),   // repro.go: pipeline
		newStatusCmd(a),  // repro.go
		newStageCmd(a),   // stage.go: built-in pipeline steps
		newReportCmd(a),  // report.go: baseline comparison (issue 8)
		newMetricsCmd(a), // report.go: metrics diff
		newGateCmd(a),    // report.go: promotion gates
		newCICmd(a),      // ci.go: GitHub Actions jobs (issue 9)
		newPromoteCmd(a), // ci.go: merge = promotion
		newModelCmd(a),   // model.go: production chain consumers
		newRunnerCmd(a),  // runner.go: EC2 GPU runners
		newAuditCmd(a),   // audit.go: lineage document of a model version
	)
	wrapArgs(root)
	applyHelp(root) // help.go: descriptions, examples, --json and exit codes
	return root
}

// wrapArgs makes positional-argument errors of every command usage errors.
func wrapArgs(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				if cmd.HasParent() {
					err = fmt.Errorf("%s: %w", cmd.CommandPath(), err)
				}
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// algorithmKey annotates a command with the version of what it computes:
// a built-in stage's cache key holds it instead of medcad's build.
const algorithmKey = "medcad:algorithm"

func algorithm(version string) map[string]string { return map[string]string{algorithmKey: version} }

// algorithmOf names what a built-in stage command computes, e.g.
// "medcad segment train 1"; "" when the command declares no version (its
// key then holds medcad's build).
func algorithmOf(root *cobra.Command, run string) string {
	f := strings.Fields(run)
	if len(f) < 2 || f[0] != "medcad" {
		return ""
	}
	cmd, _, err := root.Find(f[1:])
	if err != nil || cmd.Annotations[algorithmKey] == "" {
		return ""
	}
	return cmd.CommandPath() + " " + cmd.Annotations[algorithmKey]
}
