package action

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-github/v66/github"
)

// Errors of the self-hosted runner API that callers act on.
var (
	// ErrRunnerNameTaken: a runner of that name is registered already (409).
	ErrRunnerNameTaken = errors.New("a runner of that name exists")
	// ErrRunnerNotFound: no runner has that ID (404).
	ErrRunnerNotFound = errors.New("no such runner")
	// ErrJITForbidden: the token may not register runners (403); an Actions
	// GITHUB_TOKEN never may, a GitHub App installation token with
	// administration:write on the repository can.
	ErrJITForbidden = errors.New("the token may not create just-in-time runners (use a GitHub App token with administration:write)")
)

// Runner is a self-hosted runner of the repository.
type Runner struct {
	ID     int64    `json:"id"`
	Name   string   `json:"name"`
	Status string   `json:"status"` // "online" or "offline"
	Busy   bool     `json:"busy"`
	Labels []string `json:"labels"`
}

func runner(r *github.Runner) Runner {
	out := Runner{ID: r.GetID(), Name: r.GetName(), Status: r.GetStatus(), Busy: r.GetBusy()}
	for _, l := range r.Labels {
		out.Labels = append(out.Labels, l.GetName())
	}
	return out
}

// JITConfig is a just-in-time runner registration: the runner it made
// (offline until the runner connects) and the encoded config that
// run.sh --jitconfig takes. The config is a credential.
type JITConfig struct {
	Runner  Runner
	Encoded string
}

// statusOf is the HTTP status of a go-github error, 0 if none.
func statusOf(err error) int {
	var ge *github.ErrorResponse
	if errors.As(err, &ge) && ge.Response != nil {
		return ge.Response.StatusCode
	}
	return 0
}

// GenerateJITConfig registers a just-in-time runner name in runner group
// group with labels, for one job.
func (c *Client) GenerateJITConfig(ctx context.Context, name string, group int64, labels []string) (JITConfig, error) {
	jit, _, err := c.gh.Actions.GenerateRepoJITConfig(ctx, c.owner, c.repo, &github.GenerateJITConfigRequest{Name: name, RunnerGroupID: group, Labels: labels})
	switch statusOf(err) {
	case 0:
	case http.StatusConflict:
		return JITConfig{}, fmt.Errorf("just-in-time runner %s: %w", name, ErrRunnerNameTaken)
	case http.StatusForbidden, http.StatusUnauthorized:
		return JITConfig{}, fmt.Errorf("just-in-time runner %s: %w: %v", name, ErrJITForbidden, err)
	}
	if err != nil {
		return JITConfig{}, fmt.Errorf("just-in-time runner %s: %w", name, err)
	}
	if jit.GetEncodedJITConfig() == "" || jit.GetRunner().GetID() == 0 {
		return JITConfig{}, fmt.Errorf("just-in-time runner %s: the answer has no runner or config", name)
	}
	return JITConfig{Runner: runner(jit.GetRunner()), Encoded: jit.GetEncodedJITConfig()}, nil
}

// Runners lists every self-hosted runner of the repository, following
// Link headers, or, from servers that send none and ignore per_page
// (Gitea: pages of its own size), the next page while fewer than
// total_count came.
func (c *Client) Runners(ctx context.Context) ([]Runner, error) {
	var out []Runner
	opt := &github.ListRunnersOptions{ListOptions: github.ListOptions{PerPage: 100, Page: 1}}
	for range maxPages {
		page, resp, err := c.gh.Actions.ListRunners(ctx, c.owner, c.repo, opt)
		if err != nil {
			return nil, fmt.Errorf("list runners: %w", err)
		}
		for _, r := range page.Runners {
			out = append(out, runner(r))
		}
		switch {
		case resp.NextPage != 0:
			opt.Page = resp.NextPage
		case len(page.Runners) > 0 && len(out) < page.TotalCount:
			opt.Page++
		default:
			return out, nil
		}
	}
	return out, fmt.Errorf("list runners: more than %d pages", maxPages)
}

// Runner gets the runner with ID id, or ErrRunnerNotFound.
func (c *Client) Runner(ctx context.Context, id int64) (Runner, error) {
	r, _, err := c.gh.Actions.GetRunner(ctx, c.owner, c.repo, id)
	if statusOf(err) == http.StatusNotFound {
		return Runner{}, fmt.Errorf("runner %d: %w", id, ErrRunnerNotFound)
	}
	if err != nil {
		return Runner{}, fmt.Errorf("runner %d: %w", id, err)
	}
	return runner(r), nil
}

// RemoveRunner deregisters runner id; one already gone is no error.
func (c *Client) RemoveRunner(ctx context.Context, id int64) error {
	_, err := c.gh.Actions.RemoveRunner(ctx, c.owner, c.repo, id)
	if err != nil && statusOf(err) != http.StatusNotFound {
		return fmt.Errorf("remove runner %d: %w", id, err)
	}
	return nil
}

// RegistrationToken is a token to register a runner with config.sh, and
// when it expires.
func (c *Client) RegistrationToken(ctx context.Context) (string, time.Time, error) {
	t, _, err := c.gh.Actions.CreateRegistrationToken(ctx, c.owner, c.repo)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("runner registration token: %w", err)
	}
	return t.GetToken(), t.GetExpiresAt().Time, nil
}

// RunCompleted reports whether workflow run id has completed; found is
// false when the API does not know the run (it may be another server's).
func (c *Client) RunCompleted(ctx context.Context, id int64) (completed, found bool, err error) {
	r, _, err := c.gh.Actions.GetWorkflowRunByID(ctx, c.owner, c.repo, id)
	if statusOf(err) == http.StatusNotFound {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("workflow run %d: %w", id, err)
	}
	return r.GetStatus() == "completed", true, nil
}
