package stages

import (
	"strings"
	"testing"
)

// secrets are variables a CI runner holds that a stage must never see
// unless the project passes them by name.
var secrets = []string{
	"MEDCAD_SIGNING_KEY", "MEDCAD_REMOTE", "GITHUB_TOKEN", "GH_TOKEN",
	"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "ACTIONS_RUNTIME_TOKEN",
}

// TestReproStageEnvHoldsNoSecrets runs a stage that dumps its environment
// while the runner holds CI secrets.
func TestReproStageEnvHoldsNoSecrets(t *testing.T) {
	for _, n := range secrets {
		t.Setenv(n, "leaked-"+n)
	}
	t.Setenv("PROJECT_PASSED", "p")
	t.Setenv("STAGE_PASSED", "s")
	t.Setenv("NOT_PASSED", "n")
	p := newProject(t, `
[env]
pass = ["PROJECT_PASSED"]

[[stage]]
name = "dump"
run = "env > \"$MEDCAD_OUT/env.txt\""
outs = ["out"]
env_pass = ["STAGE_PASSED"]
`)
	got := p.repro(Options{})
	if got["dump"] != Ran {
		t.Fatalf("dump: %v", got["dump"])
	}
	env := p.read("out/env.txt")
	for _, n := range append(secrets, "NOT_PASSED") {
		if strings.Contains(env, n+"=") {
			t.Errorf("stage saw %s", n)
		}
	}
	for _, kv := range []string{"PROJECT_PASSED=p", "STAGE_PASSED=s", "MEDCAD_STAGE=dump"} {
		if !strings.Contains(env, "\n"+kv+"\n") && !strings.HasPrefix(env, kv+"\n") {
			t.Errorf("stage did not see %s", kv)
		}
	}
	if !strings.Contains(env, "PATH=") {
		t.Error("stage did not see PATH")
	}
}
