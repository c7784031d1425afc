package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the implementation of issue 4 (stages/dicom).
func newDicomInspectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    "inspect",
		Short:  "(not built yet)",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("inspect: not built yet") },
	}
}

// PLACEHOLDER: replaced by the implementation of issue 4.
func newDicomConvertCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "convert", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("convert: not built yet") }}
}
