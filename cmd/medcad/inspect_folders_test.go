package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// TestInspectSourceFolders: on a terminal, dicom inspect says on stderr
// which folder each series-NN came from (relative to -C); folder names
// can name a patient, so nothing of them goes to a pipe, and stdout never
// holds them.
func TestInspectSourceFolders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	medcad(t, medcadBinary(t), dir, nil, "phantom", "--out", "batch", "--cases", "2", "--format", "dicom")
	for _, terminal := range []bool{true, false} {
		var out, errb bytes.Buffer
		s := streams{in: strings.NewReader(""), out: &out, err: &errb, terminal: func(w io.Writer) bool { return terminal && w == &errb }}
		if code := run(context.Background(), []string{"-C", dir, "dicom", "inspect", filepath.Join(dir, "batch")}, s); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if strings.Contains(out.String(), "phantom_00") {
			t.Errorf("stdout names folders:\n%s", out.String())
		}
		want := []string{"series-01  " + filepath.Join("batch", "phantom_000", "CT"), "series-02  " + filepath.Join("batch", "phantom_001", "CT")}
		for _, w := range want {
			if got := strings.Contains(errb.String(), w); got != terminal {
				t.Errorf("terminal %v: stderr has %q: %v\n%s", terminal, w, got, errb.String())
			}
		}
	}
}
