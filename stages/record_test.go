package stages

import (
	"testing"
	"time"

	"github.com/medcad/medcad/gitops"
)

// A run record lists the stages that ran in the plan's order, whatever
// order parallel stages finished in.
func TestNewRunStageOrder(t *testing.T) {
	p := &Plan{Stages: []*Stage{{Stage: gitops.Stage{Name: "ingest"}}, {Stage: gitops.Stage{Name: "evaluate"}}, {Stage: gitops.Stage{Name: "surface"}}}}
	res := &Result{Events: []Event{
		{Stage: "surface", Status: Ran},
		{Stage: "ingest", Status: Skipped},
		{Stage: "evaluate", Status: Ran},
		{Stage: "evaluate", Status: Ran}, // a second case
	}}
	r, err := NewRun(RecordOptions{Dir: t.TempDir(), Plan: p, Lock: &gitops.Lock{}, Result: res, Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if r.Stage != "evaluate,surface" {
		t.Errorf("stages of the run: %q, want %q", r.Stage, "evaluate,surface")
	}
}
