package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/mattn/go-isatty"
)

// Exit codes, decided only here from error classes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitCheckFailed = 3
	exitInterrupted = 130
)

// errCheckFailed marks an error that means "the check ran and found a
// problem" (a failed gate, PHI found, drift): exit code 3.
var errCheckFailed = errors.New("check failed")

// usageError marks a command-line mistake: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// streams are the process's standard files, injected so tests can fake them.
type streams struct {
	in  io.Reader
	out io.Writer
	err io.Writer
}

// app is what every command shares: IO, global flags and the logger.
type app struct {
	streams
	dir   string // -C
	json  bool   // --json
	debug bool   // --debug
	log   *slog.Logger
}

// isTerminal reports whether w is an interactive terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// colour reports whether output to w may use ANSI colour.
func (a *app) colour(w io.Writer) bool {
	_, noColor := os.LookupEnv("NO_COLOR")
	return !noColor && isTerminal(w)
}

// progressOn reports whether progress bars may be drawn on stderr.
func (a *app) progressOn() bool { return isTerminal(a.err) }

// printJSON writes v as indented JSON to stdout.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, s streams) int {
	a := &app{streams: s, log: slog.New(slog.DiscardHandler)}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(ctx, err)
	if code == exitInterrupted {
		fmt.Fprintln(s.err, "medcad: interrupted")
		return code
	}
	fmt.Fprintf(s.err, "medcad: %v\n", err)
	if code == exitUsage {
		fmt.Fprintln(s.err, "Run 'medcad --help' for usage.")
	}
	return code
}

// exitCode maps an error to its documented exit code.
func exitCode(ctx context.Context, err error) int {
	var ue usageError
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, errCheckFailed):
		return exitCheckFailed
	default:
		return exitError
	}
}
