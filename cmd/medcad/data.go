package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the implementation of issue 3.
func newDataCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    "data",
		Short:  "(not built yet)",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("data: not built yet") },
	}
}

// PLACEHOLDER: replaced by the implementation of issue 3.
func newGCCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "gc", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("gc: not built yet") }}
}
