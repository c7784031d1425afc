// Package ci holds the GitHub Actions jobs as functions: PR evaluates a
// pull request (data, repro, report against the base branch's model, gate
// verdict, candidate commit, sticky comment, check) and Main promotes what
// was merged. The medcad command and tests call them alike.
package ci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/action/promote"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/gitrepo"
	"github.com/medcad/medcad/internal/atomicfile"
	"github.com/medcad/medcad/reports"
	"github.com/medcad/medcad/stages"
)

// EvaluateLabel is the label a maintainer sets on a fork's pull request
// to have it evaluated under fork_policy = "label".
const EvaluateLabel = "medcad:evaluate"

// ErrGatesFailed means the candidate was evaluated and a promotion gate
// blocked it.
var ErrGatesFailed = errors.New("gates failed")

// StickyMarker starts medcad's one comment per pull request and check.
func StickyMarker(check string) string {
	return "<!-- medcad:report check=" + action.CodeSpan(check) + " -->"
}

// Job is the Actions step a flow runs in.
type Job struct {
	Env    *action.Env
	Event  *action.Event
	GitHub *action.Client // nil without a token: nothing is commented or checked
}

// Options configure the flows.
type Options struct {
	GitRemote string              // git remote to fetch from and push to ("": origin)
	NoPush    bool                // commit and push nothing to git
	ReportDir string              // project-relative folder of the report files ("": .medcad/ci)
	Repro     stages.ReproOptions // how the pipeline runs (Push is set by the flow)
	Log       io.Writer           // the job log: progress and notes
	Getenv    func(string) string // nil: os.Getenv (the signing key)
	// Cost is a Markdown line the report ends with, e.g. the GPU runner's
	// cost from 'medcad runner stop' (runner.CostLine); "": none.
	Cost string
}

