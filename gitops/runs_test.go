package gitops

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/gitrepo"
)

func newRun(t time.Time, key string) *Run {
	return &Run{
		ID: NewRunID(t, key), Stage: "train", Started: t.UTC(), Finished: t.Add(time.Minute).UTC(),
		Commit: "abc", Key: key, Params: map[string]string{"train.lr": "0.1"},
		Datasets: map[string]cas.ID{"b1": cas.Sum([]byte("b1"))}, Facts: map[string]string{"go": "go1.26"},
		Metrics: map[string]float64{"dice": 0.97}, Outs: cas.Sum([]byte("outs")),
	}
}

func TestRunsRoundTripThroughBareRemote(t *testing.T) {
	ctx := context.Background()
	bareDir, workDir, cloneDir := t.TempDir(), t.TempDir(), t.TempDir()
	if _, err := git.PlainInit(bareDir, true); err != nil {
		t.Fatal(err)
	}
	repo, err := git.PlainInit(workDir, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{bareDir}}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	r1, r2 := newRun(t0, "sha256:aaaaaaaaaaaa"), newRun(t0.Add(time.Hour), "sha256:bbbbbbbbbbbb")
	for _, r := range []*Run{r2, r1} {
		if err := SaveRun(repo, r); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := ListRuns(repo)
	if err != nil || len(runs) != 2 || runs[0].ID != r1.ID {
		t.Fatalf("ListRuns = %v, %v", runs, err)
	}
	got, err := LoadRun(repo, r2.ID[:12])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r2, got); diff != "" {
		t.Errorf("LoadRun (-want +got):\n%s", diff)
	}
	if _, err := LoadRun(repo, "2026"); err == nil {
		t.Error("ambiguous prefix accepted")
	}
	if _, err := LoadRun(repo, "1999"); !errors.Is(err, ErrRunNotFound) {
		t.Errorf("missing run: %v", err)
	}

	if err := PushRuns(ctx, repo, gitrepo.Remote{Name: "origin"}); err != nil {
		t.Fatalf("push: %v", err)
	}
	clone, err := git.PlainInit(cloneDir, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clone.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{bareDir}}); err != nil {
		t.Fatal(err)
	}
	if err := PullRuns(ctx, clone, gitrepo.Remote{Name: "origin"}); err != nil {
		t.Fatalf("pull: %v", err)
	}
	cloned, err := ListRuns(clone)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(runs, cloned); diff != "" {
		t.Errorf("runs after push/pull (-want +got):\n%s", diff)
	}
	// A second push and pull with nothing new is not an error.
	if err := PushRuns(ctx, repo, gitrepo.Remote{Name: "origin"}); err != nil {
		t.Errorf("second push: %v", err)
	}
	if err := PullRuns(ctx, clone, gitrepo.Remote{Name: "origin"}); err != nil {
		t.Errorf("second pull: %v", err)
	}
}

func TestSaveRunRejectsBadID(t *testing.T) {
	repo, err := git.PlainInit(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	r := newRun(time.Now(), "sha256:aaaaaaaa")
	r.ID = "../../HEAD"
	if err := SaveRun(repo, r); err == nil {
		t.Error("bad id accepted")
	}
}
