// Package action is medcad's side of GitHub Actions: the runtime a step
// runs in (the GITHUB_* environment, the event payload, step outputs, the
// job summary and workflow-command annotations) and the GitHub REST API
// through go-github (a sticky pull-request comment, check runs or commit
// statuses, comments on merged pull requests).
//
// Written by hand, because no maintained Go library covers them: the
// runtime file formats (the GITHUB_OUTPUT heredoc form, the escaping of
// workflow commands, both documented by GitHub but only implemented in
// the JavaScript @actions/core) and the HTTP transport that retries after
// rate limits and server errors and keeps the token out of every log
// line. The API calls themselves are go-github's.
package action

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// ErrNotActions means the process does not run inside a GitHub Actions
// step (GITHUB_ACTIONS is not "true").
var ErrNotActions = errors.New("not running in GitHub Actions (GITHUB_ACTIONS is not true)")

// ErrBadEvent means the event payload is not what the workflow promised.
var ErrBadEvent = errors.New("bad event payload")

// maxEventBytes bounds the event payload read from GITHUB_EVENT_PATH.
const maxEventBytes = 16 << 20

// Env is the part of a step's environment medcad reads. The token is
// kept out of String and of JSON so it cannot reach a log by accident.
type Env struct {
	EventName   string `json:"event_name"`  // GITHUB_EVENT_NAME: pull_request, push, workflow_dispatch
	EventPath   string `json:"event_path"`  // GITHUB_EVENT_PATH
	Repository  string `json:"repository"`  // GITHUB_REPOSITORY: owner/name
	SHA         string `json:"sha"`         // GITHUB_SHA
	Ref         string `json:"ref"`         // GITHUB_REF
	HeadRef     string `json:"head_ref"`    // GITHUB_HEAD_REF (pull requests)
	BaseRef     string `json:"base_ref"`    // GITHUB_BASE_REF (pull requests)
	APIURL      string `json:"api_url"`     // GITHUB_API_URL, default https://api.github.com
	ServerURL   string `json:"server_url"`  // GITHUB_SERVER_URL, default https://github.com
	RunID       string `json:"run_id"`      // GITHUB_RUN_ID
	Workflow    string `json:"workflow"`    // GITHUB_WORKFLOW
	OutputFile  string `json:"output_file"` // GITHUB_OUTPUT
	SummaryFile string `json:"summary_file"`
	Token       string `json:"-"` // GITHUB_TOKEN (or the action's github-token input)
	// Login is MEDCAD_GITHUB_LOGIN: the account the token writes as, for
	// a token of another GitHub App ("": learnt, see ClientOptions.Login).
	Login string `json:"login,omitempty"`
}

// LoadEnv reads the Actions environment through getenv (os.Getenv in
// production). It fails with ErrNotActions outside Actions.
func LoadEnv(getenv func(string) string) (*Env, error) {
	if getenv("GITHUB_ACTIONS") != "true" {
		return nil, ErrNotActions
	}
	e := &Env{
		EventName:   getenv("GITHUB_EVENT_NAME"),
		EventPath:   getenv("GITHUB_EVENT_PATH"),
		Repository:  getenv("GITHUB_REPOSITORY"),
		SHA:         getenv("GITHUB_SHA"),
		Ref:         getenv("GITHUB_REF"),
		HeadRef:     getenv("GITHUB_HEAD_REF"),
		BaseRef:     getenv("GITHUB_BASE_REF"),
		APIURL:      getenv("GITHUB_API_URL"),
		ServerURL:   getenv("GITHUB_SERVER_URL"),
		RunID:       getenv("GITHUB_RUN_ID"),
		Workflow:    getenv("GITHUB_WORKFLOW"),
		OutputFile:  getenv("GITHUB_OUTPUT"),
		SummaryFile: getenv("GITHUB_STEP_SUMMARY"),
		Token:       getenv("GITHUB_TOKEN"),
		Login:       getenv("MEDCAD_GITHUB_LOGIN"),
	}
	if e.APIURL == "" {
		e.APIURL = "https://api.github.com"
	}
	if e.ServerURL == "" {
		e.ServerURL = "https://github.com"
	}
	if _, _, err := SplitRepo(e.Repository); err != nil {
		return nil, fmt.Errorf("GITHUB_REPOSITORY: %w", err)
	}
	return e, nil
}

