// Package githubtest is a small stateful stand-in for the parts of
// GitHub's REST API that medcad calls and Gitea lacks or shapes
// differently: check runs, issue comments with GitHub's Link-header
// pagination at a page size the test chooses, commit statuses, and closed
// pull requests (to find the one merged as a commit). It answers with
// GitHub's JSON shapes for any owner/repo and keeps what it was sent, so
// tests check the end state, not a call sequence.
//
// Written by hand: it serves a handful of routes; Gitea (action/giteatest)
// is the real server for everything Gitea implements.
package githubtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// Options configure a Server.
type Options struct {
	PerPage  int  // the page size it enforces (GitHub: per_page, at most 100); 0: 30
	NoChecks bool // answer 404 to the Checks API, like Gitea
	// Login is the author of comments created through the API
	// ("": github-actions[bot], as for GITHUB_TOKEN). GET /user answers
	// 403 as it does for that token: it has no user.
	Login string
}

// Reviewer is the author of comments added with AddComment.
const Reviewer = "reviewer"

// CheckRun is a check run as the server holds it.
type CheckRun struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	HeadSHA    string `json:"head_sha"`
	Status     string `json:"status"`
	Conclusion string `json:"conclusion,omitempty"`
	Title      string `json:"-"`
	Summary    string `json:"-"`
	DetailsURL string `json:"details_url,omitempty"`
}

// Comment is an issue or pull request comment.
type Comment struct {
	ID     int64
	Issue  int
	Body   string
	URL    string
	Author string // the login that wrote it
}

// MarshalJSON writes GitHub's shape of a comment, its author included.
func (c Comment) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"id": c.ID, "body": c.Body, "html_url": c.URL,
		"user": map[string]any{"login": c.Author, "type": "User"}})
}

// Status is a commit status.
type Status struct {
	SHA         string `json:"sha"`
	State       string `json:"state"`
	Context     string `json:"context"`
	Description string `json:"description"`
	TargetURL   string `json:"target_url,omitempty"`
}

// PullRequest is a closed pull request merged as MergeCommitSHA.
type PullRequest struct {
	Number         int
	MergeCommitSHA string
	HeadSHA        string
	MergedBy       string   // "": maintainer
	Approvers      []string // reviews with state APPROVED
}

func (pr PullRequest) json() map[string]any {
	return map[string]any{"number": pr.Number, "state": "closed", "merged": true,
		"merge_commit_sha": pr.MergeCommitSHA, "merged_at": "2026-01-01T00:00:00Z",
		"head": map[string]any{"sha": pr.HeadSHA}, "merged_by": map[string]any{"login": pr.MergedBy}}
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	URL string // the API base URL (action.ClientOptions.APIURL)

	mu        sync.Mutex
	opts      Options
	nextID    int64
	checkRuns []CheckRun
	comments  []Comment
	statuses  []Status
	pulls     []PullRequest
	auth      []string
	requests  int
	actions   actionsState // self-hosted runners and workflow runs (runners.go)
}

// Start starts a fake for t; it stops at cleanup.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.PerPage <= 0 {
		o.PerPage = 30
	}
	if o.Login == "" {
		o.Login = "github-actions[bot]"
	}
	s := &Server{opts: o, nextID: 100}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// AddComment puts a comment on issue (or pull request) n as if Reviewer
// had written it, and returns its ID.
func (s *Server) AddComment(n int, body string) int64 {
	return s.AddCommentAs(n, Reviewer, body)
}

// AddCommentAs puts a comment by login on issue (or pull request) n and
// returns its ID.
func (s *Server) AddCommentAs(n int, login, body string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addComment(n, login, body).ID
}

func (s *Server) addComment(n int, login, body string) Comment {
	s.nextID++
	c := Comment{ID: s.nextID, Issue: n, Body: body, URL: fmt.Sprintf("%s/comments/%d", s.URL, s.nextID), Author: login}
	s.comments = append(s.comments, c)
	return c
}

// AddCheckRun records a check run made by someone else; its ID is set.
func (s *Server) AddCheckRun(cr CheckRun) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	cr.ID = s.nextID
	s.checkRuns = append(s.checkRuns, cr)
	return cr.ID
}

