package stages

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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

func TestStageEnv(t *testing.T) {
	t.Parallel()
	parent := []string{
		"PATH=/usr/bin", "HOME=/home/ci", "USER=ci", "LOGNAME=ci", "LANG=C.UTF-8",
		"LC_ALL=C", "LC_NUMERIC=C", "TZ=UTC", "TMPDIR=/tmp/ci", "SHELL=/bin/bash",
		"MEDCAD_SIGNING_KEY=k", "MEDCAD_REMOTE=s3://b/p", "MEDCAD_REQUIRE_SERVERS=1", "MEDCAD_STAGE=outer",
		"GITHUB_TOKEN=t", "GH_TOKEN=t", "ACTIONS_RUNTIME_TOKEN=t", "ACTIONS_ID_TOKEN_REQUEST_TOKEN=t",
		"AWS_ACCESS_KEY_ID=a", "AWS_SECRET_ACCESS_KEY=s", "AWS_SESSION_TOKEN=s",
		"GOOGLE_APPLICATION_CREDENTIALS=/g.json", "AZURE_CLIENT_SECRET=z",
		"CUDA_VISIBLE_DEVICES=0", "HF_HOME=/hf",
	}
	contract := []string{"MEDCAD_STAGE=train", "MEDCAD_OUT=/p/out"}
	base := []string{
		"PATH=/usr/bin", "HOME=/home/ci", "USER=ci", "LOGNAME=ci", "LANG=C.UTF-8",
		"LC_ALL=C", "LC_NUMERIC=C", "TZ=UTC", "TMPDIR=/tmp/ci",
	}
	winParent := []string{
		"=C:=C:\\w", "Path=C:\\bin", "SystemRoot=C:\\Windows", "COMSPEC=C:\\cmd.exe", "PATHEXT=.EXE",
		"TEMP=C:\\t", "TMP=C:\\t", "USERPROFILE=C:\\u", "GITHUB_TOKEN=t", "medcad_signing_key=k",
		"cuda_visible_devices=1",
	}
	tests := []struct {
		name           string
		goos           string
		parent, pass   []string
		contract, want []string
	}{
		{"base and contract only", "linux", parent, nil, contract, append(base[:len(base):len(base)], contract...)},
		{"passed by name", "linux", parent, []string{"CUDA_VISIBLE_DEVICES", "AWS_ACCESS_KEY_ID"}, contract,
			slices.Concat(base, []string{"AWS_ACCESS_KEY_ID=a", "CUDA_VISIBLE_DEVICES=0"}, contract)},
		{"unset pass names are absent", "linux", parent, []string{"WANDB_API_KEY"}, contract, append(base[:len(base):len(base)], contract...)},
		{"MEDCAD_ names are never passed", "linux", parent, []string{"MEDCAD_SIGNING_KEY", "MEDCAD_REMOTE"}, contract, append(base[:len(base):len(base)], contract...)},
		{"contract wins over parent", "linux", []string{"MEDCAD_OUT=/elsewhere", "PATH=/bin"}, []string{"MEDCAD_OUT"}, contract, []string{"PATH=/bin", "MEDCAD_STAGE=train", "MEDCAD_OUT=/p/out"}},
		{"names are case-sensitive on unix", "darwin", []string{"path=/x", "Home=/h", "PATH=/bin"}, []string{"Cuda"}, nil, []string{"PATH=/bin"}},
		{"windows", "windows", winParent, []string{"CUDA_VISIBLE_DEVICES"}, contract,
			slices.Concat([]string{"Path=C:\\bin", "SystemRoot=C:\\Windows", "COMSPEC=C:\\cmd.exe", "PATHEXT=.EXE",
				"TEMP=C:\\t", "TMP=C:\\t", "USERPROFILE=C:\\u", "cuda_visible_devices=1"}, contract)},
		{"empty parent", "linux", nil, []string{"X"}, contract, contract},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := stageEnv(tt.goos, tt.parent, tt.pass, tt.contract)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("stageEnv (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDryRunEnvNames: a dry run says which variables each stage will get,
// by name: the contract and the passed names, never a secret's.
func TestDryRunEnvNames(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-value")
	t.Setenv("MEDCAD_SIGNING_KEY", "signing-secret-0123456789")
	t.Setenv("NNUNET_RESULTS", "/data/results")
	p := newProject(t, `[project]
name = "x"
[env]
pass = ["NNUNET_RESULTS"]
[[stage]]
name = "a"
run = "true"
outs = ["a.txt"]
[[stage]]
name = "b"
run = "true"
deps = ["a"]
outs = ["b.txt"]
`)
	res, err := p.try(Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, e := range res.Events {
		got[e.Stage] = e.Env
	}
	b := got["b"]
	for _, want := range []string{"MEDCAD_INPUT_A", "MEDCAD_OUT", "MEDCAD_PARAMS", "NNUNET_RESULTS", "PATH"} {
		if !slices.Contains(b, want) {
			t.Errorf("stage b's env %v lacks %s", b, want)
		}
	}
	for _, secret := range []string{"AWS_SECRET_ACCESS_KEY", "MEDCAD_SIGNING_KEY"} {
		if slices.Contains(b, secret) {
			t.Errorf("stage b would get %s", secret)
		}
	}
}

// TestCheckpointDir: with a checkpoint folder, each stage gets its own
// under MEDCAD_CHECKPOINT_DIR.
func TestCheckpointDir(t *testing.T) {
	p := newProject(t, `[project]
name = "x"
[[stage]]
name = "train"
run = "printf %s \"$MEDCAD_CHECKPOINT_DIR\" > ckpt.txt"
outs = ["ckpt.txt"]
`)
	ck := t.TempDir()
	if _, err := p.try(Options{CheckpointDir: ck}); err != nil {
		t.Fatal(err)
	}
	if got, want := p.read("ckpt.txt"), filepath.Join(ck, "train"); got != want {
		t.Errorf("MEDCAD_CHECKPOINT_DIR = %q, want %q", got, want)
	}
}

// TestInterruptedStageNotRecorded: when the GPU runner's agent marks the
// machine as being interrupted while a stage runs, the stage's exit 0
// after its checkpoint is not recorded and nothing downstream starts; the
// next attempt (no marker) runs it again and records it.
func TestInterruptedStageNotRecorded(t *testing.T) {
	// The stage plays the agent too: the spot notice arrives during the
	// first attempt (no checkpoint yet).
	p := newProject(t, `[project]
name = "x"
[[stage]]
name = "train"
run = "test -f \"$MEDCAD_CHECKPOINT_DIR/state\" || echo 'spot terminate notice for 2026-12-02T10:00:00Z' > \"$(dirname \"$MEDCAD_CHECKPOINT_DIR\").interrupted\"; echo epoch=3 > \"$MEDCAD_CHECKPOINT_DIR/state\"; echo weights > model.txt"
outs = ["model.txt"]
[[stage]]
name = "eval"
run = "cp model.txt eval.txt"
deps = ["train"]
outs = ["eval.txt"]
`)
	ck := filepath.Join(t.TempDir(), "checkpoint")
	_, err := p.try(Options{CheckpointDir: ck})
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), `stage "train"`) || !strings.Contains(err.Error(), "spot terminate notice") {
		t.Fatalf("repro during an interruption: %v, want ErrInterrupted naming the stage and the notice", err)
	}
	if lock, _ := os.ReadFile(filepath.Join(p.dir, "medcad.lock")); strings.Contains(string(lock), "train") {
		t.Errorf("the interrupted stage was recorded:\n%s", lock)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "eval.txt")); err == nil {
		t.Error("a stage downstream of the interrupted one ran")
	}
	if got, _ := os.ReadFile(filepath.Join(ck, "train", "state")); string(got) != "epoch=3\n" {
		t.Errorf("checkpoint %q, want the stage's", got)
	}
	// The next attempt: a fresh machine, where the stage is not interrupted.
	if err := os.Remove(InterruptedMarker(ck)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.try(Options{CheckpointDir: ck}); err != nil {
		t.Fatal(err)
	}
	if lock := p.read("medcad.lock"); !strings.Contains(lock, "train") || !strings.Contains(lock, "eval") {
		t.Errorf("after the next attempt the lock lacks a stage:\n%s", lock)
	}
}
