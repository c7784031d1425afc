package runner

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/gitops"
)

// StartOptions say what to launch for which run.
type StartOptions struct {
	Config gitops.Runner
	Run    Run
	// Region is the region the EC2 client launches in; DataRegion the
	// data bucket's ("" when the remote is not S3). With
	// require_same_region they must match.
	Region, DataRegion string
	// Agent is how the user data starts the agent; Path "" is
	// /usr/local/bin/medcad, RunnerDir "" /opt/actions-runner, RunAs ""
	// "runner".
	Agent AgentOptions
	// Store is the project's store remote (an s3:// URL the instance can
	// reach; "": checkpoints stay on the instance).
	Store gitops.Remote
	// RegisterTimeout overrides [runner] register_timeout_minutes (tests).
	RegisterTimeout time.Duration
}

// Attempt is one candidate start tried and why it was given up.
type Attempt struct {
	Candidate
	Instance string `json:"instance,omitempty"`
	Error    string `json:"error"`
}

// Started is a runner that came online.
type Started struct {
	Label      string    `json:"label"` // runs-on of the GPU job
	Instance   string    `json:"instance"`
	Candidate  Candidate `json:"candidate"`
	RunnerID   int64     `json:"runner_id"`
	RunnerName string    `json:"runner_name"`
	ExpiresAt  time.Time `json:"expires_at"`
	Attempts   []Attempt `json:"attempts"` // the candidates given up before it
}

// Request is a launch request as --dry-run shows it.
type Request struct {
	Candidate Candidate              `json:"candidate"`
	UserData  string                 `json:"user_data"` // decoded
	Input     *ec2.RunInstancesInput `json:"input"`     // UserData left out: see above
}

func (o *StartOptions) defaults(now time.Time) (expires time.Time, a AgentOptions) {
	a = o.Agent
	if a.Path == "" {
		a.Path = "/usr/local/bin/medcad"
	}
	if a.RunnerDir == "" {
		a.RunnerDir = "/opt/actions-runner"
	}
	if a.RunAs == "" {
		a.RunAs = "runner"
	}
	a.SSMPrefix = o.Config.SSMPrefix
	a.Store, a.Run, a.Resume = o.Store, o.Run, o.Config.ResumeOnInterrupt
	a.IdleTimeout = time.Duration(o.Config.IdleTimeoutMinutes) * time.Minute
	expires = now.Add(time.Duration(o.Config.TTLMinutes) * time.Minute).Truncate(time.Second)
	a.ExpiresAt = expires
	return expires, a
}

// Plan returns the launch requests start would make, in order, without
// calling anything.
func Plan(o StartOptions, now time.Time) ([]Request, error) {
	if err := settings(o.Config); err != nil {
		return nil, err
	}
	if err := o.Run.valid(); err != nil {
		return nil, err
	}
	expires, a := o.defaults(now)
	ud := UserData(time.Duration(o.Config.TTLMinutes)*time.Minute, a)
	var out []Request
	for i, c := range Candidates(o.Config) {
		in := launchInput(o.Config, o.Run, c, launchTags(o.Run, expires), ud, clientToken(o.Run, i))
		in.UserData = nil
		out = append(out, Request{Candidate: c, UserData: ud, Input: in})
	}
	return out, nil
}

func clientToken(r Run, i int) string { return fmt.Sprintf("medcad-%d-%d-%d", r.ID, r.Attempt, i) }

