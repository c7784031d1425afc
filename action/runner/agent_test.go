//go:build linux

package runner

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/medcad/medcad/action/runner/awsfake"
	"github.com/medcad/medcad/internal/testenv"
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
	w := &agentWorld{aws: awsfake.Start(t, awsfake.Options{}), dir: t.TempDir(), bin: t.TempDir()}
	w.aws.AddInstance(awsfake.Instance{ID: aemmInstance, Type: "g5.xlarge", Tags: map[string]string{}})
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