// String describes the environment without the token.
func (e *Env) String() string {
	tok := "unset"
	if e.Token != "" {
		tok = "set"
	}
	return fmt.Sprintf("event=%s repo=%s sha=%s api=%s token=%s", e.EventName, e.Repository, e.SHA, e.APIURL, tok)
}

// RunURL is the web address of the current workflow run ("" when unknown).
func (e *Env) RunURL() string {
	if e.RunID == "" {
		return ""
	}
	return strings.TrimSuffix(e.ServerURL, "/") + "/" + e.Repository + "/actions/runs/" + e.RunID
}

// SplitRepo splits "owner/name".
func SplitRepo(full string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(full, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("%q is not owner/name", full)
	}
	return owner, name, nil
}

// Event is the part of an event payload medcad uses.
type Event struct {
	Action      string         `json:"action"`
	Number      int            `json:"number"`
	PullRequest *PullRequest   `json:"pull_request"`
	Ref         string         `json:"ref"`    // push: refs/heads/…
	Before      string         `json:"before"` // push
	After       string         `json:"after"`  // push
	Inputs      map[string]any `json:"inputs"` // workflow_dispatch (strings, booleans, numbers)
	MergeGroup  *MergeGroup    `json:"merge_group"`
	Repository  struct {
		FullName      string `json:"full_name"`
		DefaultBranch string `json:"default_branch"`
	} `json:"repository"`
}

// MergeGroup is the merge queue's group of a merge_group event: the
// commit the queue would merge (head) onto the base branch.
type MergeGroup struct {
	HeadSHA string `json:"head_sha"`
	HeadRef string `json:"head_ref"` // refs/heads/gh-readonly-queue/<base>/pr-<N>-<sha>
	BaseSHA string `json:"base_sha"`
	BaseRef string `json:"base_ref"`
}

var queueRefRE = regexp.MustCompile(`/pr-([0-9]{1,9})-[0-9a-f]+$`)

// PullRequest is the merge group seen as the pull request it merges: its
// number (from the queue's branch name), the queue's commit as head.
func (g *MergeGroup) PullRequest() *PullRequest {
	pr := &PullRequest{}
	if m := queueRefRE.FindStringSubmatch(g.HeadRef); m != nil {
		pr.Number, _ = strconv.Atoi(m[1])
	}
	pr.Head.Ref, pr.Head.SHA = strings.TrimPrefix(g.HeadRef, "refs/heads/"), g.HeadSHA
	pr.Base.Ref, pr.Base.SHA = strings.TrimPrefix(g.BaseRef, "refs/heads/"), g.BaseSHA
	return pr
}

// PullRequest is a pull request of an event payload.
type PullRequest struct {
	Number         int    `json:"number"`
	Merged         bool   `json:"merged"`
	MergeCommitSHA string `json:"merge_commit_sha"`
	Head           Branch `json:"head"`
	Base           Branch `json:"base"`
	Labels         []struct {
		Name string `json:"name"`
	} `json:"labels"`
}

// HasLabel reports whether the pull request carries the label.
func (pr *PullRequest) HasLabel(name string) bool {
	for _, l := range pr.Labels {
		if l.Name == name {
			return true
		}
	}
	return false
}

// Branch is one side of a pull request.
type Branch struct {
	Ref  string `json:"ref"`
	SHA  string `json:"sha"`
	Repo struct {
		FullName string `json:"full_name"`
		Fork     bool   `json:"fork"`
	} `json:"repo"`
}

// IsFork reports whether the pull request comes from another repository,
// which GitHub runs without secrets.
func (pr *PullRequest) IsFork() bool {
	return pr.Head.Repo.Fork || (pr.Head.Repo.FullName != "" && pr.Head.Repo.FullName != pr.Base.Repo.FullName)
}

