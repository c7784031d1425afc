package runner

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/action/runner/awsfake"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestStartLaunchesRegistersAndStopCleansUp(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	w.aws.Throttle(2) // the SDK's retryer rides it out
	w.boot()
	ctx := context.Background()
	st, err := Start(ctx, w.d, w.opts())
	if err != nil {
		t.Fatal(err)
	}
	if st.Label != "medcad-4242-1" || st.RunnerName != RunnerName(st.Instance) {
		t.Errorf("label %q runner %q for %s", st.Label, st.RunnerName, st.Instance)
	}
	in := w.aws.Instance(st.Instance)
	for k, v := range map[string]string{TagManaged: "true", TagRepository: "lab/ct", TagRun: "4242", TagAttempt: "1", TagPR: "7",
		TagExpiresAt: "2026-12-02T14:00:00Z", TagLabel: "medcad-4242-1"} {
		if in.Tags[k] != v {
			t.Errorf("tag %s = %q, want %q", k, in.Tags[k], v)
		}
	}
	if in.Tags[TagRegistered] == "" || in.Tags[TagRunnerID] == "" {
		t.Errorf("registered/runner-id tags missing: %v", in.Tags)
	}
	for k, v := range map[string]string{"MetadataOptions.HttpPutResponseHopLimit": "1", "BlockDeviceMapping.1.Ebs.Encrypted": "true",
		"BlockDeviceMapping.1.Ebs.DeleteOnTermination": "true", "NetworkInterface.1.AssociatePublicIpAddress": "false",
		"IamInstanceProfile.Name": "medcad-runner", "ImageId": "ami-0123456789abcdef0"} {
		if got := in.Params.Get(k); got != v {
			t.Errorf("RunInstances %s = %q, want %q", k, got, v)
		}
	}
	runners := w.gh.Runners()
	if len(runners) != 1 || runners[0].Status != "online" || !contains(strings.Join(runners[0].Labels, ","), "medcad-4242-1") {
		t.Fatalf("runners: %+v", runners)
	}
	if strings.Contains(in.UserData, runners[0].JIT) {
		t.Error("the user data holds the just-in-time config")
	}
	if len(w.aws.Parameters()) != 0 {
		t.Errorf("parameters left after the instance read them: %v", w.aws.Parameters())
	}

	w.advance(42 * time.Minute)
	res, err := Stop(ctx, w.d, w.cfg, w.run)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.aws.Instance(st.Instance).State; got != "shutting-down" && got != "terminated" {
		t.Errorf("after stop the instance is %s", got)
	}
	if len(w.gh.Runners()) != 0 {
		t.Errorf("runners left: %+v", w.gh.Runners())
	}
	if len(res.Costs) != 1 || res.Costs[0].Minutes != 42 || res.Costs[0].USD != 0.7042 {
		t.Errorf("costs: %+v", res.Costs)
	}
	want := "**GPU cost:** $0.70 (on-demand g5.xlarge 42 min at $1.0060/h)"
	if res.CostLine != want {
		t.Errorf("cost line\n got %s\nwant %s", res.CostLine, want)
	}
	t.Logf("PR comment cost line: %s", res.CostLine)
	recorded, err := w.d.Ledger.Costs(ctx, w.now)
	if err != nil || len(recorded) != 1 || recorded[0].PR != 7 {
		t.Errorf("ledger: %+v, %v", recorded, err)
	}
	// Idempotent: a second stop terminates nothing and records nothing new.
	res2, err := Stop(ctx, w.d, w.cfg, w.run)
	if err != nil || len(res2.Terminated) != 0 {
		t.Errorf("second stop: %+v, %v", res2, err)
	}
	if recorded, _ := w.d.Ledger.Costs(ctx, w.now); len(recorded) != 1 {
		t.Errorf("second stop recorded again: %d records", len(recorded))
	}
}

