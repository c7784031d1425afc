package main

import (
	"context"
	"os"
	"testing"

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
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "1")
			env.Setenv("MEDCAD_REQUIRE_SERVERS", os.Getenv("MEDCAD_REQUIRE_SERVERS"))
			return nil
		},
	})
}
