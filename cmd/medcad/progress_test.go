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
)

// TestProgressReaches100 runs data add, push and pull with stderr on a
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
	final(medcadIn(true, "data", "add", src, "--name", "b1"), "hashing")
	final(medcadIn(true, "data", "push"), "pushing")
	os.RemoveAll(filepath.Join(dir, ".medcad", "cache"))
	os.RemoveAll(filepath.Join(dir, "data", "b1"))
	pull := medcadIn(true, "data", "pull")
	final(pull, "pulling")
	final(pull, "checkout b1")
	os.RemoveAll(filepath.Join(dir, "data", "b1"))
	if got := medcadIn(false, "data", "checkout"); strings.Contains(got, "%") {
		t.Errorf("a bar without a terminal: %q", got)
	}
}