// AddMergedPullRequest records pull request n as closed and merged as
// commit sha.
func (s *Server) AddMergedPullRequest(n int, sha string) {
	s.AddMerged(PullRequest{Number: n, MergeCommitSHA: sha})
}

// AddMerged records a merged pull request with its head, merger and
// approvals.
func (s *Server) AddMerged(pr PullRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pr.MergedBy == "" {
		pr.MergedBy = "maintainer"
	}
	s.pulls = append(s.pulls, pr)
}

// Comments are the comments on issue n, oldest first.
func (s *Server) Comments(n int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, c := range s.comments {
		if c.Issue == n {
			out = append(out, c)
		}
	}
	return out
}

// CheckRuns are all check runs, oldest first.
func (s *Server) CheckRuns() []CheckRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.checkRuns)
}

// Statuses are all commit statuses, oldest first.
func (s *Server) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.statuses)
}

// Auth are the Authorization headers of every request, in order.
func (s *Server) Auth() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.auth)
}

// Requests is the number of requests served.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

const repo = `^/repos/[^/]+/[^/]+`

var (
	checkRunsRE = regexp.MustCompile(repo + `/check-runs(?:/(\d+))?$`)
	refRunsRE   = regexp.MustCompile(repo + `/commits/([^/]+)/check-runs$`)
	commentsRE  = regexp.MustCompile(repo + `/issues/(\d+)/comments$`)
	commentRE   = regexp.MustCompile(repo + `/issues/comments/(\d+)$`)
	statusRE    = regexp.MustCompile(repo + `/statuses/([^/]+)$`)
	pullsRE     = regexp.MustCompile(repo + `/pulls$`)
	pullRE      = regexp.MustCompile(repo + `/pulls/([0-9]+)(/reviews)?$`)
	userRE      = regexp.MustCompile(`^/user$`)
)

// page cuts items to the requested page and sets GitHub's Link header.
func page[T any](s *Server, w http.ResponseWriter, r *http.Request, items []T) []T {
	per := s.opts.PerPage
	if n, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && n > 0 && n < per {
		per = n
	}
	p, _ := strconv.Atoi(r.URL.Query().Get("page"))
	p = max(p, 1)
	lo, hi := min((p-1)*per, len(items)), min(p*per, len(items))
	if hi < len(items) {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p+1))
		u := *r.URL
		u.RawQuery = q.Encode()
		u.Scheme, u.Host = "http", r.Host
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, u.String()))
	}
	return slices.Clone(items[lo:hi])
}

// checkRunJSON is a check run in GitHub's shape, output included.
func checkRunJSON(cr CheckRun) map[string]any {
	return map[string]any{"id": cr.ID, "name": cr.Name, "head_sha": cr.HeadSHA, "status": cr.Status,
		"conclusion": cr.Conclusion, "details_url": cr.DetailsURL,
		"output": map[string]any{"title": cr.Title, "summary": cr.Summary}}
}

// checkRunBody is what the Checks API accepts (create and update).
type checkRunBody struct {
	Name       *string `json:"name"`
	HeadSHA    *string `json:"head_sha"`
	Status     *string `json:"status"`
	Conclusion *string `json:"conclusion"`
	DetailsURL *string `json:"details_url"`
	Output     *struct {
		Title   string `json:"title"`
		Summary string `json:"summary"`
	} `json:"output"`
}

