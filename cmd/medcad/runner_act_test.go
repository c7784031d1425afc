package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/medcad/medcad/internal/testenv"
)

// dryRunStub stands in for every action the EC2 workflow uses: in act's
// dry run no step runs, only the plan and the `if:` expressions count.
const dryRunStub = `name: stub
description: an action act plans but does not run
runs:
  using: composite
  steps:
    - shell: bash
      run: "true"
`

// TestEC2WorkflowAct checks the workflow `medcad init --runner ec2`
// writes with nektos/act: `act -l` orders the jobs start → train → stop
// → pr (reap and promote on their own), and act's dry run evaluates the
// jobs' conditions as GitHub would: a pull request from the repository
// runs all four, one from a fork only the report (no runner, no
// secrets), the schedule only reap.
func TestEC2WorkflowAct(t *testing.T) {
	act := testenv.LookPath(t, "act")
	root := t.TempDir()
	proj := filepath.Join(root, "proj")
	medcad(t, medcadBinary(t), root, nil, "init", "--runner", "ec2", proj)
	if out, err := exec.Command("git", "-C", proj, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	stub := filepath.Join(root, "stub")
	os.MkdirAll(stub, 0o755)
	os.WriteFile(filepath.Join(stub, "action.yml"), []byte(dryRunStub), 0o644)
	runAct := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(act, args...)
		cmd.Dir = proj
		cmd.Env = append(os.Environ(), "HOME="+filepath.Join(root, "home"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("act %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	stages := map[string]string{}
	for _, l := range strings.Split(runAct("-l"), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == f[2] {
			stages[f[1]] = f[0]
		}
	}
	want := map[string]string{"runner-start": "0", "train": "1", "runner-stop": "2", "pr": "3", "reap": "0", "promote": "0"}
	for job, stage := range want {
		if stages[job] != stage {
			t.Errorf("act -l: job %s in stage %q, want %s (all: %v)", job, stages[job], stage, stages)
		}
	}

	succeeded := regexp.MustCompile(`\[medcad/([a-z-]+)\s*\] 🏁  Job succeeded`)
	dryRun := func(event string, payload any) []string {
		t.Helper()
		ev := filepath.Join(root, event+".json")
		b, _ := json.Marshal(payload)
		os.WriteFile(ev, b, 0o644)
		args := []string{event, "-n", "-e", ev, "--action-offline-mode", "--no-cache-server", "--env", "GITHUB_REPOSITORY=lab/ct",
			// The train job's runs-on is start's label output, which no
			// step sets in a dry run: "" stands for it.
			"-P", "ubuntu-latest=-self-hosted", "-P", "=-self-hosted"}
		for _, a := range []string{"medcad/medcad@main", "actions/checkout@v4", "aws-actions/configure-aws-credentials@v4", "actions/create-github-app-token@v1"} {
			args = append(args, "--local-repository", a+"="+stub)
		}
		var jobs []string
		for _, m := range succeeded.FindAllStringSubmatch(runAct(args...), -1) {
			jobs = append(jobs, m[1])
		}
		slices.Sort(jobs)
		return jobs
	}
	pr := func(head string) map[string]any {
		return map[string]any{"action": "opened", "number": 7, "pull_request": map[string]any{"number": 7,
			"head": map[string]any{"ref": "batch3", "repo": map[string]any{"full_name": head}},
			"base": map[string]any{"ref": "main", "repo": map[string]any{"full_name": "lab/ct"}}},
			"repository": map[string]any{"full_name": "lab/ct", "default_branch": "main"}}
	}
	for _, tt := range []struct {
		name, event string
		payload     any
		want        []string
	}{
		{"pull request", "pull_request", pr("lab/ct"), []string{"pr", "runner-start", "runner-stop", "train"}},
		{"fork pull request", "pull_request", pr("someone/ct"), []string{"pr"}},
		{"schedule", "schedule", map[string]any{"schedule": "*/10 * * * *", "repository": map[string]any{"full_name": "lab/ct", "default_branch": "main"}}, []string{"reap"}},
	} {
		if got := dryRun(tt.event, tt.payload); !slices.Equal(got, tt.want) {
			t.Errorf("%s: act ran %v, want %v", tt.name, got, tt.want)
		}
	}
}
