package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/medcad/medcad/internal/procgroup"
	"github.com/medcad/medcad/stages"
)

// IMDS is the part of the instance metadata service the agent reads;
// *imds.Client has it (IMDSv2: it fetches and renews the session token).
type IMDS interface {
	GetMetadata(context.Context, *imds.GetMetadataInput, ...func(*imds.Options)) (*imds.GetMetadataOutput, error)
}

// AgentConfig is what the agent on an instance does.
type AgentConfig struct {
	RunnerDir   string // holds run.sh
	RunAs       string // user the runner runs as ("": the agent's)
	SSMPrefix   string
	IdleTimeout time.Duration // no job started by then: shut down
	ExpiresAt   time.Time     // the TTL: stop the runner and shut down
	// CheckpointDir is handed to the job as MEDCAD_CHECKPOINT_DIR: where
	// a trainer keeps what it resumes from after an interruption.
	CheckpointDir string
	// Checkpoints, when set, stores the checkpoint folder on an
	// interruption and restores an earlier attempt's before the runner
	// starts (nil: the folder stays on the instance).
	Checkpoints *Checkpoints
	GPUCheck    []string // run before registering ("": nvidia-smi -L)
	Shutdown    []string // run at the end ("": shutdown -h now)
	Poll        time.Duration
	Log         io.Writer // nil: discard
}

// AgentDeps are the services the agent talks to: SSM for its config,
// EC2 to tag its own instance, IMDS for who it is and spot notices.
type AgentDeps struct {
	SSM  SSM
	EC2  EC2
	IMDS IMDS
	Now  func() time.Time
}

// AgentResult is how the agent's runner ended.
type AgentResult struct {
	Instance     string `json:"instance"`
	Ended        string `json:"ended"` // job done, idle timeout, expired, GPU check failed, cancelled
	Interruption string `json:"interruption,omitempty"`
	Signalled    []int  `json:"signalled_groups,omitempty"`
	Checkpoint   string `json:"checkpoint,omitempty"` // stored after the interruption
	Resumed      string `json:"resumed,omitempty"`    // the checkpoint restored before the job
}

// Agent reads and deletes the instance's runner config, checks the GPU,
// runs the runner for one job and shuts the instance down, whatever
// happened. On a spot interruption or rebalance notice it sends SIGTERM
// to the stages' process groups under the runner (so a trainer can
// checkpoint to MEDCAD_CHECKPOINT_DIR), stores that folder (c.Checkpoints)
// once they exited or their grace is up, and tags the instance with the
// notice and the checkpoint, which stop records with the cost.
func Agent(ctx context.Context, d AgentDeps, c AgentConfig) (res *AgentResult, err error) {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	if c.Poll <= 0 {
		c.Poll = 5 * time.Second
	}
	logw := c.Log
	if logw == nil {
		logw = io.Discard
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(logw, "%s medcad agent: %s\n", now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}
	res = &AgentResult{}
	defer func() {
		// Always: the instance must not outlive its job.
		logf("ended: %s; shutting down", res.Ended)
		if serr := run(context.WithoutCancel(ctx), orDefault(c.Shutdown, "shutdown", "-h", "now")); serr != nil {
			err = errors.Join(err, fmt.Errorf("shutdown: %w", serr))
		}
	}()
	id, err := metadata(ctx, d.IMDS, "instance-id")
	if err != nil {
		res.Ended = "no instance metadata"
		return res, err
	}
	res.Instance = id
	name := ParameterName(c.SSMPrefix, id)
	p, err := d.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		res.Ended = "no runner config"
		return res, fmt.Errorf("read %s: %w", name, err)
	}
	jit := aws.ToString(p.Parameter.Value)
	if err := deleteParameter(ctx, d.SSM, name); err != nil {
		logf("%v", err) // stop deletes it too
	}
	if err := run(ctx, orDefault(c.GPUCheck, "nvidia-smi", "-L")); err != nil {
		res.Ended = "GPU check failed"
		return res, fmt.Errorf("GPU check: %w", err)
	}
	if c.CheckpointDir != "" {
		if err := prepareCheckpoints(ctx, c, id, d.EC2, res, logf); err != nil {
			res.Ended = "checkpoint restore failed"
			return res, err
		}
	}
	logf("instance %s: config read, GPU ok; starting the runner", id)

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	cmd := exec.CommandContext(rctx, filepath.Join(c.RunnerDir, "run.sh"))
	cmd.Dir = c.RunnerDir
	home := c.RunnerDir
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8",
		"ACTIONS_RUNNER_INPUT_JITCONFIG=" + jit, // not in argv: ps shows argv to everyone
		"MEDCAD_CHECKPOINT_DIR=" + c.CheckpointDir,
	}
	if c.RunAs != "" {
		if home, err = runAs(cmd, c.RunAs); err != nil {
			res.Ended = "no runner user"
			return res, err
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+home)
	cmd.Stdout, cmd.Stderr = logw, logw
	end := procgroup.Set(cmd, 30*time.Second)
	if err := cmd.Start(); err != nil {
		res.Ended = "runner did not start"
		return res, err
	}
	defer end()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	started := now()
	tick := time.NewTicker(c.Poll)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			res.Ended = "job done"
			if err != nil {
				logf("runner exited: %v", err)
			}
			return res, nil
		case <-ctx.Done():
			res.Ended = "cancelled"
			stop()
			<-exited
			return res, ctx.Err()
		case <-tick.C:
		}
		if !c.ExpiresAt.IsZero() && !now().Before(c.ExpiresAt) {
			res.Ended = "expired"
			logf("the time-to-live is up (%s): stopping the runner", c.ExpiresAt.Format(time.RFC3339))
			stop()
			<-exited
			return res, nil
		}
		if c.IdleTimeout > 0 && now().Sub(started) >= c.IdleTimeout && !jobStarted(c.RunnerDir) {
			res.Ended = "idle timeout"
			logf("no job within %s: stopping the runner", c.IdleTimeout)
			stop()
			<-exited
			return res, nil
		}
		if res.Interruption == "" {
			if notice := interruption(ctx, d.IMDS); notice != "" {
				res.Interruption = notice
				logf("interruption notice: %s; signalling the stages to checkpoint", notice)
				if c.CheckpointDir != "" {
					// Before the signal: a stage that exits 0 after its
					// checkpoint must not be recorded as done.
					if werr := os.WriteFile(stages.InterruptedMarker(c.CheckpointDir), []byte(notice+"\n"), 0o644); werr != nil {
						logf("mark the interruption: %v", werr)
					}
				}
				res.Signalled, err = procgroup.SignalGroupsBelow(cmd.Process.Pid, syscall.SIGTERM)
				if err != nil {
					logf("signal stages: %v", err)
				}
				tagInstance(ctx, d.EC2, id, TagInterrupt, notice, logf)
				if c.Checkpoints != nil && c.CheckpointDir != "" {
					waitGroups(ctx, res.Signalled, c.Checkpoints.grace(), c.Poll)
					rec, err := c.Checkpoints.Save(ctx, c.CheckpointDir, id, notice, now())
					switch {
					case errors.Is(err, ErrNoCheckpoint):
						logf("the stages wrote no checkpoint")
					case err != nil:
						logf("store the checkpoint: %v", err)
					default:
						res.Checkpoint = rec.String()
						logf("checkpoint stored: %d files, %d bytes of %s (%s)", rec.Files, rec.Bytes, strings.Join(rec.Stages, ", "), rec)
						tagInstance(ctx, d.EC2, id, TagCheckpoint, rec.String(), logf)
					}
				}
			}
		}
	}
}

