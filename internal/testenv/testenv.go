// Package testenv lets tests find the external programs they compare with
// or start (dcm2niix, dcmtk, Debian's python3 with scipy, versitygw, …),
// and mount the file systems they need.
//
// A test that needs one skips when it is missing, unless
// MEDCAD_REQUIRE_SERVERS=1 (set by the README's test command), which turns
// the skip into a failure so CI can never pass by skipping.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Required reports whether missing programs must fail tests.
func Required() bool { return os.Getenv("MEDCAD_REQUIRE_SERVERS") == "1" }

// LookPath returns the path of program name, also searching GOPATH/bin
// where `go install` puts tools. It skips or fails t when it is missing.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if gp, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(string(trimNL(gp)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	Missing(t, name+" not found (the README's test command installs it)")
	return ""
}

// Python returns Debian's python3 (/usr/bin/python3, which has the
// python3-numpy/scipy/skimage packages) after checking that it can import
// the given modules; it skips or fails t otherwise.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	py := "/usr/bin/python3"
	for _, m := range modules {
		if err := exec.Command(py, "-c", "import "+m).Run(); err != nil {
			Missing(t, "Debian python3 cannot import "+m+" (apt-get install python3-"+m+")")
		}
	}
	return py
}

// Missing skips t, or fails it when MEDCAD_REQUIRE_SERVERS=1.
func Missing(t testing.TB, why string) {
	t.Helper()
	if Required() {
		t.Fatalf("required by MEDCAD_REQUIRE_SERVERS=1: %s", why)
	}
	t.Skip(why)
}

// ReflinkDir mounts a new XFS file system with reflinks (a 512 MiB
// sparse image on a loop device) for the rest of t and returns its folder.
// It takes root: t is skipped otherwise.
func ReflinkDir(t testing.TB) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("mounting a file system takes root")
	}
	mkfs := LookPath(t, "mkfs.xfs")
	img := filepath.Join(t.TempDir(), "xfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 512<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v: %s", err, out)
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		Missing(t, fmt.Sprintf("cannot mount an XFS image (loop devices?): %v: %s", err, trimNL(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, trimNL(out))
		}
	})
	return dir
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
