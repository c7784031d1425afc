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
	"github.com/medcad/medcad/gitops/cas/castest"
)

// ciPipeline is a tiny pipeline whose model gets better with more data
// and a higher quality param; eval writes medcad eval's per-case JSON.
var ciPipeline = map[string]string{
	"medcad.toml": `[project]
name = "demo"

[[stage]]
name = "train"
run = "sh train.sh"
deps = ["data/*", "train.sh"]
params = ["train"]
outs = ["build/model"]

[[stage]]
name = "evaluate"
run = "sh eval.sh"
deps = ["train", "eval.sh"]
outs = ["build/eval"]

[params.train]
quality = 90

[[promote.gate]]
metric = "dice"
stat = "mean"
rule = "no-worse"
tolerance = 0.002
`,
	"train.sh": `n=0
for d in $(env | sed -n 's/^MEDCAD_INPUT_[A-Za-z0-9_]*=//p'); do n=$((n + $(find "$d" -type f | wc -l))); done
q=$(grep -o '"quality"[^0-9]*[0-9]*' "$MEDCAD_PARAMS" | grep -o '[0-9]*$')
echo "$q $n" > "$MEDCAD_OUT/model.txt"
`,
	"eval.sh": `read q n < "$MEDCAD_INPUT_TRAIN/model.txt"
awk -v q="$q" -v n="$n" 'BEGIN {
  out = ENVIRON["MEDCAD_OUT"] "/eval.json"
  printf "{\"tolerances_mm\": [], \"cases\": [" > out
  for (i = 1; i <= 4; i++) {
    d = 0.5 + q/1000 + n/100 + i/1000; h = 10 - n/10 + i/10
    printf "%s{\"case\": \"c-00000%d\", \"dice\": %.4f, \"iou\": %.4f, \"hd_mm\": %.2f, \"hd95_mm\": %.2f, \"assd_mm\": %.3f, \"masd_mm\": %.3f, \"nsd\": {}, \"truth_voxels\": 1000, \"pred_voxels\": 1000}", (i > 1 ? ", " : ""), i, d, d/(2-d), h+1, h, h/10, h/10 > out
    sd += d; sh += h
  }
  printf "]}\n" > out
  printf "{\"dice\": %.4f, \"hd95_mm\": %.3f}\n", sd/4, sh/4 > ENVIRON["MEDCAD_METRICS"]
}'
`,
}

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

