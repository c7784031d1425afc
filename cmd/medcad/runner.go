package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/medcad/medcad/action"
	"github.com/medcad/medcad/action/runner"
	"github.com/medcad/medcad/gitops"
	"github.com/spf13/cobra"
)

// endpointEnv points the EC2 and SSM clients at another endpoint (a VPC
// endpoint proxy, or a test's fake).
const endpointEnv = "MEDCAD_EC2_ENDPOINT"

func newRunnerCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runner",
		Short: "Ephemeral EC2 GPU runners for the training job: start, stop, reap, agent",
	}
	var run runner.Run
	var dryRun bool
	cmd.PersistentFlags().StringVar(&run.Repository, "repository", "", "owner/name (default: GITHUB_REPOSITORY)")
	cmd.PersistentFlags().Int64Var(&run.ID, "run-id", 0, "workflow run `ID` (default: GITHUB_RUN_ID)")
	cmd.PersistentFlags().IntVar(&run.Attempt, "attempt", 0, "run attempt (default: GITHUB_RUN_ATTEMPT, else 1)")
	cmd.PersistentFlags().IntVar(&run.PR, "pr", 0, "pull request `NUMBER` (default: from the event)")
	start := &cobra.Command{
		Use:   "start",
		Short: "Launch a GPU instance with a just-in-time runner and wait until it is online; prints its runs-on label",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRunnerStart(cmd.Context(), a, run, dryRun)
		},
	}
	start.Flags().BoolVar(&dryRun, "dry-run", false, "print the launch requests (user data decoded), call neither AWS nor GitHub")
	stop := &cobra.Command{
		Use:   "stop",
		Short: "Terminate this run's instances (found by tag), remove their runners, record and print the cost",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.runnerSession(cmd.Context(), run)
			if err != nil {
				return err
			}
			res, err := runner.Stop(cmd.Context(), s.deps, s.cfg, s.run)
			if err != nil {
				return err
			}
			if err := s.output("cost", res.CostLine); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.out, "terminated %d instances, removed %d runners\n%s\n", len(res.Terminated), len(res.Removed), res.CostLine)
			return nil
		},
	}
	reap := &cobra.Command{
		Use:   "reap",
		Short: "Terminate leftover managed instances and remove runners with no instance behind them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.runnerSession(cmd.Context(), run)
			if err != nil {
				return err
			}
			res, err := runner.Reap(cmd.Context(), s.deps, runner.ReapOptions{Config: s.cfg, Repository: s.run.Repository})
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(res)
			}
			for id, why := range res.Terminated {
				fmt.Fprintf(a.out, "terminated %s: %s\n", id, why)
			}
			for _, r := range res.Removed {
				fmt.Fprintf(a.out, "removed runner %s\n", r)
			}
			return nil
		},
	}
	var ac runner.AgentConfig
	var expires string
	var store gitops.Remote
	var resume bool
	var grace time.Duration
	agent := &cobra.Command{
		Use:   "agent",
		Short: "On the instance (started by the user data): run the GitHub runner for one job, then shut down",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := time.Parse(time.RFC3339, expires)
			if err != nil {
				return usagef("--expires-at %q: want an RFC 3339 time", expires)
			}
			ac.ExpiresAt, ac.Log = t, a.err
			ctx := cmd.Context()
			cfg, err := config.LoadDefaultConfig(ctx)
			if err != nil {
				return fmt.Errorf("AWS configuration: %w", err)
			}
			client := imds.NewFromConfig(cfg)
			if cfg.Region == "" {
				if r, err := client.GetRegion(ctx, &imds.GetRegionInput{}); err == nil {
					cfg.Region = r.Region
				}
			}
			ec2c, ssmc := runner.Clients(cfg, os.Getenv(endpointEnv))
			if store.URL != "" {
				if ac.Checkpoints, err = agentCheckpoints(ctx, a, store, run, resume, grace, ac.CheckpointDir); err != nil {
					return err
				}
			}
			res, err := runner.Agent(ctx, runner.AgentDeps{SSM: ssmc, EC2: ec2c, IMDS: client}, ac)
			if res != nil && a.json {
				if jerr := a.printJSON(res); err == nil {
					err = jerr
				}
			}
			return err
		},
	}
	agent.Flags().StringVar(&ac.RunnerDir, "runner-dir", "/opt/actions-runner", "the GitHub runner's `DIR` (run.sh)")
	agent.Flags().StringVar(&ac.RunAs, "run-as", "runner", "unprivileged `USER` the runner runs as")
	agent.Flags().StringVar(&ac.SSMPrefix, "ssm-prefix", "/medcad/runners", "SSM `PREFIX` of the runner configs")
	agent.Flags().DurationVar(&ac.IdleTimeout, "idle-timeout", 15*time.Minute, "shut down when no job started by then")
	agent.Flags().StringVar(&expires, "expires-at", "", "the hard time-to-live (RFC 3339)")
	agent.Flags().StringVar(&ac.CheckpointDir, "checkpoint-dir", "/var/lib/medcad/checkpoint", "handed to the job as MEDCAD_CHECKPOINT_DIR")
	agent.Flags().StringVar(&store.URL, "store", "", "the project's store `URL` (s3://BUCKET/PREFIX): checkpoints are kept there on an interruption")
	agent.Flags().StringVar(&store.Region, "store-region", "", "the store's S3 `REGION`")
	agent.Flags().StringVar(&store.Endpoint, "store-endpoint", "", "the store's S3 endpoint `URL`")
	agent.Flags().BoolVar(&store.PathStyle, "store-path-style", false, "path-style S3 requests")
	agent.Flags().BoolVar(&resume, "resume", false, "restore the newest checkpoint of an earlier attempt of the run before the job")
	agent.Flags().DurationVar(&grace, "checkpoint-grace", 60*time.Second, "how long the stages get after SIGTERM to write their checkpoint")
	cmd.AddCommand(start, stop, reap, agent)
	return cmd
}

