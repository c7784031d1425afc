package action

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/testenv"
	"gopkg.in/yaml.v3"
)

type actionFile struct {
	Inputs  map[string]map[string]any `yaml:"inputs"`
	Outputs map[string]map[string]any `yaml:"outputs"`
	Runs    struct {
		Using string `yaml:"using"`
		Steps []struct {
			Name  string            `yaml:"name"`
			ID    string            `yaml:"id"`
			Uses  string            `yaml:"uses"`
			Run   string            `yaml:"run"`
			Shell string            `yaml:"shell"`
			Env   map[string]string `yaml:"env"`
			With  map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"runs"`
}

type workflowFile struct {
	On          map[string]any `yaml:"on"`
	Concurrency map[string]any `yaml:"concurrency"`
	Permissions map[string]any `yaml:"permissions"`
	Jobs        map[string]struct {
		If          string            `yaml:"if"`
		Environment string            `yaml:"environment"`
		Concurrency map[string]any    `yaml:"concurrency"`
		Permissions map[string]string `yaml:"permissions"`
		RunsOn      string            `yaml:"runs-on"`
		Needs       any               `yaml:"needs"`
		Steps       []struct {
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			With map[string]string `yaml:"with"`
			Env  map[string]string `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

func loadYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var exprRE = regexp.MustCompile(`\$\{\{`)

func TestActionYAML(t *testing.T) {
	var a actionFile
	loadYAML(t, "../action.yml", &a)
	if a.Runs.Using != "composite" {
		t.Errorf("runs.using = %q, want composite", a.Runs.Using)
	}
	for _, o := range []string{"verdict", "report-path", "model-digest"} {
		if _, ok := a.Outputs[o]; !ok {
			t.Errorf("output %q missing", o)
		}
	}
	for _, in := range []string{"command", "github-token", "config", "working-directory", "signing-key"} {
		if _, ok := a.Inputs[in]; !ok {
			t.Errorf("input %q missing", in)
		}
	}
	setupGo := false
	for _, s := range a.Runs.Steps {
		if exprRE.MatchString(s.Run) {
			t.Errorf("step %q splices ${{ }} into its script: inputs must go through env:", s.Name)
		}
		if strings.HasPrefix(s.Uses, "actions/setup-go@") && s.With["go-version-file"] != "" {
			setupGo = true
		}
	}
	if !setupGo {
		t.Error("no actions/setup-go step with a pinned go-version-file")
	}
}

// runStep runs the "Run medcad" step's script as the runner would, with a
// fake medcad that records its arguments.
func runStep(t *testing.T, env map[string]string) (args string, out string, err error) {
	t.Helper()
	bash := testenv.LookPath(t, "bash")
	var a actionFile
	loadYAML(t, "../action.yml", &a)
	script := ""
	for _, s := range a.Runs.Steps {
		if s.ID == "run" {
			script = s.Run
		}
	}
	if script == "" {
		t.Fatal("no step with id run")
	}
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o755)
	os.WriteFile(filepath.Join(home, "canary"), []byte("x"), 0o644)
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	record := filepath.Join(dir, "args")
	os.WriteFile(filepath.Join(bin, "medcad"), []byte("#!/bin/sh\nprintf '%s|' \"$@\" > "+record+"\n"), 0o755)
	proj := filepath.Join(dir, "proj")
	os.MkdirAll(proj, 0o755)
	os.WriteFile(filepath.Join(proj, "medcad.toml"), nil, 0o644)
	cmd := exec.Command(bash, "-e", "-c", script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + home, "INPUT_CONFIG=proj/medcad.toml", "INPUT_DEBUG=false"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	o, err := cmd.CombinedOutput()
	if _, statErr := os.Stat(filepath.Join(home, "canary")); statErr != nil {
		t.Fatalf("the script deleted files in HOME: %v\n%s", statErr, o)
	}
	b, _ := os.ReadFile(record)
	return string(b), string(o), err
}

func TestActionScriptInjection(t *testing.T) {
	evil := `"; rm -rf ~; echo "`
	tests := []struct {
		name     string
		env      map[string]string
		wantArgs string
		wantErr  bool
	}{
		{"ci pr", map[string]string{"INPUT_COMMAND": "ci pr"}, "-C|proj|ci|pr|", false},
		{"ci main with debug", map[string]string{"INPUT_COMMAND": "ci main", "INPUT_DEBUG": "true"}, "--debug|-C|proj|ci|main|", false},
		{"command injection", map[string]string{"INPUT_COMMAND": evil}, "", true},
		{"command with a second word", map[string]string{"INPUT_COMMAND": "ci pr --force; id"}, "", true},
		{"injection in a secret", map[string]string{"INPUT_COMMAND": "ci pr", "MEDCAD_SIGNING_KEY": evil, "GITHUB_TOKEN": "$(rm -rf ~)"}, "-C|proj|ci|pr|", false},
		{"injection in config", map[string]string{"INPUT_COMMAND": "ci pr", "INPUT_CONFIG": evil + "/medcad.toml"}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args, out, err := runStep(t, tc.env)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v\n%s", err, tc.wantErr, out)
			}
			if args != tc.wantArgs {
				t.Errorf("medcad ran with %q, want %q", args, tc.wantArgs)
			}
			if tc.wantErr && !strings.Contains(out, "::error title=medcad::") {
				t.Errorf("no error annotation:\n%s", out)
			}
		})
	}
}

func TestWorkflowScaffold(t *testing.T) {
	var w workflowFile
	loadYAML(t, "../gitops/scaffold/medcad.yml", &w)
	for _, ev := range []string{"pull_request", "merge_group", "push", "workflow_dispatch"} {
		if _, ok := w.On[ev]; !ok {
			t.Errorf("workflow does not run on %s", ev)
		}
	}
	if _, ok := w.On["pull_request_target"]; ok {
		t.Error("pull_request_target would hand secrets to fork code")
	}
	checkPRTriggers(t, "scaffold", w)
	if w.Concurrency != nil {
		t.Errorf("a workflow-level concurrency group %v would cancel pending promotions", w.Concurrency)
	}
	if pr := w.Jobs["pr"].Concurrency; pr["group"] == nil || pr["cancel-in-progress"] != true {
		t.Errorf("pr job concurrency %v: want a group per pull request, cancelling the older run", pr)
	}
	if !strings.Contains(w.Jobs["pr"].If, "merge_group") {
		t.Errorf("pr job does not check merge groups: if: %s", w.Jobs["pr"].If)
	}
	prom := w.Jobs["promote"]
	if prom.Concurrency != nil {
		t.Errorf("promote job concurrency %v: promotions must queue, never be cancelled", prom.Concurrency)
	}
	if prom.Environment != "production" || !strings.Contains(prom.If, "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)") {
		t.Errorf("promote job: environment %q, if %q; want the production Environment and the default branch only", prom.Environment, prom.If)
	}
	for _, st := range w.Jobs["pr"].Steps {
		if _, ok := st.With["signing-key"]; ok {
			t.Error("the pr job gets the signing key")
		}
	}
	if len(w.Permissions) != 1 || w.Permissions["contents"] != "read" {
		t.Errorf("workflow-level permissions %v, want contents: read only", w.Permissions)
	}
	for name, j := range w.Jobs {
		if len(j.Permissions) == 0 {
			t.Errorf("job %s: no explicit permissions", name)
		}
		for _, s := range j.Steps {
			if exprRE.MatchString(s.Run) {
				t.Errorf("job %s splices ${{ }} into a script", name)
			}
		}
	}
}

// checkPRTriggers: the pr job runs on opened, synchronize, reopened and
// labeled (a maintainer's medcad:evaluate label starts a fork's
// evaluation under fork_policy = "label"), and other labels start nothing
// and cancel nothing.
func checkPRTriggers(t *testing.T, name string, w workflowFile) {
	t.Helper()
	pr, _ := w.On["pull_request"].(map[string]any)
	var types []string
	if l, ok := pr["types"].([]any); ok {
		for _, v := range l {
			types = append(types, fmt.Sprint(v))
		}
	}
	for _, want := range []string{"opened", "synchronize", "reopened", "labeled"} {
		if !slices.Contains(types, want) {
			t.Errorf("%s: pull_request types %v lack %s", name, types, want)
		}
	}
	cond := w.Jobs["pr"].If
	if !strings.Contains(cond, "github.event.action != 'labeled'") || !strings.Contains(cond, "github.event.label.name == 'medcad:evaluate'") {
		t.Errorf("%s: pr job runs on any label: if: %s", name, cond)
	}
	if g := fmt.Sprint(w.Jobs["pr"].Concurrency["group"]); !strings.Contains(g, "github.event.label.name != 'medcad:evaluate'") {
		t.Errorf("%s: another label would cancel an evaluation in progress: group %s", name, g)
	}
}

// TestReadmeWorkflow: the copies of the scaffold workflow in README.md
// and docs/github.md say the same (triggers, concurrency, job conditions
// and permissions).
func TestReadmeWorkflow(t *testing.T) {
	for _, doc := range []struct{ file, before string }{
		{"../README.md", "The workflow `medcad init` writes:\n\n"},
		{"../docs/github.md", "## The workflow (`.github/workflows/medcad.yml`)\n\n"},
	} {
		t.Run(filepath.Base(doc.file), func(t *testing.T) { checkWorkflowCopy(t, doc.file, doc.before) })
	}
}

func checkWorkflowCopy(t *testing.T, file, before string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), before+"```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("%s: no workflow block after %q", file, before)
	}
	var doc, scaffold workflowFile
	if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
		t.Fatalf("%s workflow: %v", file, err)
	}
	loadYAML(t, "../gitops/scaffold/medcad.yml", &scaffold)
	checkPRTriggers(t, file, doc)
	if diff := cmp.Diff(scaffold.On, doc.On); diff != "" {
		t.Errorf("on: (-scaffold +doc):\n%s", diff)
	}
	if diff := cmp.Diff(scaffold.Concurrency, doc.Concurrency); diff != "" {
		t.Errorf("concurrency: (-scaffold +doc):\n%s", diff)
	}
	for name, j := range scaffold.Jobs {
		r, ok := doc.Jobs[name]
		if !ok {
			t.Errorf("%s lacks job %s", file, name)
			continue
		}
		if r.If != j.If || !cmp.Equal(r.Permissions, j.Permissions) || r.Environment != j.Environment || !cmp.Equal(r.Concurrency, j.Concurrency) {
			t.Errorf("job %s: %s: if %q permissions %v; scaffold if %q permissions %v", name, file, r.If, r.Permissions, j.If, j.Permissions)
		}
	}
}

