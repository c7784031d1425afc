package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
	"github.com/spf13/cobra"
)

// checkError is a refusal or a failed gate: its message is the cause's,
// its exit code 3.
type checkError struct{ err error }

func (e checkError) Error() string   { return e.err.Error() }
func (e checkError) Unwrap() []error { return []error{e.err, errCheckFailed} }

// sha256ID is the digest of data as medcad writes digests.
func sha256ID(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// stickyMarker starts medcad's one comment per pull request and check.
func stickyMarker(check string) string { return "<!-- medcad:report check=" + mdCode(check) + " -->" }

// evaluateLabel is the label a maintainer sets on a fork's pull request
// to have it evaluated under fork_policy = "label".
const evaluateLabel = "medcad:evaluate"

// promotedMarker starts the comment a promotion posts on the merged PR.
const promotedMarker = "<!-- medcad:promoted -->"

type ciOptions struct {
	remote string // git remote
	noPush bool   // commit and push nothing to git
	out    string // report folder
}

func newCICmd(a *app) *cobra.Command {
	var opts ciOptions
	cmd := &cobra.Command{
		Use:   "ci",
		Short: "Run medcad's GitHub Actions jobs: evaluate a pull request, promote on merge",
		Long: `Run medcad's GitHub Actions jobs (the medcad Action calls these).

'ci pr' evaluates a pull request: merge base with the base branch, data
pull, repro (new results pushed to the store), report against the base
branch's model, gate verdict signed with MEDCAD_SIGNING_KEY, the candidate
manifest and medcad.lock committed to the PR branch, report images to the
assets branch, one sticky PR comment, a check run (or commit status), the
job summary and the step outputs verdict, report-path and model-digest.
Pull requests from forks are evaluated without secrets: nothing is
pushed, signed or commented, the report goes to the job summary.

'ci main' runs on a push to the default branch and promotes the merged
model (see 'medcad promote').

Both read the GITHUB_* environment of an Actions step; GITHUB_TOKEN (the
Action's github-token input) is used for the API and git pushes and is
never printed.`,
	}
	cmd.PersistentFlags().StringVar(&opts.remote, "git-remote", "origin", "git `REMOTE` to fetch from and push to")
	cmd.PersistentFlags().BoolVar(&opts.noPush, "no-push", false, "push nothing to git (no candidate commit, assets or tags)")
	cmd.PersistentFlags().StringVar(&opts.out, "report-dir", ".medcad/ci", "folder the report files are written to")
	cmd.AddCommand(&cobra.Command{
		Use:   "pr",
		Short: "Evaluate the pull request of this workflow run and report on it",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runCIPR(cmd.Context(), a, opts) },
	}, &cobra.Command{
		Use:   "main",
		Short: "Promote the model merged into the default branch",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runCIMain(cmd.Context(), a, opts) },
	})
	return cmd
}

// loadActions reads the Actions environment and event, or says how to run.
func loadActions(a *app, cmd string) (*action.Env, *action.Event, error) {
	env, err := action.LoadEnv(os.Getenv)
	if errors.Is(err, action.ErrNotActions) {
		return nil, nil, usagef("%s runs inside a GitHub Actions step (GITHUB_ACTIONS=true); locally use 'medcad repro' and 'medcad promote'", cmd)
	}
	if err != nil {
		return nil, nil, err
	}
	a.log.Debug("actions environment", "env", env.String())
	ev, err := env.ReadEvent()
	if err != nil {
		return nil, nil, err
	}
	return env, ev, nil
}

