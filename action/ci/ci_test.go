package ci_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/action/ci"
	"github.com/medcad/medcad/action/githubtest"
	"github.com/medcad/medcad/action/promote"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/internal/testenv"
)

const signingKey = "ci-secret-key-0123456789"

// publicKeyConfig is the [promote] public_key of signingKey, as a project
// commits it.
func publicKeyConfig(t *testing.T) string {
	t.Helper()
	s, err := promote.NewSigner(signingKey)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("\n[promote]\npublic_key = %q\n", s.Public().String())
}

// gitIdentity is the developer's identity for git on the command line.
var gitIdentity = []string{"GIT_AUTHOR_NAME=dm", "GIT_AUTHOR_EMAIL=dm@example.org", "GIT_COMMITTER_NAME=dm", "GIT_COMMITTER_EMAIL=dm@example.org"}

// gitCmd runs git in dir and fails t on error.
func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), gitIdentity...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// forge is where the story's repository lives: a git origin and the
// GitHub-shaped API the flows report to.
type forge struct {
	pushURL  string // what the developer pushes to (credentials included)
	cloneURL string // what CI's checkout has (no credentials)
	repo     string // owner/name
	apiURL   string
	token    string
	openPR   func(t *testing.T, head string) int
	merge    func(t *testing.T, n int, head, style string) string // the merge commit on main; style: merge, squash or rebase
	comments func(t *testing.T, n int) []string
	checks   func(t *testing.T, sha string) []string // medcad's check or status results on sha, oldest first
}

// story is a project with a pipeline pushed to a forge, a developer's
// clone and a store, and the jobs that CI runs on it.
type story struct {
	t      *testing.T
	f      forge
	root   string
	dev    string // the developer's clone
	remote string // MEDCAD_REMOTE
	runs   int    // CI clones made
	runID  int    // GITHUB_RUN_ID of the last job
	rerun  bool   // the next job re-attempts the last one (same run ID)
}