// Start launches a runner for o.Run and waits until it is online. It
// refuses (ErrRefused) when a limit would be passed; it reaps first.
func Start(ctx context.Context, d *Deps, o StartOptions) (*Started, error) {
	if err := settings(o.Config); err != nil {
		return nil, err
	}
	if err := o.Run.valid(); err != nil {
		return nil, err
	}
	cfg := o.Config
	if cfg.RequireSameRegion && o.DataRegion != "" && o.DataRegion != o.Region {
		return nil, fmt.Errorf("%w: the data bucket is in %s, the runner would launch in %s (require_same_region)", ErrRefused, o.DataRegion, o.Region)
	}
	if _, err := Reap(ctx, d, ReapOptions{Config: cfg, Repository: o.Run.Repository}); err != nil {
		d.log().Warn("reap before start failed", "err", err)
	}
	live, err := managed(ctx, d.EC2, o.Run.Repository, 0, false)
	if err != nil {
		return nil, err
	}
	if cfg.MaxConcurrent > 0 && len(live) >= cfg.MaxConcurrent {
		return nil, fmt.Errorf("%w: %d managed instances are running, max_concurrent is %d", ErrRefused, len(live), cfg.MaxConcurrent)
	}
	if err := checkBudget(ctx, d, o); err != nil {
		return nil, err
	}
	expires, agent := o.defaults(d.now())
	ud := UserData(time.Duration(cfg.TTLMinutes)*time.Minute, agent)
	if len(ud) > MaxUserData {
		return nil, fmt.Errorf("user data is %d bytes, more than EC2's %d", len(ud), MaxUserData)
	}
	timeout := o.RegisterTimeout
	if timeout <= 0 {
		timeout = time.Duration(cfg.RegisterTimeoutMinutes) * time.Minute
	}
	res := &Started{Label: Label(o.Run), ExpiresAt: expires}
	ruled := map[string]bool{}
	for i, c := range Candidates(cfg) {
		if ruled[c.Market] || ruled[c.Market+"/"+c.Type] {
			continue
		}
		out, err := d.EC2.RunInstances(ctx, launchInput(cfg, o.Run, c, launchTags(o.Run, expires), ud, clientToken(o.Run, i)))
		if err != nil {
			switch classify(err) {
			case skipNone:
				return res, fmt.Errorf("launch %s: %w", c, err)
			case skipType:
				ruled[c.Market+"/"+c.Type] = true
			case skipMarket:
				ruled[c.Market] = true
			}
			res.Attempts = append(res.Attempts, Attempt{Candidate: c, Error: err.Error()})
			d.log().Info("candidate did not launch", "candidate", c.String(), "err", err)
			continue
		}
		id := aws.ToString(out.Instances[0].InstanceId)
		r, err := register(ctx, d, cfg, o.Run, id, timeout)
		if err == nil {
			res.Instance, res.Candidate, res.RunnerID, res.RunnerName = id, c, r.ID, r.Name
			return res, nil
		}
		if ctx.Err() != nil {
			// Cancelled: the instance stays, tagged; stop and reap find it.
			return res, ctx.Err()
		}
		res.Attempts = append(res.Attempts, Attempt{Candidate: c, Instance: id, Error: err.Error()})
		if errors.Is(err, action.ErrJITForbidden) || errors.Is(err, errFatal) {
			return res, err
		}
	}
	var lines []string
	for _, a := range res.Attempts {
		lines = append(lines, a.Candidate.String()+": "+a.Error)
	}
	return res, fmt.Errorf("%w; tried %d: %s", ErrNoCapacity, len(res.Attempts), strings.Join(lines, "; "))
}

// errFatal marks a registration error no other candidate can mend.
var errFatal = errors.New("runner registration failed")

// register gives instance id a just-in-time runner and waits until it is
// online; on failure it removes the instance, its parameter and runner.
func register(ctx context.Context, d *Deps, cfg gitops.Runner, run Run, id string, timeout time.Duration) (action.Runner, error) {
	name := RunnerName(id)
	param := ParameterName(cfg.SSMPrefix, id)
	labels := append(slices.Clone(cfg.Labels), Label(run))
	cleanup := func(runnerID int64) {
		// On cancellation too: a fresh context, bounded.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if ctx.Err() != nil {
			return // cancelled: stop and reap clean up by tag
		}
		if err := terminate(cctx, d, id); err != nil {
			d.log().Warn("terminate after failed registration", "instance", id, "err", err)
		}
		if err := deleteParameter(cctx, d.SSM, param); err != nil {
			d.log().Warn("delete parameter", "err", err)
		}
		if runnerID != 0 {
			if err := d.GitHub.RemoveRunner(cctx, runnerID); err != nil {
				d.log().Warn("remove runner", "err", err)
			}
		}
	}
	jit, err := d.GitHub.GenerateJITConfig(ctx, name, cfg.RunnerGroupID, labels)
	if errors.Is(err, action.ErrRunnerNameTaken) {
		// A runner of this name is left from before (the name holds the
		// instance id, so it cannot be in use): remove it, try once more.
		if rerr := removeNamed(ctx, d, name); rerr == nil {
			jit, err = d.GitHub.GenerateJITConfig(ctx, name, cfg.RunnerGroupID, labels)
		}
	}
	if err != nil {
		cleanup(0)
		if !errors.Is(err, action.ErrRunnerNameTaken) {
			err = fmt.Errorf("%w: %w", errFatal, err)
		}
		return action.Runner{}, err
	}
	_, err = d.SSM.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(param), Value: aws.String(jit.Encoded),
		Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true),
		Description: aws.String("medcad just-in-time runner config for " + id + "; the instance deletes it once read")})
	if err != nil {
		cleanup(jit.Runner.ID)
		return action.Runner{}, fmt.Errorf("%w: hand over the runner config: %w", errFatal, err)
	}
	if _, err := d.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id},
		Tags: []types.Tag{{Key: aws.String(TagRunnerID), Value: aws.String(itoa(jit.Runner.ID))}}}); err != nil {
		d.log().Warn("tag runner id", "instance", id, "err", err)
	}
	deadline := d.now().Add(timeout)
	for {
		r, err := d.GitHub.Runner(ctx, jit.Runner.ID)
		if err == nil && r.Status == "online" {
			if _, err := d.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id},
				Tags: []types.Tag{{Key: aws.String(TagRegistered), Value: aws.String(d.now().Format(time.RFC3339))}}}); err != nil {
				d.log().Warn("tag registered", "instance", id, "err", err)
			}
			return r, nil
		}
		if in, derr := describe(ctx, d.EC2, id); derr == nil && !in.Live() {
			cleanup(jit.Runner.ID)
			return action.Runner{}, fmt.Errorf("instance %s is %s (%s) before its runner came online", id, in.State, in.Reason)
		}
		if !d.now().Before(deadline) {
			cleanup(jit.Runner.ID)
			return action.Runner{}, fmt.Errorf("runner %s not online after %s", name, timeout)
		}
		if err := sleep(ctx, d.poll()); err != nil {
			return action.Runner{}, err
		}
	}
}

