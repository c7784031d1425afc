//go:build linux

package runner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/medcad/medcad/action/runner/awsfake"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/cas/castest"
	"github.com/medcad/medcad/gitops/cas/local"
	"github.com/medcad/medcad/internal/testenv"
	"github.com/medcad/medcad/stages"
)

// aemmInstance is the instance ID amazon-ec2-metadata-mock serves.
const aemmInstance = "i-1234567890abcdef0"

// startAEMM starts amazon-ec2-metadata-mock on 127.0.0.1 with IMDSv2
// required; its spot instance-action appears after spotAfter.
func startAEMM(t *testing.T, spotAfter time.Duration) string {
	t.Helper()
	bin := testenv.LookPath(t, "ec2-metadata-mock")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-n", "127.0.0.1", "-p", fmt.Sprint(port), "-I", "-d", fmt.Sprint(int(spotAfter.Seconds())),
		"--rebalance-delay-sec", "86400")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+cmd.Dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(url + "/latest/meta-data/instance-id")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 401 { // IMDSv2 only: a token is required
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ec2-metadata-mock did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// agentWorld is an instance on loopback: AEMM, the EC2/SSM fake holding
// its parameter, a stub run.sh and a shutdown stub on PATH.
type agentWorld struct {
	aws       *awsfake.Server
	deps      AgentDeps
	cfg       AgentConfig
	dir, bin  string
	shutdowns string
}

func newAgentWorld(t *testing.T, spotAfter time.Duration, runSh string) *agentWorld {
	url := startAEMM(t, spotAfter)
	w := &agentWorld{aws: awsfake.Start(t, awsfake.Options{SpotPrices: map[string]float64{"g5.xlarge": 0.4}}), dir: t.TempDir(), bin: t.TempDir()}
	w.aws.AddInstance(awsfake.Instance{ID: aemmInstance, Type: "g5.xlarge", Market: "spot", AZ: awsfake.DefaultAZ,
		Launched: time.Now().Add(-10 * time.Minute), Tags: map[string]string{TagManaged: "true", TagRepository: "lab/ct", TagRun: "4242", TagAttempt: "1", TagPR: "7"}})
	w.aws.PutParameter(awsfake.Parameter{Name: "/medcad/runners/" + aemmInstance, Type: "SecureString", Value: "jit-secret-42"})
	w.shutdowns = filepath.Join(w.bin, "shutdown.log")
	os.WriteFile(filepath.Join(w.bin, "shutdown"), []byte("#!/bin/sh\necho \"$@\" >> "+w.shutdowns+"\n"), 0o755)
	os.WriteFile(filepath.Join(w.bin, "nvidia-smi"), []byte("#!/bin/sh\necho 'GPU 0: NVIDIA A10G'\n"), 0o755)
	t.Setenv("PATH", w.bin+":"+os.Getenv("PATH"))
	os.WriteFile(filepath.Join(w.dir, "run.sh"), []byte("#!/bin/sh\nset -e\ncd \"$(dirname \"$0\")\"\n"+
		"[ -n \"$ACTIONS_RUNNER_INPUT_JITCONFIG\" ] || exit 9\nenv > env.txt\n"+runSh), 0o755)
	e, s := Clients(testAWS(), w.aws.URL)
	w.deps = AgentDeps{SSM: s, EC2: e, IMDS: imds.New(imds.Options{Endpoint: url})}
	w.cfg = AgentConfig{RunnerDir: w.dir, SSMPrefix: "/medcad/runners", IdleTimeout: time.Hour, ExpiresAt: time.Now().Add(time.Hour),
		CheckpointDir: filepath.Join(w.dir, "checkpoints"), Poll: 50 * time.Millisecond}
	return w
}

func (w *agentWorld) run(t *testing.T) *AgentResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Agent(ctx, w.deps, w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(w.shutdowns); strings.TrimSpace(string(got)) != "-h now" {
		t.Errorf("shutdown called with %q, want once with -h now", got)
	}
	if _, ok := w.aws.Parameters()["/medcad/runners/"+aemmInstance]; ok {
		t.Error("the agent left its parameter")
	}
	env, _ := os.ReadFile(filepath.Join(w.dir, "env.txt"))
	if !strings.Contains(string(env), "ACTIONS_RUNNER_INPUT_JITCONFIG=jit-secret-42") {
		t.Errorf("the runner did not get its config:\n%s", env)
	}
	for _, leak := range []string{"AWS_", "GITHUB_TOKEN", "MEDCAD_REQUIRE"} {
		if strings.Contains(string(env), leak) {
			t.Errorf("the runner's environment holds %s", leak)
		}
	}
	return res
}

const jobStarts = "mkdir -p _diag && echo job > _diag/Worker_20261202.log\n"

func TestAgentRunsOneJob(t *testing.T) {
	w := newAgentWorld(t, time.Hour, jobStarts+"sleep 0.3\n")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "must-not-reach-the-runner")
	if res := w.run(t); res.Ended != "job done" || res.Instance != aemmInstance || res.Interruption != "" {
		t.Errorf("result %+v", res)
	}
}