// TestStartCancelledAfterLaunch: the start job is cancelled while its
// instance boots; the instance is found by its tags by stop, and by reap
// once the run has completed.
func TestStartCancelledAfterLaunch(t *testing.T) {
	for _, by := range []string{"stop", "reap"} {
		t.Run(by, func(t *testing.T) {
			w := newWorld(t, awsfake.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				for len(w.gh.Runners()) == 0 {
					time.Sleep(5 * time.Millisecond)
				}
				cancel()
			}()
			if _, err := Start(ctx, w.d, w.opts()); !errors.Is(err, context.Canceled) {
				t.Fatalf("start: %v, want cancelled", err)
			}
			in := w.launched()
			if len(in) != 1 || !(in[0].State == "running" || in[0].State == "pending") {
				t.Fatalf("after the cancelled start: %+v", in)
			}
			bg := context.Background()
			switch by {
			case "stop":
				if _, err := Stop(bg, w.d, w.cfg, w.run); err != nil {
					t.Fatal(err)
				}
			case "reap":
				w.gh.SetRunStatus(w.run.ID, "in_progress")
				if res, err := Reap(bg, w.d, ReapOptions{Config: w.cfg, Repository: "lab/ct"}); err != nil || len(res.Terminated) != 0 {
					t.Fatalf("reap while the run is in progress: %+v, %v", res, err)
				}
				w.gh.SetRunStatus(w.run.ID, "completed")
				res, err := Reap(bg, w.d, ReapOptions{Config: w.cfg, Repository: "lab/ct"})
				if err != nil || !contains(res.Terminated[in[0].ID], "completed") {
					t.Fatalf("reap: %+v, %v", res, err)
				}
			}
			if st := w.aws.Instance(in[0].ID).State; st != "shutting-down" && st != "terminated" {
				t.Errorf("instance is %s", st)
			}
			if len(w.gh.Runners()) != 0 || len(w.aws.Parameters()) != 0 {
				t.Errorf("left: runners %+v parameters %v", w.gh.Runners(), w.aws.Parameters())
			}
		})
	}
}

func TestStartRunnerNeverRegisters(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	w.cfg.Subnets = []string{"subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"}
	w.boot(1) // the first instance never registers; the second does
	o := w.opts()
	o.RegisterTimeout = 300 * time.Millisecond
	go func() { // the clock moves on while start waits
		for range 200 {
			time.Sleep(10 * time.Millisecond)
			w.advance(10 * time.Millisecond)
		}
	}()
	st, err := Start(context.Background(), w.d, o)
	if err != nil {
		t.Fatal(err)
	}
	in := w.launched()
	if len(in) != 2 || st.Instance != in[1].ID || len(st.Attempts) != 1 || !contains(st.Attempts[0].Error, "not online") {
		t.Fatalf("started %+v; instances %d", st, len(in))
	}
	if in[0].State == "running" {
		t.Error("the instance that never registered still runs")
	}
	for _, r := range w.gh.Runners() {
		if r.Name == RunnerName(in[0].ID) {
			t.Error("its runner is still registered")
		}
	}
	if _, ok := w.aws.Parameters()[ParameterName(w.cfg.SSMPrefix, in[0].ID)]; ok {
		t.Error("its parameter is still there")
	}
}

func TestStartRunnerNameClash(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	// A runner left from before under the name the first instance gets.
	w.gh.AddRunner(RunnerName("i-00000000000000001"), "offline")
	w.boot()
	st, err := Start(context.Background(), w.d, w.opts())
	if err != nil {
		t.Fatal(err)
	}
	if st.Instance != "i-00000000000000001" || len(w.gh.Runners()) != 1 || w.gh.Runners()[0].JIT == "" {
		t.Errorf("started %+v, runners %+v", st, w.gh.Runners())
	}
}

func TestStartFallsBackAcrossTypesAndSubnets(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	w.cfg.InstanceTypes = []string{"g5.xlarge", "g6.xlarge", "g4dn.xlarge"}
	w.cfg.Subnets = []string{"subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"}
	w.aws.NoCapacity("us-east-1a")
	w.aws.NoCapacity("us-east-1b", "g5.xlarge")
	w.aws.VcpuLimit("g6.xlarge")
	w.boot()
	st, err := Start(context.Background(), w.d, w.opts())
	if err != nil {
		t.Fatal(err)
	}
	want := Candidate{Type: "g4dn.xlarge", Subnet: "subnet-0bbbbbbbbbbbbbbbb", Market: OnDemand}
	if st.Candidate != want {
		t.Errorf("launched %+v, want %+v", st.Candidate, want)
	}
	var tried []string
	for _, a := range st.Attempts {
		tried = append(tried, a.Type+"@"+a.Subnet[len(a.Subnet)-1:])
	}
	// g6.xlarge's vCPU quota rules out its other subnet too.
	if got := strings.Join(tried, " "); got != "g5.xlarge@a g5.xlarge@b g6.xlarge@a g4dn.xlarge@a" {
		t.Errorf("tried %s", got)
	}
	if n := w.aws.Calls("RunInstances"); n != 5 {
		t.Errorf("RunInstances called %d times, want 5", n)
	}
}

