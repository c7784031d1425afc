// Package runner launches, watches and removes ephemeral self-hosted
// GitHub Actions runners on EC2 GPU instances: one instance per workflow
// run attempt, one job per runner, a hard time-to-live, found again by its
// tags (never by job outputs) so that stop and reap clean up after a start
// that was cancelled.
//
//   - Start (on a GitHub-hosted runner) checks budget and concurrency,
//     reaps, then tries instance types × subnets (spot, then on-demand when
//     allowed) with RunInstances, hands the instance a just-in-time runner
//     config through an SSM SecureString (never user data) and waits for
//     the runner to come online.
//   - Agent (on the instance, started by the user data) reads and deletes
//     that parameter over IMDSv2, checks the GPU, runs the runner for one
//     job, watches for spot interruption, and shuts the instance down.
//   - Stop terminates the run's instances, deletes their parameters,
//     removes their runners and records the cost.
//   - Reap removes what is left over: instances past expires-at or whose
//     run completed, runners with no instance behind them.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/gitops"
)

// Tags medcad puts on every instance it launches.
const (
	TagManaged    = "medcad:managed" // "true"
	TagRepository = "medcad:repository"
	TagRun        = "medcad:run" // the workflow run id
	TagAttempt    = "medcad:attempt"
	TagPR         = "medcad:pr"
	TagExpiresAt  = "medcad:expires-at" // RFC 3339, UTC
	TagLabel      = "medcad:label"      // the runner's unique label
	TagRegistered = "medcad:registered" // set once the runner was seen online
	TagRunnerID   = "medcad:runner-id"
	TagInterrupt  = "medcad:interrupted" // set by the agent: the notice and when
	TagCheckpoint = "medcad:checkpoint"  // set by the agent: the checkpoint it stored
	TagResumed    = "medcad:resumed"     // set by the agent: the checkpoint it restored
)

// NamePrefix starts the name of every runner medcad registers.
const NamePrefix = "medcad-"

// EC2 is the part of the EC2 API the package calls; *ec2.Client has it.
type EC2 interface {
	RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DescribeSpotPriceHistory(context.Context, *ec2.DescribeSpotPriceHistoryInput, ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error)
}

// SSM is the part of the SSM API the package calls; *ssm.Client has it.
type SSM interface {
	PutParameter(context.Context, *ssm.PutParameterInput, ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
	DeleteParameter(context.Context, *ssm.DeleteParameterInput, ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error)
}

// GitHub is the part of the runner API the package calls; *action.Client
// has it.
type GitHub interface {
	GenerateJITConfig(ctx context.Context, name string, group int64, labels []string) (action.JITConfig, error)
	Runners(ctx context.Context) ([]action.Runner, error)
	Runner(ctx context.Context, id int64) (action.Runner, error)
	RemoveRunner(ctx context.Context, id int64) error
	RunCompleted(ctx context.Context, id int64) (completed, found bool, err error)
}

// Run identifies the workflow run attempt the runner is for.
type Run struct {
	Repository string `json:"repository"` // owner/name
	ID         int64  `json:"id"`         // GITHUB_RUN_ID
	Attempt    int    `json:"attempt"`    // GITHUB_RUN_ATTEMPT
	PR         int    `json:"pr"`         // 0: not a pull request
}

func (r Run) valid() error {
	if strings.Count(r.Repository, "/") != 1 || r.ID <= 0 || r.Attempt <= 0 {
		return fmt.Errorf("workflow run %q #%d attempt %d: need owner/name, a run id and an attempt", r.Repository, r.ID, r.Attempt)
	}
	return nil
}

// Deps are the services the package talks to and its clock. GitHub may be
// nil for a dry run.
type Deps struct {
	EC2    EC2
	SSM    SSM
	GitHub GitHub
	Ledger Ledger // nil: costs are not recorded, budgets not enforced
	Log    *slog.Logger
	Now    func() time.Time // nil: time.Now
	// Poll is how often start looks at a booting runner (0: 10 s).
	Poll time.Duration
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC()
	}
	return time.Now().UTC()
}

func (d *Deps) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

func (d *Deps) poll() time.Duration {
	if d.Poll <= 0 {
		return 10 * time.Second
	}
	return d.Poll
}

// ErrRefused means start refused to launch: a budget, the concurrency
// limit or the data region. The message says which.
var ErrRefused = errors.New("runner refused")

// ErrNoCapacity means no candidate could be launched and registered.
var ErrNoCapacity = errors.New("no candidate instance launched and registered")

// settings checks that cfg can launch.
func settings(cfg gitops.Runner) error {
	if cfg.Provider != "ec2" {
		return fmt.Errorf("[runner] provider = %q: medcad runner needs provider = \"ec2\"", cfg.Provider)
	}
	if cfg.AMI == "" {
		return fmt.Errorf("[runner] ami is empty: name the GPU AMI (with the GitHub runner in /opt/actions-runner and medcad installed)")
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
