package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/medcad/medcad/internal/bytesize"
	"slices"
	"sync"
	"time"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/stages/intake"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func newDataCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Version datasets: add, status, push, pull, checkout, verify, diff",
		Long: `Version datasets in the content-addressed store.

A dataset is a folder data/<name>/ (not committed) described by the pointer
data/<name>.dataset.toml (committed). Its files live in the local cache
.medcad/cache and on the remote of medcad.toml [remote] (MEDCAD_REMOTE
overrides the url).`,
	}
	cmd.AddCommand(newDataAddCmd(a), newDataStatusCmd(a), newDataPushCmd(a), newDataPullCmd(a),
		newDataCheckoutCmd(a), newDataVerifyCmd(a), newDataDiffCmd(a))
	return cmd
}

// progress draws a bar of bytes with a file count on a terminal. The
// bar's maximum is one byte more than the work announced, so that it
// never finishes (and stops redrawing) between two Totals of one step;
// finish fills it to 100% when every file is done and leaves that line,
// or clears it when the step stopped short (an error follows).
type progress struct {
	mu          sync.Mutex
	bar         *progressbar.ProgressBar
	verb        string
	files, done int
	bytes       int64 // announced
}

// meter is the project's progress display: a bar on a terminal, nothing
// otherwise.
func (a *app) meter(verb string) (cas.Progress, func()) {
	if !a.progressOn() {
		return nil, func() {}
	}
	bar := progressbar.NewOptions64(1,
		progressbar.OptionSetWriter(a.err),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionEnableColorCodes(a.colour(a.err)),
		progressbar.OptionSetDescription(verb),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(a.err) }),
	)
	p := &progress{bar: bar, verb: verb}
	return p, p.finish
}

func (p *progress) Total(files int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files += files
	p.bytes += bytes
	p.bar.ChangeMax64(p.bytes + 1)
	p.bar.Describe(fmt.Sprintf("%s %d/%d files", p.verb, p.done, p.files))
}

func (p *progress) Done(files int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += files
	p.bar.Describe(fmt.Sprintf("%s %d/%d files", p.verb, p.done, p.files))
	p.bar.Add64(bytes)
}

// clearBar takes a progress bar off its line (it comes back at its next
// update), so that a message can be written there; p may be nil.
func clearBar(p any) {
	if b, ok := p.(*progress); ok {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.bar.Clear()
	}
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.files == 0 || p.done < p.files {
		p.bar.Clear() // nothing to do, or stopped short
		return
	}
	p.bar.ChangeMax64(max(p.bytes, 1))
	p.bar.Finish()
}

// ---- data add ----

