package runner

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/medcad/medcad/gitops"
)

// Markets of a candidate.
const (
	Spot     = "spot"
	OnDemand = "on-demand"
)

// Candidate is one way to launch: an instance type in a subnet on a
// market. Subnet "" is the default VPC's choice.
type Candidate struct {
	Type   string `json:"instance_type"`
	Subnet string `json:"subnet"`
	Market string `json:"market"`
}

func (c Candidate) String() string {
	s := c.Subnet
	if s == "" {
		s = "default subnet"
	}
	return fmt.Sprintf("%s %s in %s", c.Market, c.Type, s)
}

// Candidates lists what start tries, in order: every type × subnet on
// spot, then on demand (market "spot-then-on-demand"), or on the one
// market configured.
func Candidates(cfg gitops.Runner) []Candidate {
	markets := []string{cfg.Market}
	if cfg.Market == "spot-then-on-demand" {
		markets = []string{Spot, OnDemand}
	}
	subnets := cfg.Subnets
	if len(subnets) == 0 {
		subnets = []string{""}
	}
	var out []Candidate
	for _, m := range markets {
		for _, t := range cfg.InstanceTypes {
			for _, s := range subnets {
				out = append(out, Candidate{Type: t, Subnet: s, Market: m})
			}
		}
	}
	return out
}

// Label is the unique runner label of a run attempt: what the GPU job's
// runs-on names.
func Label(r Run) string { return fmt.Sprintf("medcad-%d-%d", r.ID, r.Attempt) }

// RunnerName is the name of the runner on instance id.
func RunnerName(instanceID string) string { return NamePrefix + instanceID }

// ParameterName is the SSM parameter that hands instance id its runner
// config.
func ParameterName(prefix, instanceID string) string {
	return strings.TrimSuffix(prefix, "/") + "/" + instanceID
}

// AgentOptions are what the user data passes the agent: no secret.
type AgentOptions struct {
	Path        string // the medcad binary on the AMI
	RunnerDir   string // the GitHub runner's folder (run.sh)
	RunAs       string // the unprivileged user the runner runs as
	SSMPrefix   string
	IdleTimeout time.Duration
	ExpiresAt   time.Time
	// Store is the project's store remote, where the agent keeps the
	// run's checkpoints (URL "": they stay on the instance); Run names
	// them; Resume restores an earlier attempt's.
	Store  gitops.Remote
	Run    Run
	Resume bool
}

// storeFlags are the agent's checkpoint flags ("" without a store).
func (a AgentOptions) storeFlags() string {
	if a.Store.URL == "" {
		return ""
	}
	f := " --store " + shellQuote(a.Store.URL)
	if a.Store.Region != "" {
		f += " --store-region " + shellQuote(a.Store.Region)
	}
	if a.Store.Endpoint != "" {
		f += " --store-endpoint " + shellQuote(a.Store.Endpoint)
	}
	if a.Store.PathStyle {
		f += " --store-path-style"
	}
	f += fmt.Sprintf(" --repository %s --run-id %d --attempt %d", shellQuote(a.Run.Repository), a.Run.ID, a.Run.Attempt)
	if a.Resume {
		f += " --resume"
	}
	return f
}

// MaxUserData is EC2's limit on user data (before base64).
const MaxUserData = 16 << 10

