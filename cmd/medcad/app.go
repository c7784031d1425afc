package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"

	"github.com/mattn/go-isatty"
	"github.com/medcad/medcad/action/ci"
	"github.com/medcad/medcad/action/promote"
	"github.com/medcad/medcad/action/runner"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/stages"
	"github.com/spf13/cobra"
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

// streams are the process's standard files, injected so tests can fake
// them, terminal or not.
type streams struct {
	in  io.Reader
	out io.Writer
	err io.Writer
	// terminal reports whether w is an interactive terminal; nil: asks
	// the operating system.
	terminal func(w io.Writer) bool
}

// app is what every command shares: IO, global flags and the logger.
type app struct {
	streams
	dir   string // -C
	json  bool   // --json
	debug bool   // --debug
	log   *slog.Logger
	root  *cobra.Command // the command tree, for what built-in stage commands compute
}

// isTerminal reports whether w is an interactive terminal.
func isTerminal(w io.Writer) bool {
	if p, ok := w.(pipeWriter); ok {
		w = p.w
	}
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// colour reports whether output to w may use ANSI colour.
func (a *app) colour(w io.Writer) bool {
	_, noColor := os.LookupEnv("NO_COLOR")
	return !noColor && a.isTerminal(w)
}

// isTerminal reports whether w is an interactive terminal.
func (a *app) isTerminal(w io.Writer) bool {
	if a.terminal != nil {
		return a.terminal(w)
	}
	return isTerminal(w)
}

// progressOn reports whether progress bars may be drawn on stderr.
func (a *app) progressOn() bool { return a.isTerminal(a.err) }

// path resolves a path given on the command line: relative paths are
// relative to -C DIR, as with git.
func (a *app) path(p string) string {
	if a.dir == "" || p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(a.dir, p)
}

// paths resolves several command-line paths like path.
func (a *app) paths(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = a.path(p)
	}
	return out
}

// isPathFlag reports whether the string flag name holds a file or folder
// given on the command line (resolved against -C DIR).
func isPathFlag(name string) bool {
	switch name {
	case "out", "in", "dir", "data", "model", "params", "key-file", "truth", "pred", "truth-dir", "pred-dir",
		"metrics-out", "assets", "image", "label", "cases":
		return true
	}
	return false
}

// workDir is where the command acts: -C DIR, or the working directory.
func (a *app) workDir() string {
	if a.dir == "" {
		return "."
	}
	return a.dir
}

// project opens the project holding the working directory (or -C DIR),
// with this invocation's logger and progress display.
func (a *app) project(ctx context.Context) (*gitops.Project, error) {
	p, err := gitops.Open(ctx, a.workDir(), gitops.OpenOptions{Log: a.log})
	if err != nil {
		return nil, err
	}
	p.Meter = a.meter
	p.OnLockWait = func(lockFile string) {
		fmt.Fprintf(a.err, "medcad: waiting for %s: another medcad command is using the store\n", lockFile)
	}
	return p, nil
}

// config loads the configuration of the project holding the working
// directory (or -C DIR), and its root.
func (a *app) config() (string, gitops.Config, error) {
	root, err := gitops.FindRoot(a.workDir())
	if err != nil {
		return "", gitops.Config{}, err
	}
	cfg, err := gitops.LoadConfig(root)
	return root, cfg, err
}

// printJSON writes v as one indented JSON document to stdout. Lists are
// never null: a nil slice anywhere in v (a struct field, an element) is
// written as [].
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(emptyLists(v))
}

// emptyLists returns v with its nil slices replaced by empty ones: v
// itself when it is a nil slice, else a copy of v (or v's pointee, in
// place) whose reachable exported slice fields and elements are non-nil.
// Maps' values, byte slices and values of types with their own MarshalJSON
// are left alone.
func emptyLists(v any) any {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return v
	}
	if rv.Kind() == reflect.Slice && rv.IsNil() && rv.Type().Elem().Kind() != reflect.Uint8 {
		return reflect.MakeSlice(rv.Type(), 0, 0).Interface()
	}
	p := rv
	if rv.Kind() != reflect.Pointer {
		p = reflect.New(rv.Type())
		p.Elem().Set(rv)
	}
	fillLists(p, 0)
	if rv.Kind() != reflect.Pointer {
		return p.Elem().Interface()
	}
	return v
}

var marshalerType = reflect.TypeFor[json.Marshaler]()

func fillLists(v reflect.Value, depth int) {
	if depth > 32 {
		return
	}
	// A type that marshals itself decides what nil means (e.g. an
	// omitted field); leave it alone.
	if v.Type().Implements(marshalerType) || reflect.PointerTo(v.Type()).Implements(marshalerType) {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			fillLists(v.Elem(), depth+1)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); v.Type().Field(i).IsExported() && f.CanSet() {
				fillLists(f, depth+1)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		if v.IsNil() {
			if v.CanSet() {
				v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			}
			return
		}
		for i := range v.Len() {
			fillLists(v.Index(i), depth+1)
		}
	case reflect.Array:
		if v.CanSet() {
			for i := range v.Len() {
				fillLists(v.Index(i), depth+1)
			}
		}
	}
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, s streams) int {
	a := &app{streams: s, log: slog.New(slog.DiscardHandler)}
	root := newRootCmd(a)
	a.root = root
	root.SetArgs(args)
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	failed, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if errors.Is(context.Cause(ctx), errStdoutClosed) {
		return exitBrokenPipe // nobody reads; stderr stays quiet too, as under SIGPIPE
	}
	code := exitCode(ctx, err)
	if code == exitInterrupted {
		fmt.Fprintln(s.err, "medcad: interrupted")
		return code
	}
	fmt.Fprintf(s.err, "medcad: %v\n", err)
	if code == exitUsage {
		fmt.Fprintln(s.err, usageHint(failed))
	}
	return code
}

// usageHint points to the help of the command whose usage was wrong:
// "Run 'medcad data add --help' for usage."
func usageHint(failed *cobra.Command) string {
	path := "medcad"
	if failed != nil {
		path = failed.CommandPath()
	}
	return fmt.Sprintf("Run '%s --help' for usage.", path)
}

// exitCode maps an error to its documented exit code.
func exitCode(ctx context.Context, err error) int {
	var ue usageError
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled), errors.Is(err, stages.ErrInterrupted):
		return exitInterrupted
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, errCheckFailed), errors.Is(err, ci.ErrGatesFailed), errors.As(err, new(*promote.RefusedError)), errors.As(err, new(*promote.RecordError)), errors.Is(err, runner.ErrRefused):
		return exitCheckFailed
	default:
		return exitError
	}
}