func (o *Options) defaults() {
	if o.GitRemote == "" {
		o.GitRemote = "origin"
	}
	if o.ReportDir == "" {
		o.ReportDir = ".medcad/ci"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
}

// PRResult is what PR decided and where it put it.
type PRResult struct {
	Verdict    string   `json:"verdict"` // pass, fail or waiting
	Model      string   `json:"model"`
	Artifact   string   `json:"model_digest"`
	Baseline   string   `json:"baseline"`
	Report     string   `json:"report_path"`
	Signed     bool     `json:"signed"`
	Commit     string   `json:"commit,omitempty"` // the candidate commit pushed to the PR branch
	Comment    string   `json:"comment,omitempty"`
	Check      string   `json:"check,omitempty"` // check-run or status
	Fork       bool     `json:"fork"`
	MergeBase  string   `json:"merge_base"`
	BaseCommit string   `json:"base_commit"`
	Failed     []string `json:"failed_gates,omitempty"` // one line per failed gate
}

// modelAt reads the model manifest at commit c; nil when it has none.
func modelAt(c *object.Commit, name string) (*gitops.Model, error) {
	p := gitops.ModelPath(name)
	data, err := gitrepo.ReadFile(c, p, 1<<20)
	if errors.Is(err, gitrepo.ErrNoFile) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return gitops.ParseModel(p+"@"+c.Hash.String()[:12], data)
}

// PR evaluates the pull request of job: merge base with the base branch,
// data pull, repro (new results pushed to the store), report against the
// base branch's model, the verdict signed, the candidate manifest and
// lock committed to the PR branch, images to the assets branch, one sticky
// comment, a check, the job summary and step outputs. A fork's pull
// request is evaluated without secrets. A failed gate returns the result
// with an error wrapping ErrGatesFailed.
func PR(ctx context.Context, p *gitops.Project, job Job, opts Options) (*PRResult, error) {
	opts.defaults()
	env, log := job.Env, opts.Log
	pr := job.Event.PullRequest
	if pr == nil {
		return nil, fmt.Errorf("the %s event is not a pull request", env.EventName)
	}
	cfg := p.Config
	fork := pr.IsFork()
	repo, err := p.Repo()
	if err != nil {
		return nil, err
	}
	remote := gitrepo.Remote{Name: opts.GitRemote, Token: env.Token}
	if fork {
		remote.Token = "" // a fork's token is read-only; never hand it to git
	}

	// Base branch: its medcad.toml says how far the pull request is
	// trusted, never the pull request's own.
	tracking := plumbing.NewRemoteReferenceName(opts.GitRemote, pr.Base.Ref)
	if err := gitrepo.Fetch(ctx, repo, remote, "+refs/heads/"+pr.Base.Ref+":"+tracking.String(), "+"+gitops.RunRefPrefix+"*:"+gitops.RunRefPrefix+"*"); err != nil {
		return nil, err
	}
	baseTip, err := gitrepo.Resolve(repo, tracking.String())
	if err != nil {
		return nil, err
	}
	if cfg.GitHub, err = trustAt(p.Root, repo, baseTip); err != nil {
		return nil, err
	}
	if cfg.GitHub != p.Config.GitHub {
		fmt.Fprintf(log, "note: the pull request's [github] settings are ignored: those of %s apply\n", action.CodeSpan(pr.Base.Ref))
	}
	if fork && cfg.GitHub.ForkPolicy == "label" && !pr.HasLabel(EvaluateLabel) {
		// Untrusted pipeline code does not run (on GPU runners, say) until a
		// maintainer has read it and set the label.
		msg := fmt.Sprintf("pull request #%d comes from a fork: waiting for a maintainer to add the label %q (fork_policy = \"label\")", pr.Number, EvaluateLabel)
		fmt.Fprintln(log, msg)
		if err := action.AppendSummary(env.SummaryFile, "medcad: "+msg+"\n"); err != nil {
			return nil, err
		}
		return &PRResult{Verdict: "waiting", Fork: true}, action.SetOutput(env.OutputFile, "verdict", "waiting")
	}
	var key []byte
	if s := opts.Getenv(promote.KeyEnv); s != "" && !fork {
		if key, err = promote.Key(s); err != nil {
			return nil, err
		}
	}
	if fork {
		fmt.Fprintf(log, "pull request #%d comes from a fork: evaluating without secrets; nothing is pushed, signed or commented\n", pr.Number)
	}

	// Merge base and the baseline model.
	head, err := gitrepo.Resolve(repo, "HEAD")
	if err != nil {
		return nil, err
	}
	if pr.Head.SHA != "" && pr.Head.SHA != head.Hash.String() {
		fmt.Fprintf(log, "warning: HEAD %.12s is not the pull request's head %.12s: check out ref: ${{ github.event.pull_request.head.sha }} (see the scaffold workflow), or the candidate commit builds on a merge preview\n", head.Hash, pr.Head.SHA)
	}
	mb, err := gitrepo.MergeBase(head, baseTip)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "pull request #%d: %s onto %s (merge base %.12s)\n", pr.Number, action.CodeSpan(pr.Head.Ref), action.CodeSpan(pr.Base.Ref), mb.Hash)
	base, err := modelAt(baseTip, cfg.Project.Model)
	if err != nil {
		return nil, err
	}

	// Data, pipeline, new results to the store.
	if err := pullData(ctx, p, log); err != nil {
		return nil, err
	}
	ro := opts.Repro
	ro.Push = !fork
	out, err := stages.Reproduce(ctx, p, ro)
	if err != nil {
		return nil, err
	}
	if out.Saved {
		fmt.Fprintf(log, "run %s recorded\n", out.Run.ID)
	}
	if !fork {
		rep, err := p.PushData(ctx, gitops.TransferOptions{})
		if err != nil {
			return nil, fmt.Errorf("data push: %w", err)
		}
		fmt.Fprintf(log, "pushed %d datasets to %s: %d objects sent\n", rep.Datasets, rep.Remote, rep.Objects)
	}
	cand, err := gitops.ReadModel(p.Root, cfg.Project.Model)
	if err != nil {
		return nil, fmt.Errorf("after repro: %w", err)
	}

	// Report and gate verdict.
	assetDir := "pr-" + strconv.Itoa(pr.Number)
	in := reportInput{
		dir: p.Root, cfg: cfg, base: base, repo: repo, store: p.Store,
		baseRev: tracking.String(),
		baseRef: pr.Base.Ref + "@" + baseTip.Hash.String()[:12],
		candRef: pr.Head.Ref + "@" + head.Hash.String()[:12],
	}
	if in.remote, err = p.Remote(ctx); err != nil {
		p.Log.Debug("remote unavailable; evaluations from the local cache only", "err", err)
		in.remote = nil
	}
	// The gates of the base branch judge the pull request, so a PR cannot
	// loosen the rules it is judged by.
	if gates, err := (&reports.Loader{Dir: p.Root, Repo: repo}).PromoteAt(in.baseRev); err == nil {
		in.cfg.Promote = gates
	} else {
		p.Log.Debug("base branch has no readable medcad.toml; the PR's gates apply", "err", err)
	}
	if !fork && !opts.NoPush {
		in.imageBase = strings.TrimSuffix(env.ServerURL, "/") + "/" + env.Repository + "/raw/" + cfg.GitHub.AssetsBranch + "/" + assetDir + "/"
	}
	cand.Provenance = gitops.Provenance{CIRunURL: env.RunURL()}
	if err := cand.Write(p.Root); err != nil { // the report reads it with its run URL
		return nil, err
	}
	in.cost = opts.Cost
	rep, err := buildReport(ctx, in)
	if err != nil {
		return nil, err
	}
	res := &PRResult{Verdict: "fail", Model: cand.Name, Artifact: gitops.DigestText(cand.Artifact), Fork: fork, MergeBase: mb.Hash.String(), BaseCommit: baseTip.Hash.String(), Failed: rep.failed}
	if rep.pass {
		res.Verdict = "pass"
	}
	cand.Gate = gitops.Verdict{Result: res.Verdict}
	if base != nil {
		cand.Gate.Baseline = base.Artifact
		res.Baseline = gitops.DigestText(base.Artifact)
	}
	if key != nil {
		run, err := gitops.LoadRun(repo, cand.Run)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", gitops.ModelPath(cand.Name), err)
		}
		promote.SignRun(key, run)
		if err := gitops.SaveRun(repo, run); err != nil {
			return nil, err
		}
		promote.SignModel(key, cand)
		res.Signed = true
	} else if !fork {
		fmt.Fprintf(log, "warning: %s is not set: the candidate is not signed and cannot be promoted\n", promote.KeyEnv)
	}
	if err := cand.Write(p.Root); err != nil {
		return nil, err
	}
	reportDir := p.Path(opts.ReportDir)
	if err := os.MkdirAll(reportDir, 0o755); err != nil {
		return nil, err
	}
	res.Report = filepath.ToSlash(filepath.Join(opts.ReportDir, "report.md"))
	if err := atomicfile.WriteFile(filepath.Join(reportDir, "report.md"), []byte(rep.markdown), 0o644); err != nil {
		return nil, err
	}

	// Candidate onto the PR branch, images onto the assets branch.
	sha := pr.Head.SHA
	if sha == "" {
		sha = head.Hash.String()
	}
	if !fork && !opts.NoPush {
		runRef := gitops.RunRefPrefix + cand.Run
		if _, err := repo.Reference(plumbing.ReferenceName(runRef), false); err == nil {
			if err := gitrepo.Push(ctx, repo, remote, "+"+runRef+":"+runRef); err != nil {
				return nil, err
			}
		}
		files := map[string][]byte{}
		for _, rel := range []string{gitops.ModelPath(cand.Name), gitops.LockFile} {
			data, err := os.ReadFile(p.Path(rel))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			files[rel] = data
		}
		msg := fmt.Sprintf("medcad: candidate %s, gate %s\n\nRun %s, artifact %s.\n\n[skip ci]\n", cand.Name, res.Verdict, cand.Run, gitops.DigestText(cand.Artifact))
		h, pushed, err := gitrepo.CommitToBranch(ctx, repo, remote, pr.Head.Ref, head, files, msg)
		if err != nil {
			return nil, err
		}
		sha = h.String()
		if pushed {
			res.Commit = sha
			fmt.Fprintf(log, "committed %s and %s to %s (%.12s)\n", gitops.ModelPath(cand.Name), gitops.LockFile, action.CodeSpan(pr.Head.Ref), h)
		}
		if len(rep.images) > 0 {
			imgs := map[string][]byte{}
			for _, im := range rep.images {
				imgs[assetDir+"/"+im.name] = im.png
			}
			if _, _, err := gitrepo.CommitToBranch(ctx, repo, remote, cfg.GitHub.AssetsBranch, nil, imgs, "medcad: report images of #"+strconv.Itoa(pr.Number)); err != nil {
				return nil, err
			}
		}
	}

	// Comment, check, summary, outputs.
	if gh := job.GitHub; gh != nil && !fork {
		body := rep.markdown
		if u := env.RunURL(); u != "" {
			body += "\n[CI run](" + u + ")\n"
		}
		sticky, err := gh.UpsertComment(ctx, pr.Number, StickyMarker(cfg.GitHub.CheckName), body)
		if err != nil {
			return nil, err
		}
		res.Comment = sticky.Comment.URL
		title := "gates passed"
		if !rep.pass {
			title = "gates failed: " + strings.Join(rep.failed, "; ")
		}
		kind, err := gh.SetCheck(ctx, action.Check{Name: cfg.GitHub.CheckName, SHA: sha, Pass: rep.pass, Title: title, Summary: rep.markdown, DetailsURL: env.RunURL()})
		if err != nil {
			return nil, err
		}
		res.Check = kind
	} else if gh == nil {
		fmt.Fprintln(log, "no GITHUB_TOKEN: the report goes to the job summary only")
	}
	if err := action.AppendSummary(env.SummaryFile, rep.markdown); err != nil {
		return nil, err
	}
	for _, kv := range [][2]string{{"verdict", res.Verdict}, {"report-path", res.Report}, {"model-digest", gitops.DigestText(cand.Artifact)}} {
		if err := action.SetOutput(env.OutputFile, kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	if !rep.pass {
		return res, fmt.Errorf("%s: %d gate(s) failed: %s: %w", gitops.ModelPath(cand.Name), len(rep.failed), strings.Join(rep.failed, "; "), ErrGatesFailed)
	}
	return res, nil
}

// trustAt reads the [github] section of medcad.toml at the base
// branch's tip c: fork_policy, the check's name (and so the sticky
// comment's marker) and the assets branch that PR pushes images to are
// the base's, so a pull request cannot raise its own trust, pass itself
// off as another check or aim a push at a branch it chooses. A base
// without medcad.toml gets the defaults, never the pull request's
// settings; a base whose medcad.toml does not parse is an error.
func trustAt(dir string, repo *git.Repository, c *object.Commit) (gitops.GitHub, error) {
	rel := gitops.ConfigFile
	if wt, err := repo.Worktree(); err == nil {
		root, err1 := filepath.Abs(wt.Filesystem.Root())
		abs, err2 := filepath.Abs(dir)
		if r, err := filepath.Rel(root, abs); err1 == nil && err2 == nil && err == nil && r != "." {
			rel = filepath.ToSlash(filepath.Join(r, gitops.ConfigFile))
		}
	}
	data, err := gitrepo.ReadFile(c, rel, 1<<20)
	if errors.Is(err, gitrepo.ErrNoFile) {
		return gitops.Default().GitHub, nil
	}
	if err != nil {
		return gitops.GitHub{}, fmt.Errorf("the base branch's %s: %w", rel, err)
	}
	cfg, err := gitops.ParseConfig(rel+"@"+c.Hash.String()[:12], data)
	if err != nil {
		return gitops.GitHub{}, fmt.Errorf("the base branch's config: %w", err)
	}
	return cfg.GitHub, nil
}

// pullData fetches and checks out every dataset of the project.
func pullData(ctx context.Context, p *gitops.Project, log io.Writer) error {
	rep, err := p.PullData(ctx, gitops.TransferOptions{})
	if err != nil {
		return fmt.Errorf("data pull: %w", err)
	}
	fmt.Fprintf(log, "pulled %d datasets from %s: %d objects received, %d already cached\n", rep.Datasets, rep.Remote, rep.Objects, rep.Skipped)
	return nil
}

// Main runs on a push to the default branch (or a manual dispatch) and
// promotes the merged model; a push to another branch promotes nothing.
func Main(ctx context.Context, p *gitops.Project, job Job, opts Options) (*promote.Result, error) {
	opts.defaults()
	if job.Env.EventName == "push" && job.Event.Ref != "refs/heads/"+p.Config.Project.DefaultBranch {
		fmt.Fprintf(opts.Log, "push to %s, not to %s: nothing to promote\n", job.Event.Ref, p.Config.Project.DefaultBranch)
		return &promote.Result{}, nil
	}
	return promote.Run(ctx, p, promote.RunOptions{
		GitRemote: opts.GitRemote, NoPush: opts.NoPush, Env: job.Env, GitHub: job.GitHub,
		Log: opts.Log, Key: opts.Getenv(promote.KeyEnv),
	})
}
