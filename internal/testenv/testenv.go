// Package testenv lets tests find the external programs they compare with
// or start (dcm2niix, dcmtk, Debian's python3 with scipy, versitygw, …).
//
// A test that needs one skips when it is missing, unless
// MEDCAD_REQUIRE_SERVERS=1 (set by the README's test command), which turns
// the skip into a failure so CI can never pass by skipping.
package testenv

import (
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

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
