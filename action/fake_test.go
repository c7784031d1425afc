package action

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
)

// fakeGitHub is a small stateful stand-in for the parts of GitHub's REST
// API that Gitea lacks (check runs), with GitHub's JSON shapes and its
// Link-header pagination. It also serves issue comments so pagination of
// the sticky-comment search is tested with pages of a known size.
type fakeGitHub struct {
	mu        sync.Mutex
	perPage   int // page size it enforces (GitHub: per_page, at most 100)
	nextID    int64
	checkRuns []map[string]any
	comments  []map[string]any
	noChecks  bool // answer 404 to the Checks API, like Gitea
	statuses  []map[string]any
	auth      []string // Authorization headers seen
	requests  int
}

var (
	checkRunsRE = regexp.MustCompile(`^/repos/o/r/check-runs(?:/(\d+))?$`)
	refRunsRE   = regexp.MustCompile(`^/repos/o/r/commits/([^/]+)/check-runs$`)
	commentsRE  = regexp.MustCompile(`^/repos/o/r/issues/(\d+)/comments$`)
	commentRE   = regexp.MustCompile(`^/repos/o/r/issues/comments/(\d+)$`)
	statusRE    = regexp.MustCompile(`^/repos/o/r/statuses/([^/]+)$`)
)

func newFakeGitHub(t *testing.T, perPage int) (*fakeGitHub, *httptest.Server) {
	f := &fakeGitHub{perPage: perPage, nextID: 100}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// page cuts items to the requested page and sets GitHub's Link header.
func (f *fakeGitHub) page(w http.ResponseWriter, r *http.Request, items []map[string]any) []map[string]any {
	per := f.perPage
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
	return items[lo:hi]
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	var body map[string]any
	if r.Body != nil {
		json.NewDecoder(r.Body).Decode(&body)
	}
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	path := r.URL.Path
	switch {
	case f.noChecks && (checkRunsRE.MatchString(path) || refRunsRE.MatchString(path)):
		reply(404, map[string]any{"message": "Not Found"})
	case refRunsRE.MatchString(path) && r.Method == "GET":
		sha := refRunsRE.FindStringSubmatch(path)[1]
		var match []map[string]any
		for _, cr := range f.checkRuns {
			if cr["head_sha"] == sha && (r.URL.Query().Get("check_name") == "" || cr["name"] == r.URL.Query().Get("check_name")) {
				match = append(match, cr)
			}
		}
		reply(200, map[string]any{"total_count": len(match), "check_runs": f.page(w, r, match)})
	case checkRunsRE.MatchString(path) && r.Method == "POST":
		f.nextID++
		cr := map[string]any{"id": f.nextID, "name": body["name"], "head_sha": body["head_sha"], "status": body["status"],
			"conclusion": body["conclusion"], "output": body["output"], "details_url": body["details_url"]}
		f.checkRuns = append(f.checkRuns, cr)
		reply(201, cr)
	case checkRunsRE.MatchString(path) && r.Method == "PATCH":
		id, _ := strconv.ParseInt(checkRunsRE.FindStringSubmatch(path)[1], 10, 64)
		for _, cr := range f.checkRuns {
			if cr["id"] == id {
				for _, k := range []string{"name", "status", "conclusion", "output", "details_url"} {
					if v, ok := body[k]; ok {
						cr[k] = v
					}
				}
				reply(200, cr)
				return
			}
		}
		reply(404, map[string]any{"message": "Not Found"})
	case commentsRE.MatchString(path) && r.Method == "GET":
		reply(200, f.page(w, r, f.comments))
	case commentsRE.MatchString(path) && r.Method == "POST":
		f.nextID++
		c := map[string]any{"id": f.nextID, "body": body["body"], "html_url": fmt.Sprintf("http://x/c/%d", f.nextID)}
		f.comments = append(f.comments, c)
		reply(201, c)
	case commentRE.MatchString(path):
		id, _ := strconv.ParseInt(commentRE.FindStringSubmatch(path)[1], 10, 64)
		for i, c := range f.comments {
			if c["id"] == id {
				if r.Method == "DELETE" {
					f.comments = append(f.comments[:i], f.comments[i+1:]...)
					w.WriteHeader(204)
					return
				}
				c["body"] = body["body"]
				reply(200, c)
				return
			}
		}
		reply(404, map[string]any{"message": "Not Found"})
	case statusRE.MatchString(path) && r.Method == "POST":
		st := map[string]any{"state": body["state"], "context": body["context"], "description": body["description"], "sha": statusRE.FindStringSubmatch(path)[1]}
		f.statuses = append(f.statuses, st)
		reply(201, st)
	default:
		reply(404, map[string]any{"message": "Not Found"})
	}
}
