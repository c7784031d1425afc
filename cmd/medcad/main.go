// Command medcad brings MLOps to medical imaging: versioned DICOM datasets,
// reproducible pipelines, baseline comparison reports and Git-native
// promotion of bone segmentation models.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr})
	stop()
	os.Exit(code)
}