// TestCIGitea runs the story with real git pushes, a real S3 server
// (versitygw) and a real GitHub-compatible API (Gitea): three
// ci pr runs on one pull request leave exactly one medcad comment with
// the latest report and a status with the verdict; merging and ci main
// promote v1, tag it and comment on the merged pull request; a worse
// pull request gets a failing status. The token never shows, not even in
// --debug logs.
func TestCIGitea(t *testing.T) {
	g := giteatest.Start(t)
	bin := buildMedcad(t)
	root := t.TempDir()
	authURL := g.CreateRepo(t, "demo")
	repoURL := g.URL + g.User + "/demo.git" // what CI's checkout has: no credentials
	key := "ci-secret-key-0123456789"
	// The store is a real S3 server (versitygw, checking signatures).
	s3 := castest.Versitygw(t)
	_, bucket := s3.NewBucket(t)
	remote := fmt.Sprintf("\n[remote]\nurl = \"s3://%s/demo\"\nendpoint = %q\npath_style = true\n", bucket, s3.Endpoint)

	proj := filepath.Join(root, "proj")
	medcad(t, bin, "", nil, "init", proj)
	for name, text := range ciPipeline {
		if name == "medcad.toml" {
			text += remote
		}
		if err := os.WriteFile(filepath.Join(proj, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitCmd(t, proj, "add", "-A")
	gitCmd(t, proj, "commit", "-qm", "pipeline")
	gitCmd(t, proj, "push", "-q", authURL, "main")
	scans := filepath.Join(root, "scans")
	os.MkdirAll(scans, 0o755)
	for i := range 3 {
		os.WriteFile(filepath.Join(scans, fmt.Sprintf("s%d.dcm", i)), []byte(fmt.Sprintf("scan %d", i)), 0o644)
	}
	env := s3Env()
	gitCmd(t, proj, "checkout", "-qb", "batch1")
	medcad(t, bin, proj, env, "data", "add", scans, "--name", "batch1")
	medcad(t, bin, proj, env, "data", "push")
	gitCmd(t, proj, "add", "-A")
	gitCmd(t, proj, "commit", "-qm", "add batch1")
	gitCmd(t, proj, "push", "-q", authURL, "batch1")
	pr := g.CreatePR(t, "demo", "batch1", "main", "Add batch1")

	runID := 7
	actions := func(event string, payload any) []string {
		ev := filepath.Join(t.TempDir(), "event.json")
		b, _ := json.Marshal(payload)
		os.WriteFile(ev, b, 0o644)
		return append(env, "GITHUB_ACTIONS=true", "GITHUB_REPOSITORY="+g.User+"/demo", "GITHUB_API_URL="+strings.TrimSuffix(g.API, "/"),
			"GITHUB_SERVER_URL="+strings.TrimSuffix(g.URL, "/"), "GITHUB_RUN_ID="+fmt.Sprint(runID), "GITHUB_TOKEN="+g.Token, "MEDCAD_SIGNING_KEY="+key,
			"GITHUB_EVENT_NAME="+event, "GITHUB_EVENT_PATH="+ev)
	}
	prEvent := func(n int, head string) map[string]any {
		return map[string]any{"number": n, "pull_request": map[string]any{"number": n,
			"head": map[string]any{"ref": head, "repo": map[string]any{"full_name": g.User + "/demo"}},
			"base": map[string]any{"ref": "main", "repo": map[string]any{"full_name": g.User + "/demo"}}}}
	}

	ci := filepath.Join(root, "ci1")
	gitCmd(t, root, "clone", "-q", "-b", "batch1", repoURL, ci)
	for run := 1; run <= 3; run++ {
		runID = 100 + run
		args := []string{"ci", "pr"}
		if run == 2 {
			args = []string{"--debug", "ci", "pr"}
		}
		out := medcad(t, bin, ci, actions("pull_request", prEvent(pr, "batch1")), args...)
		if !strings.Contains(out, "verdict: pass") {
			t.Fatalf("run %d:\n%s", run, out)
		}
		if strings.Contains(out, g.Token) || strings.Contains(out, key) {
			t.Fatalf("run %d printed the token or the key:\n%s", run, out)
		}
		if run == 2 && !strings.Contains(out, "github api") {
			t.Errorf("--debug logged no API calls:\n%s", out)
		}
	}
	var comments []giteaComment
	g.Do(t, "GET", fmt.Sprintf("repos/%s/demo/issues/%d/comments", g.User, pr), nil, &comments)
	var ours []giteaComment
	for _, c := range comments {
		if strings.HasPrefix(c.Body, "<!-- medcad:report check=medcad -->") {
			ours = append(ours, c)
		}
	}
	if len(ours) != 1 || !strings.Contains(ours[0].Body, "## ✅ medcad: promote bone") || !strings.Contains(ours[0].Body, "/medcad-assets/pr-1/dist-dice.png") ||
		!strings.Contains(ours[0].Body, "/actions/runs/103)") {
		t.Fatalf("%d medcad comments, want one with the third run's report: %+v", len(ours), ours)
	}
	head := gitCmd(t, proj, "ls-remote", authURL, "refs/heads/batch1")
	headSHA := strings.Fields(head)[0]
	var sts []giteaStatus
	g.Do(t, "GET", fmt.Sprintf("repos/%s/demo/statuses/%s", g.User, headSHA), nil, &sts)
	if len(sts) == 0 || sts[0].State != "success" || sts[0].Context != "medcad" {
		t.Fatalf("statuses of the candidate commit %s: %+v, want medcad success", headSHA, sts)
	}

	// Merge: ci main promotes v1, tags it and comments on the PR.
	mergeSHA := g.MergePR(t, "demo", pr)
	main1 := filepath.Join(root, "main1")
	gitCmd(t, root, "clone", "-q", "-b", "main", repoURL, main1)
	if got := gitCmd(t, main1, "rev-parse", "HEAD"); got != mergeSHA {
		t.Fatalf("main is at %s, want the merge %s", got, mergeSHA)
	}
	out := medcad(t, bin, main1, actions("push", map[string]any{"ref": "refs/heads/main", "after": mergeSHA}), "ci", "main")
	if !strings.Contains(out, "promoted bone v1 (tag models/bone/v1") {
		t.Fatalf("ci main:\n%s", out)
	}
	if tags := gitCmd(t, root, "ls-remote", "--tags", authURL); !strings.Contains(tags, "refs/tags/models/bone/v1") {
		t.Errorf("tags on Gitea: %s", tags)
	}
	if _, err := os.Stat(filepath.Join(s3.Dir, bucket, "demo", "aliases", "bone", "v1.json")); err != nil {
		t.Errorf("production alias not on the S3 server: %v", err)
	}
	comments = nil
	g.Do(t, "GET", fmt.Sprintf("repos/%s/demo/issues/%d/comments", g.User, pr), nil, &comments)
	if last := comments[len(comments)-1].Body; !strings.Contains(last, "promoted `bone` v1") || !strings.Contains(last, "dataset `batch1`") {
		t.Errorf("last comment on the merged PR: %q", last)
	}

	// A pull request with worse params: a failing status, exit code 3.
	gitCmd(t, proj, "fetch", "-q", authURL, "main")
	gitCmd(t, proj, "checkout", "-qB", "worse", "FETCH_HEAD")
	cfg, _ := os.ReadFile(filepath.Join(proj, "medcad.toml"))
	os.WriteFile(filepath.Join(proj, "medcad.toml"), []byte(strings.Replace(string(cfg), "quality = 90", "quality = 40", 1)), 0o644)
	gitCmd(t, proj, "commit", "-qam", "worse params")
	gitCmd(t, proj, "push", "-q", authURL, "worse")
	pr2 := g.CreatePR(t, "demo", "worse", "main", "Worse params")
	ci2 := filepath.Join(root, "ci2")
	gitCmd(t, root, "clone", "-q", "-b", "worse", repoURL, ci2)
	out, err := medcadErr(bin, ci2, actions("pull_request", prEvent(pr2, "worse")), "ci", "pr")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("ci pr on a worse model: %v, want exit 3\n%s", err, out)
	}
	head = gitCmd(t, proj, "ls-remote", authURL, "refs/heads/worse")
	sts = nil
	g.Do(t, "GET", fmt.Sprintf("repos/%s/demo/statuses/%s", g.User, strings.Fields(head)[0]), nil, &sts)
	if len(sts) == 0 || sts[0].State != "failure" {
		t.Fatalf("statuses of the worse candidate: %+v, want failure", sts)
	}
}
