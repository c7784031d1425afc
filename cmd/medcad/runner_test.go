package main

import (
	"strings"
	"testing"
	"time"

	"github.com/medcad/medcad/action/runner"
	"github.com/medcad/medcad/gitops"
)

// TestUserDataParses: every flag the user data passes the agent is one
// `medcad runner agent` takes (else the instance would boot, fail and
// idle until its TTL), with the store and resume flags of a project on
// S3 with resume_on_interrupt.
func TestUserDataParses(t *testing.T) {
	cfg := gitops.Default().Runner
	cfg.Provider, cfg.AMI, cfg.ResumeOnInterrupt = "ec2", "ami-0123456789abcdef0", true
	store := instanceStore(gitops.Remote{URL: "s3://lab-data/ct", Region: "eu-central-1", Endpoint: "https://s3.eu-central-1.amazonaws.com", PathStyle: true, Jobs: 8})
	reqs, err := runner.Plan(runner.StartOptions{Config: cfg, Run: runner.Run{Repository: "lab/ct", ID: 42, Attempt: 2}, Store: store}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for l := range strings.Lines(reqs[0].UserData) {
		if strings.HasPrefix(l, "exec /usr/local/bin/medcad runner agent ") {
			line = strings.TrimSpace(l)
		}
	}
	args := strings.Fields(line)
	if len(args) < 4 {
		t.Fatalf("no agent command in the user data:\n%s", reqs[0].UserData)
	}
	for _, want := range []string{"--store s3://lab-data/ct", "--store-region eu-central-1", "--store-path-style", "--repository lab/ct --run-id 42 --attempt 2", "--resume"} {
		if !strings.Contains(line, want) {
			t.Errorf("user data lacks %q: %s", want, line)
		}
	}
	cmd := newRunnerCmd(&app{})
	agent, rest, err := cmd.Find(args[3:])
	if err != nil || agent.Name() != "agent" {
		t.Fatalf("find agent: %v %v", agent, err)
	}
	if err := agent.ParseFlags(rest); err != nil {
		t.Fatalf("the agent refuses its user data's flags: %v\n%s", err, line)
	}
	if got := agent.Flags().Lookup("store-endpoint").Value.String(); got != store.Endpoint {
		t.Errorf("--store-endpoint = %q", got)
	}
	if instanceStore(gitops.Remote{URL: "file://.medcad/remote"}).URL != "" {
		t.Error("a folder remote is handed to the instance")
	}
}
