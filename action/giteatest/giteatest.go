// Package giteatest starts a throwaway Gitea on 127.0.0.1 for tests: a
// real GitHub-compatible API (comments, statuses, pull requests) and git
// over HTTP, with an admin user and an access token.
//
// Gitea v1.26.0 is built by the README's test command (scripts/test-deps.sh);
// without it the tests that need it skip, or fail under
// MEDCAD_REQUIRE_SERVERS=1. Written by hand: the app.ini and the admin
// commands are Gitea's documented interface.
package giteatest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medcad/medcad/internal/testenv"
)

// Server is a running Gitea.
type Server struct {
	URL   string // http://127.0.0.1:PORT/
	API   string // URL + "api/v1/"
	User  string
	Token string
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Options change the Gitea that StartWith starts.
type Options struct {
	Actions bool // [actions] ENABLED: the runner API and its registration protocol
}

// Start starts Gitea for the test and stops it at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin := testenv.LookPath(t, "gitea")
	testenv.LookPath(t, "git")
	static := staticRoot(t)
	dir := t.TempDir()
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	ini := fmt.Sprintf(`APP_NAME = medcad-test
RUN_MODE = prod
RUN_USER = %s
WORK_PATH = %s
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true

[server]
HTTP_ADDR = 127.0.0.1
HTTP_PORT = %d
ROOT_URL = %s
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
APP_DATA_PATH = %s/data
STATIC_ROOT_PATH = %s

[database]
DB_TYPE = sqlite3
PATH = %s/gitea.db

[repository]
ROOT = %s/repos
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = %s
INTERNAL_TOKEN = %s

[oauth2]
JWT_SECRET = %s

[service]
DISABLE_REGISTRATION = true

[log]
MODE = file
LEVEL = warn
ROOT_PATH = %s/log

[cron]
ENABLED = false

[actions]
ENABLED = %t

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[mailer]
ENABLED = false

[api]
DEFAULT_PAGING_NUM = 30
MAX_RESPONSE_ITEMS = 50
`, currentUser(), dir, port, url, dir, static, dir, dir, randHex(16), "eyJ"+randHex(40), randHex(22), dir, o.Actions)
	conf := filepath.Join(dir, "app.ini")
	if err := os.WriteFile(conf, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GITEA_WORK_DIR="+dir, "HOME="+dir)
	gitea := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--config", conf, "--work-path", dir}, args...)...)
		cmd.Env = env
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gitea %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	gitea("migrate")
	user, pass := "medcad-admin", randHex(12)
	gitea("admin", "user", "create", "--username", user, "--password", pass, "--email", "admin@example.org", "--admin", "--must-change-password=false")
	tok := strings.TrimSpace(gitea("admin", "user", "generate-access-token", "--username", user, "--token-name", "ci", "--scopes", "all", "--raw"))
	if i := strings.LastIndexByte(tok, '\n'); i >= 0 {
		tok = strings.TrimSpace(tok[i+1:])
	}
	ctx, cancel := context.WithCancel(context.Background())
	web := exec.CommandContext(ctx, bin, "--config", conf, "--work-path", dir, "web")
	web.Env, web.Dir = env, dir
	logf, _ := os.Create(filepath.Join(dir, "web.log"))
	web.Stdout, web.Stderr = logf, logf
	if err := web.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		web.Wait()
		logf.Close()
	})
	s := &Server{URL: url, API: url + "api/v1/", User: user, Token: tok}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.API + "version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "web.log"))
			t.Fatalf("gitea did not start: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// staticRoot is Gitea's source folder, whose options/ (locales, labels,
// licences) a binary built without the bindata tag reads at run time:
// the module that scripts/test-deps.sh built it from.
func staticRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "code.gitea.io", "gitea@"+Version)
	if _, err := os.Stat(filepath.Join(dir, "options", "locale")); err != nil {
		testenv.Missing(t, "gitea's source module "+Version+" not in the module cache (the README's test command downloads it)")
	}
	return dir
}

// Version is the Gitea release the tests run.
const Version = "v1.26.0"

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// call calls the API as the admin and returns the status and body.
func (s *Server) call(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.API+strings.TrimPrefix(path, "/"), rd)
	req.Header.Set("Authorization", "token "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// Do calls the API as the admin and decodes the JSON answer into out (nil:
// discard). It fails t on a status outside 2xx.
func (s *Server) Do(t testing.TB, method, path string, body, out any) {
	t.Helper()
	code, data := s.call(t, method, path, body)
	if code/100 != 2 {
		t.Fatalf("%s %s: %d\n%s", method, path, code, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, data)
		}
	}
}

// waitFor polls an API path until it answers 200 (at most 30 s).
func (s *Server) waitFor(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", s.API+path, nil)
		req.Header.Set("Authorization", "token "+s.Token)
		resp, err := http.DefaultClient.Do(req)
		status := ""
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			status = resp.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("gitea: %s never appeared (%s %v)", path, status, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// CreateRepo creates an empty repository of the admin and returns its
// clone URL with the token in it (for git on the command line).
func (s *Server) CreateRepo(t testing.TB, name string) string {
	t.Helper()
	s.Do(t, "POST", "user/repos", map[string]any{"name": name, "default_branch": "main", "auto_init": false}, nil)
	return strings.Replace(s.URL, "http://", "http://"+s.User+":"+s.Token+"@", 1) + s.User + "/" + name + ".git"
}

// CreatePR opens a pull request from head into base and returns its number.
func (s *Server) CreatePR(t testing.TB, repo, head, base, title string) int {
	t.Helper()
	// Gitea learns about pushed branches from its post-receive hook,
	// asynchronously: wait until it knows both.
	for _, b := range []string{head, base} {
		s.waitFor(t, "repos/"+s.User+"/"+repo+"/branches/"+b)
	}
	var pr struct {
		Number int `json:"number"`
	}
	s.Do(t, "POST", "repos/"+s.User+"/"+repo+"/pulls", map[string]any{"head": head, "base": base, "title": title}, &pr)
	return pr.Number
}

// MergePR merges pull request n with a merge commit and returns it.
func (s *Server) MergePR(t testing.TB, repo string, n int) string {
	t.Helper()
	return s.MergePRWith(t, repo, n, "merge")
}

// MergePRWith merges pull request n of repo the way style says (merge,
// squash, rebase or rebase-merge) and returns the merge commit's SHA as
// Gitea reports it.
func (s *Server) MergePRWith(t testing.TB, repo string, n int, style string) string {
	t.Helper()
	// Gitea checks mergeability asynchronously after each push and
	// answers 405 "try again later" until it is done.
	path := "repos/" + s.User + "/" + repo + "/pulls/" + strconv.Itoa(n)
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := s.call(t, "POST", path+"/merge", map[string]any{"Do": style})
		if code/100 == 2 {
			break
		}
		if code != http.StatusMethodNotAllowed || time.Now().After(deadline) {
			t.Fatalf("merge #%d: %d %s", n, code, body)
		}
		time.Sleep(300 * time.Millisecond)
	}
	var pr struct {
		MergeCommitSHA string `json:"merge_commit_sha"`
	}
	s.Do(t, "GET", "repos/"+s.User+"/"+repo+"/pulls/"+strconv.Itoa(n), nil, &pr)
	return pr.MergeCommitSHA
}