func TestAgentIdleTimeout(t *testing.T) {
	w := newAgentWorld(t, time.Hour, "exec sleep 60\n")
	w.cfg.IdleTimeout = 300 * time.Millisecond
	start := time.Now()
	if res := w.run(t); res.Ended != "idle timeout" || time.Since(start) > 10*time.Second {
		t.Errorf("result %+v after %v", res, time.Since(start))
	}
}

func TestAgentTTL(t *testing.T) {
	w := newAgentWorld(t, time.Hour, jobStarts+"exec sleep 60\n")
	w.cfg.ExpiresAt = time.Now().Add(500 * time.Millisecond)
	if res := w.run(t); res.Ended != "expired" {
		t.Errorf("result %+v", res)
	}
}

func TestAgentGPUCheckFails(t *testing.T) {
	w := newAgentWorld(t, time.Hour, jobStarts)
	os.WriteFile(filepath.Join(w.bin, "nvidia-smi"), []byte("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2; exit 9\n"), 0o755)
	res, err := Agent(context.Background(), w.deps, w.cfg)
	if err == nil || res.Ended != "GPU check failed" {
		t.Errorf("result %+v, %v", res, err)
	}
	if got, _ := os.ReadFile(w.shutdowns); strings.TrimSpace(string(got)) != "-h now" {
		t.Errorf("no shutdown after a failed GPU check: %q", got)
	}
}

