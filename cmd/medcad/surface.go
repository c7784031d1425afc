package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the implementation of issue 5.
func newSurfaceCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    "surface",
		Short:  "(not built yet)",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("surface: not built yet") },
	}
}