// newStory makes the project from the ci-pipeline fixture, with config
// appended to its medcad.toml, and pushes it to main; remote is the
// store's URL ("": a folder).
func newStory(t *testing.T, f forge, remote, config string) *story {
	t.Helper()
	testenv.LookPath(t, "git")
	root := t.TempDir()
	s := &story{t: t, f: f, root: root, dev: filepath.Join(root, "dev"), remote: remote}
	if s.remote == "" {
		s.remote = "file://" + filepath.Join(root, "store")
	}
	if _, err := gitops.Scaffold(s.dev, false); err != nil {
		t.Fatal(err)
	}
	testenv.CopyFixture(t, "projects/ci-pipeline", s.dev)
	config += publicKeyConfig(t)
	{
		cfg := filepath.Join(s.dev, gitops.ConfigFile)
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg, append(b, config...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitCmd(t, s.dev, "add", "-A")
	gitCmd(t, s.dev, "commit", "-qm", "pipeline")
	gitCmd(t, s.dev, "push", "-q", f.pushURL, "main")
	return s
}

// env is the environment of a pull request's job: the store, no signing
// key (only the promotion job has it, see mainEnv).
func (s *story) env(k string) string {
	if k == gitops.RemoteEnv {
		return s.remote
	}
	return ""
}

// mainEnv is the environment of the promotion job.
func (s *story) mainEnv(k string) string {
	if k == promote.KeyEnv {
		return signingKey
	}
	return s.env(k)
}

func (s *story) open(dir string) *gitops.Project {
	s.t.Helper()
	p, err := gitops.Open(context.Background(), dir, gitops.OpenOptions{Getenv: s.env})
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}

// branch starts branch from main on the developer's clone, adds the toy
// scans of each batch as datasets, applies edit to medcad.toml, pushes
// it and opens a pull request.
func (s *story) branch(name string, edit func(string) string, batches ...string) int {
	t := s.t
	t.Helper()
	gitCmd(t, s.dev, "fetch", "-q", s.f.pushURL, "main")
	gitCmd(t, s.dev, "checkout", "-qB", name, "FETCH_HEAD")
	p := s.open(s.dev)
	ctx := context.Background()
	for _, b := range batches {
		if _, err := p.AddData(ctx, gitops.AddOptions{Path: testenv.Fixture(t, "scans/"+b), Name: b}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.PushData(ctx, gitops.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		cfg := p.Path(gitops.ConfigFile)
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg, []byte(edit(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitCmd(t, s.dev, "add", "-A")
	gitCmd(t, s.dev, "commit", "-qm", "branch "+name)
	gitCmd(t, s.dev, "push", "-q", s.f.pushURL, name)
	return s.f.openPR(t, name)
}

// ciJob is one CI job: a fresh clone of branch, its Actions environment
// and event, and the API client.
type ciJob struct {
	p       *gitops.Project
	job     ci.Job
	opts    ci.Options
	log     *bytes.Buffer
	outputs string
	summary string
	res     *promote.Result // of a promotion job
}

func (s *story) job(branch, event string, ev *action.Event, token bool) *ciJob {
	t := s.t
	t.Helper()
	s.runs++
	if !s.rerun {
		s.runID++
	}
	s.rerun = false
	dir := filepath.Join(s.root, fmt.Sprintf("ci%d", s.runs))
	gitCmd(t, s.root, "clone", "-q", "-b", branch, s.f.cloneURL, dir)
	env := &action.Env{EventName: event, Repository: s.f.repo, APIURL: s.f.apiURL, ServerURL: "http://git.example",
		RunID: fmt.Sprint(100 + s.runID), OutputFile: dir + ".out", SummaryFile: dir + ".md"}
	j := &ciJob{p: s.open(dir), job: ci.Job{Env: env, Event: ev}, log: &bytes.Buffer{}, outputs: env.OutputFile, summary: env.SummaryFile}
	if token {
		env.Token = s.f.token
		c, err := action.NewClient(action.ClientOptions{APIURL: s.f.apiURL, Repository: s.f.repo, Token: s.f.token})
		if err != nil {
			t.Fatal(err)
		}
		j.job.GitHub = c
	}
	j.opts = ci.Options{Log: j.log, Getenv: s.env}
	j.opts.Repro.Exe = "medcad" // the pipeline runs shell scripts only
	j.opts.Repro.Jobs = 2
	return j
}

// prEvent is the pull request event fixture for pull request n of branch head.
func prEvent(t *testing.T, fixture string, n int, head, sha string) *action.Event {
	t.Helper()
	ev, err := action.ParseEvent("pull_request", testenv.ReadFixture(t, "events/"+fixture))
	if err != nil {
		t.Fatal(err)
	}
	ev.Number, ev.PullRequest.Number, ev.PullRequest.Head.Ref, ev.PullRequest.Head.SHA = n, n, head, sha
	return ev
}

func (s *story) pr(fixture string, n int, branch string, token bool) (*ciJob, *ci.PRResult, error) {
	s.t.Helper()
	j := s.job(branch, "pull_request", nil, token)
	head := gitCmd(s.t, j.p.Root, "rev-parse", "HEAD")
	j.job.Event = prEvent(s.t, fixture, n, branch, head)
	res, err := ci.PR(context.Background(), j.p, j.job, j.opts)
	return j, res, err
}

// main runs the job of a push to main in a fresh clone.
func (s *story) main() (*ciJob, error) {
	s.t.Helper()
	j := s.job("main", "push", nil, true)
	ev, err := action.ParseEvent("push", testenv.ReadFixture(s.t, "events/push_main.json"))
	if err != nil {
		s.t.Fatal(err)
	}
	ev.After = gitCmd(s.t, j.p.Root, "rev-parse", "HEAD")
	j.job.Event = ev
	j.job.Env.Ref = ev.Ref
	j.opts.Getenv = s.mainEnv
	j.res, err = ci.Main(context.Background(), j.p, j.job, j.opts)
	return j, err
}

// remoteRef is the commit ref points at on the forge's origin ("" when
// it has none).
func (s *story) remoteRef(ref string) string {
	out := gitCmd(s.t, s.root, "ls-remote", s.f.pushURL, ref)
	if out == "" {
		return ""
	}
	return strings.Fields(out)[0]
}

// showRemote is a file at ref of the origin.
func (s *story) showRemote(ref, path string) string {
	dir := filepath.Join(s.root, "inspect")
	if _, err := os.Stat(dir); err != nil {
		gitCmd(s.t, s.root, "init", "-q", dir)
	}
	gitCmd(s.t, dir, "fetch", "-q", s.f.pushURL, "+"+ref+":refs/inspect")
	return gitCmd(s.t, dir, "show", "refs/inspect:"+path)
}

// readOutputs parses a GITHUB_OUTPUT file (name=value and heredoc forms).
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
		name, delim, ok := strings.Cut(sc.Text(), "<<")
		if !ok {
			k, v, _ := strings.Cut(sc.Text(), "=")
			out[k] = v
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

// medcadComments are the bodies of medcad's sticky comments among all.
func medcadComments(all []string) []string {
	var ours []string
	for _, c := range all {
		if strings.HasPrefix(c, ci.StickyMarker("medcad")) {
			ours = append(ours, c)
		}
	}
	return ours
}

// fakeForge is a bare git origin on disk and the GitHub-shaped fake.
func fakeForge(t *testing.T, o githubtest.Options) (forge, *githubtest.Server) {
	gh := githubtest.Start(t, o)
	origin := filepath.Join(t.TempDir(), "origin.git")
	gitCmd(t, ".", "init", "-q", "--bare", "-b", "main", origin)
	work := filepath.Join(t.TempDir(), "merger")
	gitCmd(t, ".", "clone", "-q", origin, work)
	prs := 0
	f := forge{pushURL: origin, cloneURL: origin, repo: "org/demo", apiURL: gh.URL, token: "ghs_faketoken"}
	f.openPR = func(*testing.T, string) int { prs++; return prs }
	f.merge = func(t *testing.T, n int, head, style string) string {
		gitCmd(t, work, "fetch", "-q", "origin")
		prHead := gitCmd(t, work, "rev-parse", "origin/"+head)
		gitCmd(t, work, "push", "-q", "origin", fmt.Sprintf("%s:refs/pull/%d/head", prHead, n))
		gitCmd(t, work, "checkout", "-qB", "main", "origin/main")
		switch style {
		case "merge":
			gitCmd(t, work, "merge", "-q", "--no-ff", "origin/"+head, "-m", fmt.Sprintf("Merge pull request #%d", n))
		case "squash": // one commit, GitHub's default message lists every commit's
			gitCmd(t, work, "merge", "-q", "--squash", "origin/"+head)
			msgs := gitCmd(t, work, "log", "--format=* %s", "main..origin/"+head)
			gitCmd(t, work, "commit", "-q", "-m", fmt.Sprintf("Branch %s (#%d)\n\n%s", head, n, msgs))
		case "rebase":
			gitCmd(t, work, "checkout", "-qB", "rebasing", "origin/"+head)
			gitCmd(t, work, "rebase", "-q", "--force-rebase", "main")
			gitCmd(t, work, "checkout", "-q", "main")
			gitCmd(t, work, "merge", "-q", "--ff-only", "rebasing")
		default:
			t.Fatalf("merge style %q", style)
		}
		gitCmd(t, work, "push", "-q", "origin", "main")
		sha := gitCmd(t, work, "rev-parse", "HEAD")
		gh.AddMerged(githubtest.PullRequest{Number: n, MergeCommitSHA: sha, HeadSHA: prHead, MergedBy: "maintainer", Approvers: []string{"reviewer"}})
		return sha
	}
	f.comments = func(_ *testing.T, n int) []string {
		var out []string
		for _, c := range gh.Comments(n) {
			out = append(out, c.Body)
		}
		return out
	}
	f.checks = func(_ *testing.T, sha string) []string {
		var out []string
		for _, cr := range gh.CheckRuns() {
			if cr.HeadSHA == sha && cr.Name == "medcad" {
				out = append(out, cr.Conclusion)
			}
		}
		for _, st := range gh.Statuses() {
			if st.SHA == sha && st.Context == "medcad" {
				out = append(out, st.State)
			}
		}
		return out
	}
	return f, gh
}

// runStory is the GitOps story on forge f: a pull request adding data
// passes (run three times: one sticky comment, one check, the candidate
// committed by the first run and not again by its re-attempt), merging it
// promotes v1, and a pull request with worse params fails its gate.
func runStory(t *testing.T, s *story) {
	t.Helper()
	n := s.branch("batch1", nil, "batch1")
	var first *ci.PRResult
	for run := 1; run <= 3; run++ {
		s.rerun = run == 2
		j, res, err := s.pr("pull_request.json", n, "batch1", true)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, j.log)
		}
		if res.Verdict != "pass" || res.Fork || res.Model != "bone" || !strings.HasPrefix(res.Artifact, "sha256:") || res.Baseline != "" {
			t.Fatalf("run %d: %+v", run, res)
		}
		want := map[string]string{"verdict": "pass", "report-path": ".medcad/ci/report.md", "model-digest": res.Artifact}
		if diff := cmp.Diff(want, readOutputs(t, j.outputs)); diff != "" {
			t.Errorf("run %d: outputs (-want +got):\n%s", run, diff)
		}
		if sum, _ := os.ReadFile(j.summary); !strings.Contains(string(sum), "## ✅ medcad: promote bone") {
			t.Errorf("run %d: job summary:\n%s", run, sum)
		}
		switch run {
		case 1:
			first = res
			if res.Commit == "" || res.Commit != s.remoteRef("refs/heads/batch1") {
				t.Fatalf("candidate commit %q; batch1 on the origin is at %s", res.Commit, s.remoteRef("refs/heads/batch1"))
			}
		case 2:
			// The re-attempt's clone holds the candidate already: nothing new to commit.
			if res.Commit != "" || res.Artifact != first.Artifact {
				t.Errorf("re-attempt: commit %q artifact %s; want no commit and artifact %s", res.Commit, res.Artifact, first.Artifact)
			}
		case 3:
			if res.Artifact != first.Artifact {
				t.Errorf("new run: artifact %s, want %s (same data, same params)", res.Artifact, first.Artifact)
			}
		}
	}
	manifest := s.showRemote("refs/heads/batch1", gitops.ModelPath("bone"))
	for _, want := range []string{`result = "pass"`, first.Artifact} {
		if !strings.Contains(manifest, want) {
			t.Errorf("candidate manifest on the origin lacks %q:\n%s", want, manifest)
		}
	}
	ours := medcadComments(s.f.comments(t, n))
	if len(ours) != 1 || !strings.Contains(ours[0], "## ✅ medcad: promote bone") || !strings.Contains(ours[0], "/actions/runs/102)") {
		t.Fatalf("medcad comments on #%d: %q; want one, holding the third run's report", n, ours)
	}
	head := s.remoteRef("refs/heads/batch1")
	if got := s.f.checks(t, head); len(got) == 0 || got[len(got)-1] != "success" {
		t.Errorf("medcad checks on the candidate %.12s: %q, want success", head, got)
	}

	// Merged: main promotes v1 and tags it.
	s.f.merge(t, n, "batch1", "merge")
	jm, err := s.main()
	if err != nil {
		t.Fatalf("main: %v\n%s", err, jm.log)
	}
	if s.remoteRef("refs/tags/models/bone/v1") == "" {
		t.Fatal("no tag models/bone/v1 on the origin")
	}
	if c := s.f.comments(t, n); len(c) == 0 || !strings.Contains(c[len(c)-1], "promoted `bone` v1") {
		t.Errorf("last comment on the merged pull request: %q", c)
	}
	if r := jm.res.Record; r == nil || r.Version != 1 || r.PR != n || r.Artifact.String() != first.Artifact || r.Gate.Result != "pass" || r.Gate.Baseline != 0 {
		t.Errorf("production record: %+v", r)
	}

	// Worse params (and a loosened gate, which the base branch's gates
	// override): the gate fails, the result still comes back.
	n2 := s.branch("worse", func(cfg string) string {
		return strings.NewReplacer("quality = 90", "quality = 40", "tolerance = 0.002", "tolerance = 0.5").Replace(cfg)
	})
	j, res, err := s.pr("pull_request.json", n2, "worse", true)
	if !errors.Is(err, ci.ErrGatesFailed) {
		t.Fatalf("worse params: err = %v, want ErrGatesFailed\n%s", err, j.log)
	}
	if res == nil || res.Verdict != "fail" || len(res.Failed) != 1 || !strings.Contains(res.Failed[0], "dice mean no-worse (tolerance 0.002)") || res.Baseline != first.Artifact {
		t.Fatalf("worse params: %+v", res)
	}
	if got := readOutputs(t, j.outputs)["verdict"]; got != "fail" {
		t.Errorf("verdict output %q", got)
	}
	if got := s.f.checks(t, s.remoteRef("refs/heads/worse")); len(got) == 0 || got[len(got)-1] != "failure" {
		t.Errorf("medcad checks on the worse candidate: %q, want failure", got)
	}
	if ours := medcadComments(s.f.comments(t, n2)); len(ours) != 1 || !strings.Contains(ours[0], "## ❌ medcad: blocked bone") {
		t.Errorf("medcad comments on #%d: %q", n2, ours)
	}
}

// TestStoryFake runs the story on a bare git origin with the
// GitHub-shaped fake, once with the Checks API and once without (a
// commit status instead, as on Gitea or GitHub Enterprise without it).
func TestStoryFake(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts githubtest.Options
		kind string
	}{
		{"check runs", githubtest.Options{PerPage: 2}, action.KindCheckRun},
		{"statuses", githubtest.Options{NoChecks: true}, action.KindStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, gh := fakeForge(t, tc.opts)
			// Other people's comments come first, over more than one page.
			for i := range 3 {
				gh.AddComment(1, fmt.Sprintf("review note %d", i))
			}
			runStory(t, newStory(t, f, "", ""))
			if tc.kind == action.KindCheckRun && len(gh.Statuses()) != 0 {
				t.Errorf("statuses set although the Checks API answers: %+v", gh.Statuses())
			}
			for _, h := range gh.Auth() {
				if h != "token "+f.token {
					t.Fatalf("Authorization = %q", h)
				}
			}
			if got := len(gh.Comments(1)); got != 3+1+1 {
				t.Errorf("%d comments on #1, want the 3 reviews, the report and the promotion", got)
			}
		})
	}
}

// TestFork: a fork's pull request is evaluated without secrets: nothing
// is pushed, signed or commented even with a key and a token at hand;
// under fork_policy = "label" it waits for the label.
func TestFork(t *testing.T) {
	t.Parallel()
	f, gh := fakeForge(t, githubtest.Options{})
	s := newStory(t, f, "", "")
	n := s.branch("batch3", nil, "batch1")
	before := s.remoteRef("refs/heads/batch3")
	j, res, err := s.pr("pull_request_fork.json", n, "batch3", true)
	if err != nil {
		t.Fatalf("%v\n%s", err, j.log)
	}
	if res.Verdict != "pass" || !res.Fork || res.Commit != "" || res.Comment != "" || res.Check != "" {
		t.Errorf("fork: %+v", res)
	}
	if !strings.Contains(j.log.String(), "comes from a fork: evaluating without secrets") {
		t.Errorf("log:\n%s", j.log)
	}
	if after := s.remoteRef("refs/heads/batch3"); after != before {
		t.Errorf("the fork's branch moved: %s -> %s", before, after)
	}
	if s.remoteRef("refs/heads/medcad-assets") != "" || s.remoteRef("refs/medcad/runs/*") != "" {
		t.Error("a fork's evaluation pushed assets or run records")
	}
	if gh.Requests() != 0 {
		t.Errorf("%d API requests for a fork's pull request, want none", gh.Requests())
	}
	if _, err := os.Stat(filepath.Join(s.root, "store", "aliases")); err == nil {
		t.Error("a fork's evaluation wrote to the store's aliases")
	}

}

// TestForkLabel: under the base branch's fork_policy = "label", a fork's
// pull request waits until a maintainer sets the label; the labeled
// event then evaluates it (without secrets). The fork's own medcad.toml
// cannot change the policy.
func TestForkLabel(t *testing.T) {
	t.Parallel()
	f, gh := fakeForge(t, githubtest.Options{})
	s := newStory(t, f, "", "\n[github]\nfork_policy = \"label\"\n")
	// The fork lowers the policy in its own config.
	n := s.branch("batch3", func(c string) string {
		return strings.Replace(c, `fork_policy = "label"`, `fork_policy = "evaluate-only"`, 1)
	}, "batch1")
	run := func(labeled bool) (*ciJob, *ci.PRResult, error) {
		t.Helper()
		j := s.job("batch3", "pull_request", nil, true)
		if !strings.Contains(j.p.Config.GitHub.ForkPolicy, "evaluate-only") {
			t.Fatalf("the fork's checkout has fork_policy %q", j.p.Config.GitHub.ForkPolicy)
		}
		ev := prEvent(t, "pull_request_fork.json", n, "batch3", gitCmd(t, j.p.Root, "rev-parse", "HEAD"))
		if labeled {
			ev.Action = "labeled"
			if err := json.Unmarshal([]byte(`{"labels":[{"name":"`+ci.EvaluateLabel+`"}]}`), ev.PullRequest); err != nil {
				t.Fatal(err)
			}
		}
		j.job.Event = ev
		res, err := ci.PR(context.Background(), j.p, j.job, j.opts)
		return j, res, err
	}

	j, res, err := run(false)
	if err != nil || res.Verdict != "waiting" {
		t.Fatalf("no label: %+v, %v\n%s", res, err, j.log)
	}
	if _, err := os.Stat(j.p.Path("build")); err == nil {
		t.Error("the pipeline ran before the label was set")
	}
	if got := readOutputs(t, j.outputs)["verdict"]; got != "waiting" {
		t.Errorf("verdict output %q", got)
	}
	if !strings.Contains(j.log.String(), "[github] settings are ignored") {
		t.Errorf("log does not say the fork's settings are ignored:\n%s", j.log)
	}

	j, res, err = run(true)
	if err != nil {
		t.Fatalf("labeled: %v\n%s", err, j.log)
	}
	if res.Verdict != "pass" || !res.Fork || res.Commit != "" || res.Comment != "" {
		t.Errorf("labeled: %+v", res)
	}
	if !strings.Contains(j.log.String(), "comes from a fork: evaluating without secrets") {
		t.Errorf("log:\n%s", j.log)
	}
	if gh.Requests() != 0 {
		t.Errorf("%d API requests for a fork's pull request, want none", gh.Requests())
	}
}

// TestMainOtherBranch: a push to a branch other than the default one
// promotes nothing.
func TestMainOtherBranch(t *testing.T) {
	t.Parallel()
	f, _ := fakeForge(t, githubtest.Options{})
	s := newStory(t, f, "", "")
	j := s.job("main", "push", &action.Event{Ref: "refs/heads/feature"}, false)
	res, err := ci.Main(context.Background(), j.p, j.job, j.opts)
	if err != nil || res.Record != nil || res.Promoted {
		t.Fatalf("Main = %+v, %v; want nothing promoted", res, err)
	}
	if !strings.Contains(j.log.String(), "nothing to promote") {
		t.Errorf("log:\n%s", j.log)
	}
}