// TestWorkflowScaffoldEC2: the GPU workflow starts a runner only for
// pull requests of this repository, trains on it by its label, always
// stops it, reports after it, reaps on a schedule; only the promotion
// job holds the signing key, and no script splices ${{ }}.
func TestWorkflowScaffoldEC2(t *testing.T) {
	var w workflowFile
	loadYAML(t, "../gitops/scaffold/medcad-ec2.yml", &w)
	if _, ok := w.On["schedule"]; !ok {
		t.Error("no schedule: nothing reaps leftovers")
	}
	checkPRTriggers(t, "ec2 scaffold", w)
	start := w.Jobs["runner-start"]
	if !strings.Contains(start.If, "github.event.pull_request.head.repo.full_name == github.repository") {
		t.Errorf("runner-start starts a runner for forks: if: %s", start.If)
	}
	if train := w.Jobs["train"]; train.RunsOn != "${{ needs.runner-start.outputs.label }}" {
		t.Errorf("train runs on %q, want the started runner's label", train.RunsOn)
	}
	if stop := w.Jobs["runner-stop"]; !strings.HasPrefix(stop.If, "always()") {
		t.Errorf("runner-stop does not always run: if: %s", stop.If)
	}
	if !strings.Contains(w.Jobs["reap"].If, "schedule") {
		t.Errorf("reap: if: %s", w.Jobs["reap"].If)
	}
	for name, j := range w.Jobs {
		if len(j.Permissions) == 0 {
			t.Errorf("job %s: no explicit permissions", name)
		}
		for _, st := range j.Steps {
			if exprRE.MatchString(st.Run) {
				t.Errorf("job %s splices ${{ }} into a script", name)
			}
			if _, ok := st.With["signing-key"]; ok && name != "promote" {
				t.Errorf("job %s gets the signing key", name)
			}
		}
	}
	if w.Jobs["promote"].Environment != "production" {
		t.Error("promote job outside the production Environment")
	}
}