// ParseEvent decodes an event payload. Payloads are large and grow new
// fields, so unknown fields are ignored; the fields medcad needs for the
// given event name are checked.
func ParseEvent(name string, data []byte) (*Event, error) {
	if len(data) > maxEventBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadEvent, maxEventBytes)
	}
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	switch name {
	case "pull_request", "pull_request_target":
		pr := ev.PullRequest
		if pr == nil {
			return nil, fmt.Errorf("%w: %s event without pull_request", ErrBadEvent, name)
		}
		if pr.Number <= 0 {
			return nil, fmt.Errorf("%w: pull request number %d", ErrBadEvent, pr.Number)
		}
		if pr.Head.Ref == "" || pr.Base.Ref == "" {
			return nil, fmt.Errorf("%w: pull request without head or base ref", ErrBadEvent)
		}
	case "merge_group":
		g := ev.MergeGroup
		if g == nil || g.HeadSHA == "" || !strings.HasPrefix(g.BaseRef, "refs/heads/") || g.PullRequest().Number == 0 {
			return nil, fmt.Errorf("%w: merge_group event without head_sha, base_ref or a queue branch naming the pull request", ErrBadEvent)
		}
	case "push":
		if !strings.HasPrefix(ev.Ref, "refs/") {
			return nil, fmt.Errorf("%w: push event ref %q", ErrBadEvent, ev.Ref)
		}
	}
	return &ev, nil
}

// ReadEvent reads and parses the payload at e.EventPath.
func (e *Env) ReadEvent() (*Event, error) {
	if e.EventPath == "" {
		return nil, fmt.Errorf("GITHUB_EVENT_PATH is not set: %w", ErrBadEvent)
	}
	f, err := os.Open(e.EventPath)
	if err != nil {
		return nil, fmt.Errorf("event payload: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxEventBytes+1))
	if err != nil {
		return nil, fmt.Errorf("event payload %s: %w", e.EventPath, err)
	}
	ev, err := ParseEvent(e.EventName, data)
	if err != nil {
		return nil, fmt.Errorf("event payload %s: %w", e.EventPath, err)
	}
	return ev, nil
}

// SetOutput appends name=value to the GITHUB_OUTPUT file in the heredoc
// form, with a random delimiter that the value cannot contain, so a value
// (a dataset name, a multi-line report) can never set another output.
func SetOutput(file, name, value string) error {
	if file == "" {
		return nil
	}
	if name == "" || strings.ContainsAny(name, "\r\n=<") {
		return fmt.Errorf("output name %q: not a valid name", name)
	}
	var delim string
	for {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		delim = "medcad_" + hex.EncodeToString(b[:])
		if !strings.Contains(value, delim) {
			break
		}
	}
	return appendFile(file, name+"<<"+delim+"\n"+value+"\n"+delim+"\n")
}

// AppendSummary appends Markdown to the job summary file.
func AppendSummary(file, markdown string) error {
	if file == "" {
		return nil
	}
	if !strings.HasSuffix(markdown, "\n") {
		markdown += "\n"
	}
	return appendFile(file, markdown)
}

func appendFile(file, s string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", file, err)
	}
	return f.Close()
}

// Annotation is a workflow-command annotation (::error file=…,line=…::msg).
type Annotation struct {
	Level string // "error", "warning" or "notice"
	File  string
	Line  int
	Title string
	Msg   string
}

// String renders the workflow command, escaping the message and the
// properties as the runner expects, so no text can end the command early
// or start another one.
func (a Annotation) String() string {
	level := a.Level
	switch level {
	case "error", "warning", "notice":
	default:
		level = "notice"
	}
	var props []string
	if a.File != "" {
		props = append(props, "file="+escapeProperty(a.File))
	}
	if a.Line > 0 {
		props = append(props, "line="+strconv.Itoa(a.Line))
	}
	if a.Title != "" {
		props = append(props, "title="+escapeProperty(a.Title))
	}
	cmd := "::" + level
	if len(props) > 0 {
		cmd += " " + strings.Join(props, ",")
	}
	return cmd + "::" + escapeData(a.Msg)
}

// escapeData escapes a workflow command's message.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// escapeProperty escapes a workflow command's property value.
func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// unescapeProperty reverses escapeProperty (and escapeData); tests use it.
func unescapeProperty(s string) string {
	return strings.NewReplacer("%0D", "\r", "%0A", "\n", "%3A", ":", "%2C", ",", "%25", "%").Replace(s)
}
