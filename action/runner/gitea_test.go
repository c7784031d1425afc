package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/action/giteatest"
	"github.com/medcad/medcad/action/runner/awsfake"
)

// giteaRunner is a runner registered with Gitea's own runner protocol
// (what act_runner speaks: Connect RPC, here in its JSON encoding).
type giteaRunner struct {
	ID          int64
	UUID, Token string
}

// connect calls one method of Gitea's runner service.
func connect(t *testing.T, g *giteatest.Server, method string, headers map[string]string, in, out any) {
	t.Helper()
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest("POST", g.URL+"api/actions/runner.v1.RunnerService/"+method, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s\n%s", method, resp.Status, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("%s: %v\n%s", method, err, data)
	}
}

// registerGitea registers a runner with a registration token; online
// makes it call Declare, after which Gitea counts it online for a minute.
func registerGitea(t *testing.T, g *giteatest.Server, token, name string, online bool) giteaRunner {
	t.Helper()
	var reg struct {
		Runner struct {
			ID    json.Number `json:"id"` // int64 as a JSON string (protobuf JSON)
			UUID  string      `json:"uuid"`
			Token string      `json:"token"`
		} `json:"runner"`
	}
	connect(t, g, "Register", nil, map[string]any{"name": name, "token": token, "labels": []string{"self-hosted", "gpu"}, "ephemeral": true}, &reg)
	id, err := reg.Runner.ID.Int64()
	if err != nil || reg.Runner.UUID == "" {
		t.Fatalf("register %s: id %q, uuid %q", name, reg.Runner.ID, reg.Runner.UUID)
	}
	r := giteaRunner{ID: id, UUID: reg.Runner.UUID, Token: reg.Runner.Token}
	if online {
		var out map[string]any
		connect(t, g, "Declare", map[string]string{"x-runner-uuid": r.UUID, "x-runner-token": r.Token},
			map[string]any{"version": "v0.2.13", "labels": []string{"self-hosted", "gpu"}}, &out)
	}
	return r
}

// TestGiteaRunnerAPI runs the runner API client that start, stop and
// reap use against Gitea v1.26.0 with Actions on: a registration token,
// runners registered with Gitea's runner protocol, list (past one page:
// Gitea ignores per_page and sends no Link header), get, remove, and a
// reap that removes only the offline medcad-* runners with no instance
// behind them. Gitea has no just-in-time runners: it answers 405 to
// generate-jitconfig, which start takes as fatal (the GitHub-shaped fake
// in action/githubtest covers JIT).
func TestGiteaRunnerAPI(t *testing.T) {
	g := giteatest.StartWith(t, giteatest.Options{Actions: true})
	g.CreateRepo(t, "ct")
	ctx := context.Background()
	gh, err := action.NewClient(action.ClientOptions{APIURL: g.API, Repository: g.User + "/ct", Token: g.Token})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := gh.RegistrationToken(ctx)
	if err != nil || token == "" {
		t.Fatalf("registration token %q: %v", token, err)
	}

	// More runners than Gitea's page (DEFAULT_PAGING_NUM = 30).
	byName := map[string]giteaRunner{}
	for i := range 33 {
		name := RunnerName(fmt.Sprintf("i-%017x", i+1))
		byName[name] = registerGitea(t, g, token, name, i == 0 || i == 1)
	}
	byName["build-box"] = registerGitea(t, g, token, "build-box", false)
	listed, err := gh.Runners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range listed {
		names = append(names, r.Name)
		if want, ok := byName[r.Name]; !ok || want.ID != r.ID {
			t.Errorf("listed %+v, registered %+v", r, want)
		}
	}
	if len(listed) != len(byName) {
		t.Fatalf("listed %d runners, registered %d: %v", len(listed), len(byName), names)
	}

	online := RunnerName("i-00000000000000001")
	r, err := gh.Runner(ctx, byName[online].ID)
	if err != nil || r.Name != online || r.Status != "online" || !slices.Contains(r.Labels, "gpu") {
		t.Errorf("runner %s: %+v, %v", online, r, err)
	}
	if r, err := gh.Runner(ctx, byName["build-box"].ID); err != nil || r.Status != "offline" {
		t.Errorf("build-box: %+v, %v", r, err)
	}
	if _, err := gh.Runner(ctx, 999999); !errors.Is(err, action.ErrRunnerNotFound) {
		t.Errorf("missing runner: %v", err)
	}

	_, err = gh.GenerateJITConfig(ctx, RunnerName("i-0jit"), 1, []string{"gpu"})
	if err == nil || errors.Is(err, action.ErrRunnerNameTaken) || errors.Is(err, action.ErrJITForbidden) {
		t.Errorf("generate-jitconfig on Gitea: %v, want a plain error (405)", err)
	}

	// Reap: one instance lives (its runner offline: booting), one runner
	// is online with no instance the fake knows (never killed on that
	// alone), the rest are offline leftovers; build-box is not medcad's.
	w := newWorld(t, awsfake.Options{})
	live := "i-00000000000000003"
	w.aws.AddInstance(awsfake.Instance{ID: live, Type: "g5.xlarge", Market: "on-demand", Launched: w.now.Add(-time.Minute), Tags: map[string]string{
		TagManaged: "true", TagRepository: g.User + "/ct", TagRun: "4242", TagAttempt: "1",
		TagExpiresAt: w.now.Add(time.Hour).Format(time.RFC3339), TagRegistered: w.now.Format(time.RFC3339)}})
	w.d.GitHub = gh
	reaped, err := Reap(ctx, w.d, ReapOptions{Config: w.cfg, Repository: g.User + "/ct"})
	if err != nil {
		t.Fatal(err)
	}
	if len(reaped.Terminated) != 0 {
		t.Errorf("terminated %v", reaped.Terminated)
	}
	left, err := gh.Runners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for _, r := range left {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	want := []string{"build-box", online, RunnerName("i-00000000000000002"), RunnerName(live)}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("after reap Gitea lists %v, want %v", names, want)
	}
	if len(reaped.Removed) != 30 {
		t.Errorf("reap removed %d runners, want 30", len(reaped.Removed))
	}

	// Remove is idempotent: a runner already gone is no error.
	if err := gh.RemoveRunner(ctx, byName[online].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := gh.Runner(ctx, byName[online].ID); !errors.Is(err, action.ErrRunnerNotFound) {
		t.Errorf("removed runner still there: %v", err)
	}
	if err := gh.RemoveRunner(ctx, byName[online].ID); err != nil {
		t.Errorf("second remove: %v", err)
	}
}
