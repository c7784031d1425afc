package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/stages/segment"
)

// medcadIn runs one command in-process with fake streams; terminal says
// whether they count as a terminal.
func medcadIn(t *testing.T, terminal bool, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	s := streams{in: strings.NewReader(""), out: &out, err: &errb, terminal: func(io.Writer) bool { return terminal }}
	code = run(context.Background(), args, s)
	return out.String(), errb.String(), code
}

// TestProgressOnlyOnTerminal: data add draws its progress on stderr when
// stderr is a terminal and prints none otherwise; stdout is the same.
func TestProgressOnlyOnTerminal(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	for _, terminal := range []bool{false, true} {
		dir := t.TempDir()
		if _, e, code := medcadIn(t, false, "init", dir); code != 0 {
			t.Fatalf("init: exit %d: %s", code, e)
		}
		in := filepath.Join(dir, "in")
		if err := os.MkdirAll(in, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(in, "a.txt"), bytes.Repeat([]byte("x"), 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		out, e, code := medcadIn(t, terminal, "-C", dir, "data", "add", "in", "--name", "b1")
		if code != 0 {
			t.Fatalf("data add (terminal %v): exit %d: %s", terminal, code, e)
		}
		if !strings.HasPrefix(out, "added b1: 1 file,") {
			t.Errorf("terminal %v: stdout %q", terminal, out)
		}
		if got := strings.Contains(e, "hashing"); got != terminal {
			t.Errorf("terminal %v: progress on stderr = %v: %q", terminal, got, e)
		}
	}
}

// TestFindsProjectFromSubfolder: like git, a command run in a folder of
// the project finds its root; outside any project it says so.
func TestFindsProjectFromSubfolder(t *testing.T) {
	dir := t.TempDir()
	if _, e, code := medcadIn(t, false, "init", dir); code != 0 {
		t.Fatalf("init: exit %d: %s", code, e)
	}
	if out, e, code := medcadIn(t, false, "-C", filepath.Join(dir, "data"), "data", "status"); code != 0 || !strings.Contains(out, "no datasets") {
		t.Errorf("data status in data/: exit %d, stdout %q, stderr %q", code, out, e)
	}
	_, e, code := medcadIn(t, false, "-C", t.TempDir(), "data", "status")
	if code != 1 || !strings.Contains(e, "not inside a medcad project") {
		t.Errorf("outside a project: exit %d, stderr %q", code, e)
	}
}

// TestScaffoldStagesHaveAlgorithms: every built-in command the scaffolded
// pipeline runs declares the version of what it computes, so its cache
// keys survive medcad builds that do not change it.
func TestScaffoldStagesHaveAlgorithms(t *testing.T) {
	dir := t.TempDir()
	if _, e, code := medcadIn(t, false, "init", dir); code != 0 {
		t.Fatalf("init: %s", e)
	}
	cfg, err := gitops.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{}
	root := newRootCmd(a)
	for _, s := range cfg.Stages {
		got := algorithmOf(root, s.Run)
		if !strings.HasPrefix(got, "medcad ") {
			t.Errorf("stage %s (%s): algorithm %q", s.Name, s.Run, got)
		}
	}
	if got := algorithmOf(root, "medcad segment train --data x > y"); got != "medcad segment train "+segment.Algorithm {
		t.Errorf("segment train: %q", got)
	}
	if got := algorithmOf(root, "python train.py"); got != "" {
		t.Errorf("external command: %q", got)
	}
}
