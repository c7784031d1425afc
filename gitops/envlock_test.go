package gitops

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/testenv"
)

func TestReadEnvLock(t *testing.T) {
	l, err := ReadEnvLock("testdata", "uv.lock")
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Name: "bone-seg", Version: "0.1.0", Source: "editable"},
		{Name: "numpy", Version: "1.26.4", Source: "registry"},
		{Name: "scikit-image", Version: "0.22.0", Source: "registry"},
		{Name: "torch", Version: "2.4.0", Source: "registry"},
	}
	if diff := cmp.Diff(want, l.Packages); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if len(l.Digest) != len("sha256:")+64 {
		t.Errorf("digest %q", l.Digest)
	}
}

func TestReadEnvLockErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "uv.lock"), []byte("[[package]\n"), 0o644)
	if _, err := ReadEnvLock(dir, "uv.lock"); err == nil {
		t.Error("broken uv.lock accepted")
	}
	if _, err := ReadEnvLock(dir, "missing.lock"); err == nil {
		t.Error("missing lock accepted")
	}
}

func TestCompare(t *testing.T) {
	locked := []Package{{Name: "a", Version: "1"}, {Name: "b", Version: "2"}, {Name: "me", Version: "0", Source: "editable"}, {Name: "c", Version: "3"}}
	installed := []Package{{Name: "a", Version: "1"}, {Name: "b", Version: "2.1"}, {Name: "d", Version: "4"}}
	want := []Drift{{Name: "b", Locked: "2", Installed: "2.1"}, {Name: "c", Locked: "3"}, {Name: "d", Installed: "4"}}
	if diff := cmp.Diff(want, Compare(locked, installed)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestInstalledReadsDistInfo runs a real Python over an environment made of
// dist-info folders, as a virtualenv's site-packages holds them.
func TestInstalledReadsDistInfo(t *testing.T) {
	py := testenv.Python(t)
	site := t.TempDir()
	for name, ver := range map[string]string{"NumPy": "1.26.4", "torch": "2.3.1"} {
		di := filepath.Join(site, name+"-"+ver+".dist-info")
		os.MkdirAll(di, 0o755)
		os.WriteFile(filepath.Join(di, "METADATA"), []byte("Metadata-Version: 2.1\nName: "+name+"\nVersion: "+ver+"\n"), 0o644)
	}
	wrapper := filepath.Join(t.TempDir(), "python")
	script := "#!/bin/sh\nPYTHONPATH=" + site + " exec " + py + " -S \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ver, pkgs, err := Installed(context.Background(), wrapper)
	if err != nil {
		t.Fatal(err)
	}
	if ver == "" {
		t.Error("no python version")
	}
	want := []Package{{Name: "numpy", Version: "1.26.4"}, {Name: "torch", Version: "2.3.1"}}
	if diff := cmp.Diff(want, pkgs); diff != "" {
		t.Fatalf("installed (-want +got):\n%s", diff)
	}
	l, _ := ReadEnvLock("testdata", "uv.lock")
	got := Compare(l.Packages, pkgs)
	wantDrift := []Drift{{Name: "scikit-image", Locked: "0.22.0"}, {Name: "torch", Locked: "2.4.0", Installed: "2.3.1"}}
	if diff := cmp.Diff(wantDrift, got); diff != "" {
		t.Errorf("drift (-want +got):\n%s", diff)
	}
}
