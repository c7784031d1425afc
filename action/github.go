package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/go-github/v66/github"
	"github.com/medcad/medcad/internal/redact"
)

// ErrNoPullRequest means no pull request was merged as the given commit.
var ErrNoPullRequest = errors.New("no merged pull request for this commit")

// maxPages bounds every paginated listing (100 items a page).
const maxPages = 50

// ClientOptions configure a GitHub API client.
type ClientOptions struct {
	// APIURL is the REST API root: https://api.github.com, a GitHub
	// Enterprise …/api/v3 or a Gitea …/api/v1.
	APIURL string
	// Repository is owner/name.
	Repository string
	Token      string
	// Login is the account the token acts as: only its comments are
	// medcad's sticky comments. "" learns it from the API (GET /user, which
	// answers for personal tokens and Gitea) and, where the API refuses
	// (GitHub's Actions and installation tokens), takes
	// DefaultLogin, the author of GITHUB_TOKEN's comments. A GitHub App
	// other than Actions sets its own "<app-slug>[bot]".
	Login string
	// HTTP is the underlying client (nil: http.DefaultTransport).
	HTTP   *http.Client
	Log    *slog.Logger // nil: discard
	Policy RetryPolicy
}

// DefaultLogin is who writes the comments of a GitHub Actions job's
// GITHUB_TOKEN.
const DefaultLogin = "github-actions[bot]"

// Client talks to the GitHub API (or a compatible one) for one repository.
type Client struct {
	gh          *github.Client
	owner, repo string
	login       string // "" until known
}

// NewClient builds a client for one repository. The token is only ever
// put in the Authorization header.
func NewClient(o ClientOptions) (*Client, error) {
	owner, repo, err := SplitRepo(o.Repository)
	if err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	api := o.APIURL
	if api == "" {
		api = "https://api.github.com/"
	}
	if !strings.HasSuffix(api, "/") {
		api += "/"
	}
	base, err := url.Parse(api)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("API URL %q: not an http(s) URL", redact.String(o.APIURL))
	}
	if base.User != nil {
		return nil, fmt.Errorf("API URL %q: credentials belong in the token, not the URL", redact.String(o.APIURL))
	}
	inner := http.DefaultTransport
	if o.HTTP != nil && o.HTTP.Transport != nil {
		inner = o.HTTP.Transport
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := &http.Client{Transport: &transport{base: inner, token: o.Token, log: log, p: o.Policy.withDefaults()}}
	if o.HTTP != nil {
		hc.Timeout = o.HTTP.Timeout
	}
	gh := github.NewClient(hc)
	gh.BaseURL = base
	gh.UploadURL = base
	gh.UserAgent = "medcad"
	return &Client{gh: gh, owner: owner, repo: repo, login: o.Login}, nil
}

// Login is the account the client's token acts as (see
// ClientOptions.Login), learnt once.
func (c *Client) Login(ctx context.Context) (string, error) {
	if c.login != "" {
		return c.login, nil
	}
	u, _, err := c.gh.Users.Get(ctx, "")
	var ge *github.ErrorResponse
	switch {
	case err == nil && u.GetLogin() != "":
		c.login = u.GetLogin()
	case errors.As(err, &ge) && ge.Response != nil && (ge.Response.StatusCode == http.StatusUnauthorized || ge.Response.StatusCode == http.StatusForbidden || ge.Response.StatusCode == http.StatusNotFound):
		// "Resource not accessible by integration": an Actions or
		// installation token, which has no user.
		c.login = DefaultLogin
	case err != nil:
		return "", fmt.Errorf("who the token is (GET /user): %w", err)
	default:
		c.login = DefaultLogin
	}
	return c.login, nil
}

// Comment is a comment on an issue or pull request.
type Comment struct {
	ID     int64  `json:"id"`
	Body   string `json:"body"`
	URL    string `json:"url"`
	Author string `json:"author"` // the login that wrote it
}

func comment(cm *github.IssueComment) Comment {
	return Comment{ID: cm.GetID(), Body: cm.GetBody(), URL: cm.GetHTMLURL(), Author: cm.GetUser().GetLogin()}
}

