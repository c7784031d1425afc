package main

import (
	"context"
	"errors"
	"io"
	"syscall"
)

// errStdoutClosed is the cause of the context's cancellation when the
// reader of stdout went away (`medcad dicom deid … | head -1`).
var errStdoutClosed = errors.New("stdout closed")

// exitBrokenPipe is what a shell reports for a command killed by SIGPIPE
// (128 + 13); medcad exits with it, quietly, after cleaning up.
const exitBrokenPipe = 141

// pipeWriter is stdout with SIGPIPE ignored: a write to a closed pipe
// fails with EPIPE instead of killing the process mid-write, and cancels
// the command, which then stops and removes its temporary files as on
// any other error.
type pipeWriter struct {
	w      io.Writer
	cancel context.CancelCauseFunc
}

func (p pipeWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if errors.Is(err, syscall.EPIPE) {
		p.cancel(errStdoutClosed)
	}
	return n, err
}