func newDataAddCmd(a *app) *cobra.Command {
	var opts gitops.AddOptions
	cmd := &cobra.Command{
		Use:   "add PATH --name NAME",
		Short: "Store a folder as dataset NAME and write data/NAME.dataset.toml",
		Long: `Store every file under PATH in the cache and write the pointer
data/NAME.dataset.toml. Files are copied into the cache (cloned where the
file system has reflinks); with --link hardlink (or [data] link =
"hardlink") the files under PATH, and those checked out to data/NAME, are
hard links of the cache objects instead (no data is written, the files
become read-only; never edit them in place). When PATH is not data/NAME, the files are also checked out to
data/NAME/ (which must not exist yet). Files the stat index knows
unchanged are not read again. Commit the pointer with git; push the
data with 'medcad data push'.

DICOM mode (when PATH holds case folders with DICOM files): each case
folder (<case>/…dicom files… and optionally <case>/label.nii.gz) is
de-identified with the DICOM PS3.15 Annex E basic profile, checked to hold
one CT series whose label matches its shape and affine (within 1e-3 mm),
and stored under its pseudonymous case id as <case>/CT/<series number>/
IM<nnnnn>.dcm (nothing of the delivery's folder or file names is kept; the
folder of each case is written only to the local re-identification key
.medcad/reid.tsv, never pushed); only de-identified files reach the store
and data/NAME/. The pointer gets one [[case]] table per case. Refused cases
are reported and the others go on.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = a.path(args[0])
			return runDataAdd(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "dataset name (letters, digits, . _ -)")
	cmd.Flags().StringVar(&opts.LabelRules, "label-rules", "", "labelling rules version (default: [data] label_rules)")
	cmd.Flags().IntVar(&opts.Jobs, "jobs", 0, "parallel hashing workers (default: 2 per CPU)")
	cmd.Flags().StringVar(&opts.Link, "link", "", "copy (a clone where the file system has reflinks), or hardlink: the files under PATH and of data/NAME are hard links of the cache objects (no copy; they become read-only, and an in-place write to them, e.g. cp as root, damages the cache) (default: [data] link, copy)")
	return cmd
}

func runDataAdd(ctx context.Context, a *app, opts gitops.AddOptions) error {
	if opts.Name == "" {
		return usagef("data add: --name is required")
	}
	if !gitops.ValidName(opts.Name) {
		return usagef("data add: --name %q: use letters, digits, . _ - (at most 64)", opts.Name)
	}
	if opts.Link != "" && opts.Link != gitops.LinkCopy && opts.Link != gitops.LinkHardlink {
		return usagef("data add: --link %q: want copy or hardlink", opts.Link)
	}
	p, err := a.project(ctx)
	if err != nil {
		return err
	}
	if intake.IsDICOMBatch(opts.Path) { // DICOM mode: data_dicom.go
		opts.Ingest, opts.Stored = dicomIngest(a, p, opts.Name)
		opts.Deid = p.Config.Data.DeidProfile
	}
	res, err := p.AddData(ctx, opts)
	if err != nil {
		return fmt.Errorf("data add: %w", err)
	}
	printRefused(a, res.Refused)
	if a.json {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		if res.Replaced {
			fmt.Fprintf(a.out, "replaced %s/%s (it was an unchanged checkout of the previous pointer)\n", gitops.DatasetDir, res.Name)
		}
		fmt.Fprintf(a.out, "added %s: %s, %s, %d hashed\n", res.Name, plural(res.Files, "file"), bytesize.String(res.Bytes), res.Hashed)
		fmt.Fprintf(a.out, "wrote %s (manifest %s)\n", res.Pointer, res.Manifest)
		if res.Labelled > 0 {
			fmt.Fprintf(a.out, "held out %d of %d labelled cases for evaluation (recorded as split = \"test\"; a case never changes side)\n", res.HeldOut, res.Labelled)
		}
	}
	if n := len(res.Refused); n > 0 {
		return fmt.Errorf("data add: %s refused (listed above); the other %d stored in %s", plural(n, "case"), res.Cases, res.Pointer)
	}
	return nil
}

// ---- data status ----

func newDataStatusCmd(a *app) *cobra.Command {
	var remote bool
	cmd := &cobra.Command{
		Use:   "status [NAME…]",
		Short: "Show new, modified and missing files of datasets; --remote: which are fully pushed",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDataStatus(cmd.Context(), a, args, remote)
		},
	}
	cmd.Flags().BoolVar(&remote, "remote", false, "also check which datasets are fully on the remote (one request each)")
	return cmd
}

func runDataStatus(ctx context.Context, a *app, names []string, remote bool) error {
	p, err := a.project(ctx)
	if err != nil {
		return err
	}
	out, err := p.DataStatus(ctx, names, remote)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(out)
	}
	if len(out) == 0 {
		fmt.Fprintln(a.out, "no datasets (add one with 'medcad data add PATH --name NAME')")
	}
	for _, st := range out {
		line := st.Name + ": "
		switch {
		case !st.InCache:
			line += "not in the cache (run 'medcad data pull " + st.Name + "')"
		case st.Clean:
			line += fmt.Sprintf("up to date (%s)", plural(st.Files, "file"))
		default:
			line += fmt.Sprintf("%d new, %d modified, %d missing", len(st.Status.New), len(st.Status.Modified), len(st.Status.Missing))
		}
		if st.Pushed != nil {
			if *st.Pushed {
				line += "; pushed"
			} else {
				line += "; not pushed"
			}
		}
		fmt.Fprintln(a.out, line)
		if st.Status != nil {
			for _, kind := range []struct {
				label string
				paths []string
			}{{"new", st.Status.New}, {"modified", st.Status.Modified}, {"missing", st.Status.Missing}} {
				for _, f := range kind.paths {
					fmt.Fprintf(a.out, "  %-9s %s/%s/%s\n", kind.label, gitops.DatasetDir, st.Name, f)
				}
			}
		}
	}
	return nil
}

// ---- data push / pull ----

func newDataPushCmd(a *app) *cobra.Command {
	var opts gitops.TransferOptions
	cmd := &cobra.Command{
		Use:   "push [NAME…]",
		Short: "Send datasets (default: all) from the cache to the remote",
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Names = args
			return runDataPush(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().IntVar(&opts.Jobs, "jobs", 0, "parallel transfers (default: [remote] jobs, 32)")
	return cmd
}

func runDataPush(ctx context.Context, a *app, opts gitops.TransferOptions) error {
	p, err := a.project(ctx)
	if err != nil {
		return err
	}
	rep, err := p.PushData(ctx, opts)
	if err != nil {
		return fmt.Errorf("data push: %w", err)
	}
	if a.json {
		return a.printJSON(rep)
	}
	fmt.Fprintf(a.out, "pushed %s to %s: %s (%s) sent, %d already there, %s already complete\n",
		plural(rep.Datasets, "dataset"), rep.Remote, plural(rep.Objects, "object"), bytesize.String(rep.Bytes), rep.Skipped, plural(rep.Complete, "dataset"))
	return nil
}

func newDataPullCmd(a *app) *cobra.Command {
	var opts gitops.TransferOptions
	cmd := &cobra.Command{
		Use:   "pull [NAME…]",
		Short: "Fetch datasets (default: all) from the remote and check them out",
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Names = args
			return runDataPull(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().IntVar(&opts.Jobs, "jobs", 0, "parallel transfers (default: [remote] jobs, 32)")
	cmd.Flags().BoolVar(&opts.NoCheckout, "no-checkout", false, "only fill the cache")
	cmd.Flags().StringVar(&opts.Link, "link", "", "how checkout makes files: reflink, hardlink or copy (default: hardlink where [data] link = \"hardlink\", else reflink where the file system allows, else copy)")
	return cmd
}

func runDataPull(ctx context.Context, a *app, opts gitops.TransferOptions) error {
	p, err := a.project(ctx)
	if err != nil {
		return err
	}
	rep, err := p.PullData(ctx, opts)
	if errors.Is(err, gitops.ErrBadLink) {
		return usageError{err}
	}
	if err != nil {
		return fmt.Errorf("data pull: %w", err)
	}
	if a.json {
		return a.printJSON(rep)
	}
	fmt.Fprintf(a.out, "pulled %s from %s: %s (%s) received, %d already cached\n",
		plural(rep.Datasets, "dataset"), rep.Remote, plural(rep.Objects, "object"), bytesize.String(rep.Bytes), rep.Skipped)
	if rep.CheckedOut != nil {
		fmt.Fprintf(a.out, "checked out %s\n", plural(*rep.CheckedOut, "file"))
	}
	return nil
}

// ---- data checkout ----

func newDataCheckoutCmd(a *app) *cobra.Command {
	var opts gitops.CheckoutOptions
	cmd := &cobra.Command{
		Use:   "checkout [NAME…]",
		Short: "Make data/NAME/ match its pointer, from the cache",
		Long: `Make data/NAME/ hold exactly the files of its pointer, taking them from
the cache and verifying each. Files already right are left alone; files
that differ are replaced only with --force; extra files are left alone.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Names = args
			return runDataCheckout(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().StringVar(&opts.Link, "link", "", "reflink, hardlink or copy (default: hardlink where [data] link = \"hardlink\", else reflink where the file system allows, else copy)")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "replace workspace files that differ from the pointer")
	return cmd
}

func runDataCheckout(ctx context.Context, a *app, opts gitops.CheckoutOptions) error {
	p, err := a.project(ctx)
	if err != nil {
		return err
	}
	ds, n, err := p.CheckoutData(ctx, opts)
	if errors.Is(err, gitops.ErrBadLink) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(map[string]int{"written": n})
	}
	fmt.Fprintf(a.out, "checked out %s: %s written\n", plural(ds, "dataset"), plural(n, "file"))
	return nil
}

