package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/gitrepo"
	"github.com/medcad/medcad/internal/atomicfile"
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

// dataProject is what every data command opens.
type dataProject struct {
	cfg   gitops.Config
	store *cas.Store
}

func openDataProject() (*dataProject, error) {
	cfg, err := gitops.LoadConfig(".")
	if err != nil {
		return nil, err
	}
	s, err := cas.Open(".")
	if err != nil {
		return nil, err
	}
	return &dataProject{cfg: cfg, store: s}, nil
}

// remote opens the configured remote with retry and verification.
func (p *dataProject) remote(ctx context.Context) (cas.Backend, error) {
	b, err := openRemote(ctx, p.cfg)
	if err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	return b, nil
}

// datasets reads the named pointers, or all of them when names is empty.
func (p *dataProject) datasets(names []string) ([]*gitops.Dataset, error) {
	if len(names) == 0 {
		return gitops.ListDatasets(".")
	}
	var out []*gitops.Dataset
	for _, n := range names {
		d, err := gitops.ReadDataset(".", n)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (p *dataProject) jobs(flag int) int {
	if flag > 0 {
		return flag
	}
	return p.cfg.Remote.Jobs
}

// progress draws a bar of bytes with a file count on a terminal; it is
// nil (silent) otherwise.
type progress struct {
	mu          sync.Mutex
	bar         *progressbar.ProgressBar
	verb        string
	files, done int
}

func (a *app) newProgress(verb string) *progress {
	if !a.progressOn() {
		return nil
	}
	bar := progressbar.NewOptions64(0,
		progressbar.OptionSetWriter(a.err),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionEnableColorCodes(a.colour(a.err)),
		progressbar.OptionSetDescription(verb),
	)
	return &progress{bar: bar, verb: verb}
}

// cas returns p as a cas.Progress, or nil when p is nil.
func (p *progress) cas() cas.Progress {
	if p == nil {
		return nil
	}
	return p
}

func (p *progress) Total(files int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files += files
	p.bar.ChangeMax64(p.bar.GetMax64() + bytes)
	p.bar.Describe(fmt.Sprintf("%s %d/%d files", p.verb, p.done, p.files))
}

func (p *progress) Done(files int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += files
	p.bar.Describe(fmt.Sprintf("%s %d/%d files", p.verb, p.done, p.files))
	p.bar.Add64(bytes)
}

func (p *progress) finish() {
	if p != nil {
		p.bar.Finish()
	}
}

// ---- data add ----

// ingestFunc turns an input folder into the files a dataset stores: it
// writes them under out, one folder per case (out/<case id>/…) and label
// maps at out/labels/<case id>.nii.gz, and returns the cases (without
// image and label digests, which data add fills in). The DICOM mode of
// data add (de-identification) plugs in here.
type ingestFunc func(ctx context.Context, src, out string) ([]gitops.DatasetCase, error)

type dataAddOptions struct {
	path       string
	name       string
	labelRules string
	jobs       int
	link       string     // "copy" or "hardlink"; "": [data] link
	ingest     ingestFunc // nil: store the files as they are
	deid       string     // deid_profile recorded when ingest ran
}

func newDataAddCmd(a *app) *cobra.Command {
	var opts dataAddOptions
	cmd := &cobra.Command{
		Use:   "add PATH --name NAME",
		Short: "Store a folder as dataset NAME and write data/NAME.dataset.toml",
		Long: `Store every file under PATH in the cache and write the pointer
data/NAME.dataset.toml. Files are copied into the cache (cloned where the
file system has reflinks); with --link hardlink (or [data] link =
"hardlink") the files of data/NAME are hard links of the cache objects
instead (no data is written, the files become read-only; never edit them
in place). When PATH is not data/NAME, the files are also checked out to
data/NAME/ (which must not exist yet). Files the stat index knows
unchanged are not read again. Commit the pointer with git; push the
data with 'medcad data push'.

DICOM mode (when PATH holds case folders with DICOM files): each case
folder (<case>/…dicom files… and optionally <case>/label.nii.gz) is
de-identified with the DICOM PS3.15 Annex E basic profile, checked to hold
one CT series whose label matches its shape and affine (within 1e-3 mm),
and stored under its pseudonymous case id; only de-identified files reach
the store and data/NAME/. The pointer gets one [[case]] table per case.
Refused cases are reported and the others go on.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.path = args[0]
			if intake.IsDICOMBatch(opts.path) { // DICOM mode: data_dicom.go
				cfg, err := gitops.LoadConfig(".")
				if err != nil {
					return err
				}
				opts.ingest, opts.deid = dicomIngest(a, cfg), cfg.Data.DeidProfile
			}
			return runDataAdd(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().StringVar(&opts.name, "name", "", "dataset name (letters, digits, . _ -)")
	cmd.Flags().StringVar(&opts.labelRules, "label-rules", "", "labelling rules version (default: [data] label_rules)")
	cmd.Flags().IntVar(&opts.jobs, "jobs", 0, "parallel hashing workers (default: 2 per CPU)")
	cmd.Flags().StringVar(&opts.link, "link", "", "copy (a clone where the file system has reflinks), or hardlink: the files of data/NAME are hard links of the cache objects (no copy; they become read-only, and an in-place write to them, e.g. cp as root, damages the cache) (default: [data] link, copy)")
	return cmd
}

type dataAddResult struct {
	Name     string `json:"name"`
	Pointer  string `json:"pointer"`
	Manifest string `json:"manifest"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
	Hashed   int    `json:"hashed"`
	Cases    int    `json:"cases"`
}

func runDataAdd(ctx context.Context, a *app, opts dataAddOptions) error {
	if opts.name == "" {
		return usagef("data add: --name is required")
	}
	if !gitops.ValidName(opts.name) {
		return usagef("data add: --name %q: use letters, digits, . _ - (at most 64)", opts.name)
	}
	if opts.link != "" && opts.link != "copy" && opts.link != "hardlink" {
		return usagef("data add: --link %q: want copy or hardlink", opts.link)
	}
	p, err := openDataProject()
	if err != nil {
		return err
	}
	if opts.link == "" {
		opts.link = p.cfg.Data.Link
	}
	if opts.labelRules == "" {
		opts.labelRules = p.cfg.Data.LabelRules
	}
	src, err := filepath.Abs(opts.path)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(src); err != nil {
		return fmt.Errorf("data add: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("data add: %s: not a folder", opts.path)
	}
	work := filepath.Join(p.store.Root(), gitops.DatasetDir, opts.name)
	inPlace := src == work
	var cases []gitops.DatasetCase
	if opts.ingest != nil {
		tmp, err := os.MkdirTemp(filepath.Join(p.store.Root(), ".medcad"), "ingest-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if cases, err = opts.ingest(ctx, src, tmp); err != nil {
			return err
		}
		src, inPlace = tmp, false
	}
	prog := a.newProgress("hashing")
	ix := p.store.LoadIndex()
	topts := cas.TreeOptions{Jobs: opts.jobs, Progress: prog.cas()}
	if inPlace {
		topts.Index, topts.IndexPrefix = ix, gitops.DatasetDir+"/"+opts.name
		topts.Adopt = opts.link == "hardlink"
	}
	res, err := p.store.AddDir(ctx, src, topts)
	prog.finish()
	if err != nil {
		return fmt.Errorf("data add: %w", err)
	}
	if len(cases) > 0 {
		if err := fillCases(p.store, res.Manifest, cases); err != nil {
			return fmt.Errorf("data add: %w", err)
		}
	}
	if !inPlace && !emptyOrMissing(work) {
		// Only what an interrupted add of the same files left may be there.
		st, err := p.store.Status(ctx, res.Manifest, work, cas.TreeOptions{})
		if err != nil || len(st.New)+len(st.Modified) > 0 {
			return fmt.Errorf("data add: %s/%s already exists with other files; add it in place (medcad data add %s/%s --name %s) or move it away",
				gitops.DatasetDir, opts.name, gitops.DatasetDir, opts.name, opts.name)
		}
	}
	if !inPlace {
		copts := cas.CheckoutOptions{TreeOptions: cas.TreeOptions{Index: ix, IndexPrefix: gitops.DatasetDir + "/" + opts.name}}
		if opts.link == "hardlink" {
			copts.Link = cas.LinkHardlink
		}
		if _, err := p.store.Checkout(ctx, res.Manifest, work, copts); err != nil {
			return fmt.Errorf("data add: check out to %s/%s: %w", gitops.DatasetDir, opts.name, err)
		}
	}
	d := &gitops.Dataset{
		Schema: 1, Name: opts.name, Manifest: res.ID.String(),
		Files: int64(len(res.Manifest.Entries)), Bytes: res.Manifest.Bytes(),
		LabelRules: opts.labelRules, Cases: cases,
	}
	if opts.ingest != nil {
		d.DeidProfile = opts.deid
	}
	if err := ignoreDataset(p.store.Root(), opts.name); err != nil {
		return fmt.Errorf("data add: %w", err)
	}
	if err := d.Write("."); err != nil {
		return fmt.Errorf("data add: %w", err)
	}
	p.saveIndex(a, ix)
	out := dataAddResult{Name: d.Name, Pointer: gitops.DatasetPath(d.Name), Manifest: d.Manifest,
		Files: int(d.Files), Bytes: d.Bytes, Hashed: res.Hashed, Cases: len(cases)}
	if a.json {
		return a.printJSON(out)
	}
	fmt.Fprintf(a.out, "added %s: %d files, %s, %d hashed\n", d.Name, d.Files, humanBytes(d.Bytes), res.Hashed)
	fmt.Fprintf(a.out, "wrote %s (manifest %s)\n", out.Pointer, d.Manifest)
	return nil
}

// fillCases sets each case's image (a sub-manifest of the files under
// <case id>/) and label (labels/<case id>.nii.gz, when present).
func fillCases(s *cas.Store, m *cas.Manifest, cases []gitops.DatasetCase) error {
	for i := range cases {
		c := &cases[i]
		sub := &cas.Manifest{}
		for _, e := range m.Entries {
			if rest, ok := strings.CutPrefix(e.Path, c.ID+"/"); ok {
				e.Path = rest
				sub.Entries = append(sub.Entries, e)
			}
			if e.Path == "labels/"+c.ID+".nii.gz" {
				c.Label = e.ID.String()
			}
		}
		if len(sub.Entries) == 0 {
			return fmt.Errorf("case %s: no files under %s/", c.ID, c.ID)
		}
		id, err := s.PutBytes(sub.Encode())
		if err != nil {
			return err
		}
		c.Image = id.String()
	}
	return nil
}

func emptyOrMissing(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	return errors.Is(err, io.EOF)
}

// ignoreDataset makes git ignore data/<name>/ through data/.gitignore.
func ignoreDataset(root, name string) error {
	p := filepath.Join(root, gitops.DatasetDir, ".gitignore")
	line := "/" + name + "/"
	data, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if slices.Contains(lines, line) {
		return nil
	}
	if len(data) == 0 {
		data = []byte("# dataset folders: their files are in the store; the pointers are committed\n")
	} else if data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	data = append(data, line+"\n"...)
	return atomicfile.WriteFile(p, data, 0o644)
}

// ---- data status ----

type dataStatusOptions struct {
	remote bool
	names  []string
}

func newDataStatusCmd(a *app) *cobra.Command {
	var opts dataStatusOptions
	cmd := &cobra.Command{
		Use:   "status [NAME…]",
		Short: "Show new, modified and missing files of datasets; --remote: which are fully pushed",
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.names = args
			return runDataStatus(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.remote, "remote", false, "also check which datasets are fully on the remote (one request each)")
	return cmd
}

type datasetStatus struct {
	Name     string      `json:"name"`
	Manifest string      `json:"manifest"`
	Files    int64       `json:"files"`
	InCache  bool        `json:"in_cache"`
	Clean    bool        `json:"clean"`
	Status   *cas.Status `json:"status,omitempty"`
	Pushed   *bool       `json:"pushed,omitempty"`
}

func runDataStatus(ctx context.Context, a *app, opts dataStatusOptions) error {
	p, err := openDataProject()
	if err != nil {
		return err
	}
	ds, err := p.datasets(opts.names)
	if err != nil {
		return err
	}
	var remote cas.Backend
	if opts.remote {
		if remote, err = p.remote(ctx); err != nil {
			return err
		}
	}
	ix := p.store.LoadIndex()
	var out []datasetStatus
	for _, d := range ds {
		st := datasetStatus{Name: d.Name, Manifest: d.Manifest, Files: d.Files}
		m, err := p.store.ReadManifest(d.ManifestID())
		switch {
		case errors.Is(err, cas.ErrNotFound):
		case err != nil:
			return fmt.Errorf("%s: %w", gitops.DatasetPath(d.Name), err)
		default:
			st.InCache = true
			s, err := p.store.Status(ctx, m, d.WorkDir(), cas.TreeOptions{Index: ix, IndexPrefix: d.WorkDir()})
			if err != nil {
				return fmt.Errorf("%s: %w", d.Name, err)
			}
			st.Status, st.Clean = s, s.Clean()
			a.log.Debug("status", "dataset", d.Name, "rehashed", s.Rehashed)
		}
		if remote != nil {
			ok, err := cas.IsComplete(ctx, remote, d.ManifestID())
			if err != nil {
				return fmt.Errorf("%s: %w", d.Name, err)
			}
			st.Pushed = &ok
		}
		out = append(out, st)
	}
	p.saveIndex(a, ix)
	if a.json {
		if out == nil {
			out = []datasetStatus{}
		}
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
			line += fmt.Sprintf("up to date (%d files)", st.Files)
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

type dataTransferOptions struct {
	names      []string
	jobs       int
	noCheckout bool
	link       string
}

func newDataPushCmd(a *app) *cobra.Command {
	var opts dataTransferOptions
	cmd := &cobra.Command{
		Use:   "push [NAME…]",
		Short: "Send datasets (default: all) from the cache to the remote",
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.names = args
			return runDataPush(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().IntVar(&opts.jobs, "jobs", 0, "parallel transfers (default: [remote] jobs, 32)")
	return cmd
}

type transferReport struct {
	Remote   string `json:"remote"`
	Datasets int    `json:"datasets"`
	*cas.TransferResult
	CheckedOut *int `json:"checked_out,omitempty"` // files written in data/ (pull with checkout)
}

// transfer pushes or pulls (move) the manifests of datasets ds, with a
// progress bar on a terminal; topts may name pull targets.
func (p *dataProject) transfer(ctx context.Context, a *app, ds []*gitops.Dataset, opts dataTransferOptions, verb string,
	move func(context.Context, *cas.Store, cas.Backend, []cas.ID, cas.TransferOptions) (*cas.TransferResult, error),
	topts cas.TransferOptions,
) (cas.Backend, *cas.TransferResult, error) {
	remote, err := p.remote(ctx)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]cas.ID, len(ds))
	for i, d := range ds {
		ids[i] = d.ManifestID()
	}
	prog := a.newProgress(verb)
	topts.Jobs, topts.Progress = p.jobs(opts.jobs), prog.cas()
	res, err := move(ctx, p.store, remote, ids, topts)
	prog.finish()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", remote, err)
	}
	return remote, res, nil
}

func runDataPush(ctx context.Context, a *app, opts dataTransferOptions) error {
	p, err := openDataProject()
	if err != nil {
		return err
	}
	ds, err := p.datasets(opts.names)
	if err != nil {
		return err
	}
	remote, res, err := p.transfer(ctx, a, ds, opts, "pushing", cas.Push, cas.TransferOptions{})
	if err != nil {
		return fmt.Errorf("data push: %w", err)
	}
	rep := transferReport{Remote: remote.String(), Datasets: len(ds), TransferResult: res}
	if a.json {
		return a.printJSON(rep)
	}
	fmt.Fprintf(a.out, "pushed %d datasets to %s: %d objects (%s) sent, %d already there, %d datasets already complete\n",
		len(ds), remote, res.Objects, humanBytes(res.Bytes), res.Skipped, res.Complete)
	return nil
}

func newDataPullCmd(a *app) *cobra.Command {
	var opts dataTransferOptions
	cmd := &cobra.Command{
		Use:   "pull [NAME…]",
		Short: "Fetch datasets (default: all) from the remote and check them out",
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.names = args
			return runDataPull(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().IntVar(&opts.jobs, "jobs", 0, "parallel transfers (default: [remote] jobs, 32)")
	cmd.Flags().BoolVar(&opts.noCheckout, "no-checkout", false, "only fill the cache")
	cmd.Flags().StringVar(&opts.link, "link", "", "how checkout makes files: reflink, hardlink or copy (default: hardlink where [data] link = \"hardlink\", else reflink where the file system allows, else copy)")
	return cmd
}

func runDataPull(ctx context.Context, a *app, opts dataTransferOptions) error {
	p, err := openDataProject()
	if err != nil {
		return err
	}
	link, err := p.linkMode(opts.link)
	if err != nil {
		return err
	}
	ds, err := p.datasets(opts.names)
	if err != nil {
		return err
	}
	// Files are written as their objects arrive, and the checkout after
	// the transfer does what is left.
	ix := p.store.LoadIndex()
	defer p.saveIndex(a, ix)
	var topts cas.TransferOptions
	if !opts.noCheckout {
		for _, d := range ds {
			co := cas.CheckoutOptions{Link: link, TreeOptions: cas.TreeOptions{Index: ix, IndexPrefix: d.WorkDir()}}
			topts.Targets = append(topts.Targets, cas.PullTarget{Manifest: d.ManifestID(), Dir: d.WorkDir(), Options: co})
		}
	}
	remote, res, err := p.transfer(ctx, a, ds, opts, "pulling", cas.Pull, topts)
	if err != nil {
		return fmt.Errorf("data pull: %w", err)
	}
	written := res.Placed
	if !opts.noCheckout {
		n, err := checkoutDatasets(ctx, a, p, ds, cas.CheckoutOptions{Link: link, TreeOptions: cas.TreeOptions{Index: ix}})
		if written += n; err != nil {
			return err
		}
	}
	rep := transferReport{Remote: remote.String(), Datasets: len(ds), TransferResult: res}
	if !opts.noCheckout {
		rep.CheckedOut = &written
	}
	if a.json {
		return a.printJSON(rep)
	}
	fmt.Fprintf(a.out, "pulled %d datasets from %s: %d objects (%s) received, %d already cached\n",
		len(ds), remote, res.Objects, humanBytes(res.Bytes), res.Skipped)
	if !opts.noCheckout {
		fmt.Fprintf(a.out, "checked out %d files\n", written)
	}
	return nil
}

// ---- data checkout ----

type dataCheckoutOptions struct {
	names []string
	link  string
	force bool
}

func newDataCheckoutCmd(a *app) *cobra.Command {
	var opts dataCheckoutOptions
	cmd := &cobra.Command{
		Use:   "checkout [NAME…]",
		Short: "Make data/NAME/ match its pointer, from the cache",
		Long: `Make data/NAME/ hold exactly the files of its pointer, taking them from
the cache and verifying each. Files already right are left alone; files
that differ are replaced only with --force; extra files are left alone.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.names = args
			return runDataCheckout(cmd.Context(), a, opts)
		},
	}
	cmd.Flags().StringVar(&opts.link, "link", "", "reflink, hardlink or copy (default: hardlink where [data] link = \"hardlink\", else reflink where the file system allows, else copy)")
	cmd.Flags().BoolVar(&opts.force, "force", false, "replace workspace files that differ from the pointer")
	return cmd
}

// linkMode is how checkouts make files: the --link flag when given,
// else the project's [data] link.
func (p *dataProject) linkMode(flag string) (cas.LinkMode, error) {
	switch cas.LinkMode(flag) {
	case cas.LinkAuto:
		if p.cfg.Data.Link == "hardlink" {
			return cas.LinkHardlink, nil
		}
		return cas.LinkAuto, nil
	case cas.LinkReflink, cas.LinkHardlink, cas.LinkCopy:
		return cas.LinkMode(flag), nil
	}
	return "", usagef("--link %q: want reflink, hardlink or copy", flag)
}

func runDataCheckout(ctx context.Context, a *app, opts dataCheckoutOptions) error {
	p, err := openDataProject()
	if err != nil {
		return err
	}
	link, err := p.linkMode(opts.link)
	if err != nil {
		return err
	}
	ds, err := p.datasets(opts.names)
	if err != nil {
		return err
	}
	ix := p.store.LoadIndex()
	defer p.saveIndex(a, ix)
	n, err := checkoutDatasets(ctx, a, p, ds, cas.CheckoutOptions{Link: link, Force: opts.force, TreeOptions: cas.TreeOptions{Index: ix}})
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(map[string]int{"written": n})
	}
	fmt.Fprintf(a.out, "checked out %d datasets: %d files written\n", len(ds), n)
	return nil
}

// saveIndex saves the stat index; it only saves work, so a failure is
// logged, not an error.
func (p *dataProject) saveIndex(a *app, ix *cas.Index) {
	if err := p.store.SaveIndex(ix); err != nil {
		a.log.Debug("stat index not saved", "err", err)
	}
}

// checkoutDatasets checks out each dataset, recording files in
// opts.Index; a corrupt cache object is repaired from the remote when it
// can be, then the checkout is retried.
func checkoutDatasets(ctx context.Context, a *app, p *dataProject, ds []*gitops.Dataset, opts cas.CheckoutOptions) (int, error) {
	written := 0
	for _, d := range ds {
		m, err := p.store.ReadManifest(d.ManifestID())
		if errors.Is(err, cas.ErrNotFound) {
			return written, fmt.Errorf("%s: not in the cache (run 'medcad data pull %s')", d.Name, d.Name)
		}
		if err != nil {
			return written, fmt.Errorf("%s: %w", d.Name, err)
		}
		o := opts
		o.IndexPrefix = d.WorkDir()
		prog := a.newProgress("checkout " + d.Name)
		o.Progress = prog.cas()
		res, err := p.store.Checkout(ctx, m, d.WorkDir(), o)
		prog.finish()
		if errors.Is(err, cas.ErrCorrupt) {
			a.log.Debug("corrupt cache object; repairing from the remote", "dataset", d.Name)
			if rerr := repairManifest(ctx, p, m); rerr != nil {
				return written, fmt.Errorf("%s: %w; repair from the remote failed: %v", d.Name, err, rerr)
			}
			res, err = p.store.Checkout(ctx, m, d.WorkDir(), o)
		}
		if err != nil {
			return written, fmt.Errorf("%s: %w", d.Name, err)
		}
		written += res.Written
	}
	return written, nil
}

// repairManifest re-fetches every corrupt object of m from the remote.
func repairManifest(ctx context.Context, p *dataProject, m *cas.Manifest) error {
	remote, err := p.remote(ctx)
	if err != nil {
		return err
	}
	for _, e := range m.Entries {
		if err := p.store.VerifyObject(e.ID); errors.Is(err, cas.ErrCorrupt) {
			if err := cas.Repair(ctx, p.store, remote, e.ID, cas.TransferOptions{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- data verify ----

type dataVerifyOptions struct {
	remote bool
	jobs   int
}

func newDataVerifyCmd(a *app) *cobra.Command {
	var opts dataVerifyOptions
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash the cache; --remote: repair corrupt objects from the remote and check datasets are there",
		Long: `Re-hash every object of the cache and report those whose content no
longer matches their name (exit 3). With --remote, corrupt objects are
replaced by good copies from the remote, and every object of every
dataset pointer is checked to be on the remote.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDataVerify(cmd.Context(), a, opts) },
	}
	cmd.Flags().BoolVar(&opts.remote, "remote", false, "repair from the remote and check that datasets are on it")
	cmd.Flags().IntVar(&opts.jobs, "jobs", 0, "parallel workers")
	return cmd
}

type verifyReport struct {
	Objects       int      `json:"objects"`
	Corrupt       []string `json:"corrupt"`
	Repaired      []string `json:"repaired"`
	MissingRemote []string `json:"missing_remote"`
}

func runDataVerify(ctx context.Context, a *app, opts dataVerifyOptions) error {
	p, err := openDataProject()
	if err != nil {
		return err
	}
	if err := p.store.CleanTemp(); err != nil {
		return err
	}
	var ids []cas.ID
	if err := p.store.Each(func(id cas.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		return err
	}
	rep := verifyReport{Objects: len(ids), Corrupt: []string{}, Repaired: []string{}, MissingRemote: []string{}}
	corrupt, err := cas.VerifyAll(ctx, p.store, ids, max(opts.jobs, 0))
	if err != nil {
		return err
	}
	var remote cas.Backend
	if opts.remote {
		if remote, err = p.remote(ctx); err != nil {
			return err
		}
	}
	for _, id := range corrupt {
		rep.Corrupt = append(rep.Corrupt, id.String())
		if remote != nil {
			if err := cas.Repair(ctx, p.store, remote, id, cas.TransferOptions{}); err != nil {
				fmt.Fprintf(a.err, "medcad: cannot repair %s: %v\n", id, err)
				continue
			}
			rep.Repaired = append(rep.Repaired, id.String())
		}
	}
	if remote != nil {
		ds, err := p.datasets(nil)
		if err != nil {
			return err
		}
		for _, d := range ds {
			missing, err := cas.MissingOnRemote(ctx, p.store, remote, d.ManifestID(), p.jobs(0))
			if err != nil {
				return fmt.Errorf("%s: %w", d.Name, err)
			}
			for _, id := range missing {
				rep.MissingRemote = append(rep.MissingRemote, d.Name+" "+id.String())
			}
		}
	}
	if a.json {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.out, "verified %d objects: %d corrupt, %d repaired\n", rep.Objects, len(rep.Corrupt), len(rep.Repaired))
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
	if unrepaired := len(rep.Corrupt) - len(rep.Repaired); unrepaired > 0 || len(rep.MissingRemote) > 0 {
		return fmt.Errorf("data verify: %d corrupt objects not repaired, %d objects missing on the remote: %w", unrepaired, len(rep.MissingRemote), errCheckFailed)
	}
	return nil
}

// ---- data diff ----

type dataDiffOptions struct {
	rev1, rev2 string
}

func newDataDiffCmd(a *app) *cobra.Command {
	var opts dataDiffOptions
	cmd := &cobra.Command{
		Use:   "diff [REV1 [REV2]]",
		Short: "Datasets added, removed and changed between two revisions (default: HEAD and the working tree)",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.rev1 = "HEAD"
			if len(args) > 0 {
				opts.rev1 = args[0]
			}
			if len(args) > 1 {
				opts.rev2 = args[1]
			}
			return runDataDiff(cmd.Context(), a, opts)
		},
	}
	return cmd
}

type datasetDiff struct {
	Name     string   `json:"name"`
	Change   string   `json:"change"` // added | removed | changed
	Old      string   `json:"old,omitempty"`
	New      string   `json:"new,omitempty"`
	Files    [2]int64 `json:"files"` // old, new counts
	Added    *int     `json:"files_added,omitempty"`
	Removed  *int     `json:"files_removed,omitempty"`
	Modified *int     `json:"files_modified,omitempty"`
	Note     string   `json:"note,omitempty"`
}

func runDataDiff(ctx context.Context, a *app, opts dataDiffOptions) error {
	p, err := openDataProject()
	if err != nil {
		return err
	}
	repo, err := gitrepo.Open(".")
	if err != nil {
		return err
	}
	load := func(rev string) (map[string]*gitops.Dataset, error) {
		var ds []*gitops.Dataset
		if rev == "" {
			if ds, err = gitops.ListDatasets("."); err != nil {
				return nil, err
			}
		} else {
			c, err := gitrepo.Resolve(repo, rev)
			if err != nil {
				return nil, usagef("data diff: %v", err)
			}
			if ds, err = gitops.DatasetsAt(c); err != nil {
				return nil, err
			}
		}
		out := map[string]*gitops.Dataset{}
		for _, d := range ds {
			out[d.Name] = d
		}
		return out, nil
	}
	old, err := load(opts.rev1)
	if err != nil {
		return err
	}
	cur, err := load(opts.rev2)
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for n := range old {
		names[n] = true
	}
	for n := range cur {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	diffs := []datasetDiff{}
	for _, n := range sorted {
		o, c := old[n], cur[n]
		d := datasetDiff{Name: n}
		switch {
		case o == nil:
			d.Change, d.New, d.Files[1] = "added", c.Manifest, c.Files
		case c == nil:
			d.Change, d.Old, d.Files[0] = "removed", o.Manifest, o.Files
		case o.Manifest == c.Manifest:
			continue
		default:
			d.Change, d.Old, d.New, d.Files = "changed", o.Manifest, c.Manifest, [2]int64{o.Files, c.Files}
			mo, err1 := p.store.ReadManifest(o.ManifestID())
			mc, err2 := p.store.ReadManifest(c.ManifestID())
			if err1 != nil || err2 != nil {
				d.Note = "manifests not in the cache (run 'medcad data pull'); file counts only"
				break
			}
			ad, rm, md := diffManifests(mo, mc)
			d.Added, d.Removed, d.Modified = &ad, &rm, &md
		}
		diffs = append(diffs, d)
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
			fmt.Fprintf(a.out, "added    %s (%d files)\n", d.Name, d.Files[1])
		case "removed":
			fmt.Fprintf(a.out, "removed  %s (%d files)\n", d.Name, d.Files[0])
		default:
			if d.Added != nil {
				fmt.Fprintf(a.out, "changed  %s: %d files added, %d removed, %d modified (%d -> %d files)\n", d.Name, *d.Added, *d.Removed, *d.Modified, d.Files[0], d.Files[1])
			} else {
				fmt.Fprintf(a.out, "changed  %s: %d -> %d files (%s)\n", d.Name, d.Files[0], d.Files[1], d.Note)
			}
		}
	}
	return nil
}

// diffManifests counts files added, removed and modified from a to b.
func diffManifests(a, b *cas.Manifest) (added, removed, modified int) {
	i, j := 0, 0
	for i < len(a.Entries) || j < len(b.Entries) {
		switch {
		case j == len(b.Entries) || i < len(a.Entries) && a.Entries[i].Path < b.Entries[j].Path:
			removed++
			i++
		case i == len(a.Entries) || b.Entries[j].Path < a.Entries[i].Path:
			added++
			j++
		default:
			if a.Entries[i].ID != b.Entries[j].ID || a.Entries[i].Mode != b.Entries[j].Mode {
				modified++
			}
			i++
			j++
		}
	}
	return added, removed, modified
}

// ---- gc ----

type gcOptions struct {
	dryRun bool
	remote bool
}

func newGCCmd(a *app) *cobra.Command {
	var opts gcOptions
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
		RunE: func(cmd *cobra.Command, _ []string) error { return runGC(cmd.Context(), a, opts) },
	}
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "only report what would be removed")
	cmd.Flags().BoolVar(&opts.remote, "remote", false, "also remove unreferenced objects from the remote")
	return cmd
}

type gcReport struct {
	DryRun bool          `json:"dry_run"`
	Roots  int           `json:"roots"`
	Cache  *cas.GCResult `json:"cache"`
	Remote *cas.GCResult `json:"remote,omitempty"`
}

func runGC(ctx context.Context, a *app, opts gcOptions) error {
	p, err := openDataProject()
	if err != nil {
		return err
	}
	repo, err := gitrepo.Open(".")
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo = nil
	} else if err != nil {
		return err
	}
	digests, err := gitops.ReferencedDigests(repo, ".")
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	roots := make([]cas.ID, 0, len(digests))
	for _, d := range digests {
		id, err := cas.ParseID(d)
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		roots = append(roots, id)
	}
	var remote cas.Backend
	if opts.remote {
		if remote, err = p.remote(ctx); err != nil {
			return err
		}
	}
	keep, err := cas.Reachable(ctx, p.store, remote, roots)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	rep := gcReport{DryRun: opts.dryRun, Roots: len(roots)}
	if rep.Cache, err = cas.CollectGarbage(ctx, p.store, keep, opts.dryRun); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	if remote != nil {
		if rep.Remote, err = cas.CollectRemoteGarbage(ctx, remote, keep, opts.dryRun); err != nil {
			return fmt.Errorf("gc %s: %w", remote, err)
		}
	}
	if a.json {
		return a.printJSON(rep)
	}
	verb := "removed"
	if opts.dryRun {
		verb = "would remove"
	}
	fmt.Fprintf(a.out, "cache: kept %d objects, %s %d (%s)\n", rep.Cache.Kept, verb, rep.Cache.Removed, humanBytes(rep.Cache.RemovedBytes))
	if rep.Remote != nil {
		fmt.Fprintf(a.out, "remote: kept %d objects, %s %d (%s)\n", rep.Remote.Kept, verb, rep.Remote.Removed, humanBytes(rep.Remote.RemovedBytes))
	}
	return nil
}

// humanBytes writes n in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