func (a *app) githubClient(env *action.Env) (*action.Client, error) {
	return action.NewClient(action.ClientOptions{APIURL: env.APIURL, Repository: env.Repository, Token: env.Token, Log: a.log})
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

type ciResult struct {
	Verdict    string `json:"verdict"`
	Model      string `json:"model"`
	Artifact   string `json:"model_digest"`
	Baseline   string `json:"baseline"`
	Report     string `json:"report_path"`
	Signed     bool   `json:"signed"`
	Commit     string `json:"commit,omitempty"` // the candidate commit pushed to the PR branch
	Comment    string `json:"comment,omitempty"`
	Check      string `json:"check,omitempty"` // check-run or status
	Fork       bool   `json:"fork"`
	MergeBase  string `json:"merge_base"`
	BaseCommit string `json:"base_commit"`
}

func runCIPR(ctx context.Context, a *app, opts ciOptions) error {
	env, ev, err := loadActions(a, "ci pr")
	if err != nil {
		return err
	}
	pr := ev.PullRequest
	if pr == nil {
		return usagef("ci pr: the %s event is not a pull request", env.EventName)
	}
	cfg, err := gitops.LoadConfig(".")
	if err != nil {
		return err
	}
	fork := pr.IsFork()
	if fork && cfg.GitHub.ForkPolicy == "label" && !pr.HasLabel(evaluateLabel) {
		// Untrusted pipeline code does not run (on GPU runners, say) until a
		// maintainer has read it and set the label.
		msg := fmt.Sprintf("pull request #%d comes from a fork: waiting for a maintainer to add the label %q (fork_policy = \"label\")", pr.Number, evaluateLabel)
		fmt.Fprintln(a.err, msg)
		if err := action.AppendSummary(env.SummaryFile, "medcad: "+msg+"\n"); err != nil {
			return err
		}
		return action.SetOutput(env.OutputFile, "verdict", "waiting")
	}
	var key []byte
	if s := os.Getenv(promote.KeyEnv); s != "" && !fork {
		if key, err = promote.Key(s); err != nil {
			return err
		}
	}
	repo, err := openRepo()
	if err != nil {
		return err
	}
	remote := gitrepo.Remote{Name: opts.remote, Token: env.Token}
	if fork {
		remote.Token = "" // a fork's token is read-only; never hand it to git
		fmt.Fprintf(a.err, "pull request #%d comes from a fork: evaluating without secrets; nothing is pushed, signed or commented\n", pr.Number)
	}

	// Base branch, merge base and the baseline model.
	tracking := plumbing.NewRemoteReferenceName(opts.remote, pr.Base.Ref)
	if err := gitrepo.Fetch(ctx, repo, remote, "+refs/heads/"+pr.Base.Ref+":"+tracking.String(), "+"+gitops.RunRefPrefix+"*:"+gitops.RunRefPrefix+"*"); err != nil {
		return err
	}
	baseTip, err := gitrepo.Resolve(repo, tracking.String())
	if err != nil {
		return err
	}
	head, err := gitrepo.Resolve(repo, "HEAD")
	if err != nil {
		return err
	}
	if pr.Head.SHA != "" && pr.Head.SHA != head.Hash.String() {
		fmt.Fprintf(a.err, "warning: HEAD %.12s is not the pull request's head %.12s: check out ref: ${{ github.event.pull_request.head.sha }} (see the scaffold workflow), or the candidate commit builds on a merge preview\n", head.Hash, pr.Head.SHA)
	}
	mb, err := gitrepo.MergeBase(head, baseTip)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.err, "pull request #%d: %s onto %s (merge base %.12s)\n", pr.Number, mdCode(pr.Head.Ref), mdCode(pr.Base.Ref), mb.Hash)
	base, err := modelAt(baseTip, cfg.Project.Model)
	if err != nil {
		return err
	}

	// Data, pipeline, new results to the store.
	sub := *a
	sub.out, sub.json = a.err, false // the sub-steps' reports are progress here
	if err := runDataPull(ctx, &sub, dataTransferOptions{}); err != nil {
		return err
	}
	if err := runRepro(ctx, &sub, reproOptions{push: !fork}); err != nil {
		return err
	}
	if !fork {
		if err := runDataPush(ctx, &sub, dataTransferOptions{}); err != nil {
			return err
		}
	}
	cand, err := gitops.ReadModel(".", cfg.Project.Model)
	if err != nil {
		return fmt.Errorf("after repro: %w", err)
	}

	// Report and gate verdict.
	assetDir := "pr-" + strconv.Itoa(pr.Number)
	store, err := cas.Open(".")
	if err != nil {
		return err
	}
	in := reportInput{
		cfg: cfg, base: base, cand: cand, repo: repo, store: store,
		baseRev: tracking.String(),
		baseRef: pr.Base.Ref + "@" + baseTip.Hash.String()[:12],
		candRef: pr.Head.Ref + "@" + head.Hash.String()[:12],
	}
	if in.remote, err = openRemote(ctx, cfg); err != nil {
		a.log.Debug("remote unavailable; evaluations from the local cache only", "err", err)
		in.remote = nil
	}
	// The gates of the base branch judge the pull request, so a PR cannot
	// loosen the rules it is judged by.
	if gates, err := (&reports.Loader{Dir: ".", Repo: repo}).PromoteAt(in.baseRev); err == nil {
		in.cfg.Promote = gates
	} else {
		a.log.Debug("base branch has no readable medcad.toml; the PR's gates apply", "err", err)
	}
	if !fork && !opts.noPush {
		in.imageBase = strings.TrimSuffix(env.ServerURL, "/") + "/" + env.Repository + "/raw/" + cfg.GitHub.AssetsBranch + "/" + assetDir + "/"
	}
	cand.Provenance = gitops.Provenance{CIRunURL: env.RunURL()}
	if err := cand.Write("."); err != nil { // the report reads it with its run URL
		return err
	}
	rep, err := buildReport(ctx, in)
	if err != nil {
		return err
	}
	res := ciResult{Verdict: "fail", Model: cand.Name, Artifact: cand.Artifact, Fork: fork, MergeBase: mb.Hash.String(), BaseCommit: baseTip.Hash.String()}
	if rep.pass {
		res.Verdict = "pass"
	}
	cand.Gate = gitops.Verdict{Result: res.Verdict}
	if base != nil {
		cand.Gate.Baseline = base.Artifact
		res.Baseline = base.Artifact
	}
	if key != nil {
		run, err := gitops.LoadRun(repo, cand.Run)
		if err != nil {
			return fmt.Errorf("%s: %w", gitops.ModelPath(cand.Name), err)
		}
		promote.SignRun(key, run)
		if err := gitops.SaveRun(repo, run); err != nil {
			return err
		}
		promote.SignModel(key, cand)
		res.Signed = true
	} else if !fork {
		fmt.Fprintf(a.err, "warning: %s is not set: the candidate is not signed and cannot be promoted\n", promote.KeyEnv)
	}
	if err := cand.Write("."); err != nil {
		return err
	}
	if err := os.MkdirAll(opts.out, 0o755); err != nil {
		return err
	}
	res.Report = filepath.ToSlash(filepath.Join(opts.out, "report.md"))
	if err := atomicfile.WriteFile(res.Report, []byte(rep.markdown), 0o644); err != nil {
		return err
	}

	// Candidate onto the PR branch, images onto the assets branch.
	sha := pr.Head.SHA
	if sha == "" {
		sha = head.Hash.String()
	}
	if !fork && !opts.noPush {
		runRef := gitops.RunRefPrefix + cand.Run
		if _, err := repo.Reference(plumbing.ReferenceName(runRef), false); err == nil {
			if err := gitrepo.Push(ctx, repo, remote, "+"+runRef+":"+runRef); err != nil {
				return err
			}
		}
		files := map[string][]byte{}
		for _, p := range []string{gitops.ModelPath(cand.Name), gitops.LockFile} {
			data, err := os.ReadFile(filepath.FromSlash(p))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			files[p] = data
		}
		msg := fmt.Sprintf("medcad: candidate %s, gate %s\n\nRun %s, artifact %s.\n\n[skip ci]\n", cand.Name, res.Verdict, cand.Run, cand.Artifact)
		h, pushed, err := gitrepo.CommitToBranch(ctx, repo, remote, pr.Head.Ref, head, files, msg)
		if err != nil {
			return err
		}
		sha = h.String()
		if pushed {
			res.Commit = sha
			fmt.Fprintf(a.err, "committed %s and %s to %s (%.12s)\n", gitops.ModelPath(cand.Name), gitops.LockFile, mdCode(pr.Head.Ref), h)
		}
		if len(rep.images) > 0 {
			imgs := map[string][]byte{}
			for _, im := range rep.images {
				imgs[assetDir+"/"+im.name] = im.png
			}
			if _, _, err := gitrepo.CommitToBranch(ctx, repo, remote, cfg.GitHub.AssetsBranch, nil, imgs, "medcad: report images of #"+strconv.Itoa(pr.Number)); err != nil {
				return err
			}
		}
	}

	// Comment, check, summary, outputs.
	if env.Token != "" && !fork {
		gh, err := a.githubClient(env)
		if err != nil {
			return err
		}
		body := rep.markdown
		if u := env.RunURL(); u != "" {
			body += "\n[CI run](" + u + ")\n"
		}
		sticky, err := gh.UpsertComment(ctx, pr.Number, stickyMarker(cfg.GitHub.CheckName), body)
		if err != nil {
			return err
		}
		res.Comment = sticky.Comment.URL
		title := "gates passed"
		if !rep.pass {
			title = "gates failed: " + strings.Join(rep.failed, "; ")
		}
		kind, err := gh.SetCheck(ctx, action.Check{Name: cfg.GitHub.CheckName, SHA: sha, Pass: rep.pass, Title: title, Summary: rep.markdown, DetailsURL: env.RunURL()})
		if err != nil {
			return err
		}
		res.Check = kind
	} else if env.Token == "" {
		fmt.Fprintln(a.err, "no GITHUB_TOKEN: the report goes to the job summary only")
	}
	if err := action.AppendSummary(env.SummaryFile, rep.markdown); err != nil {
		return err
	}
	for _, kv := range [][2]string{{"verdict", res.Verdict}, {"report-path", res.Report}, {"model-digest", cand.Artifact}} {
		if err := action.SetOutput(env.OutputFile, kv[0], kv[1]); err != nil {
			return err
		}
	}
	if a.json {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		for _, f := range rep.failed {
			fmt.Fprintln(a.out, action.Annotation{Level: "error", File: gitops.ModelPath(cand.Name), Title: "medcad gate", Msg: f})
		}
		fmt.Fprintf(a.out, "verdict: %s\nmodel-digest: %s\nreport: %s\n", res.Verdict, cand.Artifact, res.Report)
	}
	if !rep.pass {
		return checkError{fmt.Errorf("%s: %d gate(s) failed: %s", gitops.ModelPath(cand.Name), len(rep.failed), strings.Join(rep.failed, "; "))}
	}
	return nil
}

