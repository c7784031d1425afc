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
	"github.com/medcad/medcad/gitops/cas"
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
	Verdict         string   `json:"verdict"` // pass, fail or waiting
	Model           string   `json:"model"`
	Artifact        string   `json:"model_digest"`
	Baseline        string   `json:"baseline"`         // the production model compared with ("": none)
	BaselineVersion int      `json:"baseline_version"` // its version (0: none)
	Report          string   `json:"report_path"`
	Commit          string   `json:"commit,omitempty"` // the candidate commit pushed to the PR branch
	Comment         string   `json:"comment,omitempty"`
	Check           string   `json:"check,omitempty"` // check-run or status
	Fork            bool     `json:"fork"`
	MergeBase       string   `json:"merge_base"`
	BaseCommit      string   `json:"base_commit"`
	Failed          []string `json:"failed_gates,omitempty"` // one line per failed gate
	// What the job read from the remote store, and the most the project
	// folder (work tree and cache) grew by.
	BytesFetched int64 `json:"bytes_fetched"`
	PeakDisk     int64 `json:"peak_disk"`
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
// a lazy repro that fetches only what the stages that run read (new
// results pushed to the store), report against the
// base branch's model, the verdict signed, the candidate manifest and
// lock committed to the PR branch, images to the assets branch, one sticky
// comment, a check, the job summary and step outputs. A fork's pull
// request is evaluated without secrets. A failed gate returns the result
// with an error wrapping ErrGatesFailed.
func PR(ctx context.Context, p *gitops.Project, job Job, opts Options) (*PRResult, error) {
	opts.defaults()
	env, log := job.Env, opts.Log
	pr := job.Event.PullRequest
	queue := job.Event.MergeGroup != nil // a merge queue's group: check it, change nothing
	if queue {
		pr = job.Event.MergeGroup.PullRequest()
	}
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
	if opts.Getenv(promote.KeyEnv) != "" {
		fmt.Fprintf(log, "warning: %s is set in the pull request's job: remove it there; only the promotion job signs, and stages never see it\n", promote.KeyEnv)
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
	// The gates and the public key of the base branch judge the pull
	// request, so a PR cannot loosen the rules it is judged by.
	baseRules, err := (&reports.Loader{Dir: p.Root, Repo: repo}).PromoteAt(tracking.String())
	if err != nil {
		p.Log.Debug("base branch has no readable medcad.toml; the PR's gates apply", "err", err)
		baseRules = cfg.Promote
	}
	store, err := p.Remote(ctx)
	if err != nil {
		p.Log.Debug("remote unavailable; evaluations from the local cache only, no production model to compare with", "err", err)
		store = nil
	}
	prod, err := production(ctx, store, cfg.Project.Model, baseRules.PublicKey)
	if err != nil {
		return nil, err
	}
	var base *gitops.Model
	if prod != nil {
		c, err := gitrepo.Resolve(repo, prod.ManifestCommit)
		if err != nil {
			return nil, fmt.Errorf("production %s v%d: %w", prod.Model, prod.Version, err)
		}
		if base, err = modelAt(c, cfg.Project.Model); err != nil {
			return nil, err
		}
		if base == nil || base.Artifact != prod.Artifact {
			return nil, fmt.Errorf("production %s v%d: the manifest at %.12s is not its model", prod.Model, prod.Version, prod.ManifestCommit)
		}
	}

	// Pipeline, new results to the store. Nothing is pulled ahead: the
	// stages that run fetch the cases and outs they read (lazy), so a
	// batch costs its own bytes, not the project's.
	fetched := p.Fetched().Bytes()
	ro := opts.Repro
	ro.Push, ro.Lazy, ro.Measure = !fork, true, true
	ro.CacheNamespace = "pr-" + strconv.Itoa(pr.Number) // main never restores it; promotion adopts the merged lock
	out, err := stages.Reproduce(ctx, p, ro)
	if err != nil {
		return nil, err
	}
	disk := stages.NewDiskPeak(p.Root)
	measured := func(res *PRResult) {
		res.BytesFetched = p.Fetched().Bytes() - fetched
		res.PeakDisk = out.PeakDisk + disk.Sample() // at most: the report's growth on the repro's peak
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
		dir: p.Root, cfg: cfg, base: base, repo: repo, store: p.Store, remote: store,
		candRef: pr.Head.Ref + "@" + head.Hash.String()[:12],
	}
	in.cfg.Promote = baseRules
	if prod != nil {
		in.baseRev = prod.ManifestCommit
		in.baseRef = fmt.Sprintf("production v%d (%s)", prod.Version, promote.Tag(prod.Model, prod.Version))
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
	measured(res)
	if rep.pass {
		res.Verdict = "pass"
	}
	cand.Gate = gitops.Verdict{Result: res.Verdict}
	if prod != nil {
		cand.Gate.Baseline = prod.Artifact
		res.Baseline = gitops.DigestText(prod.Artifact)
		res.BaselineVersion = prod.Version
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
	if !fork && !opts.NoPush && !queue {
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
		msg := fmt.Sprintf("medcad: candidate %s, gate %s\n\nRun %s, artifact %s.\n", cand.Name, res.Verdict, cand.Run, gitops.DigestText(cand.Artifact))
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
		if !queue { // a merge queue's group has no conversation: its check is what the queue waits for
			body := rep.markdown
			if u := env.RunURL(); u != "" {
				body += "\n[CI run](" + u + ")\n"
			}
			sticky, err := gh.UpsertComment(ctx, pr.Number, StickyMarker(cfg.GitHub.CheckName), body)
			if err != nil {
				return nil, err
			}
			res.Comment = sticky.Comment.URL
		}
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
	rel := gitops.RepoPath(repo, dir, gitops.ConfigFile)
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

// Main runs on a push to the default branch (or a manual dispatch of the
// default branch, which with the inputs rollback and reason rolls back)
// and promotes the merged model. A push to another branch promotes
// nothing; any other event on another branch is refused.
func Main(ctx context.Context, p *gitops.Project, job Job, opts Options) (*promote.Result, error) {
	opts.defaults()
	ref := job.Env.Ref
	if ref == "" {
		ref = job.Event.Ref
	}
	want := "refs/heads/" + p.Config.Project.DefaultBranch
	if ref != want {
		if job.Env.EventName == "push" {
			fmt.Fprintf(opts.Log, "push to %s, not to %s: nothing to promote\n", ref, p.Config.Project.DefaultBranch)
			return &promote.Result{}, nil
		}
		return nil, &promote.RefusedError{File: ref, Err: promote.ErrNotDefault, Detail: fmt.Sprintf("%s on %s, not %s", job.Env.EventName, ref, want)}
	}
	ro := promote.RunOptions{
		GitRemote: opts.GitRemote, NoPush: opts.NoPush, Env: job.Env, GitHub: job.GitHub,
		Log: opts.Log, Key: opts.Getenv(promote.KeyEnv), Before: job.Event.Before,
	}
	input := func(k string) string {
		if v, ok := job.Event.Inputs[k]; ok && v != nil {
			return strings.TrimSpace(fmt.Sprint(v))
		}
		return ""
	}
	if rb := input("rollback"); job.Env.EventName == "workflow_dispatch" && rb != "" {
		v, err := strconv.Atoi(strings.TrimPrefix(rb, "v"))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("workflow input rollback %q: want a version such as v2", rb)
		}
		ro.Rollback, ro.Reason, ro.By = v, input("reason"), opts.Getenv("GITHUB_ACTOR")
	}
	return promote.Run(ctx, p, ro)
}

// production is the production record of model on the store, verified
// with the base branch's public key; nil when nothing was promoted yet or
// there is no store.
func production(ctx context.Context, store cas.Backend, model, publicKey string) (*promote.Record, error) {
	if store == nil {
		return nil, nil
	}
	if publicKey == "" {
		// Without a key nothing can be verified; a store that holds
		// records anyway is an error, an empty one just a first model.
		found := false
		err := store.List(ctx, "aliases/"+model+"/", func(string, int64) error { found = true; return nil })
		if err != nil || !found {
			return nil, err
		}
		return nil, promote.ErrNoPublicKey
	}
	pub, err := promote.ParsePublicKey(publicKey)
	if err != nil {
		return nil, fmt.Errorf("the base branch's medcad.toml: promote.public_key: %w", err)
	}
	chain, err := promote.LoadChain(ctx, store, model, pub)
	if err != nil {
		return nil, err
	}
	return chain.Production(), nil
}
