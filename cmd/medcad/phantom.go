package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the implementation of issue 6.
func newPhantomCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    "phantom",
		Short:  "(not built yet)",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("phantom: not built yet") },
	}
}
