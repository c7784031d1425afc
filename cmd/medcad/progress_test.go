package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/medcad/medcad/stages/intake"
)

// TestProgressReaches100 runs data add, verify, push, pull and status with stderr on a
// (faked) terminal: every step's bar ends at 100% with all files counted,
// also a step faster than the bar's redraw interval (checkout); with
// stderr not a terminal there is no bar.
func TestProgressReaches100(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "p")
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	for i := range 40 {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), bytes.Repeat([]byte{byte(i)}, 10000+i), 0o644)
	}
	medcadIn := func(terminal bool, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		s := streams{in: strings.NewReader(""), out: &out, err: &errb, terminal: func(w io.Writer) bool { return terminal && w == &errb }}
		if code := run(context.Background(), append([]string{"-C", dir}, args...), s); code != 0 {
			t.Fatalf("medcad %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
		}
		return errb.String()
	}
	if code := run(context.Background(), []string{"init", dir}, streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard}); code != 0 {
		t.Fatal("init failed")
	}
	final := func(stderr, step string) {
		t.Helper()
		// 40 files, 41 objects with the manifest.
		m := regexp.MustCompile(regexp.QuoteMeta(step) + ` (4[01])/(4[01]) files 100% \|`).FindStringSubmatch(stderr)
		if m == nil || m[1] != m[2] {
			t.Errorf("%s: no bar at 100%% with every file done in stderr:\n%q", step, stderr)
		}
	}
	add := medcadIn(true, "data", "add", src, "--name", "b1")
	final(add, "hashing")
	final(add, "checkout b1")
	final(medcadIn(true, "data", "verify"), "verifying")
	final(medcadIn(true, "data", "push"), "pushing")
	os.RemoveAll(filepath.Join(dir, ".medcad", "cache"))
	os.RemoveAll(filepath.Join(dir, "data", "b1"))
	pull := medcadIn(true, "data", "pull")
	final(pull, "pulling")
	final(pull, "checkout b1")
	// Without the stat index, status re-hashes every file.
	os.RemoveAll(filepath.Join(dir, ".medcad", "index"))
	final(medcadIn(true, "data", "status"), "checking b1")
	os.RemoveAll(filepath.Join(dir, "data", "b1"))
	if got := medcadIn(false, "data", "checkout"); strings.Contains(got, "%") {
		t.Errorf("a bar without a terminal: %q", got)
	}
}

// TestDICOMAddProgress adds a DICOM delivery with stderr on a (faked)
// terminal: the de-identification bar ends at 100% with every file of the
// delivery counted, and each delivery folder is shown with the case id it
// became; dicom deid shows the same bar. Without a terminal none of it
// is printed.
func TestDICOMAddProgress(t *testing.T) {
	t.Parallel()
	for _, terminal := range []bool{true, false} {
		dir := filepath.Join(t.TempDir(), "p")
		in := filepath.Join(t.TempDir(), "delivery")
		quiet := streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard}
		if code := run(context.Background(), []string{"init", dir}, quiet); code != 0 {
			t.Fatal("init failed")
		}
		if code := run(context.Background(), []string{"phantom", "--out", in, "--cases", "2", "--format", "dicom"}, quiet); code != 0 {
			t.Fatal("phantom failed")
		}
		files := 0
		filepath.WalkDir(in, func(_ string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files++
			}
			return nil
		})
		var out, errb bytes.Buffer
		s := streams{in: strings.NewReader(""), out: &out, err: &errb, terminal: func(w io.Writer) bool { return terminal && w == &errb }}
		if code := run(context.Background(), []string{"-C", dir, "data", "add", in, "--name", "b1"}, s); code != 0 {
			t.Fatalf("data add: exit %d\n%s", code, errb.String())
		}
		stderr := errb.String()
		keys, err := intake.ReadKey(dir)
		if err != nil || len(keys) != 2 {
			t.Fatalf("re-identification key: %v, %v", keys, err)
		}
		bar := fmt.Sprintf("de-identifying %d/%d files 100%% |", files, files)
		if got := strings.Contains(stderr, bar); got != terminal {
			t.Errorf("terminal %v: bar %q shown %v in stderr:\n%q", terminal, bar, got, stderr)
		}
		for _, k := range keys {
			line := fmt.Sprintf("  %s -> %s\n", k.Folder, k.CaseID)
			if got := strings.Contains(stderr, line); got != terminal {
				t.Errorf("terminal %v: mapping %q shown %v in stderr:\n%q", terminal, line, got, stderr)
			}
			if strings.Contains(out.String(), k.Folder) {
				t.Errorf("a delivery folder on stdout: %q", out.String())
			}
		}
		// dicom deid: the same bar over every file it walks.
		errb.Reset()
		if code := run(context.Background(), []string{"-C", dir, "dicom", "deid", in, "--out", filepath.Join(t.TempDir(), "out")}, s); code != 0 {
			t.Fatalf("dicom deid: exit %d\n%s", code, errb.String())
		}
		if got := strings.Contains(errb.String(), bar); got != terminal {
			t.Errorf("dicom deid, terminal %v: bar %q shown %v in stderr:\n%q", terminal, bar, got, errb.String())
		}
	}
}

// TestReproProgress: repro draws a bar, to 100%, while it stores and
// restores a large stage output on a (faked) terminal, and none for a
// small one.
func TestReproProgress(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "p")
	quiet := streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard}
	if code := run(context.Background(), []string{"init", dir}, quiet); code != 0 {
		t.Fatal("init failed")
	}
	files := map[string]string{
		"medcad.toml": `[project]
name = "p"

[[stage]]
name = "big"
run = "sh make.sh {out} 40000000"
deps = ["make.sh"]
outs = ["build/big"]

[[stage]]
name = "tiny"
run = "sh make.sh {out} 1000"
deps = ["make.sh"]
outs = ["build/tiny"]
`,
		"make.sh": "mkdir -p \"$1\" && head -c \"$2\" /dev/zero > \"$1/data.bin\" && echo done > \"$1/note.txt\"\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repro := func() string {
		t.Helper()
		var errb bytes.Buffer
		s := streams{in: strings.NewReader(""), out: io.Discard, err: &errb, terminal: func(w io.Writer) bool { return w == &errb }}
		if code := run(context.Background(), []string{"-C", dir, "repro"}, s); code != 0 {
			t.Fatalf("repro: exit %d\n%s", code, errb.String())
		}
		return errb.String()
	}
	bar := func(stderr, step string) bool {
		return regexp.MustCompile(regexp.QuoteMeta(step) + ` 2/2 files 100% \|`).MatchString(stderr)
	}
	first := repro()
	if !bar(first, "storing build/big") {
		t.Errorf("no bar at 100%% while storing build/big:\n%q", first)
	}
	if strings.Contains(first, "build/tiny") {
		t.Errorf("a bar for a small output:\n%q", first)
	}
	if err := os.RemoveAll(filepath.Join(dir, "build")); err != nil {
		t.Fatal(err)
	}
	second := repro()
	if !bar(second, "restoring build/big") {
		t.Errorf("no bar at 100%% while restoring build/big:\n%q", second)
	}
	if _, err := os.Stat(filepath.Join(dir, "build", "big", "data.bin")); err != nil {
		t.Errorf("not restored: %v", err)
	}
}
