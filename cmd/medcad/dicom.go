package main

import (
	"github.com/spf13/cobra"
)

// newDicomCmd groups the DICOM commands. inspect and convert live in
// dicom_convert.go, deid and scan-phi in dicom_deid.go.
func newDicomCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dicom",
		Short: "Inspect, convert and de-identify DICOM series",
	}
	cmd.AddCommand(
		newDicomInspectCmd(a),
		newDicomConvertCmd(a),
		newDicomDeidCmd(a),
		newDicomScanPHICmd(a),
	)
	return cmd
}
