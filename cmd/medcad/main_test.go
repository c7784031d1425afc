package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain registers the medcad binary for testscript: scripts run
// `medcad ...` as a real subprocess of this test binary.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"medcad": func() {
			os.Exit(run(context.Background(), os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
		},
	})
}

// TestScripts runs the end-to-end CLI scripts in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
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