// UserData is the boot script: its first command schedules the hard
// time-to-live, whatever happens next; then it runs the agent. It holds
// no secret (user data is readable by anyone on the instance, and in the
// console).
func UserData(ttl time.Duration, a AgentOptions) string {
	minutes := int((ttl + time.Minute - 1) / time.Minute)
	return fmt.Sprintf(`#!/bin/sh
shutdown -h +%d
# medcad ephemeral GitHub runner: the agent reads its just-in-time config
# from SSM (%s/<instance-id>) over IMDSv2, runs one job and shuts down.
exec >>/var/log/medcad-agent.log 2>&1
exec %s runner agent --runner-dir %s --run-as %s --ssm-prefix %s --idle-timeout %s --expires-at %s%s
`, minutes, a.SSMPrefix, shellQuote(a.Path), shellQuote(a.RunnerDir), shellQuote(a.RunAs), shellQuote(a.SSMPrefix),
		a.IdleTimeout, a.ExpiresAt.UTC().Format(time.RFC3339), a.storeFlags())
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// launchInput is the RunInstances request for candidate c.
func launchInput(cfg gitops.Runner, run Run, c Candidate, tags map[string]string, userData string, token string) *ec2.RunInstancesInput {
	var tagList []types.Tag
	for _, k := range sortedKeys(tags) {
		tagList = append(tagList, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	ebs := &types.EbsBlockDevice{Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true),
		VolumeSize: aws.Int32(int32(cfg.VolumeGiB)), VolumeType: types.VolumeTypeGp3}
	if cfg.VolumeKMSKey != "" {
		ebs.KmsKeyId = aws.String(cfg.VolumeKMSKey)
	}
	nic := types.InstanceNetworkInterfaceSpecification{DeviceIndex: aws.Int32(0), DeleteOnTermination: aws.Bool(true),
		AssociatePublicIpAddress: aws.Bool(cfg.AssociatePublicIP)}
	if c.Subnet != "" {
		nic.SubnetId = aws.String(c.Subnet)
	}
	if cfg.SecurityGroup != "" {
		nic.Groups = []string{cfg.SecurityGroup}
	}
	in := &ec2.RunInstancesInput{
		ImageId:                           aws.String(cfg.AMI),
		InstanceType:                      types.InstanceType(c.Type),
		MinCount:                          aws.Int32(1),
		MaxCount:                          aws.Int32(1),
		ClientToken:                       aws.String(token),
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpEndpoint:            types.InstanceMetadataEndpointStateEnabled,
			HttpTokens:              types.HttpTokensStateRequired,
			HttpPutResponseHopLimit: aws.Int32(1),
			InstanceMetadataTags:    types.InstanceMetadataTagsStateEnabled,
		},
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"), Ebs: ebs}},
		NetworkInterfaces:   []types.InstanceNetworkInterfaceSpecification{nic},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tagList},
			{ResourceType: types.ResourceTypeVolume, Tags: tagList},
		},
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(userData))),
	}
	switch {
	case strings.HasPrefix(cfg.IAMInstanceProfile, "arn:"):
		in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Arn: aws.String(cfg.IAMInstanceProfile)}
	case cfg.IAMInstanceProfile != "":
		in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(cfg.IAMInstanceProfile)}
	}
	if c.Market == Spot {
		spot := &types.SpotMarketOptions{SpotInstanceType: types.SpotInstanceTypeOneTime,
			InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate}
		if cfg.MaxSpotPrice > 0 {
			spot.MaxPrice = aws.String(fmt.Sprintf("%.4f", cfg.MaxSpotPrice))
		}
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot, SpotOptions: spot}
	}
	return in
}

// launchTags are the tags of run's instance.
func launchTags(run Run, expires time.Time) map[string]string {
	return map[string]string{
		"Name":        Label(run),
		TagManaged:    "true",
		TagRepository: run.Repository,
		TagRun:        itoa(run.ID),
		TagAttempt:    itoa(int64(run.Attempt)),
		TagPR:         itoa(int64(run.PR)),
		TagExpiresAt:  expires.UTC().Format(time.RFC3339),
		TagLabel:      Label(run),
	}
}

// skip says which later candidates a launch error rules out as well.
type skip int

const (
	skipNone   skip = iota // fatal: stop trying
	skipOne                // this candidate only (capacity in this AZ)
	skipType               // this type on this market (its vCPU quota)
	skipMarket             // every candidate on this market (spot quota)
)

// classify sorts a RunInstances error by what it rules out.
func classify(err error) skip {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return skipNone
	}
	switch ae.ErrorCode() {
	case "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity", "Unsupported", "InsufficientFreeAddressesInSubnet":
		return skipOne
	case "VcpuLimitExceeded", "InstanceLimitExceeded", "SpotMaxPriceTooLow":
		return skipType
	case "MaxSpotInstanceCountExceeded":
		return skipMarket
	}
	return skipNone
}