// agentCheckpoints opens the store the agent keeps checkpoints in; the
// run's identity comes from the flags the user data passes.
func agentCheckpoints(ctx context.Context, a *app, store gitops.Remote, r runner.Run, resume bool, grace time.Duration, dir string) (*runner.Checkpoints, error) {
	if r.Repository == "" || r.ID == 0 || r.Attempt == 0 {
		return nil, usagef("runner agent --store: set --repository, --run-id and --attempt")
	}
	remote, err := gitops.OpenRemote(ctx, store, "/", a.log)
	if err != nil {
		return nil, err
	}
	return &runner.Checkpoints{Remote: remote, Cache: filepath.Join(filepath.Dir(dir), "cache"), Run: r, Resume: resume, Grace: grace}, nil
}

// runnerSession is what start, stop and reap need: the project's [runner]
// settings, the run, the AWS and GitHub clients, the cost ledger.
type runnerSession struct {
	cfg    gitops.Runner
	run    runner.Run
	region string
	data   string // the data bucket's region ("" when the remote is not S3)
	store  gitops.Remote
	deps   *runner.Deps
	env    *action.Env
}

// runIdentity fills what the flags left out from the Actions environment.
func runIdentity(r runner.Run) (runner.Run, error) {
	if r.Repository == "" {
		r.Repository = os.Getenv("GITHUB_REPOSITORY")
	}
	if r.ID == 0 {
		r.ID, _ = strconv.ParseInt(os.Getenv("GITHUB_RUN_ID"), 10, 64)
	}
	if r.Attempt == 0 {
		r.Attempt, _ = strconv.Atoi(os.Getenv("GITHUB_RUN_ATTEMPT"))
		if r.Attempt == 0 {
			r.Attempt = 1
		}
	}
	if r.PR == 0 {
		if path := os.Getenv("GITHUB_EVENT_PATH"); path != "" {
			if data, err := os.ReadFile(path); err == nil {
				var ev struct {
					PullRequest struct {
						Number int `json:"number"`
					} `json:"pull_request"`
				}
				if json.Unmarshal(data, &ev) == nil {
					r.PR = ev.PullRequest.Number
				}
			}
		}
	}
	if r.Repository == "" || r.ID == 0 {
		return r, usagef("runner: no workflow run: set --repository and --run-id (or run inside GitHub Actions)")
	}
	return r, nil
}

