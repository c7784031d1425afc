package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/medcad/medcad/gitops"
)

// Instance is a managed instance as EC2 describes it.
type Instance struct {
	ID       string            `json:"id"`
	Type     string            `json:"instance_type"`
	Market   string            `json:"market"`
	State    string            `json:"state"`
	AZ       string            `json:"availability_zone"`
	Launched time.Time         `json:"launched"`
	Reason   string            `json:"state_reason,omitempty"` // e.g. Server.SpotInstanceTermination
	Tags     map[string]string `json:"tags"`
}

func instance(in types.Instance) Instance {
	out := Instance{ID: aws.ToString(in.InstanceId), Type: string(in.InstanceType), Market: OnDemand,
		Launched: aws.ToTime(in.LaunchTime), Tags: map[string]string{}}
	if in.InstanceLifecycle == types.InstanceLifecycleTypeSpot {
		out.Market = Spot
	}
	if in.State != nil {
		out.State = string(in.State.Name)
	}
	if in.Placement != nil {
		out.AZ = aws.ToString(in.Placement.AvailabilityZone)
	}
	if in.StateReason != nil {
		out.Reason = aws.ToString(in.StateReason.Code)
	}
	for _, t := range in.Tags {
		out.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return out
}

// Live reports whether the instance runs or will.
func (i Instance) Live() bool { return i.State == "pending" || i.State == "running" }

// Expires is the instance's expires-at tag (zero when missing or bad).
func (i Instance) Expires() time.Time {
	t, _ := time.Parse(time.RFC3339, i.Tags[TagExpiresAt])
	return t
}

// RunID is the workflow run the instance was launched for (0: unknown).
func (i Instance) RunID() int64 {
	n, _ := strconv.ParseInt(i.Tags[TagRun], 10, 64)
	return n
}

// managed lists the repository's managed instances (filtered by tags, all
// pages), those of one run when runID > 0, in any state but terminated
// unless withTerminated.
func managed(ctx context.Context, c EC2, repo string, runID int64, withTerminated bool) ([]Instance, error) {
	filters := []types.Filter{
		{Name: aws.String("tag:" + TagManaged), Values: []string{"true"}},
		{Name: aws.String("tag:" + TagRepository), Values: []string{repo}},
	}
	if runID > 0 {
		filters = append(filters, types.Filter{Name: aws.String("tag:" + TagRun), Values: []string{itoa(runID)}})
	}
	states := []string{"pending", "running", "stopping", "stopped", "shutting-down"}
	if withTerminated {
		states = append(states, "terminated")
	}
	filters = append(filters, types.Filter{Name: aws.String("instance-state-name"), Values: states})
	var out []Instance
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{Filters: filters, MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe managed instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				out = append(out, instance(in))
			}
		}
	}
	return out, nil
}

// describe returns one instance.
func describe(ctx context.Context, c EC2, id string) (Instance, error) {
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return Instance{}, fmt.Errorf("describe %s: %w", id, err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			return instance(in), nil
		}
	}
	return Instance{}, fmt.Errorf("describe %s: not found", id)
}

// terminateAttempts is how often terminate tries before it gives up (the
// next stop or reap tries again).
const terminateAttempts = 4

// terminate terminates instance ids, retrying failures with backoff.
func terminate(ctx context.Context, d *Deps, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	var err error
	for i := range terminateAttempts {
		if i > 0 {
			if serr := sleep(ctx, time.Duration(1<<i)*d.poll()/4); serr != nil {
				return serr
			}
		}
		_, err = d.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
		if err == nil {
			return nil
		}
		d.log().Warn("terminate failed; retrying", "instances", ids, "err", err)
	}
	return fmt.Errorf("terminate %v: %w", ids, err)
}

// deleteParameter deletes an instance's SSM parameter; a missing one is
// no error (the agent deletes it once read).
func deleteParameter(ctx context.Context, s SSM, name string) error {
	_, err := s.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(name)})
	var nf *ssmtypes.ParameterNotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("delete parameter %s: %w", name, err)
	}
	return nil
}

// hourlyPrice is what instance type typ costs an hour on market, and
// where that figure comes from: the latest spot price in az, else the
// on-demand price (onDemandPrice). ok is false when none is known.
func hourlyPrice(ctx context.Context, c EC2, cfg gitops.Runner, typ, market, az string) (price float64, source string, ok bool) {
	if market == Spot {
		in := &ec2.DescribeSpotPriceHistoryInput{InstanceTypes: []types.InstanceType{types.InstanceType(typ)},
			ProductDescriptions: []string{"Linux/UNIX"}, StartTime: aws.Time(time.Now()), MaxResults: aws.Int32(10)}
		if az != "" {
			in.AvailabilityZone = aws.String(az)
		}
		if out, err := c.DescribeSpotPriceHistory(ctx, in); err == nil {
			for _, p := range out.SpotPriceHistory {
				if v, err := strconv.ParseFloat(aws.ToString(p.SpotPrice), 64); err == nil {
					return v, PriceSpotHistory, true
				}
			}
		}
	}
	return onDemandPrice(cfg, typ)
}