func (b checkRunBody) apply(cr *CheckRun) {
	for _, f := range []struct {
		from *string
		to   *string
	}{{b.Name, &cr.Name}, {b.HeadSHA, &cr.HeadSHA}, {b.Status, &cr.Status}, {b.Conclusion, &cr.Conclusion}, {b.DetailsURL, &cr.DetailsURL}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	if b.Output != nil {
		cr.Title, cr.Summary = b.Output.Title, b.Output.Summary
	}
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	decode := func(v any) bool {
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			reply(400, map[string]any{"message": "Problems parsing JSON: " + err.Error()})
			return false
		}
		return true
	}
	notFound := func() { reply(404, map[string]any{"message": "Not Found"}) }
	path := r.URL.Path
	if s.serveActions(w, r, reply, decode) {
		return
	}
	switch {
	case s.opts.NoChecks && (checkRunsRE.MatchString(path) || refRunsRE.MatchString(path)):
		notFound()
	case refRunsRE.MatchString(path) && r.Method == "GET":
		sha, name := refRunsRE.FindStringSubmatch(path)[1], r.URL.Query().Get("check_name")
		var match []map[string]any
		for _, cr := range s.checkRuns {
			if cr.HeadSHA == sha && (name == "" || cr.Name == name) {
				match = append(match, checkRunJSON(cr))
			}
		}
		reply(200, map[string]any{"total_count": len(match), "check_runs": page(s, w, r, match)})
	case checkRunsRE.MatchString(path) && r.Method == "POST":
		var b checkRunBody
		if !decode(&b) {
			return
		}
		s.nextID++
		cr := CheckRun{ID: s.nextID}
		b.apply(&cr)
		s.checkRuns = append(s.checkRuns, cr)
		reply(201, checkRunJSON(cr))
	case checkRunsRE.MatchString(path) && r.Method == "PATCH":
		id, _ := strconv.ParseInt(checkRunsRE.FindStringSubmatch(path)[1], 10, 64)
		var b checkRunBody
		if !decode(&b) {
			return
		}
		for i := range s.checkRuns {
			if s.checkRuns[i].ID == id {
				b.apply(&s.checkRuns[i])
				reply(200, checkRunJSON(s.checkRuns[i]))
				return
			}
		}
		notFound()
	case commentsRE.MatchString(path) && r.Method == "GET":
		n, _ := strconv.Atoi(commentsRE.FindStringSubmatch(path)[1])
		var on []Comment
		for _, c := range s.comments {
			if c.Issue == n {
				on = append(on, c)
			}
		}
		reply(200, page(s, w, r, on))
	case commentsRE.MatchString(path) && r.Method == "POST":
		n, _ := strconv.Atoi(commentsRE.FindStringSubmatch(path)[1])
		var b struct{ Body string }
		if !decode(&b) {
			return
		}
		reply(201, s.addComment(n, s.opts.Login, b.Body))
	case commentRE.MatchString(path):
		id, _ := strconv.ParseInt(commentRE.FindStringSubmatch(path)[1], 10, 64)
		i := slices.IndexFunc(s.comments, func(c Comment) bool { return c.ID == id })
		switch {
		case i < 0:
			notFound()
		case r.Method == "DELETE":
			s.comments = slices.Delete(s.comments, i, i+1)
			w.WriteHeader(204)
		case r.Method == "PATCH":
			var b struct{ Body string }
			if !decode(&b) {
				return
			}
			s.comments[i].Body = b.Body
			reply(200, s.comments[i])
		default:
			reply(200, s.comments[i])
		}
	case statusRE.MatchString(path) && r.Method == "POST":
		var st Status
		if !decode(&st) {
			return
		}
		st.SHA = statusRE.FindStringSubmatch(path)[1]
		s.statuses = append(s.statuses, st)
		reply(201, st)
	case userRE.MatchString(path):
		reply(403, map[string]any{"message": "Resource not accessible by integration"})
	case pullsRE.MatchString(path) && r.Method == "GET":
		var out []map[string]any
		if st := r.URL.Query().Get("state"); st == "closed" || st == "all" {
			for _, pr := range slices.Backward(s.pulls) { // newest first, like GitHub
				out = append(out, pr.json())
			}
		}
		reply(200, page(s, w, r, out))
	case pullRE.MatchString(path) && r.Method == "GET":
		m := pullRE.FindStringSubmatch(path)
		n, _ := strconv.Atoi(m[1])
		i := slices.IndexFunc(s.pulls, func(pr PullRequest) bool { return pr.Number == n })
		switch {
		case i < 0:
			notFound()
		case m[2] == "":
			reply(200, s.pulls[i].json())
		default:
			var reviews []map[string]any
			for k, login := range s.pulls[i].Approvers {
				reviews = append(reviews, map[string]any{"id": k + 1, "state": "APPROVED", "user": map[string]any{"login": login}})
			}
			reply(200, page(s, w, r, reviews))
		}
	default:
		notFound()
	}
}
