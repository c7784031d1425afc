package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/stages"
	"github.com/spf13/cobra"
)

func newConfigCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or check medcad.toml",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration, defaults included",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, cfg, err := a.config()
			if err != nil {
				return err
			}
			if a.json {
				if cfg.Promote.MaxCaseDrop == nil {
					cfg.Promote.MaxCaseDrop = map[string]float64{} // {}, not null
				}
				return a.printJSON(cfg)
			}
			return toml.NewEncoder(a.out).Encode(cfg)
		},
	}, &cobra.Command{
		Use:   "check",
		Short: "Validate medcad.toml as repro would; exit 0 when valid, 1 when not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConfigCheck(a)
		},
	})
	return cmd
}

// configProblem is one error of medcad.toml at a line (0: unknown).
type configProblem struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

func (p configProblem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", gitops.ConfigFile, p.Line, p.Message)
	}
	return fmt.Sprintf("%s: %s", gitops.ConfigFile, p.Message)
}

// configProblems is every problem config check found; run prints the
// first line after "medcad: ", so the others get the same prefix here.
type configProblems []configProblem

func (ps configProblems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\nmedcad: ")
}

// runConfigCheck decodes medcad.toml strictly, then validates the
// pipeline (deps, outs, placeholders) and the params of built-in commands
// as repro does, reporting every problem with its line.
func runConfigCheck(a *app) error {
	root, cfg, err := a.config()
	if err != nil {
		return err
	}
	problems, err := checkPipeline(root, cfg)
	if err != nil {
		return err
	}
	if a.json {
		if err := a.printJSON(struct {
			File     string          `json:"file"`
			OK       bool            `json:"ok"`
			Problems []configProblem `json:"problems"`
		}{gitops.ConfigFile, len(problems) == 0, problems}); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return problems
	}
	if a.json {
		return nil
	}
	_, err = fmt.Fprintf(a.out, "%s: ok\n", gitops.ConfigFile)
	return err
}

// checkPipeline returns the problems stages.Check finds in the project's
// config, each at its line of medcad.toml; nil when there are none.
func checkPipeline(root string, cfg gitops.Config) (configProblems, error) {
	found := stages.Check(cfg, stages.NewPointers(root, nil))
	if len(found) == 0 {
		return nil, nil
	}
	data, err := os.ReadFile(filepath.Join(root, gitops.ConfigFile))
	if err != nil {
		return nil, err
	}
	var ps configProblems
	for _, f := range found {
		line := gitops.KeyLine(data, f.Key)
		if f.Stage >= 0 {
			line = gitops.StageLine(data, f.Stage, f.Key)
		}
		ps = append(ps, configProblem{line, f.Err.Error()})
	}
	slices.SortStableFunc(ps, func(a, b configProblem) int { return cmp.Compare(a.Line, b.Line) })
	return ps, nil
}