// Comments lists every comment of pull request (or issue) number, oldest
// first, following the pagination links.
func (c *Client) Comments(ctx context.Context, number int) ([]Comment, error) {
	var out []Comment
	opt := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for range maxPages {
		page, resp, err := c.gh.Issues.ListComments(ctx, c.owner, c.repo, number, opt)
		if err != nil {
			return nil, fmt.Errorf("list comments of #%d: %w", number, err)
		}
		for _, cm := range page {
			out = append(out, comment(cm))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opt.Page = resp.NextPage
	}
	return out, fmt.Errorf("list comments of #%d: more than %d pages", number, maxPages)
}

// StickyResult says what UpsertComment did.
type StickyResult struct {
	Comment Comment `json:"comment"`
	Created bool    `json:"created"` // false: an existing comment was updated
	Removed int     `json:"removed"` // duplicates deleted (left by a race)
}

// UpsertComment keeps exactly one comment of the client's own (see
// Login) on pull request number that starts with marker (a hidden HTML
// comment such as <!-- medcad:pr -->): it creates it, or edits the oldest
// such comment in place and deletes any others. A comment by anyone else
// is never edited or deleted, whatever it starts with: anyone can post
// the marker. body follows the marker; it must not contain the marker.
func (c *Client) UpsertComment(ctx context.Context, number int, marker, body string) (StickyResult, error) {
	if !strings.HasPrefix(marker, "<!--") || !strings.HasSuffix(marker, "-->") {
		return StickyResult{}, fmt.Errorf("sticky comment marker %q: not an HTML comment", marker)
	}
	if strings.Contains(body, marker) {
		return StickyResult{}, fmt.Errorf("sticky comment body contains its own marker")
	}
	full := marker + "\n" + body
	login, err := c.Login(ctx)
	if err != nil {
		return StickyResult{}, err
	}
	all, err := c.Comments(ctx, number)
	if err != nil {
		return StickyResult{}, err
	}
	var mine []Comment
	for _, cm := range all {
		if strings.EqualFold(cm.Author, login) && strings.HasPrefix(strings.TrimSpace(cm.Body), marker) {
			mine = append(mine, cm)
		}
	}
	var res StickyResult
	if len(mine) == 0 {
		cm, _, err := c.gh.Issues.CreateComment(ctx, c.owner, c.repo, number, &github.IssueComment{Body: &full})
		if err != nil {
			return res, fmt.Errorf("comment on #%d: %w", number, err)
		}
		res.Created = true
		res.Comment = comment(cm)
		if res.Comment.Author != "" {
			c.login = res.Comment.Author // who we are, for certain
		}
		return res, nil
	}
	cm, _, err := c.gh.Issues.EditComment(ctx, c.owner, c.repo, mine[0].ID, &github.IssueComment{Body: &full})
	if err != nil {
		return res, fmt.Errorf("update comment %d on #%d: %w", mine[0].ID, number, err)
	}
	res.Comment = comment(cm)
	for _, dup := range mine[1:] {
		if _, err := c.gh.Issues.DeleteComment(ctx, c.owner, c.repo, dup.ID); err != nil {
			return res, fmt.Errorf("delete duplicate comment %d on #%d: %w", dup.ID, number, err)
		}
		res.Removed++
	}
	return res, nil
}

// AddComment posts a new comment on pull request (or issue) number.
func (c *Client) AddComment(ctx context.Context, number int, body string) (Comment, error) {
	cm, _, err := c.gh.Issues.CreateComment(ctx, c.owner, c.repo, number, &github.IssueComment{Body: &body})
	if err != nil {
		return Comment{}, fmt.Errorf("comment on #%d: %w", number, err)
	}
	return comment(cm), nil
}

// Check is a gate verdict to show on a commit.
type Check struct {
	Name       string // check run name, or commit status context
	SHA        string
	Pass       bool
	Title      string // one line
	Summary    string // Markdown (check runs only)
	DetailsURL string
}

// Check kinds SetCheck reports.
const (
	KindCheckRun = "check-run"
	KindStatus   = "status"
)

// SetCheck shows the verdict as a check run, created or updated in place
// (one per name and commit); where the Checks API is unavailable (404, or
// 403 for a token without checks permission, or Gitea) it sets a commit
// status instead. It returns which kind it set.
func (c *Client) SetCheck(ctx context.Context, ch Check) (string, error) {
	err := c.SetCheckRun(ctx, ch)
	if err == nil {
		return KindCheckRun, nil
	}
	var ge *github.ErrorResponse
	if errors.As(err, &ge) && ge.Response != nil && (ge.Response.StatusCode == http.StatusNotFound || ge.Response.StatusCode == http.StatusForbidden) {
		return KindStatus, c.SetStatus(ctx, ch)
	}
	return "", err
}

// SetCheckRun creates or updates the completed check run ch.Name on ch.SHA.
func (c *Client) SetCheckRun(ctx context.Context, ch Check) error {
	conclusion := "failure"
	if ch.Pass {
		conclusion = "success"
	}
	out := &github.CheckRunOutput{Title: github.String(ch.Title), Summary: github.String(truncate(ch.Summary, 65000))}
	var url *string
	if ch.DetailsURL != "" {
		url = &ch.DetailsURL
	}
	id, err := c.findCheckRun(ctx, ch.Name, ch.SHA)
	if err != nil {
		return err
	}
	if id == 0 {
		_, _, err = c.gh.Checks.CreateCheckRun(ctx, c.owner, c.repo, github.CreateCheckRunOptions{
			Name: ch.Name, HeadSHA: ch.SHA, Status: github.String("completed"), Conclusion: &conclusion,
			Output: out, DetailsURL: url,
		})
	} else {
		_, _, err = c.gh.Checks.UpdateCheckRun(ctx, c.owner, c.repo, id, github.UpdateCheckRunOptions{
			Name: ch.Name, Status: github.String("completed"), Conclusion: &conclusion, Output: out, DetailsURL: url,
		})
	}
	if err != nil {
		return fmt.Errorf("check run %q: %w", ch.Name, err)
	}
	return nil
}

func (c *Client) findCheckRun(ctx context.Context, name, sha string) (int64, error) {
	opt := &github.ListCheckRunsOptions{CheckName: &name, ListOptions: github.ListOptions{PerPage: 100}}
	for range maxPages {
		res, resp, err := c.gh.Checks.ListCheckRunsForRef(ctx, c.owner, c.repo, sha, opt)
		if err != nil {
			return 0, fmt.Errorf("list check runs: %w", err)
		}
		for _, r := range res.CheckRuns {
			if r.GetName() == name {
				return r.GetID(), nil
			}
		}
		if resp.NextPage == 0 {
			return 0, nil
		}
		opt.Page = resp.NextPage
	}
	return 0, nil
}

// SetStatus sets the commit status ch.Name on ch.SHA.
func (c *Client) SetStatus(ctx context.Context, ch Check) error {
	state := "failure"
	if ch.Pass {
		state = "success"
	}
	st := &github.RepoStatus{State: &state, Context: &ch.Name, Description: github.String(truncate(ch.Title, 140))}
	if ch.DetailsURL != "" {
		st.TargetURL = &ch.DetailsURL
	}
	if _, _, err := c.gh.Repositories.CreateStatus(ctx, c.owner, c.repo, ch.SHA, st); err != nil {
		return fmt.Errorf("commit status %q: %w", ch.Name, err)
	}
	return nil
}

// MergedPullRequest finds the pull request merged as commit sha: the
// closed pull request whose merge commit it is.
func (c *Client) MergedPullRequest(ctx context.Context, sha string) (int, error) {
	opt := &github.PullRequestListOptions{State: "closed", ListOptions: github.ListOptions{PerPage: 100}}
	for range maxPages {
		prs, resp, err := c.gh.PullRequests.List(ctx, c.owner, c.repo, opt)
		if err != nil {
			return 0, fmt.Errorf("list pull requests: %w", err)
		}
		for _, pr := range prs {
			if pr.GetMergeCommitSHA() == sha && (pr.GetMerged() || pr.MergedAt != nil) {
				return pr.GetNumber(), nil
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	return 0, fmt.Errorf("commit %.12s: %w", sha, ErrNoPullRequest)
}

// MergedPR is what a promotion records about a merged pull request.
type MergedPR struct {
	Number      int
	HeadSHA     string // the head commit it was merged with
	MergeCommit string
	MergedBy    string
	Approvers   []string // logins whose latest review approves, sorted
}

// PullRequestMerge reads pull request n, who merged it and who approved
// it. A pull request that is not merged is ErrNoPullRequest.
func (c *Client) PullRequestMerge(ctx context.Context, n int) (MergedPR, error) {
	pr, _, err := c.gh.PullRequests.Get(ctx, c.owner, c.repo, n)
	if err != nil {
		return MergedPR{}, fmt.Errorf("pull request #%d: %w", n, err)
	}
	if !pr.GetMerged() && pr.MergedAt == nil {
		return MergedPR{}, fmt.Errorf("pull request #%d: %w", n, ErrNoPullRequest)
	}
	m := MergedPR{Number: n, HeadSHA: pr.GetHead().GetSHA(), MergeCommit: pr.GetMergeCommitSHA(), MergedBy: pr.GetMergedBy().GetLogin()}
	latest := map[string]string{}
	opt := &github.ListOptions{PerPage: 100}
	for range maxPages {
		reviews, resp, err := c.gh.PullRequests.ListReviews(ctx, c.owner, c.repo, n, opt)
		if err != nil {
			return MergedPR{}, fmt.Errorf("reviews of pull request #%d: %w", n, err)
		}
		for _, r := range reviews { // oldest first
			if st := r.GetState(); st != "COMMENTED" && st != "PENDING" {
				latest[r.GetUser().GetLogin()] = st
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	for login, st := range latest {
		if st == "APPROVED" && login != "" {
			m.Approvers = append(m.Approvers, login)
		}
	}
	slices.Sort(m.Approvers)
	return m, nil
}

// truncate shortens s to at most n characters, marking the cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