// TestAgentSpotInterruption: AEMM posts the spot instance-action a second
// in; the agent sends SIGTERM to the stage's process group (started in a
// session of its own, as medcad starts stages), the trainer checkpoints
// and exits, and the notice is tagged on the instance.
func TestAgentSpotInterruption(t *testing.T) {
	w := newAgentWorld(t, time.Second, jobStarts+
		`setsid sh -c 'trap "echo saved > \"$MEDCAD_CHECKPOINT_DIR/ckpt\"; exit 0" TERM; while :; do sleep 0.05; done' &
wait
`)
	os.MkdirAll(w.cfg.CheckpointDir, 0o755)
	res := w.run(t)
	if res.Ended != "job done" || !strings.HasPrefix(res.Interruption, "spot ") || len(res.Signalled) != 1 {
		t.Errorf("result %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(w.cfg.CheckpointDir, "ckpt")); err != nil || string(b) != "saved\n" {
		t.Errorf("checkpoint: %q, %v", b, err)
	}
	if tag := w.aws.Instance(aemmInstance).Tags[TagInterrupt]; !strings.Contains(tag, "terminate") {
		t.Errorf("interruption tag %q", tag)
	}
}

// trainer is a stage as medcad starts it (a session and process group of
// its own, under the runner) that checkpoints on SIGTERM and exits; the
// job then fails, as a stage's interruption fails it.
const trainer = `setsid sh -c 'ck="$MEDCAD_CHECKPOINT_DIR/train"; mkdir -p "$ck"; echo epoch=2 > "$ck/state"
trap "echo epoch=3 > \"$ck/state\"; echo weights > \"$ck/model.pt\"; exit 143" TERM; while :; do sleep 0.05; done' &
wait
exit 1
`

// TestAgentCheckpointResume: attempt 1's spot notice comes a second in;
// the agent signals the trainer, which writes its checkpoint and exits,
// and the agent stores the checkpoint folder in the store (a folder
// remote, and versitygw). Attempt 2's agent, with resume_on_interrupt,
// restores it before its runner starts, and the job finds it. Stop puts
// both in the cost line of the pull request's comment and the ledger.
func TestAgentCheckpointResume(t *testing.T) {
	for _, kind := range []string{"file", "versitygw"} {
		t.Run(kind, func(t *testing.T) {
			var remote cas.Backend
			if kind == "file" {
				l, err := local.New(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				remote = l
			} else {
				remote, _ = castest.Versitygw(t).NewBucket(t)
			}
			run := Run{Repository: "lab/ct", ID: 4242, Attempt: 1, PR: 7}
			ctx := context.Background()

			first := newAgentWorld(t, time.Second, jobStarts+trainer)
			first.cfg.Checkpoints = &Checkpoints{Remote: remote, Cache: t.TempDir(), Run: run, Resume: true, Grace: 5 * time.Second}
			res := first.run(t)
			if !strings.HasPrefix(res.Interruption, "spot ") || len(res.Signalled) != 1 || !strings.HasPrefix(res.Checkpoint, "attempt 1 sha256:") || res.Resumed != "" {
				t.Fatalf("attempt 1: %+v", res)
			}
			if tag := first.aws.Instance(aemmInstance).Tags[TagCheckpoint]; tag != res.Checkpoint {
				t.Errorf("checkpoint tag %q, want %q", tag, res.Checkpoint)
			}
			// The stages' runner reads this marker: a trainer that exits 0
			// after its checkpoint is not recorded as trained.
			if mark, err := os.ReadFile(stages.InterruptedMarker(first.cfg.CheckpointDir)); err != nil || !strings.Contains(string(mark), "terminate") {
				t.Errorf("interruption marker: %q, %v", mark, err)
			}
			rc, err := remote.Get(ctx, "checkpoints/lab_ct/run-4242/attempt-1.json")
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(rc)
			rc.Close()
			rec, err := parseCheckpoint("attempt-1.json", data, run)
			if err != nil || rec.Files != 2 || !slices.Equal(rec.Stages, []string{"train"}) || rec.Instance != aemmInstance || !strings.Contains(rec.Notice, "terminate") {
				t.Errorf("record %s: %+v, %v", data, rec, err)
			}
			ledger := StoreLedger{Backend: remote}
			e, s := Clients(testAWS(), first.aws.URL)
			stopped, err := Stop(ctx, &Deps{EC2: e, SSM: s, Ledger: ledger}, gitops.Default().Runner, run)
			if err != nil {
				t.Fatal(err)
			}
			short := strings.TrimPrefix(res.Checkpoint, "attempt 1 sha256:")[:12]
			if line := stopped.CostLine; !strings.Contains(line, "spot g5.xlarge") || !strings.Contains(line, "interrupted: spot terminate notice for 20") ||
				!strings.Contains(line, "; checkpoint of attempt 1 "+short+" stored)") {
				t.Errorf("attempt 1 cost line: %s", line)
			}
			t.Logf("PR comment cost line after attempt 1: %s", stopped.CostLine)
			if costs, err := ledger.Costs(ctx, time.Now()); err != nil || len(costs) != 1 || costs[0].Checkpoint != res.Checkpoint || costs[0].Interrupted == "" {
				t.Errorf("ledger: %+v, %v", costs, err)
			}

			second := newAgentWorld(t, time.Hour, jobStarts+`cp "$MEDCAD_CHECKPOINT_DIR/train/state" resumed.txt
echo epoch=4 > "$MEDCAD_CHECKPOINT_DIR/train/state"
`)
			run.Attempt = 2
			second.cfg.Checkpoints = &Checkpoints{Remote: remote, Cache: t.TempDir(), Run: run, Resume: true}
			stale := stages.InterruptedMarker(second.cfg.CheckpointDir)
			if err := os.WriteFile(stale, []byte("left by an earlier job\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			res2 := second.run(t)
			if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a stale interruption marker survived the job's start: %v", err)
			}
			if res2.Resumed != res.Checkpoint || res2.Interruption != "" || res2.Ended != "job done" {
				t.Fatalf("attempt 2: %+v", res2)
			}
			if got, err := os.ReadFile(filepath.Join(second.dir, "resumed.txt")); string(got) != "epoch=3\n" {
				t.Errorf("attempt 2's job found %q, %v; want attempt 1's checkpoint", got, err)
			}
			if got, _ := os.ReadFile(filepath.Join(second.cfg.CheckpointDir, "train", "model.pt")); string(got) != "weights\n" {
				t.Errorf("model.pt restored as %q", got)
			}
			e, s = Clients(testAWS(), second.aws.URL)
			tagInstance(ctx, e, aemmInstance, TagAttempt, "2", t.Logf)
			stopped, err = Stop(ctx, &Deps{EC2: e, SSM: s}, gitops.Default().Runner, run)
			if err != nil {
				t.Fatal(err)
			}
			if line := stopped.CostLine; !strings.Contains(line, "(resumed from the checkpoint of attempt 1 "+short+")") {
				t.Errorf("attempt 2 cost line: %s", line)
			}
			t.Logf("PR comment cost line after attempt 2: %s", stopped.CostLine)
		})
	}
}

// TestAgentResumeWithoutCheckpoint: with nothing stored, attempt 2 starts
// its job with an empty checkpoint folder; a record of another run is
// refused with its name.
func TestAgentResumeWithoutCheckpoint(t *testing.T) {
	remote, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := newAgentWorld(t, time.Hour, jobStarts+`ls -A "$MEDCAD_CHECKPOINT_DIR" > listing.txt
`)
	run := Run{Repository: "lab/ct", ID: 4242, Attempt: 2}
	w.cfg.Checkpoints = &Checkpoints{Remote: remote, Cache: t.TempDir(), Run: run, Resume: true}
	if res := w.run(t); res.Resumed != "" || res.Ended != "job done" {
		t.Errorf("result %+v", res)
	}
	if got, err := os.ReadFile(filepath.Join(w.dir, "listing.txt")); err != nil || len(got) != 0 {
		t.Errorf("checkpoint folder holds %q, %v", got, err)
	}

	forged := []byte(`{"schema":1,"repository":"other/repo","run":1,"attempt":1,"manifest":"sha256:` + strings.Repeat("ab", 32) + `"}`)
	key := "checkpoints/lab_ct/run-4242/attempt-1.json"
	if err := remote.Put(context.Background(), key, bytes.NewReader(forged), int64(len(forged)), sha256.Sum256(forged)); err != nil {
		t.Fatal(err)
	}
	_, err = w.cfg.Checkpoints.Restore(context.Background(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "not of this run") {
		t.Errorf("restore of another run's record: %v", err)
	}
}

// TestChownTree: what the agent (root) restored belongs to the runner's
// user afterwards, symbolic links included but never followed.
func TestChownTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away, as the agent on an instance is")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "train"), 0o755)
	os.WriteFile(filepath.Join(dir, "train", "state"), []byte("epoch=3\n"), 0o644)
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, nil, 0o644)
	os.Symlink(outside, filepath.Join(dir, "train", "link"))
	if err := chownTree(dir, "nobody"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "train"), filepath.Join(dir, "train", "state"), filepath.Join(dir, "train", "link")} {
		fi, err := os.Lstat(p)
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
			t.Errorf("%s: %v, owner %d", p, err, fi.Sys().(*syscall.Stat_t).Uid)
		}
	}
	if fi, _ := os.Stat(outside); fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Error("chownTree followed a symbolic link out of the folder")
	}
}
