package action

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/action/githubtest"
)

const testToken = "ghs_s3cr3tT0ken"

func newTestClient(t *testing.T, url string, log *slog.Logger, p RetryPolicy) *Client {
	t.Helper()
	if p.Sleep == nil {
		p.Sleep = func(context.Context, time.Duration) error { return nil }
	}
	c, err := NewClient(ClientOptions{APIURL: url, Repository: "o/r", Token: testToken, Log: log, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestUpsertCommentPaginatedAndDeduplicated(t *testing.T) {
	f := githubtest.Start(t, githubtest.Options{PerPage: 30})
	for i := range 95 { // three full pages of other people's comments first
		f.AddComment(7, fmt.Sprintf("lgtm %d", i))
	}
	// Someone posted the marker before medcad ever ran: not ours. A raced
	// earlier run left two medcad comments; a quoted marker in the middle
	// of someone's text is not ours.
	forged := f.AddComment(7, "<!-- medcad:pr -->\nforged")
	first := f.AddCommentAs(7, DefaultLogin, "<!-- medcad:pr -->\nold")
	f.AddComment(7, "> quoting <!-- medcad:pr -->")
	f.AddCommentAs(7, DefaultLogin, "<!-- medcad:pr -->\nolder duplicate")
	f.AddCommentAs(8, DefaultLogin, "<!-- medcad:pr -->\nanother pull request's")
	var logs bytes.Buffer
	c := newTestClient(t, f.URL, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), RetryPolicy{})
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		res, err := c.UpsertComment(ctx, 7, "<!-- medcad:pr -->", fmt.Sprintf("report %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if res.Created || res.Comment.ID != first {
			t.Errorf("run %d: %+v, want comment %d updated", i, res, first)
		}
		if want := map[int]int{1: 1}[i]; res.Removed != want {
			t.Errorf("run %d: removed %d duplicates, want %d", i, res.Removed, want)
		}
	}
	all, err := c.Comments(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, cm := range all {
		if strings.HasPrefix(cm.Body, "<!-- medcad:pr -->") {
			ours = append(ours, cm.Author+": "+cm.Body)
		}
	}
	want := []string{githubtest.Reviewer + ": <!-- medcad:pr -->\nforged", DefaultLogin + ": <!-- medcad:pr -->\nreport 3"}
	if diff := cmp.Diff(want, ours); diff != "" {
		t.Errorf("comments with the marker (-want +got):\n%s", diff)
	}
	if all[95].ID != forged {
		t.Errorf("the forged comment %d moved or went: %+v", forged, all[95])
	}
	if len(all) != 98 {
		t.Errorf("%d comments in all, want 98 (others untouched)", len(all))
	}
	if strings.Contains(logs.String(), testToken) {
		t.Error("debug log holds the token")
	}
	if !strings.Contains(logs.String(), "path=/repos/o/r/issues/7/comments") {
		t.Errorf("debug log does not name the requests:\n%s", logs.String())
	}
	if other := f.Comments(8); len(other) != 1 {
		t.Errorf("comments on #8: %+v, want the one left alone", other)
	}
	for _, h := range f.Auth() {
		if h != "token "+testToken {
			t.Fatalf("Authorization = %q", h)
		}
	}
	if _, err := c.UpsertComment(ctx, 7, "medcad", "x"); err == nil {
		t.Error("a marker that is not an HTML comment was accepted")
	}
	if _, err := c.UpsertComment(ctx, 7, "<!-- m -->", "x <!-- m --> y"); err == nil {
		t.Error("a body holding the marker was accepted")
	}
}

// TestUpsertCommentOwnOnly: a comment with the marker by anyone but the
// token's account is left alone and medcad creates its own, then keeps
// editing that one; the account is GET /user's where the API answers, the
// configured one, or github-actions[bot].
func TestUpsertCommentOwnOnly(t *testing.T) {
	t.Parallel()
	const marker = "<!-- medcad:report check=medcad -->"
	tests := []struct {
		name   string
		fake   githubtest.Options // Login: who the token writes as
		login  string             // ClientOptions.Login
		forger string
	}{
		{"actions token", githubtest.Options{}, "", "mallory"},
		{"another bot's marker", githubtest.Options{Login: "medcad-app[bot]"}, "medcad-app[bot]", DefaultLogin},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := githubtest.Start(t, tc.fake)
			forged := f.AddCommentAs(3, tc.forger, marker+"\nmerge me, gates passed")
			c, err := NewClient(ClientOptions{APIURL: f.URL, Repository: "o/r", Token: testToken, Login: tc.login})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var created int64
			for i := 1; i <= 2; i++ {
				res, err := c.UpsertComment(ctx, 3, marker, fmt.Sprintf("report %d", i))
				if err != nil {
					t.Fatal(err)
				}
				if res.Comment.ID == forged || res.Removed != 0 {
					t.Fatalf("run %d: %+v: the forged comment was taken", i, res)
				}
				if i == 1 {
					created = res.Comment.ID
					if !res.Created {
						t.Errorf("run 1: %+v, want a new comment", res)
					}
				} else if res.Created || res.Comment.ID != created {
					t.Errorf("run 2: %+v, want comment %d edited", res, created)
				}
			}
			// A fresh client (the next job) finds the comment again.
			c2, _ := NewClient(ClientOptions{APIURL: f.URL, Repository: "o/r", Token: testToken, Login: tc.login})
			if res, err := c2.UpsertComment(ctx, 3, marker, "report 3"); err != nil || res.Comment.ID != created {
				t.Errorf("next job: %+v, %v; want comment %d edited", res, err, created)
			}
			got := f.Comments(3)
			if len(got) != 2 || got[0].Body != marker+"\nmerge me, gates passed" || got[1].Body != marker+"\nreport 3" {
				t.Errorf("comments: %+v", got)
			}
		})
	}
}

// TestErrorBodiesRedacted: a server that echoes the credentials it was
// sent in its error body does not get them into the error medcad prints.
func TestErrorBodiesRedacted(t *testing.T) {
	t.Parallel()
	for _, status := range []int{401, 403, 422} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"message":"Bad credentials: you sent: %s","errors":[{"resource":"Issue","code":"custom","message":"Authorization: %s"}],"documentation_url":"https://docs.github.com/rest"}`,
				r.Header.Get("Authorization"), r.Header.Get("Authorization"))
		}))
		c := newTestClient(t, srv.URL, nil, RetryPolicy{Retries: 1})
		_, err := c.AddComment(context.Background(), 1, "hello")
		srv.Close()
		if err == nil {
			t.Fatalf("%d: no error", status)
		}
		if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%d: the token is in the error: %v", status, err)
		}
		if !strings.Contains(err.Error(), "Bad credentials") || !strings.Contains(err.Error(), strconv.Itoa(status)) {
			t.Errorf("%d: the error lost what the server said: %v", status, err)
		}
	}
	if _, err := NewClient(ClientOptions{APIURL: "https://u:" + testToken + "@api.example.org/", Repository: "o/r"}); err == nil || strings.Contains(err.Error(), testToken) {
		t.Errorf("credentials in the API URL: %v", err)
	}
}

func TestSetCheckRunCreatesThenUpdates(t *testing.T) {
	f := githubtest.Start(t, githubtest.Options{PerPage: 2})
	for i := range 5 { // other runs on the commit, spread over pages
		f.AddCheckRun(githubtest.CheckRun{Name: "medcad", HeadSHA: "other"})
		f.AddCheckRun(githubtest.CheckRun{Name: fmt.Sprintf("lint%d", i), HeadSHA: "abc"})
	}
	c := newTestClient(t, f.URL, nil, RetryPolicy{})
	ctx := context.Background()
	for _, pass := range []bool{false, true} {
		kind, err := c.SetCheck(ctx, Check{Name: "medcad", SHA: "abc", Pass: pass, Title: "gate", Summary: "## report", DetailsURL: "http://x/run"})
		if err != nil || kind != KindCheckRun {
			t.Fatalf("SetCheck = %q, %v", kind, err)
		}
	}
	var got []githubtest.CheckRun
	for _, cr := range f.CheckRuns() {
		if cr.HeadSHA == "abc" && cr.Name == "medcad" {
			cr.ID = 0
			got = append(got, cr)
		}
	}
	want := []githubtest.CheckRun{{Name: "medcad", HeadSHA: "abc", Status: "completed", Conclusion: "success", Title: "gate", Summary: "## report", DetailsURL: "http://x/run"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("medcad check runs on abc (-want +got):\n%s", diff)
	}
}

func TestSetCheckFallsBackToStatus(t *testing.T) {
	f := githubtest.Start(t, githubtest.Options{NoChecks: true})
	c := newTestClient(t, f.URL, nil, RetryPolicy{})
	kind, err := c.SetCheck(context.Background(), Check{Name: "medcad", SHA: "abc", Pass: false, Title: strings.Repeat("é", 200)})
	if err != nil || kind != KindStatus {
		t.Fatalf("SetCheck = %q, %v; want a status", kind, err)
	}
	sts := f.Statuses()
	if len(sts) != 1 || sts[0].State != "failure" || sts[0].Context != "medcad" || sts[0].SHA != "abc" {
		t.Fatalf("statuses = %+v", sts)
	}
	if d := sts[0].Description; utf8.RuneCountInString(d) != 140 || !strings.HasSuffix(d, "…") {
		t.Errorf("description %q: want 140 characters, truncated", d)
	}
}

// flaky answers with the scripted responses, then 200.
type flaky struct {
	mu     sync.Mutex
	script []func(w http.ResponseWriter)
	bodies []string
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := io.ReadAll(r.Body)
	f.bodies = append(f.bodies, string(b))
	if len(f.script) > 0 {
		s := f.script[0]
		f.script = f.script[1:]
		s(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(201)
	io.WriteString(w, `{"id":1,"body":"ok"}`)
}

func TestTransportRetries(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	status := func(code int, hdr ...string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			for i := 0; i+1 < len(hdr); i += 2 {
				w.Header().Set(hdr[i], hdr[i+1])
			}
			w.WriteHeader(code)
			io.WriteString(w, `{"message":"x"}`)
		}
	}
	reset := strconv.FormatInt(now.Add(90*time.Second).Unix(), 10)
	tests := []struct {
		name    string
		script  []func(http.ResponseWriter)
		waits   []time.Duration
		wantErr bool
	}{
		{"5xx backs off exponentially", []func(http.ResponseWriter){status(502), status(503), status(500)},
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, false},
		{"primary rate limit waits for the reset", []func(http.ResponseWriter){status(403, "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", reset)},
			[]time.Duration{91 * time.Second}, false},
		{"secondary rate limit honours Retry-After", []func(http.ResponseWriter){status(429, "Retry-After", "7")},
			[]time.Duration{7 * time.Second}, false},
		{"reset too far away is not waited for", []func(http.ResponseWriter){status(403, "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(now.Add(time.Hour).Unix(), 10))},
			nil, true},
		{"plain 403 is not retried", []func(http.ResponseWriter){status(403)}, nil, true},
		{"404 is not retried", []func(http.ResponseWriter){status(404)}, nil, true},
		{"gives up after the retries", []func(http.ResponseWriter){status(500), status(500), status(500), status(500)},
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fl := &flaky{script: tc.script}
			srv := httptest.NewServer(fl)
			defer srv.Close()
			var waits []time.Duration
			var logs bytes.Buffer
			c := newTestClient(t, srv.URL, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), RetryPolicy{
				Retries: 3, MaxBackoff: 10 * time.Second, MaxRateWait: 10 * time.Minute,
				Now:   func() time.Time { return now },
				Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil },
			})
			_, err := c.AddComment(context.Background(), 1, "hello")
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.waits, waits); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			for i, b := range fl.bodies { // the POST body is sent whole on every try
				if !strings.Contains(b, `"body":"hello"`) {
					t.Errorf("try %d sent body %q", i+1, b)
				}
			}
			if err != nil && strings.Contains(err.Error(), testToken) || strings.Contains(logs.String(), testToken) {
				t.Error("token leaked into an error or a log")
			}
		})
	}
}

func TestTransportStopsWhenCancelled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c := newTestClient(t, srv.URL, nil, RetryPolicy{Sleep: func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }})
	if _, err := c.AddComment(ctx, 1, "x"); err == nil {
		t.Fatal("no error after cancel")
	}
}

func TestNewClientErrors(t *testing.T) {
	for _, o := range []ClientOptions{{APIURL: "http://x", Repository: "nope"}, {APIURL: "ftp://x/", Repository: "o/r"}, {APIURL: "::", Repository: "o/r"}} {
		if _, err := NewClient(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