// prepareCheckpoints makes the checkpoint folder, restores an earlier
// attempt's checkpoint into it when asked, and gives it to the runner's
// user. A checkpoint that cannot be restored is an error: the job would
// silently start over.
func prepareCheckpoints(ctx context.Context, c AgentConfig, id string, e EC2, res *AgentResult, logf func(string, ...any)) error {
	if err := os.MkdirAll(c.CheckpointDir, 0o755); err != nil {
		return fmt.Errorf("checkpoint folder: %w", err)
	}
	if err := os.Remove(stages.InterruptedMarker(c.CheckpointDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stale interruption marker: %w", err)
	}
	if cp := c.Checkpoints; cp != nil && cp.Resume {
		rec, err := cp.Restore(ctx, c.CheckpointDir)
		if err != nil {
			return err
		}
		if rec != nil {
			res.Resumed = rec.String()
			logf("restored the checkpoint of %s: %d files of %s", rec, rec.Files, strings.Join(rec.Stages, ", "))
			tagInstance(ctx, e, id, TagResumed, rec.String(), logf)
		} else {
			logf("no earlier checkpoint of run %d to resume from", cp.Run.ID)
		}
	}
	if c.RunAs != "" {
		return chownTree(c.CheckpointDir, c.RunAs)
	}
	return nil
}

// waitGroups waits until the process groups are empty or grace is up.
func waitGroups(ctx context.Context, groups []int, grace, poll time.Duration) {
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		alive := false
		for _, g := range groups {
			alive = alive || procgroup.Alive(g)
		}
		if !alive {
			return
		}
		sleep(ctx, min(poll, 100*time.Millisecond))
	}
}

// tagInstance sets one tag on the agent's own instance (logged when it
// fails: the job goes on).
func tagInstance(ctx context.Context, e EC2, id, key, value string, logf func(string, ...any)) {
	if _, err := e.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id},
		Tags: []types.Tag{{Key: aws.String(key), Value: aws.String(oneLine(value))}}}); err != nil {
		logf("tag %s: %v", key, err)
	}
}

// jobStarted reports whether the runner has started a job: its worker
// writes _diag/Worker_*.log when it does.
func jobStarted(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "_diag", "Worker_*.log"))
	return len(m) > 0
}

// interruption is the spot interruption or rebalance notice, "" if none.
func interruption(ctx context.Context, m IMDS) string {
	if s, err := metadata(ctx, m, "spot/instance-action"); err == nil && s != "" {
		return "spot " + oneLine(s)
	}
	if s, err := metadata(ctx, m, "events/recommendations/rebalance"); err == nil && s != "" {
		return "rebalance " + oneLine(s)
	}
	return ""
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// metadata reads one IMDS path (bounded); a 404 is ("", nil).
func metadata(ctx context.Context, m IMDS, path string) (string, error) {
	out, err := m.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == 404 {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("instance metadata %s: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 64<<10))
	return strings.TrimSpace(string(b)), err
}

func orDefault(cmd []string, def ...string) []string {
	if len(cmd) == 0 {
		return def
	}
	return cmd
}

// run runs a command with the agent's environment, its output discarded.
func run(ctx context.Context, argv []string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, oneLine(string(out)))
	}
	return nil
}
