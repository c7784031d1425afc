package main

import (
	"fmt"

	"github.com/BurntSushi/toml"
	"github.com/medcad/medcad/gitops"
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
				return a.printJSON(cfg)
			}
			return toml.NewEncoder(a.out).Encode(cfg)
		},
	}, &cobra.Command{
		Use:   "check",
		Short: "Validate medcad.toml; exit 0 when valid, 1 when not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := a.config(); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(struct {
					File string `json:"file"`
					OK   bool   `json:"ok"`
				}{gitops.ConfigFile, true})
			}
			_, err := fmt.Fprintf(a.out, "%s: ok\n", gitops.ConfigFile)
			return err
		},
	})
	return cmd
}
