package main

import (
	"cmp"
	"context"
	"fmt"
	"github.com/medcad/medcad/action"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/medcad/medcad/gitops"
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
	lazy    bool
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
records the result after every stage, so an interrupted repro resumes.

Naming STAGEs selects them and every stage upstream of them (what they
depend on); no name selects the whole pipeline. --force applies to every
selected stage: each runs again, without restoring from the run cache, so
'medcad repro --force evaluate' re-runs evaluate and everything upstream of
it (ingest, dataset, train, predict), not evaluate alone.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.stages = args
			return runRepro(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.force, "force", false, "run every selected stage (the named ones and all upstream of them) even when up to date, bypassing the run cache")
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "say what would run, change nothing")
	cmd.Flags().IntVar(&opts.jobs, "jobs", 0, "stages' cases run in parallel (default: number of CPUs)")
	cmd.Flags().StringVar(&opts.shard, "shard", "", "`I/N`: run only every N-th case of foreach stages, starting at I (0-based), for CI matrices")
	cmd.Flags().BoolVar(&opts.push, "push", false, "send new results and run-cache entries to the remote")
	cmd.Flags().BoolVar(&opts.lazy, "lazy", false, "check out outs only where a stage that runs reads them, and fetch only the cases and outs those stages read (a fresh clone, CI)")
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

// reproOptions is the stages' view of the repro flags, with how this
// binary runs built-in commands and prints progress.
func (a *app) reproOptions(opts reproOptions) (stages.ReproOptions, error) {
	si, sn, err := parseShard(opts.shard)
	if err != nil {
		return stages.ReproOptions{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return stages.ReproOptions{}, err
	}
	bi := readBuildInfo()
	ro := stages.ReproOptions{
		Version: bi.Version + "+" + bi.Commit, Exe: exe,
		Algorithm: func(run string) string { return algorithmOf(a.root, run) }, Python: defaultPython(), Jobs: opts.jobs,
		Force: opts.force, DryRun: opts.dryRun, ShardI: si, ShardN: sn, Stages: opts.stages, Push: opts.push,
		Lazy: opts.lazy, Measure: a.json,
	}
	if opts.verbose {
		ro.Stdout = a.err
	}
	// On a GPU runner the agent hands the job a checkpoint folder, which
	// survives a spot interruption's SIGTERM (docs/pipeline.md).
	ro.CheckpointDir = os.Getenv("MEDCAD_CHECKPOINT_DIR")
	// Inside a pull request's Actions job (the GPU train job of the EC2
	// workflow), results go to the pull request's run-cache namespace, as
	// ci pr's do: a pull request never writes the trusted cache.
	if env, err := action.LoadEnv(os.Getenv); err == nil && env.EventName == "pull_request" {
		if ev, err := env.ReadEvent(); err == nil && ev.PullRequest != nil {
			ro.CacheNamespace = "pr-" + strconv.Itoa(ev.PullRequest.Number)
		}
	}
	if !a.json {
		ro.OnEvent = func(e stages.Event) { printEvent(a, e, opts.dryRun) }
	}
	return ro, nil
}

func runRepro(ctx context.Context, a *app, opts reproOptions) error {
	ro, err := a.reproOptions(opts)
	if err != nil {
		return err
	}
	p, err := a.project(ctx)
	if err != nil {
		return err
	}
	// The checks of 'config check' first, so that problems name their
	// line of medcad.toml (and params errors never a temporary file).
	if problems, err := checkPipeline(p.Root, p.Config); err != nil || len(problems) > 0 {
		return cmp.Or(err, error(problems))
	}
	out, err := stages.Reproduce(ctx, p, ro)
	if out != nil {
		printOutcome(a, out)
	}
	if a.json && out != nil && out.Result != nil {
		rep := reproReport{Events: out.Events, BytesFetched: out.Fetched, PeakDisk: out.PeakDisk, Pending: out.Pending}
		if jerr := a.printJSON(rep); err == nil {
			err = jerr
		}
	}
	if err != nil {
		return err
	}
	if opts.dryRun && !a.json {
		stale := 0
		for _, e := range out.Events {
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

// reproReport is repro's --json output.
type reproReport struct {
	Events       []stages.Event    `json:"events"`
	BytesFetched int64             `json:"bytes_fetched"`             // read from the remote
	PeakDisk     int64             `json:"peak_disk"`                 // most the project folder grew by
	Pending      map[string]string `json:"not_checked_out,omitempty"` // --lazy: stage → outs left in the store
}

// printOutcome notes on stderr the run recorded and the manifest written.
func printOutcome(a *app, out *stages.Outcome) {
	if out.Saved {
		fmt.Fprintf(a.err, "run %s recorded (medcad runs show %s)\n", out.Run.ID, out.Run.ID)
	}
	if out.Model != nil {
		fmt.Fprintf(a.err, "wrote %s\n", gitops.ModelPath(out.Model.Name))
	}
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