func runCIMain(ctx context.Context, a *app, opts ciOptions) error {
	env, ev, err := loadActions(a, "ci main")
	if err != nil {
		return err
	}
	cfg, err := gitops.LoadConfig(".")
	if err != nil {
		return err
	}
	if env.EventName == "push" && ev.Ref != "refs/heads/"+cfg.Project.DefaultBranch {
		fmt.Fprintf(a.err, "push to %s, not to %s: nothing to promote\n", ev.Ref, cfg.Project.DefaultBranch)
		return nil
	}
	return runPromote(ctx, a, promoteOptions{remote: opts.remote, noPush: opts.noPush, env: env})
}

type promoteOptions struct {
	remote string
	noPush bool
	pr     int         // the merged pull request to comment on (0: find it)
	env    *action.Env // nil outside Actions: no comment
}

func newPromoteCmd(a *app) *cobra.Command {
	var opts promoteOptions
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Promote the model manifest of HEAD: verify it, tag models/NAME/vN, record the production alias",
		Long: `Promote the model manifest committed at HEAD (models/<model>.model.toml).

The manifest must have been produced by CI: its signature and its run
record's (HMAC-SHA256 with MEDCAD_SIGNING_KEY) must verify, the run record
(refs/medcad/runs, fetched from the git remote) must match it, its
artifact must be complete on the remote store, and its gates must have
passed against the model that is production now. A hand-edited or forged
manifest is refused (exit code 3).

Then it tags the commit models/<model>/v<N> and pushes the tag, records
the production alias aliases/<model>/v<N>.json on the store, and, inside
GitHub Actions with a token, comments "promoted vN" with the lineage on
the merged pull request. A manifest that is production already is left
alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if env, err := action.LoadEnv(os.Getenv); err == nil {
				opts.env = env
			}
			return runPromote(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().StringVar(&opts.remote, "git-remote", "origin", "git `REMOTE` to fetch run records from and push the tag to")
	cmd.Flags().BoolVar(&opts.noPush, "no-push", false, "verify and tag locally only: push no tag, record no alias, post no comment")
	cmd.Flags().IntVar(&opts.pr, "pr", 0, "pull request `NUMBER` to comment on (default: the one merged as HEAD)")
	return cmd
}

type promoteResult struct {
	Promoted bool           `json:"promoted"`
	Alias    *promote.Alias `json:"alias"`
	Comment  string         `json:"comment,omitempty"`
}

func runPromote(ctx context.Context, a *app, opts promoteOptions) error {
	key, err := promote.Key(os.Getenv(promote.KeyEnv))
	if err != nil {
		return err
	}
	cfg, err := gitops.LoadConfig(".")
	if err != nil {
		return err
	}
	repo, err := openRepo()
	if err != nil {
		return err
	}
	token := ""
	if opts.env != nil {
		token = opts.env.Token
	}
	remote := gitrepo.Remote{Name: opts.remote, Token: token}
	if _, err := repo.Remote(opts.remote); err == nil {
		if err := gitrepo.Fetch(ctx, repo, remote, "+"+gitops.RunRefPrefix+"*:"+gitops.RunRefPrefix+"*"); err != nil {
			return err
		}
	} else if !opts.noPush {
		return fmt.Errorf("git remote %q: %w", opts.remote, err)
	}
	head, err := gitrepo.Resolve(repo, "HEAD")
	if err != nil {
		return err
	}
	file := gitops.ModelPath(cfg.Project.Model) + "@" + head.Hash.String()[:12]
	m, err := modelAt(head, cfg.Project.Model)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("%s: %w", file, gitops.ErrNoModel)
	}
	store, err := openRemote(ctx, cfg)
	if err != nil {
		return fmt.Errorf("remote store: %w", err)
	}
	prod, err := promote.Production(ctx, store, m.Name)
	if err != nil {
		return err
	}
	if prod != nil && prod.Artifact == m.Artifact {
		fmt.Fprintf(a.err, "%s is production already (v%d, tag %s): nothing to promote\n", m.Name, prod.Version, prod.Tag)
		if a.json {
			return a.printJSON(promoteResult{Alias: prod})
		}
		return nil
	}
	baseline := ""
	if prod != nil {
		baseline = prod.Artifact
	}
	if err := promote.Check(ctx, promote.CheckOptions{File: file, Model: m, Key: key, Repo: repo, Remote: store, Baseline: baseline}); err != nil {
		var re *promote.RefusedError
		if errors.As(err, &re) {
			return checkError{err}
		}
		return err
	}
	v := 1
	if prod != nil {
		v = prod.Version + 1
	}
	manifest, _ := gitrepo.ReadFile(head, gitops.ModelPath(m.Name), 1<<20)
	alias := &promote.Alias{
		Model: m.Name, Version: v, Artifact: m.Artifact, Manifest: sha256ID(manifest), Run: m.Run,
		Commit: head.Hash.String(), Tag: promote.Tag(m.Name, v), PR: opts.pr, PromotedAt: time.Now().UTC().Truncate(time.Second),
	}
	var gh *action.Client
	if opts.env != nil && opts.env.Token != "" {
		if gh, err = a.githubClient(opts.env); err != nil {
			return err
		}
		if alias.PR == 0 {
			n, err := gh.MergedPullRequest(ctx, head.Hash.String())
			if err != nil && !errors.Is(err, action.ErrNoPullRequest) {
				return err
			}
			alias.PR = n
		}
	}
	lineage := promote.Lineage(m, alias)
	msg := fmt.Sprintf("promoted %s v%d\n\n%s", m.Name, v, lineage)
	if opts.noPush {
		// A dry promotion: verified and tagged here, recorded nowhere else.
		if _, err := repo.CreateTag(alias.Tag, head.Hash, &git.CreateTagOptions{Tagger: gitrepo.Bot(time.Now()), Message: msg}); err != nil {
			return fmt.Errorf("tag %s: %w", alias.Tag, err)
		}
		fmt.Fprintf(a.out, "verified %s; tagged %s locally (--no-push: not pushed, no alias recorded)\n", file, alias.Tag)
		return nil
	}
	if err := gitrepo.TagAndPush(ctx, repo, remote, alias.Tag, head.Hash, msg); err != nil {
		return err
	}
	if err := promote.Record(ctx, store, alias); err != nil {
		return err
	}
	res := promoteResult{Promoted: true, Alias: alias}
	if gh != nil && alias.PR > 0 {
		cm, err := gh.AddComment(ctx, alias.PR, fmt.Sprintf("%s\n### medcad: promoted `%s` v%d\n\n%s", promotedMarker, mdCode(m.Name), v, lineage))
		if err != nil {
			return err
		}
		res.Comment = cm.URL
	}
	if opts.env != nil {
		action.SetOutput(opts.env.OutputFile, "model-digest", m.Artifact)
		action.SetOutput(opts.env.OutputFile, "verdict", "promoted")
		action.AppendSummary(opts.env.SummaryFile, fmt.Sprintf("### medcad: promoted `%s` v%d\n\n%s", mdCode(m.Name), v, lineage))
	}
	if a.json {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.out, "promoted %s v%d (tag %s, artifact %s)\n", m.Name, v, alias.Tag, m.Artifact)
	return nil
}
