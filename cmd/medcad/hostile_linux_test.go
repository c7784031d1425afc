//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/medcad/medcad/gitops"
)

// maxHostileRSS is the peak resident memory allowed for a data add of a
// small batch holding every hostile file: about what one legitimate case
// costs. Before the bounds, the deflate bomb alone took gigabytes and the
// deep sequence crashed the process.
const maxHostileRSS = 300 << 20

// runMeasured runs the medcad binary in dir and returns its combined
// output, exit code and peak resident set size in bytes.
func runMeasured(t *testing.T, bin, dir string, args ...string) (string, int, int64) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("medcad %s: %v", strings.Join(args, " "), err)
		}
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return string(out), cmd.ProcessState.ExitCode(), ru.Maxrss * 1024 // Linux reports KiB
}

// TestHostileBatch delivers, beside one good case, a case folder for each
// hostile file: a million nested sequences, a deflate bomb, a label
// claiming 1290³ voxels, a float64 label claiming 640³, and a truncated
// slice. Each gets a one-line error naming the file, memory stays
// bounded, the good case is stored and the command exits 1. scan-phi and
// dicom deid read the hostile DICOM files within the same bounds.
func TestHostileBatch(t *testing.T) {
	t.Parallel()
	bin := medcadBinary(t)
	in, cases := phantomBatch(t, 4, 23)
	hugeLabel, floatLabel, truncated := cases[1], cases[2], cases[3] // cases[0] stays good
	writeFile(t, filepath.Join(in, hugeLabel, "label.nii.gz"), labelBomb([3]int{1290, 1290, 1290}, 2, 8))
	writeFile(t, filepath.Join(in, floatLabel, "label.nii.gz"), labelBomb([3]int{640, 640, 640}, 64, 64))
	slices, _ := filepath.Glob(filepath.Join(in, truncated, "CT", "*.dcm"))
	if len(slices) < 2 {
		t.Fatalf("phantom case has %d slices", len(slices))
	}
	whole, _ := os.ReadFile(slices[len(slices)/2])
	writeFile(t, slices[len(slices)/2], whole[:len(whole)/2])
	deep := filepath.Join(in, "deep", "IM1.dcm")
	writeFile(t, deep, deepSequences(1_000_000))
	bomb := filepath.Join(in, "bomb", "IM2.dcm")
	writeFile(t, bomb, deflateBomb(1<<30))

	proj := project(t, bin, "")
	out, code, rss := runMeasured(t, bin, proj, "data", "add", in, "--name", "hostile")
	t.Logf("data add: exit %d, peak RSS %d MiB\n%s", code, rss>>20, out)
	if code != 1 {
		t.Errorf("data add exit code %d, want 1", code)
	}
	if rss > maxHostileRSS {
		t.Errorf("data add peak RSS %d MiB, want at most %d MiB", rss>>20, maxHostileRSS>>20)
	}
	for _, want := range []struct{ file, problem string }{
		{deep, "nested deeper than 64"},
		{bomb, "inflates beyond its declared size"},
		{filepath.Join(in, hugeLabel), "label does not match the image"},
		{filepath.Join(in, floatLabel), "label does not match the image"},
		{slices[len(slices)/2], "claims more bytes than the file holds"},
	} {
		line := lineWith(out, want.file)
		if line == "" || !strings.Contains(line, want.problem) {
			t.Errorf("no one-line error naming %s with %q; output:\n%s", want.file, want.problem, out)
		}
	}
	d, err := gitops.ReadDataset(proj, "hostile")
	if err != nil {
		t.Fatalf("the good case was not stored: %v", err)
	}
	if len(d.Cases) != 1 || d.Cases[0].Label.IsZero() {
		t.Errorf("pointer holds %d cases (want the good one, labelled): %+v", len(d.Cases), d.Cases)
	}

	for _, args := range [][]string{
		{"dicom", "scan-phi", deep, bomb},
		{"dicom", "deid", deep, bomb, "--out", filepath.Join(t.TempDir(), "out"), "--key-file", filepath.Join(t.TempDir(), "k")},
	} {
		out, code, rss := runMeasured(t, bin, proj, args...)
		t.Logf("%s: exit %d, peak RSS %d MiB\n%s", args[1], code, rss>>20, out)
		if code != 1 || rss > maxHostileRSS {
			t.Errorf("%s: exit %d, peak RSS %d MiB; want 1 and at most %d MiB", args[1], code, rss>>20, maxHostileRSS>>20)
		}
		for _, f := range []string{deep, bomb} {
			if lineWith(out, f) == "" {
				t.Errorf("%s: no error line naming %s", args[1], f)
			}
		}
	}
}
