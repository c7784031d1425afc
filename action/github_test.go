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
	f, srv := newFakeGitHub(t, 30)
	for i := range 95 { // three full pages of other people's comments first
		f.comments = append(f.comments, map[string]any{"id": int64(i + 1), "body": fmt.Sprintf("lgtm %d", i)})
	}
	// A raced earlier run left two medcad comments; a quoted marker in the
	// middle of someone's text is not ours.
	f.comments = append(f.comments,
		map[string]any{"id": int64(500), "body": "<!-- medcad:pr -->\nold"},
		map[string]any{"id": int64(501), "body": "> quoting <!-- medcad:pr -->"},
		map[string]any{"id": int64(502), "body": "<!-- medcad:pr -->\nolder duplicate"})
	var logs bytes.Buffer
	c := newTestClient(t, srv.URL, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), RetryPolicy{})
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		res, err := c.UpsertComment(ctx, 7, "<!-- medcad:pr -->", fmt.Sprintf("report %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if res.Created || res.Comment.ID != 500 {
			t.Errorf("run %d: %+v, want comment 500 updated", i, res)
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
	for _, h := range f.auth {
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
	f, srv := newFakeGitHub(t, 2)
	for i := range 5 { // other runs on the commit, spread over pages
		f.checkRuns = append(f.checkRuns, map[string]any{"id": int64(i + 1), "name": "medcad", "head_sha": "other"})
		f.checkRuns = append(f.checkRuns, map[string]any{"id": int64(i + 10), "name": fmt.Sprintf("lint%d", i), "head_sha": "abc"})
	}
	c := newTestClient(t, srv.URL, nil, RetryPolicy{})
	ctx := context.Background()
	for _, pass := range []bool{false, true} {
		kind, err := c.SetCheck(ctx, Check{Name: "medcad", SHA: "abc", Pass: pass, Title: "gate", Summary: "## report", DetailsURL: "http://x/run"})
		if err != nil || kind != KindCheckRun {
			t.Fatalf("SetCheck = %q, %v", kind, err)
		}
	}
	var got []map[string]any
	for _, cr := range f.checkRuns {
		if cr["head_sha"] == "abc" && cr["name"] == "medcad" {
			got = append(got, cr)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d medcad check runs on abc, want 1", len(got))
	}
	if got[0]["conclusion"] != "success" || got[0]["status"] != "completed" {
		t.Errorf("check run = %v, want completed/success", got[0])
	}
	if out, _ := got[0]["output"].(map[string]any); out["summary"] != "## report" {
		t.Errorf("output = %v", got[0]["output"])
	}
}

func TestSetCheckFallsBackToStatus(t *testing.T) {
	f, srv := newFakeGitHub(t, 30)
	f.noChecks = true
	c := newTestClient(t, srv.URL, nil, RetryPolicy{})
	kind, err := c.SetCheck(context.Background(), Check{Name: "medcad", SHA: "abc", Pass: false, Title: strings.Repeat("é", 200)})
	if err != nil || kind != KindStatus {
		t.Fatalf("SetCheck = %q, %v; want a status", kind, err)
	}
	if len(f.statuses) != 1 || f.statuses[0]["state"] != "failure" || f.statuses[0]["context"] != "medcad" {
		t.Fatalf("statuses = %v", f.statuses)
	}
	if d := f.statuses[0]["description"].(string); utf8.RuneCountInString(d) != 140 || !strings.HasSuffix(d, "…") {
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
