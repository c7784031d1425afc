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
	ctx, cancel := context.WithCancelCause(ctx)
	signal.Ignore(syscall.SIGPIPE) // see pipeWriter
	out := pipeWriter{os.Stdout, cancel}
	code := run(ctx, os.Args[1:], streams{in: os.Stdin, out: out, err: os.Stderr})
	cancel(nil)
	stop()
	os.Exit(code)
}
