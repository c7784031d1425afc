package action

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
		Permissions map[string]string `yaml:"permissions"`
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
	for _, ev := range []string{"pull_request", "push", "workflow_dispatch"} {
		if _, ok := w.On[ev]; !ok {
			t.Errorf("workflow does not run on %s", ev)
		}
	}
	if _, ok := w.On["pull_request_target"]; ok {
		t.Error("pull_request_target would hand secrets to fork code")
	}
	if w.Concurrency["group"] == nil {
		t.Error("no concurrency group")
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