// runnerSession opens the project, the AWS and GitHub clients and the
// cost ledger.
func (a *app) runnerSession(ctx context.Context, r runner.Run) (*runnerSession, error) {
	p, err := a.project(ctx)
	if err != nil {
		return nil, err
	}
	s := &runnerSession{cfg: p.Config.Runner}
	if s.run, err = runIdentity(r); err != nil {
		return nil, err
	}
	s.region = p.Config.Runner.Region
	if strings.HasPrefix(p.Config.Remote.URL, "s3://") {
		s.data = p.Config.Remote.Region
	}
	s.store = instanceStore(p.Config.Remote)
	opts := []func(*config.LoadOptions) error{}
	if s.region != "" {
		opts = append(opts, config.WithRegion(s.region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if s.region == "" {
		s.region = awsCfg.Region
	}
	if s.region == "" {
		return nil, usagef("runner: no AWS region: set [runner] region or AWS_REGION")
	}
	awsCfg.Region = s.region
	ec2c, ssmc := runner.Clients(awsCfg, os.Getenv(endpointEnv))
	s.deps = &runner.Deps{EC2: ec2c, SSM: ssmc, Log: a.log}
	if env, err := action.LoadEnv(os.Getenv); err == nil {
		s.env = env
		gh, err := a.githubClient(env)
		if err != nil {
			return nil, err
		}
		if gh != nil {
			s.deps.GitHub = gh
		}
	}
	if s.deps.GitHub == nil {
		return nil, usagef("runner: no GitHub token: the runner API needs a GitHub App token in GITHUB_TOKEN (the workflow's github-token input)")
	}
	if remote, err := p.Remote(ctx); err == nil {
		s.deps.Ledger = runner.StoreLedger{Backend: remote}
	}
	return s, nil
}

// instanceStore is the remote the instance keeps checkpoints in: an S3
// remote (a folder remote is not on the instance); zero otherwise.
func instanceStore(r gitops.Remote) gitops.Remote {
	if !strings.HasPrefix(r.URL, "s3://") {
		return gitops.Remote{}
	}
	return gitops.Remote{URL: r.URL, Region: r.Region, Endpoint: r.Endpoint, PathStyle: r.PathStyle}
}

// output sets a step output when running in Actions.
func (s *runnerSession) output(name, value string) error {
	if s.env == nil {
		return nil
	}
	return action.SetOutput(s.env.OutputFile, name, value)
}

func runRunnerStart(ctx context.Context, a *app, r runner.Run, dryRun bool) error {
	if dryRun {
		p, err := a.project(ctx)
		if err != nil {
			return err
		}
		run, err := runIdentity(r)
		if err != nil {
			return err
		}
		reqs, err := runner.Plan(runner.StartOptions{Config: p.Config.Runner, Run: run, Store: instanceStore(p.Config.Remote)}, time.Now())
		if err != nil {
			return err
		}
		if a.json {
			return a.printJSON(reqs)
		}
		for i, req := range reqs {
			in, err := withoutNulls(req.Input)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "# launch %d of %d: %s\n%s\n", i+1, len(reqs), req.Candidate, in)
		}
		if len(reqs) > 0 {
			fmt.Fprintf(a.out, "# user data of every launch (decoded):\n%s", reqs[0].UserData)
		}
		return nil
	}
	s, err := a.runnerSession(ctx, r)
	if err != nil {
		return err
	}
	res, err := runner.Start(ctx, s.deps, runner.StartOptions{Config: s.cfg, Run: s.run, Region: s.region, DataRegion: s.data, Store: s.store})
	if err != nil {
		if s.env != nil {
			if serr := action.AppendSummary(s.env.SummaryFile, "medcad runner start: "+err.Error()+"\n"); serr != nil {
				return serr
			}
		}
		return err
	}
	if err := s.output("label", res.Label); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.out, "label: %s\ninstance: %s (%s)\nexpires: %s\n", res.Label, res.Instance, res.Candidate, res.ExpiresAt.Format(time.RFC3339))
	return nil
}

// withoutNulls is v as indented JSON without the null fields the SDK's
// request types are full of.
func withoutNulls(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return nil, err
	}
	var prune func(any) any
	prune = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			for k, v := range t {
				if v == nil || v == "" {
					delete(t, k)
				} else {
					t[k] = prune(v)
				}
			}
		case []any:
			for i := range t {
				t[i] = prune(t[i])
			}
		}
		return x
	}
	return json.MarshalIndent(prune(tree), "", "  ")
}
