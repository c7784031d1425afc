package action

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/testenv"
)

func TestLoadEnv(t *testing.T) {
	env := map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_REPOSITORY": "org/ct",
		"GITHUB_SHA": "abc", "GITHUB_RUN_ID": "42", "GITHUB_TOKEN": "ghs_secret",
	}
	e, err := LoadEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if e.APIURL != "https://api.github.com" || e.RunURL() != "https://github.com/org/ct/actions/runs/42" {
		t.Errorf("defaults: api %q run %q", e.APIURL, e.RunURL())
	}
	if strings.Contains(e.String(), "ghs_secret") || !strings.Contains(e.String(), "token=set") {
		t.Errorf("String() = %q: must say the token is set without showing it", e.String())
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want error
	}{
		{"not actions", map[string]string{"GITHUB_REPOSITORY": "a/b"}, ErrNotActions},
		{"bad repo", map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "nope"}, nil},
	} {
		_, err := LoadEnv(func(k string) string { return tc.env[k] })
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseEvent(t *testing.T) {
	fixture := func(name string) string { return string(testenv.ReadFixture(t, "events/"+name)) }
	pr := fixture("pull_request_fork.json")
	tests := []struct {
		name, event, data string
		wantErr           bool
		fork              bool
	}{
		{"pull request from fork", "pull_request", pr, false, true},
		{"same repo", "pull_request", strings.Replace(pr, `"full_name":"fork/demo","fork":true`, `"full_name":"org/demo"`, 1), false, false},
		{"same repo fixture", "pull_request", fixture("pull_request.json"), false, false},
		{"push", "push", fixture("push_main.json"), false, false},
		{"pr without pull_request", "pull_request", `{"number":1}`, true, false},
		{"pr number zero", "pull_request", `{"pull_request":{"number":0,"head":{"ref":"a"},"base":{"ref":"b"}}}`, true, false},
		{"push without ref", "push", `{"after":"abc"}`, true, false},
		{"not json", "push", `{`, true, false},
		{"unknown fields ignored", "workflow_dispatch", `{"inputs":{"x":"y"},"ref":"refs/heads/main"}`, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ParseEvent(tc.event, []byte(tc.data))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrBadEvent) {
					t.Errorf("err %v is not ErrBadEvent", err)
				}
				return
			}
			if ev.PullRequest != nil && ev.PullRequest.IsFork() != tc.fork {
				t.Errorf("IsFork = %v, want %v", ev.PullRequest.IsFork(), tc.fork)
			}
		})
	}
}

// readOutputs parses a GITHUB_OUTPUT file the way the runner does.
func readOutputs(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		name, delim, ok := strings.Cut(line, "<<")
		if !ok {
			name, value, _ := strings.Cut(line, "=")
			out[name] = value
			continue
		}
		var lines []string
		for sc.Scan() && sc.Text() != delim {
			lines = append(lines, sc.Text())
		}
		out[name] = strings.Join(lines, "\n")
	}
	return out
}

func TestSetOutput(t *testing.T) {
	file := filepath.Join(t.TempDir(), "out")
	// A value that tries to close a heredoc and set another output.
	evil := "fail\nEOF\nverdict=pass\nmedcad_x"
	for _, kv := range [][2]string{{"verdict", evil}, {"report-path", "build/report.md"}, {"model-digest", "sha256:00"}} {
		if err := SetOutput(file, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"verdict": evil, "report-path": "build/report.md", "model-digest": "sha256:00"}
	if diff := cmp.Diff(want, readOutputs(t, file)); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if err := SetOutput(file, "a\nb", "x"); err == nil {
		t.Error("a name with a newline was accepted")
	}
	if err := SetOutput("", "x", "y"); err != nil {
		t.Errorf("no GITHUB_OUTPUT: %v", err)
	}
}

func TestAppendSummary(t *testing.T) {
	file := filepath.Join(t.TempDir(), "summary")
	for _, s := range []string{"# one", "two\n"} {
		if err := AppendSummary(file, s); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(file)
	if string(got) != "# one\ntwo\n" {
		t.Errorf("summary = %q", got)
	}
}

func TestAnnotation(t *testing.T) {
	tests := []struct {
		a    Annotation
		want string
	}{
		{Annotation{Level: "error", File: "models/bone.model.toml", Line: 3, Msg: "signature does not match"},
			"::error file=models/bone.model.toml,line=3::signature does not match"},
		{Annotation{Level: "warning", Title: "a,b:c", Msg: "50% worse\n::error::injected"},
			"::warning title=a%2Cb%3Ac::50%25 worse%0A::error::injected"},
		{Annotation{Level: "bogus", File: "x,line=9", Msg: "m\r"},
			"::notice file=x%2Cline=9::m%0D"},
	}
	for _, tc := range tests {
		got := tc.a.String()
		if got != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.a, got, tc.want)
		}
		if strings.Count(got, "\n") != 0 {
			t.Errorf("%q spans lines", got)
		}
		if u := unescapeProperty(escapeProperty(tc.a.Title)); u != tc.a.Title {
			t.Errorf("property round trip %q -> %q", tc.a.Title, u)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add("pull_request", []byte(`{"pull_request":{"number":3,"head":{"ref":"a","sha":"1"},"base":{"ref":"main","sha":"2"}}}`))
	f.Add("push", []byte(`{"ref":"refs/heads/main","before":"a","after":"b"}`))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		ev, err := ParseEvent(name, data)
		if err != nil {
			if !errors.Is(err, ErrBadEvent) {
				t.Fatalf("error %v is not ErrBadEvent", err)
			}
			return
		}
		if name == "pull_request" && (ev.PullRequest == nil || ev.PullRequest.Number <= 0) {
			t.Fatalf("accepted a pull_request event without a pull request number")
		}
	})
}

func FuzzAnnotation(f *testing.F) {
	f.Add("x", "m")
	f.Add("a,b:c%0A", "line\nbreak %25")
	f.Fuzz(func(t *testing.T, prop, msg string) {
		s := Annotation{Level: "error", Title: prop, File: prop, Msg: msg}.String()
		if strings.ContainsAny(s, "\r\n") {
			t.Fatalf("annotation spans lines: %q", s)
		}
		if got := unescapeProperty(escapeProperty(prop)); got != prop {
			t.Fatalf("round trip %q -> %q", prop, got)
		}
		if got := unescapeProperty(escapeData(msg)); got != msg {
			t.Fatalf("data round trip %q -> %q", msg, got)
		}
	})
}
