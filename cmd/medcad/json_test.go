package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oneJSON fails unless out is exactly one JSON document.
func oneJSON(t *testing.T, what, out string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Errorf("%s: stdout is not JSON: %v\n%s", what, err, out)
		return nil
	}
	if err := dec.Decode(new(any)); !errors.Is(err, io.EOF) {
		t.Errorf("%s: stdout holds more than one JSON document (%v)\n%s", what, err, out)
	}
	return v
}

// nulls lists where v, a decoded JSON document, holds null (JSON
// Pointer-like paths; "" is the document itself).
func nulls(v any, at string) []string {
	var out []string
	switch v := v.(type) {
	case nil:
		out = append(out, at)
	case map[string]any:
		for k, e := range v {
			out = append(out, nulls(e, at+"/"+k)...)
		}
	case []any:
		for i, e := range v {
			out = append(out, nulls(e, fmt.Sprintf("%s/%d", at, i))...)
		}
	}
	return out
}

// TestJSONOneDocument runs every command that takes --json and checks that
// its stdout is one JSON document (json.load must not fail with "Extra
// data"), and that lists are [] rather than null.
func TestJSONOneDocument(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "proj")
	nn, dcm := filepath.Join(tmp, "nn"), filepath.Join(tmp, "dcm")
	if _, e, code := medcadIn(t, false, "phantom", "--out", nn, "--cases", "1"); code != 0 {
		t.Fatalf("phantom: exit %d: %s", code, e)
	}
	labels, _ := filepath.Glob(filepath.Join(nn, "labelsTr", "*.nii.gz"))
	if len(labels) != 1 {
		t.Fatalf("phantom wrote labels %v", labels)
	}
	label := labels[0]
	if _, e, code := medcadIn(t, false, "init", dir); code != 0 {
		t.Fatalf("init: exit %d: %s", code, e)
	}
	if err := (&demo{dir: dir}).commit("medcad init"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		ok   bool // must exit 0; otherwise any exit, and stdout, if any, is one document
	}{
		{[]string{"version"}, true},
		{[]string{"init", dir}, true},
		{[]string{"init", dir}, true},
		{[]string{"-C", dir, "config", "show"}, true},
		{[]string{"-C", dir, "config", "check"}, true},
		{[]string{"-C", dir, "data", "status"}, true},
		{[]string{"-C", dir, "data", "diff"}, true},
		{[]string{"-C", dir, "runs", "list"}, true},
		{[]string{"-C", dir, "data", "add", nn, "--name", "b1"}, true},
		{[]string{"-C", dir, "data", "status"}, true},
		{[]string{"-C", dir, "data", "checkout"}, true},
		{[]string{"-C", dir, "data", "verify"}, true},
		{[]string{"-C", dir, "data", "diff"}, true},
		{[]string{"-C", dir, "gc", "--dry-run"}, true},
		{[]string{"-C", dir, "data", "push"}, false},
		{[]string{"-C", dir, "data", "pull"}, false},
		{[]string{"-C", dir, "status"}, false},
		{[]string{"-C", dir, "repro", "--dry-run"}, false},
		{[]string{"-C", dir, "env", "show"}, false},
		{[]string{"-C", dir, "gate"}, false},
		{[]string{"-C", dir, "report"}, false},
		{[]string{"-C", dir, "metrics", "diff"}, false},
		{[]string{"phantom", "--out", filepath.Join(tmp, "nn2"), "--cases", "1"}, true},
		{[]string{"phantom", "--out", dcm, "--cases", "1", "--format", "dicom"}, true},
		{[]string{"eval", "--truth", label, "--pred", label}, true},
		{[]string{"eval", "--truth-dir", filepath.Join(nn, "labelsTr"), "--pred-dir", filepath.Join(nn, "labelsTr")}, true},
		{[]string{"surface", "--in", label, "--out", filepath.Join(tmp, "s.stl")}, true},
		{[]string{"dicom", "inspect", dcm}, true},
		{[]string{"dicom", "convert", dcm, "--out", filepath.Join(tmp, "nifti")}, true},
		{[]string{"dicom", "deid", dcm, "--out", filepath.Join(tmp, "deid"), "--key-file", filepath.Join(tmp, "k")}, true},
		{[]string{"dicom", "scan-phi", filepath.Join(tmp, "deid")}, false},
		{[]string{"segment", "train", "--data", nn, "--out", filepath.Join(tmp, "model.toml")}, true},
		{[]string{"segment", "predict", "--model", filepath.Join(tmp, "model.toml"), "--in", filepath.Join(nn, "imagesTr"), "--out", filepath.Join(tmp, "pred")}, true},
	} {
		args := append(append([]string{}, tc.args...), "--json")
		what := "medcad " + strings.Join(args, " ")
		// Its help says what --json prints.
		cmdArgs := tc.args
		if cmdArgs[0] == "-C" {
			cmdArgs = cmdArgs[2:]
		}
		if c, _, err := newRootCmd(&app{}).Find(cmdArgs); err != nil || !strings.Contains(c.Long, "\n--json: ") {
			t.Errorf("%s: its help does not document --json (%v)", what, err)
		}
		out, stderr, code := medcadIn(t, false, args...)
		if tc.ok && code != 0 {
			t.Errorf("%s: exit %d: %s", what, code, stderr)
			continue
		}
		if code != 0 && strings.TrimSpace(out) == "" {
			t.Logf("%s: exit %d, no stdout: %s", what, code, strings.TrimSpace(stderr))
			continue
		}
		for _, at := range nulls(oneJSON(t, what, out), "") {
			t.Errorf("%s: null at %q (a list must be [], an absent value left out)", what, at)
		}
	}

	// config check --json is an object, not "medcad.toml: ok".
	out, _, _ := medcadIn(t, false, "-C", dir, "config", "check", "--json")
	if v, ok := oneJSON(t, "config check", out).(map[string]any); !ok || v["ok"] != true || v["file"] != "medcad.toml" {
		t.Errorf("config check --json = %s", out)
	}
	// Empty lists are [] in output and in sidecars.
	if out, _, _ := medcadIn(t, false, "-C", dir, "runs", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("runs list --json with no runs = %q, want []", out)
	}
	sidecars, _ := filepath.Glob(filepath.Join(tmp, "nifti", "*.json"))
	if len(sidecars) == 0 {
		t.Fatal("dicom convert wrote no sidecar")
	}
	for _, f := range sidecars {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var side struct {
			Warnings *[]string `json:"warnings"`
		}
		if err := json.Unmarshal(b, &side); err != nil || side.Warnings == nil {
			t.Errorf("%s: warnings is null or missing (%v):\n%s", f, err, b)
		}
		for _, at := range nulls(oneJSON(t, f, string(b)), "") {
			t.Errorf("%s: null at %q", f, at)
		}
	}
}
