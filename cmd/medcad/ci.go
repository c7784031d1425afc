package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/action/ci"
	"github.com/medcad/medcad/action/promote"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/stages"
	"github.com/spf13/cobra"
)

func newCICmd(a *app) *cobra.Command {
	var opts ci.Options
	cmd := &cobra.Command{
		Use:   "ci",
		Short: "Run medcad's GitHub Actions jobs: evaluate a pull request, promote on merge",
		Long: `Run medcad's GitHub Actions jobs (the medcad Action calls these).

'ci pr' evaluates a pull request: merge base with the base branch, a
repro that fetches only what the stages that run read (new results pushed
to the store; --json reports bytes_fetched and peak_disk), report against the
production model (the chain's newest record, verified with the base
branch's [promote] public_key), gate verdict, the candidate manifest and
medcad.lock committed to the PR branch, report images to the assets
branch, one sticky PR comment, a check run (or commit status), the job
summary and the step outputs verdict, report-path and model-digest. It
needs no signing key. Pull requests from forks are evaluated without
secrets: nothing is pushed or commented, the report goes to the job
summary.

'ci main' runs on a push to the default branch and promotes the merged
model (see 'medcad promote'); on a workflow_dispatch of the default branch
with the inputs rollback (vN) and reason it rolls back. Any other branch
promotes nothing.

Both read the GITHUB_* environment of an Actions step; GITHUB_TOKEN (the
Action's github-token input) is used for the API and git pushes and is
never printed.`,
	}
	cmd.PersistentFlags().StringVar(&opts.GitRemote, "git-remote", "origin", "git `REMOTE` to fetch from and push to")
	cmd.PersistentFlags().BoolVar(&opts.NoPush, "no-push", false, "push nothing to git (no candidate commit, assets or tags)")
	cmd.PersistentFlags().StringVar(&opts.ReportDir, "report-dir", ".medcad/ci", "folder the report files are written to")
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

// actionsJob reads the Actions environment and event, or says how to run,
// and opens the project and (with a token) the GitHub client.
func actionsJob(ctx context.Context, a *app, cmd string) (*gitops.Project, ci.Job, error) {
	env, err := action.LoadEnv(os.Getenv)
	if errors.Is(err, action.ErrNotActions) {
		return nil, ci.Job{}, usagef("%s runs inside a GitHub Actions step (GITHUB_ACTIONS=true); locally use 'medcad repro' and 'medcad promote'", cmd)
	}
	if err != nil {
		return nil, ci.Job{}, err
	}
	a.log.Debug("actions environment", "env", env.String())
	ev, err := env.ReadEvent()
	if err != nil {
		return nil, ci.Job{}, err
	}
	p, err := a.project(ctx)
	if err != nil {
		return nil, ci.Job{}, err
	}
	job := ci.Job{Env: env, Event: ev}
	job.GitHub, err = a.githubClient(env)
	return p, job, err
}

// githubClient is the API client of an Actions step; nil without a token.
func (a *app) githubClient(env *action.Env) (*action.Client, error) {
	if env == nil || env.Token == "" {
		return nil, nil
	}
	return action.NewClient(action.ClientOptions{APIURL: env.APIURL, Repository: env.Repository, Token: env.Token, Login: env.Login, Log: a.log})
}

func runCIPR(ctx context.Context, a *app, opts ci.Options) error {
	p, job, err := actionsJob(ctx, a, "ci pr")
	if err != nil {
		return err
	}
	if job.Event.PullRequest == nil && job.Event.MergeGroup == nil {
		return usagef("ci pr: the %s event is neither a pull request nor a merge queue's group", job.Env.EventName)
	}
	if opts.Repro, err = a.reproOptions(reproOptions{}); err != nil {
		return err
	}
	opts.Repro.OnEvent = func(e stages.Event) { printEvent(a, e, false) } // progress, also with --json
	opts.Log = a.err
	// The GPU runner's cost, from the runner-stop job ('medcad runner stop'
	// sets it as the step output cost).
	opts.Cost = strings.TrimSpace(os.Getenv("MEDCAD_GPU_COST"))
	res, err := ci.PR(ctx, p, job, opts)
	if res == nil || res.Verdict == "waiting" {
		return err
	}
	if a.json {
		if jerr := a.printJSON(res); jerr != nil {
			return jerr
		}
	} else {
		for _, f := range res.Failed {
			fmt.Fprintln(a.out, action.Annotation{Level: "error", File: gitops.ModelPath(res.Model), Title: "medcad gate", Msg: f})
		}
		fmt.Fprintf(a.out, "verdict: %s\nmodel-digest: %s\nreport: %s\n", res.Verdict, res.Artifact, res.Report)
	}
	return err
}

func runCIMain(ctx context.Context, a *app, opts ci.Options) error {
	p, job, err := actionsJob(ctx, a, "ci main")
	if err != nil {
		return err
	}
	opts.Log = a.err
	res, err := ci.Main(ctx, p, job, opts)
	if err != nil {
		return err
	}
	return printPromotion(a, res)
}

func newPromoteCmd(a *app) *cobra.Command {
	var opts promote.RunOptions
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Promote the model of HEAD (or roll back): verify it, sign a production record, tag models/NAME/vN",
		Long: `Promote the model manifest committed at HEAD (models/<model>.model.toml).

The manifest is checked, not trusted: its run record (refs/medcad/runs,
fetched from the git remote) must match it; its datasets, params and
environment lock must be those of HEAD's pointers, medcad.toml and lock
files; its code commit must be in HEAD's history or in the merged pull
request's (found from HEAD inside GitHub Actions: squash and rebase merges
promote too); its artifact and evaluation must be complete on the store;
and the gates of HEAD's medcad.toml are evaluated again against the
production model, from both evaluations. A refusal exits with code 3.

Then it appends a production record to the chain on the store
(aliases/<model>/v<N>.json: artifact, manifest digest, pull request,
merged-by, approvers, CI run, gates, the previous record's digest),
signed with the Ed25519 key derived from MEDCAD_SIGNING_KEY (only the
promotion job holds it; readers verify with [promote] public_key), tags
the manifest's commit models/<model>/v<N> with the record in the tag's
message, moves refs/medcad/prod/<model>, and comments on the merged pull
request. Production already: nothing happens.

--rollback vN makes a new version that serves vN's artifact, without
gates, recording --reason and who (--by, or GITHUB_ACTOR).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPromote(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().StringVar(&opts.GitRemote, "git-remote", "origin", "git `REMOTE` to fetch run records from and push the tag to")
	cmd.Flags().BoolVar(&opts.NoPush, "no-push", false, "verify and tag locally only: push no tag, record no alias, post no comment")
	cmd.Flags().IntVar(&opts.PR, "pr", 0, "the merged pull request `NUMBER` (default: the one merged as HEAD)")
	cmd.Flags().Var(versionFlag{&opts.Rollback}, "rollback", "make a new version serving version `vN`'s artifact")
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why the rollback (recorded)")
	cmd.Flags().StringVar(&opts.By, "by", "", "who asked for the rollback (default: GITHUB_ACTOR)")
	return cmd
}

// versionFlag reads a model version, "v3" or "3".
type versionFlag struct{ v *int }

func (f versionFlag) String() string {
	if f.v == nil || *f.v == 0 {
		return ""
	}
	return fmt.Sprintf("v%d", *f.v)
}

func (f versionFlag) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
	if err != nil || n < 1 {
		return fmt.Errorf("%q: want a version such as v2", s)
	}
	*f.v = n
	return nil
}

func (versionFlag) Type() string { return "vN" }

func runPromote(ctx context.Context, a *app, opts promote.RunOptions) error {
	p, err := a.project(ctx)
	if err != nil {
		return err
	}
	if env, err := action.LoadEnv(os.Getenv); err == nil {
		opts.Env = env
		if opts.GitHub, err = a.githubClient(env); err != nil {
			return err
		}
	}
	opts.Key, opts.Log = os.Getenv(promote.KeyEnv), a.err
	res, err := promote.Run(ctx, p, opts)
	if err != nil {
		return err
	}
	return printPromotion(a, res)
}

// printPromotion reports what a promotion did.
func printPromotion(a *app, res *promote.Result) error {
	r := res.Record
	switch {
	case r == nil: // nothing to promote
		return nil
	case a.json && !res.Local:
		return a.printJSON(res)
	case res.Local:
		fmt.Fprintf(a.out, "verified %s@%.12s; tagged %s locally (--no-push: not pushed, nothing recorded)\n", gitops.ModelPath(r.Model), r.Commit, promote.Tag(r.Model, r.Version))
	case res.Promoted && r.Rollback != nil:
		fmt.Fprintf(a.out, "rolled back %s to v%d as v%d (tag %s, artifact %s)\n", r.Model, r.Rollback.Of, r.Version, promote.Tag(r.Model, r.Version), r.Artifact)
	case res.Promoted:
		fmt.Fprintf(a.out, "promoted %s v%d (tag %s, artifact %s)\n", r.Model, r.Version, promote.Tag(r.Model, r.Version), r.Artifact)
	}
	return nil
}
