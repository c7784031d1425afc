package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain registers the medcad binary for testscript: scripts, and the
// Go tests that run medcad as a subprocess (medcadBinary), run `medcad
// ...` as a real subprocess of this test binary, entering main.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"medcad": main})
}

// medcadBinary is the medcad executable for tests that run it as a
// subprocess (kill -9, environment): this test binary under the name
// medcad, which testscript.Main put first on PATH and which runs main.
// (A go build per test cost seconds each.)
func medcadBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("medcad")
	if err != nil {
		t.Fatalf("medcad is not on PATH (TestMain installs it): %v", err)
	}
	return bin
}

// TestScripts runs the end-to-end CLI scripts in testdata/script.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// onejson checks that the last command's stdout is exactly one
			// JSON document.
			"onejson": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 0 {
					ts.Fatalf("usage: onejson")
				}
				dec := json.NewDecoder(strings.NewReader(ts.ReadFile("stdout")))
				var v any
				if err := dec.Decode(&v); err != nil {
					ts.Fatalf("stdout is not JSON: %v", err)
				}
				if err := dec.Decode(new(any)); !errors.Is(err, io.EOF) {
					ts.Fatalf("stdout holds more than one JSON document: %v", err)
				}
			},
			// fixture NAME DIR copies the shared fixture NAME (a folder
			// under the module's testdata/) into DIR.
			"fixture": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: fixture NAME DIR")
				}
				ts.Check(testenv.CopyFixtureTo(args[0], ts.MkAbs(args[1])))
			},
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "numpy": // Debian's python3 with numpy, which the test command installs
				ok := exec.Command("/usr/bin/python3", "-c", "import numpy").Run() == nil
				if !ok && testenv.Required() {
					return false, fmt.Errorf("[numpy]: /usr/bin/python3 cannot import numpy and MEDCAD_REQUIRE_SERVERS=1")
				}
				return ok, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "1")
			env.Setenv("MEDCAD_REQUIRE_SERVERS", os.Getenv("MEDCAD_REQUIRE_SERVERS"))
			// The example trainer under test is the one users read.
			example, err := os.ReadFile("../../examples/external-trainer/train.py")
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(env.WorkDir, "train.py"), example, 0o755)
		},
	})
}
