package main

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeidStdoutClosedEarly runs `medcad dicom deid … | head -1`: the
// reader goes away after one line. medcad stops, exits 141 as a command
// killed by SIGPIPE would, prints nothing more, and leaves no temporary
// or partial file in the output folder, so scan-phi finds it clean.
func TestDeidStdoutClosedEarly(t *testing.T) {
	t.Parallel()
	bin := medcadBinary(t)
	dir := t.TempDir()
	medcad(t, bin, dir, nil, "phantom", "--out", "in", "--cases", "2", "--format", "dicom")
	cmd := exec.Command(bin, "dicom", "deid", "in", "--out", "out", "--key-file", "project.key")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("first line: %v", err)
	}
	stdout.Close() // head -1 exits
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitBrokenPipe {
		t.Errorf("exit: %v, want status %d", err, exitBrokenPipe)
	}
	if s := stderr.String(); s != "" && !strings.HasPrefix(s, "warning: key file") {
		t.Errorf("stderr: %q, want nothing", s)
	}
	if !strings.Contains(first, "\tout/") {
		t.Errorf("first line %q", first)
	}
	var written, all int
	filepath.WalkDir(filepath.Join(dir, "in"), func(p string, e fs.DirEntry, _ error) error {
		if strings.HasSuffix(p, ".dcm") {
			all++
		}
		return nil
	})
	filepath.WalkDir(filepath.Join(dir, "out"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", p)
		}
		written++
		return nil
	})
	if written == 0 || written >= all {
		t.Errorf("wrote %d of %d files: did not stop when stdout closed", written, all)
	}
	if out, err := medcadErr(bin, dir, nil, "dicom", "scan-phi", "out"); err != nil {
		t.Errorf("scan-phi of the output: %v\n%s", err, out)
	}
	// What a write killed mid-way leaves (an original, PHI and all, under
	// a temporary name of medcad's) is not counted by scan-phi.
	orig, err := os.ReadFile(filepath.Join(dir, "in", "phantom_000", "CT", "IM00001.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "out", ".IM00001.dcm3107019543637584601"), orig, 0o644)
	if out, err := medcadErr(bin, dir, nil, "dicom", "scan-phi", "out"); err != nil {
		t.Errorf("scan-phi counts a temporary file: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "out", "IM00001.dcm"), orig, 0o644)
	if _, err := medcadErr(bin, dir, nil, "dicom", "scan-phi", "out"); err == nil {
		t.Error("scan-phi finds nothing in an original under its own name")
	}
}
