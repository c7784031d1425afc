package runner

import (
	"context"
	"testing"
	"time"

	"github.com/medcad/medcad/action/runner/awsfake"
)

func TestReap(t *testing.T) {
	w := newWorld(t, awsfake.Options{})
	tags := func(run, expires string, registered bool) map[string]string {
		m := map[string]string{TagManaged: "true", TagRepository: "lab/ct", TagRun: run, TagExpiresAt: expires}
		if registered {
			m[TagRegistered] = "2026-12-02T11:00:00Z"
		}
		return m
	}
	future, past := w.now.Add(time.Hour).Format(time.RFC3339), w.now.Add(-time.Minute).Format(time.RFC3339)
	expired := w.aws.AddInstance(awsfake.Instance{Type: "g5.xlarge", Tags: tags("1", past, true)})
	finished := w.aws.AddInstance(awsfake.Instance{Type: "g5.xlarge", Tags: tags("2", future, true)})
	neverRegistered := w.aws.AddInstance(awsfake.Instance{Type: "g5.xlarge", Tags: tags("3", future, false), Launched: w.now.Add(-30 * time.Minute)})
	busy := w.aws.AddInstance(awsfake.Instance{Type: "g5.xlarge", Tags: tags("3", future, true)})
	booting := w.aws.AddInstance(awsfake.Instance{Type: "g5.xlarge", Tags: tags("4", future, false), Launched: w.now.Add(-time.Minute)})
	other := w.aws.AddInstance(awsfake.Instance{Type: "g5.xlarge", Tags: map[string]string{TagManaged: "true", TagRepository: "lab/other", TagExpiresAt: past}})
	killed := w.aws.AddInstance(awsfake.Instance{Type: "g5.xlarge", Market: Spot, Tags: tags("5", future, true)})
	w.aws.SpotKill(killed)
	w.gh.SetRunStatus(2, "completed")
	w.gh.SetRunStatus(3, "in_progress")
	w.gh.SetRunStatus(4, "in_progress")
	for _, id := range []string{expired, finished, neverRegistered, busy, booting, killed} {
		w.gh.AddRunner(RunnerName(id), "offline")
	}
	w.gh.SetRunnerStatus(RunnerName(busy), "online")
	w.gh.AddRunner(RunnerName("i-0gone"), "offline")     // its instance is long gone
	w.gh.AddRunner(RunnerName("i-0unknown"), "online")   // online: never removed on our say-so
	w.gh.AddRunner("gpu-box-in-the-basement", "offline") // not medcad's
	w.aws.FailTerminate(finished, 1)
	for _, id := range []string{expired, finished, neverRegistered} {
		w.aws.PutParameter(awsfake.Parameter{Name: ParameterName(w.cfg.SSMPrefix, id), Type: "SecureString", Value: "x"})
	}

	res, err := Reap(context.Background(), w.d, ReapOptions{Config: w.cfg, Repository: "lab/ct"})
	if err != nil {
		t.Fatal(err)
	}
	for id, why := range map[string]string{expired: "expired", finished: "workflow run 2 completed", neverRegistered: "never registered"} {
		if !contains(res.Terminated[id], why) {
			t.Errorf("%s: reason %q, want %q", id, res.Terminated[id], why)
		}
		if w.aws.Instance(id).State == "running" {
			t.Errorf("%s still running", id)
		}
	}
	for _, id := range []string{busy, booting, other} {
		if w.aws.Instance(id).State != "running" {
			t.Errorf("%s was terminated", id)
		}
	}
	var left []string
	for _, r := range w.gh.Runners() {
		left = append(left, r.Name)
	}
	want := []string{RunnerName(busy), RunnerName(booting), RunnerName("i-0unknown"), "gpu-box-in-the-basement"}
	if !equalSets(left, want) {
		t.Errorf("runners left %v, want %v", left, want)
	}
	if p := w.aws.Parameters(); len(p) != 0 {
		t.Errorf("parameters left: %v", p)
	}
	// Idempotent.
	res, err = Reap(context.Background(), w.d, ReapOptions{Config: w.cfg, Repository: "lab/ct"})
	if err != nil || len(res.Terminated) != 0 || len(res.Removed) != 0 {
		t.Errorf("second reap: %+v, %v", res, err)
	}
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
