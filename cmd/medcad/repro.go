package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/stages"
	"github.com/spf13/cobra"
)

type reproOptions struct {
	stages  []string
	force   bool
	dryRun  bool
	jobs    int
	shard   string
	push    bool
	verbose bool
}

func newReproCmd(a *app) *cobra.Command {
	var opts reproOptions
	cmd := &cobra.Command{
		Use:   "repro [STAGE…]",
		Short: "Bring the pipeline up to date: run only stages and cases whose inputs changed",
		Long: `Bring the pipeline of medcad.toml up to date.

A stage (or, for foreach = "case" stages, a case) runs only when its cache
key changed: its command, deps, params, env lock (env = true) or medcad's
version (built-in commands). A key seen before restores the outs from the
store instead of running, from the local cache or the remote. medcad.lock
records the result after every stage, so an interrupted repro resumes.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.stages = args
			return runRepro(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.force, "force", false, "run every selected stage even when up to date")
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "say what would run, change nothing")
	cmd.Flags().IntVar(&opts.jobs, "jobs", 0, "stages' cases run in parallel (default: number of CPUs)")
	cmd.Flags().StringVar(&opts.shard, "shard", "", "`I/N`: run only every N-th case of foreach stages, starting at I (0-based), for CI matrices")
	cmd.Flags().BoolVar(&opts.push, "push", false, "send new results and run-cache entries to the remote")
	cmd.Flags().BoolVarP(&opts.verbose, "verbose", "v", false, "show what stage commands print (a failing command's last line is always shown)")
	return cmd
}

func newStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List stale stages and why (deps, params, env lock changed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRepro(cmd.Context(), a, reproOptions{dryRun: true})
		},
	}
}

// pipeline is an opened project ready to repro.
type pipeline struct {
	cfg   gitops.Config
	plan  *stages.Plan
	store *stages.CAS
	data  *stages.Pointers
}

// openPipeline loads config, store, remote and plan of the project in ".".
func openPipeline(ctx context.Context, a *app, push bool, jobs int) (*pipeline, error) {
	cfg, err := gitops.LoadConfig(".")
	if err != nil {
		return nil, err
	}
	s, err := cas.Open(".")
	if err != nil {
		return nil, err
	}
	remote, err := openRemote(ctx, cfg)
	if err != nil {
		a.log.Debug("remote unavailable; run cache is local only", "err", err)
		remote = nil
	}
	store := stages.NewCAS(s, remote, push, jobs)
	data := stages.NewPointers(".", store)
	plan, err := stages.NewPlan(cfg, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gitops.ConfigFile, err)
	}
	return &pipeline{cfg: cfg, plan: plan, store: store, data: data}, nil
}

// openRemote opens the configured remote; MEDCAD_REMOTE overrides the URL.
func openRemote(ctx context.Context, cfg gitops.Config) (cas.Backend, error) {
	r := cfg.Remote
	if env := os.Getenv("MEDCAD_REMOTE"); env != "" {
		r.URL = env
	}
	return gitops.OpenRemote(ctx, r, ".")
}

func parseShard(s string) (int, int, error) {
	if s == "" {
		return 0, 0, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, usagef("--shard %q: want I/N with 0 ≤ I < N", s)
	}
	return i, n, nil
}

func runRepro(ctx context.Context, a *app, opts reproOptions) error {
	si, sn, err := parseShard(opts.shard)
	if err != nil {
		return err
	}
	p, err := openPipeline(ctx, a, opts.push, opts.jobs)
	if err != nil {
		return err
	}
	defer p.store.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	jobs := opts.jobs
	if jobs == 0 {
		jobs = max(2, runtime.NumCPU())
	}
	bi := readBuildInfo()
	ro := stages.Options{
		Dir: ".", Config: p.cfg, Plan: p.plan, Store: p.store, Data: p.data,
		Version: bi.Version + "+" + bi.Commit, Exe: exe, Jobs: jobs,
		Force: opts.force, DryRun: opts.dryRun, ShardI: si, ShardN: sn, Stages: opts.stages,
	}
	if opts.verbose {
		ro.Stdout = a.err
	}
	if !a.json {
		ro.OnEvent = func(e stages.Event) { printEvent(a, e, opts.dryRun) }
	}
	started := time.Now()
	res, err := stages.Repro(ctx, ro)
	if err == nil && !opts.dryRun && sn == 0 {
		switch {
		case res.Ran():
			err = recordRun(ctx, a, p, res, started, false)
		case modelBehind(p, res.Lock):
			// An earlier repro did the work but was stopped before it
			// recorded the run and wrote the model manifest.
			err = recordRun(ctx, a, p, res, started, true)
		}
	}
	if a.json && res != nil {
		if jerr := a.printJSON(res.Events); err == nil {
			err = jerr
		}
	}
	if err != nil {
		return err
	}
	if opts.dryRun && !a.json {
		stale := 0
		for _, e := range res.Events {
			if e.Status == stages.WouldRun {
				stale++
			}
		}
		if stale == 0 {
			fmt.Fprintln(a.out, "pipeline is up to date")
		}
	}
	return nil
}

// modelBehind reports whether the lock holds a trained model that the
// model manifest does not name (missing, or naming another artifact).
func modelBehind(p *pipeline, lock *gitops.Lock) bool {
	tl := lock.Stages[p.cfg.Project.TrainStage]
	if tl == nil || tl.Out == "" {
		return false
	}
	m, err := gitops.ReadModel(".", p.cfg.Project.Model)
	return err != nil || m.Artifact != tl.Out
}

// recordRun writes the run record of a repro that ran something into git
// (refs/medcad/runs/<id>) and, when the pipeline trains a model, the model
// manifest models/<model>.model.toml. resumed: the work was done by an
// earlier, interrupted repro; its run record is reused when it was saved.
func recordRun(ctx context.Context, a *app, p *pipeline, res *stages.Result, started time.Time, resumed bool) error {
	repo, err := openRepo()
	if err != nil {
		return err
	}
	gs := stages.ReadGitState(repo)
	run, err := stages.NewRun(stages.RecordOptions{
		Dir: ".", Plan: p.plan, Lock: res.Lock, Result: res, Started: started,
		Facts: stages.EnvFacts(ctx, defaultPython()), Datasets: p.data, Git: gs,
		Resumed: resumed,
	})
	if err != nil || run == nil {
		return err
	}
	saved := false // the interrupted repro saved its run record
	if resumed {
		if r := savedRun(repo, run.Key); r != nil {
			run, saved = r, true
		}
	}
	model, err := stages.NewModel(p.cfg, p.plan, res.Lock, run, p.data)
	if err != nil {
		return err
	}
	if !saved {
		if model != nil {
			run.Artifact, run.Eval = model.Artifact, model.Eval
		}
		if err := gitops.SaveRun(repo, run); err != nil {
			return err
		}
		fmt.Fprintf(a.err, "run %s recorded (medcad runs show %s)\n", run.ID, run.ID)
	}
	if model == nil {
		return nil
	}
	if err := model.Write("."); err != nil {
		return err
	}
	fmt.Fprintf(a.err, "wrote %s\n", gitops.ModelPath(model.Name))
	return nil
}

// savedRun is the run record of the given key, or nil.
func savedRun(repo *git.Repository, key string) *gitops.Run {
	runs, err := gitops.ListRuns(repo)
	if err != nil {
		return nil
	}
	for _, r := range runs {
		if r.Key == key {
			return r
		}
	}
	return nil
}

// printEvent writes one progress line: data on stdout for status, progress
// on stderr for repro. Cases that needed no work are counted on their
// stage's line instead of listed.
func printEvent(a *app, e stages.Event, status bool) {
	w := a.err
	if status {
		w = a.out
	}
	if e.Status == stages.UpToDate && (status || e.Case != "") {
		return
	}
	name := e.Stage
	if e.Case != "" {
		name += " [" + e.Case + "]"
	}
	state := string(e.Status)
	if e.Cases != nil {
		state = caseCounts(e.Cases)
		if state == "" {
			return // no cases
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	switch {
	case e.Err != nil:
		fmt.Fprintf(tw, "%s\tfailed\n", name)
	case e.Reason != "":
		fmt.Fprintf(tw, "%s\t%s\t(%s)\n", name, state, e.Reason)
	default:
		fmt.Fprintf(tw, "%s\t%s\n", name, state)
	}
	tw.Flush()
}

// caseCounts phrases a foreach stage's case counts: "2 ran, 8 up to date".
func caseCounts(n map[stages.Status]int) string {
	var parts []string
	for _, st := range []stages.Status{stages.Ran, stages.Restored, stages.WouldRun, stages.UpToDate, stages.Skipped} {
		if n[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[st], st))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, ", ") + " (cases)"
}