func TestStartSpotQuotaFallsBackToOnDemand(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	w.cfg.Market = "spot-then-on-demand"
	w.cfg.InstanceTypes = []string{"g5.xlarge", "g4dn.xlarge"}
	w.aws.SpotQuota()
	w.boot()
	st, err := Start(context.Background(), w.d, w.opts())
	if err != nil {
		t.Fatal(err)
	}
	if st.Candidate.Market != OnDemand || st.Candidate.Type != "g5.xlarge" || len(st.Attempts) != 1 || st.Attempts[0].Market != Spot {
		t.Errorf("started %+v", st)
	}
}

func TestStartRefusesOverBudget(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	ctx := context.Background()
	if err := w.d.Ledger.Record(ctx, Cost{Repository: "lab/ct", Run: 1, PR: 7, Instance: "i-0old", Type: "g5.xlarge", Market: OnDemand,
		Start: w.now.Add(-time.Hour), End: w.now, USDPerHour: 1.006, Minutes: 60, USD: 5}); err != nil {
		t.Fatal(err)
	}
	w.cfg.MaxUSDPerPR = 6 // 5 spent + up to 2.01 for 120 min
	_, err := Start(ctx, w.d, w.opts())
	if !errors.Is(err, ErrRefused) || !contains(err.Error(), "PR #7 has spent $5.00") {
		t.Fatalf("err = %v", err)
	}
	w.cfg.MaxUSDPerPR, w.cfg.MaxUSDPerMonth = 0, 6.5
	if _, err := Start(ctx, w.d, w.opts()); !errors.Is(err, ErrRefused) || !contains(err.Error(), "this month") {
		t.Fatalf("month: err = %v", err)
	}
	if n := w.aws.Calls("RunInstances"); n != 0 {
		t.Errorf("RunInstances called %d times", n)
	}
}

func TestStartRefusesBucketInAnotherRegion(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	w.cfg.RequireSameRegion = true
	o := w.opts()
	o.DataRegion = "eu-central-1"
	_, err := Start(context.Background(), w.d, o)
	if !errors.Is(err, ErrRefused) || !contains(err.Error(), "eu-central-1") {
		t.Fatalf("err = %v", err)
	}
	if n := w.aws.Calls("RunInstances") + w.aws.Calls("DescribeInstances"); n != 0 {
		t.Errorf("%d EC2 calls", n)
	}
}

func TestStartRefusesBeyondMaxConcurrent(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	w.cfg.MaxConcurrent = 1
	w.aws.AddInstance(awsfake.Instance{Type: "g5.xlarge", Tags: map[string]string{TagManaged: "true", TagRepository: "lab/ct", TagRun: "1",
		TagExpiresAt: w.now.Add(time.Hour).Format(time.RFC3339), TagRegistered: "yes"}})
	w.gh.SetRunStatus(1, "in_progress")
	if _, err := Start(context.Background(), w.d, w.opts()); !errors.Is(err, ErrRefused) || !contains(err.Error(), "max_concurrent") {
		t.Fatalf("err = %v", err)
	}
}

func TestStartJITErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		is     error
	}{{403, action.ErrJITForbidden}, {422, errFatal}} {
		w := newWorld(t, awsfake.Options{})
		w.gh.FailJIT(tc.status)
		_, err := Start(context.Background(), w.d, w.opts())
		if !errors.Is(err, tc.is) {
			t.Errorf("%d: err = %v", tc.status, err)
		}
		if in := w.launched(); len(in) != 1 || in[0].State == "running" {
			t.Errorf("%d: the instance was not terminated: %+v", tc.status, in)
		}
	}
}

func TestStartSpotKilledWhileBooting(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	w.cfg.Market = Spot
	w.cfg.Subnets = []string{"subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"}
	go func() {
		for len(w.launched()) == 0 {
			time.Sleep(2 * time.Millisecond)
		}
		w.aws.SpotKill(w.launched()[0].ID)
	}()
	w.boot(1)
	st, err := Start(context.Background(), w.d, w.opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Attempts) != 1 || !contains(st.Attempts[0].Error, "Server.SpotInstanceTermination") {
		t.Errorf("attempts %+v", st.Attempts)
	}
}