// ---- data verify ----

func newDataVerifyCmd(a *app) *cobra.Command {
	var (
		remote bool
		jobs   int
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash the cache; --remote: repair corrupt objects from the remote and check datasets are there",
		Long: `Re-hash every object of the cache and report those whose content no
longer matches their name (exit 3). With --remote, corrupt objects are
replaced by good copies from the remote, and every object of every
dataset pointer is checked to be on the remote.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDataVerify(cmd.Context(), a, remote, jobs) },
	}
	cmd.Flags().BoolVar(&remote, "remote", false, "repair from the remote and check that datasets are on it")
	cmd.Flags().IntVar(&jobs, "jobs", 0, "parallel workers")
	return cmd
}

func runDataVerify(ctx context.Context, a *app, remote bool, jobs int) error {
	p, err := a.project(ctx)
	if err != nil {
		return err
	}
	rep, err := p.VerifyData(ctx, remote, jobs)
	if err != nil {
		return err
	}
	for _, msg := range rep.Unrepairable {
		fmt.Fprintf(a.err, "medcad: %s\n", msg)
	}
	if a.json {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.out, "verified %s: %d corrupt, %d repaired\n", plural(rep.Objects, "object"), len(rep.Corrupt), len(rep.Repaired))
		for _, c := range rep.Corrupt {
			state := "corrupt"
			if slices.Contains(rep.Repaired, c) {
				state = "repaired"
			}
			fmt.Fprintf(a.out, "  %-9s %s\n", state, c)
		}
		for _, m := range rep.MissingRemote {
			fmt.Fprintf(a.out, "  not on remote: %s\n", m)
		}
	}
	if rep.Failed() {
		return fmt.Errorf("data verify: %d corrupt objects not repaired, %d objects missing on the remote: %w",
			len(rep.Corrupt)-len(rep.Repaired), len(rep.MissingRemote), errCheckFailed)
	}
	return nil
}

// ---- data diff ----

func newDataDiffCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "diff [REV1 [REV2]]",
		Short: "Datasets added, removed and changed between two revisions (default: HEAD and the working tree)",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rev1, rev2 := "HEAD", ""
			if len(args) > 0 {
				rev1 = args[0]
			}
			if len(args) > 1 {
				rev2 = args[1]
			}
			return runDataDiff(cmd.Context(), a, rev1, rev2)
		},
	}
}

func runDataDiff(ctx context.Context, a *app, rev1, rev2 string) error {
	p, err := a.project(ctx)
	if err != nil {
		return err
	}
	diffs, err := p.DiffData(rev1, rev2)
	if err != nil {
		return fmt.Errorf("data diff: %w", err)
	}
	if a.json {
		return a.printJSON(diffs)
	}
	if len(diffs) == 0 {
		fmt.Fprintln(a.out, "no dataset changes")
	}
	for _, d := range diffs {
		switch d.Change {
		case "added":
			fmt.Fprintf(a.out, "added    %s (%s)\n", d.Name, plural(d.Files[1], "file"))
		case "removed":
			fmt.Fprintf(a.out, "removed  %s (%s)\n", d.Name, plural(d.Files[0], "file"))
		default:
			if d.Added != nil {
				fmt.Fprintf(a.out, "changed  %s: %s added, %d removed, %d modified (%d -> %s)\n", d.Name, plural(*d.Added, "file"), *d.Removed, *d.Modified, d.Files[0], plural(d.Files[1], "file"))
			} else {
				fmt.Fprintf(a.out, "changed  %s: %d -> %d files (%s)\n", d.Name, d.Files[0], d.Files[1], d.Note)
			}
		}
	}
	return nil
}

// ---- gc ----

func newGCCmd(a *app) *cobra.Command {
	var dryRun, remote bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove store objects that no branch, tag or working-tree pointer needs",
		Long: `Remove objects of the cache (and with --remote, of the remote) that
nothing references: kept is every object named by dataset pointers,
model manifests and medcad.lock at the tip of every branch,
remote-tracking branch and tag, in the working tree, and by run records
(refs/medcad/runs), with the files of every kept manifest. Nothing a tag
references is ever deleted. Use --dry-run to see what would go.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGC(cmd.Context(), a, dryRun, remote) },
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only report what would be removed")
	cmd.Flags().BoolVar(&remote, "remote", false, "also remove unreferenced objects from the remote")
	return cmd
}

func runGC(ctx context.Context, a *app, dryRun, remote bool) error {
	p, err := a.project(ctx)
	if err != nil {
		return err
	}
	rep, err := p.GC(ctx, dryRun, remote)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	if a.json {
		return a.printJSON(rep)
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	fmt.Fprintf(a.out, "cache: kept %d objects, %s %d (%s)\n", rep.Cache.Kept, verb, rep.Cache.Removed, bytesize.String(rep.Cache.RemovedBytes))
	if rep.Remote != nil {
		fmt.Fprintf(a.out, "remote: kept %d objects, %s %d (%s)\n", rep.Remote.Kept, verb, rep.Remote.Removed, bytesize.String(rep.Remote.RemovedBytes))
	}
	return nil
}
