package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the implementation of issue 6.
func newSegmentCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    "segment",
		Short:  "(not built yet)",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("segment: not built yet") },
	}
}
