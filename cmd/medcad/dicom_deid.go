package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the implementation of issue 4 (de-identification).
func newDicomDeidCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    "deid",
		Short:  "(not built yet)",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("deid: not built yet") },
	}
}

// PLACEHOLDER: replaced by the implementation of issue 4.
func newDicomScanPHICmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "scan-phi", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("scan-phi: not built yet") }}
}