func TestStopRetriesAFailedTerminate(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	w.boot()
	st, err := Start(context.Background(), w.d, w.opts())
	if err != nil {
		t.Fatal(err)
	}
	w.aws.FailTerminate(st.Instance, 1)
	if _, err := Stop(context.Background(), w.d, w.cfg, w.run); err != nil {
		t.Fatal(err)
	}
	if s := w.aws.Instance(st.Instance).State; s == "running" {
		t.Error("still running")
	}
	if n := w.aws.Calls("TerminateInstances"); n != 2 {
		t.Errorf("TerminateInstances called %d times, want 2", n)
	}
}

func TestUserDataGolden(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	reqs, err := Plan(w.opts(), w.now)
	if err != nil {
		t.Fatal(err)
	}
	ud := reqs[0].UserData
	lines := strings.Split(ud, "\n")
	if lines[0] != "#!/bin/sh" || lines[1] != "shutdown -h +120" {
		t.Errorf("the TTL is not the first command:\n%s", ud)
	}
	if len(ud) >= MaxUserData {
		t.Errorf("%d bytes", len(ud))
	}
	for _, secret := range []string{"jit", "token", "AWS_", "ghs_", "ghp_"} {
		if strings.Contains(strings.ToLower(ud), strings.ToLower(secret)+"=") {
			t.Errorf("user data mentions %s", secret)
		}
	}
	golden := filepath.Join("testdata", "userdata.golden")
	if *update {
		os.WriteFile(golden, []byte(ud), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if ud != string(want) {
		t.Errorf("user data differs from %s (go test -update):\n%s", golden, ud)
	}
}

// TestPriceSources: stop prices a spot instance from
// DescribeSpotPriceHistory, an on-demand one from [runner] usd_per_hour
// before the built-in table, and says which in the record; start keeps a
// budget for a type only the override prices, and refuses one nothing
// prices.
func TestPriceSources(t *testing.T) {
	w := newWorld(t, awsfake.Options{SpotPrices: map[string]float64{"g5.xlarge": 0.3521}})
	ctx := context.Background()
	w.cfg.USDPerHour = map[string]float64{"g5.xlarge": 1.2, "g7.xlarge": 2.5}
	tags := map[string]string{TagManaged: "true", TagRepository: "lab/ct", TagRun: "4242", TagAttempt: "1", TagPR: "7"}
	spot := w.aws.AddInstance(awsfake.Instance{Type: "g5.xlarge", Market: "spot", Launched: w.now.Add(-30 * time.Minute), Tags: tags})
	od := w.aws.AddInstance(awsfake.Instance{Type: "g5.xlarge", Market: "on-demand", Launched: w.now.Add(-30 * time.Minute), Tags: tags})
	listed := w.aws.AddInstance(awsfake.Instance{Type: "g4dn.xlarge", Market: "on-demand", Launched: w.now.Add(-30 * time.Minute), Tags: tags})
	res, err := Stop(ctx, w.d, w.cfg, w.run)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		price  float64
		source string
	}{spot: {0.3521, PriceSpotHistory}, od: {1.2, PriceConfig}, listed: {0.526, PriceList}}
	for _, c := range res.Costs {
		if w := want[c.Instance]; c.USDPerHour != w.price || c.PriceSource != w.source {
			t.Errorf("%s %s %s: $%v/h from %q, want $%v/h from %q", c.Instance, c.Market, c.Type, c.USDPerHour, c.PriceSource, w.price, w.source)
		}
	}
	if len(res.Costs) != 3 {
		t.Errorf("costs %+v", res.Costs)
	}
	t.Logf("cost line: %s", res.CostLine)

	w.cfg.InstanceTypes, w.cfg.MaxUSDPerMonth = []string{"g7.xlarge"}, 4 // 120 min × $2.50 = $5
	if _, err := Start(ctx, w.d, w.opts()); !errors.Is(err, ErrRefused) || !contains(err.Error(), "may cost up to $5.00") {
		t.Errorf("budget with the override price: %v", err)
	}
	w.cfg.InstanceTypes = []string{"g9.xlarge"}
	if _, err := Start(ctx, w.d, w.opts()); !errors.Is(err, ErrRefused) || !contains(err.Error(), "no price known for g9.xlarge") {
		t.Errorf("budget with no price: %v", err)
	}
}
