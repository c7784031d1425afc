package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/gitops"
)

// Stopped is what stop did.
type Stopped struct {
	Terminated []string `json:"terminated"`
	Removed    []string `json:"removed_runners"`
	Costs      []Cost   `json:"costs"`
	CostLine   string   `json:"cost_line"` // for the pull request's report
}

// Stop terminates the instances of run (every attempt), found by their
// tags, deletes their SSM parameters, removes their runners and records
// what they cost. It is idempotent: a second stop finds the instances
// terminated and records nothing twice.
func Stop(ctx context.Context, d *Deps, cfg gitops.Runner, run Run) (*Stopped, error) {
	if err := run.valid(); err != nil {
		return nil, err
	}
	all, err := managed(ctx, d.EC2, run.Repository, run.ID, true)
	if err != nil {
		return nil, err
	}
	res := &Stopped{}
	var live []string
	for _, in := range all {
		if in.State != "terminated" && in.State != "shutting-down" {
			live = append(live, in.ID)
		}
	}
	var errs []error
	if err := terminate(ctx, d, live...); err != nil {
		errs = append(errs, err)
	} else {
		res.Terminated = live
	}
	end := d.now()
	for _, in := range all {
		if err := deleteParameter(ctx, d.SSM, ParameterName(cfg.SSMPrefix, in.ID)); err != nil {
			errs = append(errs, err)
		}
		c := Cost{Repository: run.Repository, Run: run.ID, PR: run.PR, Instance: in.ID, Type: in.Type, Market: in.Market,
			Start: in.Launched, End: end, Interrupted: in.Tags[TagInterrupt],
			Checkpoint: in.Tags[TagCheckpoint], Resumed: in.Tags[TagResumed]}
		c.Attempt, _ = strconv.Atoi(in.Tags[TagAttempt])
		if in.Reason == "Server.SpotInstanceTermination" && c.Interrupted == "" {
			c.Interrupted = "spot instance reclaimed"
		}
		price, source, ok := hourlyPrice(ctx, d.EC2, cfg, in.Type, in.Market, in.AZ)
		if !ok {
			d.log().Warn("no price known; cost not recorded", "instance_type", in.Type)
			continue
		}
		c.USDPerHour, c.PriceSource = price, source
		c.priced()
		res.Costs = append(res.Costs, c)
		if d.Ledger != nil {
			if err := d.Ledger.Record(ctx, c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	res.CostLine = CostLine(res.Costs)
	if d.GitHub != nil {
		removed, err := removeRunners(ctx, d, func(r action.Runner) bool {
			for _, in := range all {
				if r.Name == RunnerName(in.ID) {
					return true
				}
			}
			return false
		})
		res.Removed = removed
		if err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

// removeRunners removes the medcad-* runners that match.
func removeRunners(ctx context.Context, d *Deps, match func(action.Runner) bool) ([]string, error) {
	rs, err := d.GitHub.Runners(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, r := range rs {
		if !strings.HasPrefix(r.Name, NamePrefix) || !match(r) {
			continue
		}
		if err := d.GitHub.RemoveRunner(ctx, r.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, r.Name)
	}
	return removed, errors.Join(errs...)
}

// ReapOptions say what reap looks at.
type ReapOptions struct {
	Config     gitops.Runner
	Repository string
	// BootGrace is how long after launch a runner may take to register on
	// top of register_timeout_minutes (0: 5 minutes).
	BootGrace time.Duration
}

// Reaped is what reap did, and why.
type Reaped struct {
	Terminated map[string]string `json:"terminated"` // instance → reason
	Removed    []string          `json:"removed_runners"`
}

// Reap terminates the repository's managed instances that are past
// expires-at, whose workflow run completed, or whose runner never
// registered after the boot grace; and removes offline medcad-* runners
// with no live instance behind them. It never terminates an instance only
// because GitHub does not list its runner. Failed terminations are
// retried, here and on the next pass; running it twice does nothing more.
func Reap(ctx context.Context, d *Deps, o ReapOptions) (*Reaped, error) {
	grace := o.BootGrace
	if grace <= 0 {
		grace = 5 * time.Minute
	}
	all, err := managed(ctx, d.EC2, o.Repository, 0, false)
	if err != nil {
		return nil, err
	}
	now := d.now()
	res := &Reaped{Terminated: map[string]string{}}
	completed := map[int64]bool{}
	var errs []error
	live := map[string]bool{}
	for _, in := range all {
		if in.State == "shutting-down" {
			continue
		}
		reason := ""
		switch exp := in.Expires(); {
		case exp.IsZero():
			reason = "no valid " + TagExpiresAt + " tag"
		case !now.Before(exp):
			reason = "expired at " + exp.Format(time.RFC3339)
		}
		if reason == "" && d.GitHub != nil && in.RunID() > 0 {
			done, ok := completed[in.RunID()]
			if !ok {
				var found bool
				done, found, err = d.GitHub.RunCompleted(ctx, in.RunID())
				if err != nil {
					errs = append(errs, err)
				}
				done = done && found
				completed[in.RunID()] = done
			}
			if done {
				reason = fmt.Sprintf("workflow run %d completed", in.RunID())
			}
		}
		if reason == "" && in.Tags[TagRegistered] == "" && now.Sub(in.Launched) > time.Duration(o.Config.RegisterTimeoutMinutes)*time.Minute+grace {
			reason = "its runner never registered"
		}
		if reason == "" {
			live[in.ID] = true
			continue
		}
		if err := terminate(ctx, d, in.ID); err != nil {
			errs = append(errs, err)
			live[in.ID] = true // its runner stays until the instance is gone
			continue
		}
		res.Terminated[in.ID] = reason
		if err := deleteParameter(ctx, d.SSM, ParameterName(o.Config.SSMPrefix, in.ID)); err != nil {
			errs = append(errs, err)
		}
	}
	if d.GitHub != nil {
		removed, err := removeRunners(ctx, d, func(r action.Runner) bool {
			id := strings.TrimPrefix(r.Name, NamePrefix)
			return !live[id] && r.Status != "online"
		})
		res.Removed = removed
		if err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}
