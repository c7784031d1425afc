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
	// A raced earlier run left two medcad comments; a quoted marker in the
	// middle of someone's text is not ours.
	first := f.AddComment(7, "<!-- medcad:pr -->\nold")
	f.AddComment(7, "> quoting <!-- medcad:pr -->")
	f.AddComment(7, "<!-- medcad:pr -->\nolder duplicate")
	f.AddComment(8, "<!-- medcad:pr -->\nanother pull request's")
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
			ours = append(ours, cm.Body)
		}
	}
	if diff := cmp.Diff([]string{"<!-- medcad:pr -->\nreport 3"}, ours); diff != "" {
		t.Errorf("medcad comments (-want +got):\n%s", diff)
	}
	if len(all) != 97 {
		t.Errorf("%d comments in all, want 97 (others untouched)", len(all))
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
