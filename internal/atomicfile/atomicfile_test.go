package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReplacesWholeOrNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.txt")
	if err := WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, 0o644, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return boom
	})
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), p+": ") {
		t.Errorf("error = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Errorf("content after a failed write = %q", b)
	}
	if err := WriteFile(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if b, _ := os.ReadFile(p); string(b) != "two" || fi.Mode().Perm() != 0o600 {
		t.Errorf("content %q mode %v", b, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestErrorNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing", "f.txt")
	err := WriteFile(p, []byte("x"), 0o644)
	if err == nil || err.Error() != p+": no such file or directory" {
		t.Errorf("error = %v", err)
	}
}

func TestIsTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "IM0001.dcm")
	// The name of a real pending file.
	p, err := newPending(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Cleanup()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || !IsTemp(entries[0].Name()) {
		t.Errorf("pending file %v: IsTemp = false", entries)
	}
	for name, want := range map[string]bool{
		".project.key.tmp-12345": true, ".a.dcm.tmp987": true,
		"IM0001.dcm": false, "IM000123456789": false, ".DS_Store": false, ".x123": false, ".12345678": false,
	} {
		if got := IsTemp(name); got != want {
			t.Errorf("IsTemp(%q) = %v, want %v", name, got, want)
		}
	}
}