// removeNamed removes the runner called name if it is offline.
func removeNamed(ctx context.Context, d *Deps, name string) error {
	rs, err := d.GitHub.Runners(ctx)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.Name == name {
			if r.Status == "online" {
				return fmt.Errorf("runner %s is online", name)
			}
			return d.GitHub.RemoveRunner(ctx, r.ID)
		}
	}
	return nil
}

// checkBudget refuses when the recorded cost plus this run's worst case
// (the TTL at the dearest candidate's price) passes a budget.
func checkBudget(ctx context.Context, d *Deps, o StartOptions) error {
	cfg := o.Config
	if cfg.MaxUSDPerPR == 0 && cfg.MaxUSDPerMonth == 0 {
		return nil
	}
	if d.Ledger == nil {
		return fmt.Errorf("%w: a budget is set but no cost ledger is available (the project needs a remote)", ErrRefused)
	}
	var worst float64
	for _, c := range Candidates(cfg) {
		p, _, ok := onDemandPrice(cfg, c.Type)
		if c.Market == Spot && cfg.MaxSpotPrice > 0 {
			p, ok = cfg.MaxSpotPrice, true
		}
		if !ok {
			return fmt.Errorf("%w: no price known for %s, so the budget cannot be kept (set [runner] usd_per_hour for it, or max_spot_price)", ErrRefused, c.Type)
		}
		worst = math.Max(worst, p)
	}
	worst *= float64(cfg.TTLMinutes) / 60
	costs, err := d.Ledger.Costs(ctx, d.now())
	if err != nil {
		return err
	}
	var month, pr float64
	for _, c := range costs {
		month += c.USD
		if c.Repository == o.Run.Repository && o.Run.PR != 0 && c.PR == o.Run.PR {
			pr += c.USD
		}
	}
	if cfg.MaxUSDPerPR > 0 && o.Run.PR != 0 && pr+worst > cfg.MaxUSDPerPR {
		return fmt.Errorf("%w: PR #%d has spent $%.2f; this run may cost up to $%.2f (%d min), max_usd_per_pr is $%.2f", ErrRefused, o.Run.PR, pr, worst, cfg.TTLMinutes, cfg.MaxUSDPerPR)
	}
	if cfg.MaxUSDPerMonth > 0 && month+worst > cfg.MaxUSDPerMonth {
		return fmt.Errorf("%w: $%.2f spent this month; this run may cost up to $%.2f (%d min), max_usd_per_month is $%.2f", ErrRefused, month, worst, cfg.TTLMinutes, cfg.MaxUSDPerMonth)
	}
	return nil
}

// decodeUserData decodes a launch input's user data (tests, dry runs).
func decodeUserData(in *ec2.RunInstancesInput) string {
	b, _ := base64.StdEncoding.DecodeString(aws.ToString(in.UserData))
	return string(b)
}
