package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/action/giteatest"
	"github.com/medcad/medcad/internal/testenv"
)

// gitCmd runs git in dir with a fixed identity and fails t on error.
func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=dm", "GIT_AUTHOR_EMAIL=dm@example.org", "GIT_COMMITTER_NAME=dm", "GIT_COMMITTER_EMAIL=dm@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

type giteaComment struct {
	ID   int64  `json:"id"`
	Body string `json:"body"`
}

// giteaStatus is a commit status as Gitea returns it (its state is
// named "status").
type giteaStatus struct {
	State   string `json:"status"`
	Context string `json:"context"`
}

// giteaProject pushes a project made by `medcad init` and the
// ci-pipeline fixture (plus files) to a new repository name on g, adds
// the batch1 scans on branch batch1 with store as MEDCAD_REMOTE, and
// opens a pull request from it. It returns the push URL (with the token)
// and the pull request's number.
func giteaProject(t *testing.T, g *giteatest.Server, bin, name, store string, files map[string]string) (string, int) {
	t.Helper()
	authURL := g.CreateRepo(t, name)
	proj := filepath.Join(t.TempDir(), "proj")
	medcad(t, bin, "", nil, "init", proj)
	testenv.CopyFixture(t, "projects/ci-pipeline", proj)
	for name, text := range files {
		p := filepath.Join(proj, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitCmd(t, proj, "add", "-A")
	gitCmd(t, proj, "commit", "-qm", "pipeline")
	gitCmd(t, proj, "push", "-q", authURL, "main")
	env := []string{"MEDCAD_REMOTE=" + store}
	gitCmd(t, proj, "checkout", "-qb", "batch1")
	medcad(t, bin, proj, env, "data", "add", testenv.Fixture(t, "scans/batch1"), "--name", "batch1")
	medcad(t, bin, proj, env, "data", "push")
	gitCmd(t, proj, "add", "-A")
	gitCmd(t, proj, "commit", "-qm", "add batch1")
	gitCmd(t, proj, "push", "-q", authURL, "batch1")
	return authURL, g.CreatePR(t, name, "batch1", "main", "Add batch1")
}

// TestGitea runs medcad's CI commands against one real Gitea (git over
// HTTP, comments, statuses): the binary's own ci commands, and the
// Action under act. What the flows decide is tested without the binary
// in action/ci (TestStoryGitea, TestStoryFake); here what only the
// command does: what it prints, and that the token and the key never
// show, not even in --debug logs.
func TestGitea(t *testing.T) {
	t.Parallel()
	g := giteatest.Start(t)
	bin := medcadBinary(t)
	t.Run("ci", func(t *testing.T) {
		t.Parallel()
		testCIGitea(t, g, bin)
	})
	t.Run("act", func(t *testing.T) {
		t.Parallel()
		testActionAct(t, g, bin)
	})
}

func testCIGitea(t *testing.T, g *giteatest.Server, bin string) {
	root := t.TempDir()
	store := "file://" + filepath.Join(root, "store")
	authURL, pr := giteaProject(t, g, bin, "demo", store, nil)
	repoURL := g.URL + g.User + "/demo.git" // what CI's checkout has: no credentials
	key := "ci-secret-key-0123456789"
	actions := func(event string, payload any) []string {
		ev := filepath.Join(t.TempDir(), "event.json")
		b, _ := json.Marshal(payload)
		os.WriteFile(ev, b, 0o644)
		return []string{"MEDCAD_REMOTE=" + store, "GITHUB_ACTIONS=true", "GITHUB_REPOSITORY=" + g.User + "/demo", "GITHUB_API_URL=" + strings.TrimSuffix(g.API, "/"),
			"GITHUB_SERVER_URL=" + strings.TrimSuffix(g.URL, "/"), "GITHUB_RUN_ID=7", "GITHUB_TOKEN=" + g.Token, "MEDCAD_SIGNING_KEY=" + key,
			"GITHUB_EVENT_NAME=" + event, "GITHUB_EVENT_PATH=" + ev}
	}
	ev, err := os.ReadFile(testenv.Fixture(t, "events/pull_request.json"))
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	json.Unmarshal(ev, &payload)
	payload["number"] = pr
	p := payload["pull_request"].(map[string]any)
	p["number"] = pr
	p["head"].(map[string]any)["ref"] = "batch1"

	ci := filepath.Join(root, "ci")
	gitCmd(t, root, "clone", "-q", "-b", "batch1", repoURL, ci)
	out := medcad(t, bin, ci, actions("pull_request", payload), "--debug", "ci", "pr")
	if !strings.Contains(out, "verdict: pass\nmodel-digest: sha256:") {
		t.Fatalf("ci pr:\n%s", out)
	}
	if strings.Contains(out, g.Token) || strings.Contains(out, key) {
		t.Fatalf("ci pr --debug printed the token or the key:\n%s", out)
	}
	if !strings.Contains(out, "github api") {
		t.Errorf("--debug logged no API calls:\n%s", out)
	}
	var comments []giteaComment
	g.Do(t, "GET", fmt.Sprintf("repos/%s/demo/issues/%d/comments", g.User, pr), nil, &comments)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "## ✅ medcad: promote bone") || !strings.Contains(comments[0].Body, "/medcad-assets/pr-1/dist-dice.png") {
		t.Fatalf("comments: %+v, want medcad's report", comments)
	}
	head := strings.Fields(gitCmd(t, root, "ls-remote", authURL, "refs/heads/batch1"))[0]
	var sts []giteaStatus
	g.Do(t, "GET", fmt.Sprintf("repos/%s/demo/statuses/%s", g.User, head), nil, &sts)
	if len(sts) == 0 || sts[0].State != "success" || sts[0].Context != "medcad" {
		t.Fatalf("statuses of the candidate commit %s: %+v, want medcad success", head, sts)
	}

	// Merge: ci main prints the promotion.
	mergeSHA := g.MergePR(t, "demo", pr)
	main1 := filepath.Join(root, "main1")
	gitCmd(t, root, "clone", "-q", "-b", "main", repoURL, main1)
	out = medcad(t, bin, main1, actions("push", map[string]any{"ref": "refs/heads/main", "after": mergeSHA}), "--debug", "ci", "main")
	if !strings.Contains(out, "promoted bone v1 (tag models/bone/v1") {
		t.Fatalf("ci main:\n%s", out)
	}
	if strings.Contains(out, g.Token) || strings.Contains(out, key) {
		t.Fatalf("ci main --debug printed the token or the key:\n%s", out)
	}
}
