package gitops

import (
	"context"
	"errors"
	"fmt"
	"github.com/medcad/medcad/internal/plural"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/gitrepo"
	"github.com/medcad/medcad/internal/atomicfile"
)

// Link modes of data add, pull and checkout ([data] link, --link).
const (
	LinkCopy     = "copy"
	LinkHardlink = "hardlink"
)

// IngestFunc turns an input folder into the files a dataset stores: it
// writes them under out, one folder per case (out/<case id>/…) and label
// maps at out/labels/<case id>.nii.gz, and returns the cases (without
// image and label digests, which the add fills in) and the case folders
// it refused, one line each. DICOM ingest (de-identification) plugs in
// here.
type IngestFunc func(ctx context.Context, src, out string) (cases []DatasetCase, refused []string, err error)

// AddOptions are the settings of AddData.
type AddOptions struct {
	Path       string // the folder to add
	Name       string // dataset name
	LabelRules string // "": [data] label_rules
	Jobs       int    // parallel hashing workers (0: 2 per CPU)
	Link       string // LinkCopy or LinkHardlink; "": [data] link
	Ingest     IngestFunc
	Deid       string // deid_profile recorded when Ingest ran
	// Stored, when set, is called with the cases the pointer records once
	// it is written (the DICOM ingest records its local re-identification
	// key there, for the cases really stored).
	Stored func(cases []DatasetCase) error
}

// AddResult is what AddData stored.
type AddResult struct {
	Name     string `json:"name"`
	Pointer  string `json:"pointer"`
	Manifest cas.ID `json:"manifest"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
	Hashed   int    `json:"hashed"`
	Cases    int    `json:"cases"`
	// HeldOut counts the batch's labelled cases on the held-out side of
	// the split, of Labelled (AssignSplit).
	HeldOut  int `json:"held_out"`
	Labelled int `json:"labelled"`
	// Refused lists the cases not stored, one line each: refused by the
	// ingest, or already in another dataset.
	Refused []string `json:"refused"`
	// Replaced: the dataset's folder was an unchanged checkout of its
	// previous pointer and now holds the new files.
	Replaced bool `json:"replaced,omitempty"`
}

// AddData stores every file under o.Path as dataset o.Name and writes its
// pointer data/<name>.dataset.toml. A folder other than data/<name> is
// also checked out to data/<name>/, which must be empty or hold only what
// an interrupted add of the same files left.
func (p *Project) AddData(ctx context.Context, o AddOptions) (*AddResult, error) {
	if !ValidName(o.Name) {
		return nil, fmt.Errorf("dataset name %q: use letters, digits, . _ - (at most 64)", o.Name)
	}
	if o.Link == "" {
		o.Link = p.Config.Data.Link
	}
	if o.LabelRules == "" {
		o.LabelRules = p.Config.Data.LabelRules
	}
	src, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(src); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a folder", o.Path)
	}
	unlock, err := p.LockStore(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rel := DatasetDir + "/" + o.Name
	work := p.Path(rel)
	inPlace := src == work
	var cases []DatasetCase
	refused := []string{}
	if o.Ingest != nil {
		tmp, err := os.MkdirTemp(filepath.Join(p.Root, ".medcad"), "ingest-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		cases, refused, err = o.Ingest(ctx, src, tmp)
		if err != nil {
			return nil, err
		}
		if cases, refused, err = p.dropKnownCases(o.Name, tmp, cases, refused); err != nil {
			return nil, err
		}
		if len(cases) == 0 {
			return nil, fmt.Errorf("%s: no case to store (%d refused: %s)", o.Path, len(refused), strings.Join(refused, "; "))
		}
		src, inPlace = tmp, false
	}
	prog, finish := p.meter("hashing")
	ix := p.Store.LoadIndex()
	// Adopting links a file into the cache instead of writing it again: the
	// files of data/<name> with --link hardlink (they become read-only
	// hard links of the cache), the files of a delivery folder with
	// --link hardlink likewise, and always the ingest's own staging files.
	topts := cas.TreeOptions{Jobs: o.Jobs, Progress: prog, Adopt: o.Link == LinkHardlink || o.Ingest != nil}
	if inPlace {
		topts.Index, topts.IndexPrefix = ix, rel
	}
	res, err := p.Store.AddDir(ctx, src, topts)
	finish()
	if err != nil {
		return nil, err
	}
	if len(cases) > 0 {
		if err := fillCases(p.Store, res.Manifest, cases); err != nil {
			return nil, err
		}
	}
	replaced := false
	if !inPlace && !emptyOrMissing(work) {
		// What an interrupted add of the same files left may be there, or
		// an unchanged checkout of the dataset's previous pointer, which
		// this add replaces (a corrected label, a case added).
		st, err := p.Store.Status(ctx, res.Manifest, work, cas.TreeOptions{})
		if err != nil || len(st.New)+len(st.Modified) > 0 {
			if !p.unchangedCheckout(ctx, o.Name) {
				return nil, fmt.Errorf("%s already exists and holds changes its pointer %s does not record; move it away, or restore it with 'medcad data checkout --force %s' and add again", rel, DatasetPath(o.Name), o.Name)
			}
			if err := removeAll(work); err != nil {
				return nil, err
			}
			replaced = true
		}
	}
	if !inPlace {
		copts := cas.CheckoutOptions{TreeOptions: cas.TreeOptions{Index: ix, IndexPrefix: rel}}
		if o.Link == LinkHardlink {
			copts.Link = cas.LinkHardlink
		}
		prog, finish := p.meter("checkout " + o.Name)
		copts.Progress = prog
		_, err := p.Store.Checkout(ctx, res.Manifest, work, copts)
		finish()
		if err != nil {
			return nil, fmt.Errorf("check out to %s: %w", rel, err)
		}
	}
	if len(cases) > 0 {
		if err := p.assignSplit(o.Name, cases); err != nil {
			return nil, err
		}
	}
	d := &Dataset{
		Schema: 1, Name: o.Name, Manifest: res.ID,
		Files: int64(len(res.Manifest.Entries)), Bytes: res.Manifest.Bytes(),
		LabelRules: o.LabelRules, Cases: cases,
	}
	if o.Ingest != nil {
		d.DeidProfile = o.Deid
	}
	if err := p.checkLocal(d); err != nil {
		return nil, err
	}
	if err := ignoreDataset(p.Root, o.Name); err != nil {
		return nil, err
	}
	if err := d.Write(p.Root); err != nil {
		return nil, err
	}
	if o.Stored != nil {
		if err := o.Stored(cases); err != nil {
			return nil, err
		}
	}
	p.saveIndex(ix)
	ar := &AddResult{Name: d.Name, Pointer: DatasetPath(d.Name), Manifest: d.Manifest,
		Files: int(d.Files), Bytes: d.Bytes, Hashed: res.Hashed, Cases: len(cases), Refused: refused, Replaced: replaced}
	for _, c := range cases {
		if !c.Label.IsZero() {
			ar.Labelled++
		}
		if c.Split == SplitTest {
			ar.HeldOut++
		}
	}
	return ar, nil
}

// dropKnownCases refuses the cases of a new batch that another dataset
// already holds (the same study delivered twice: case ids are keyed
// hashes of the StudyInstanceUID), removing their files from the staging
// folder out.
func (p *Project) dropKnownCases(name, out string, cases []DatasetCase, refused []string) ([]DatasetCase, []string, error) {
	others, err := ListDatasets(p.Root)
	if err != nil {
		return nil, nil, err
	}
	owner := map[string]string{}
	for _, d := range others {
		if d.Name == name {
			continue
		}
		for _, c := range d.Cases {
			owner[c.ID] = d.Name
		}
	}
	kept := cases[:0]
	for _, c := range cases {
		other, dup := owner[c.ID]
		if !dup {
			kept = append(kept, c)
			continue
		}
		refused = append(refused, fmt.Sprintf("case %s is already in dataset %s: the same study cannot be in two batches (%s and %s)", c.ID, other, other, name))
		for _, rel := range []string{c.ID, "labels/" + c.ID + ".nii.gz"} {
			if err := os.RemoveAll(filepath.Join(out, filepath.FromSlash(rel))); err != nil {
				return nil, nil, err
			}
		}
	}
	return kept, refused, nil
}

// assignSplit records the held-out side of each new labelled case of
// dataset name (AssignSplit); a case the dataset's previous pointer
// already held keeps its side.
func (p *Project) assignSplit(name string, cases []DatasetCase) error {
	ds, err := ListDatasets(p.Root)
	if err != nil {
		return err
	}
	var others []DatasetCase
	prev := map[string]string{}
	for _, d := range ds {
		if d.Name != name {
			others = append(others, d.Cases...)
			continue
		}
		for _, c := range d.Cases {
			prev[c.ID] = c.Side(p.Config.Data.Holdout)
		}
	}
	for i := range cases {
		if side := prev[cases[i].ID]; side != "" && !cases[i].Label.IsZero() {
			cases[i].Split = side
		}
	}
	AssignSplit(cases, others, p.Config.Data)
	return nil
}

// unchangedCheckout reports whether data/<name>/ is exactly the checkout
// of dataset name's current pointer, so replacing it loses nothing.
func (p *Project) unchangedCheckout(ctx context.Context, name string) bool {
	d, err := ReadDataset(p.Root, name)
	if err != nil {
		return false
	}
	m, err := p.Store.ReadManifest(d.Manifest)
	if err != nil {
		return false
	}
	st, err := p.Store.Status(ctx, m, p.Path(d.WorkDir()), cas.TreeOptions{})
	return err == nil && st.Clean()
}

// removeAll removes a checked-out dataset folder, whose files and folders
// may be read-only (hard links of cache objects).
func removeAll(dir string) error {
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			err = os.Chmod(path, 0o755)
		}
		return err
	})
	if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// ErrPointerMismatch means a pointer's counts or cases disagree with the
// manifest it names: an edited or swapped digest.
var ErrPointerMismatch = errors.New("the pointer does not match its manifest")

// checkManifest refuses a manifest that is not the one pointer d was
// written for: its file count, bytes and case folders must agree.
func checkManifest(d *Dataset, m *cas.Manifest) error {
	bad := func(what string) error {
		return fmt.Errorf("%s: manifest %s %s: %w (edited or swapped digest?)", DatasetPath(d.Name), d.Manifest.Short(), what, ErrPointerMismatch)
	}
	if n := int64(len(m.Entries)); n != d.Files {
		return bad(fmt.Sprintf("holds %s, the pointer says %d", plural.Of(n, "file"), d.Files))
	}
	if b := m.Bytes(); b != d.Bytes {
		return bad(fmt.Sprintf("holds %d bytes, the pointer says %d", b, d.Bytes))
	}
	for _, c := range d.Cases {
		i, _ := slices.BinarySearchFunc(m.Entries, c.ID+"/", func(e cas.Entry, p string) int { return strings.Compare(e.Path, p) })
		if i == len(m.Entries) || !strings.HasPrefix(m.Entries[i].Path, c.ID+"/") {
			return bad("has no files of case " + c.ID)
		}
	}
	return nil
}

// checkLocal makes sure every object pointer d names is in the cache, so
// that a pointer never promises what a push cannot send.
func (p *Project) checkLocal(d *Dataset) error {
	ids := d.Roots()
	for _, c := range d.Cases {
		if !c.Label.IsZero() {
			ids = append(ids, c.Label)
		}
	}
	for _, id := range ids {
		if !p.Store.Has(id) {
			return fmt.Errorf("%s: object %s is not in the cache: %w", DatasetPath(d.Name), id.Short(), cas.ErrNotFound)
		}
	}
	return nil
}

// fillCases sets each case's image (a sub-manifest of the files under
// <case id>/) and label (labels/<case id>.nii.gz, when present).
func fillCases(s *cas.Store, m *cas.Manifest, cases []DatasetCase) error {
	for i := range cases {
		c := &cases[i]
		sub := &cas.Manifest{}
		for _, e := range m.Entries {
			if rest, ok := strings.CutPrefix(e.Path, c.ID+"/"); ok {
				e.Path = rest
				sub.Entries = append(sub.Entries, e)
			}
			if e.Path == "labels/"+c.ID+".nii.gz" {
				c.Label = e.ID
			}
		}
		if len(sub.Entries) == 0 {
			return fmt.Errorf("case %s: no files under %s/", c.ID, c.ID)
		}
		id, err := s.PutBytes(sub.Encode())
		if err != nil {
			return err
		}
		c.Image = id
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
	p := filepath.Join(root, DatasetDir, ".gitignore")
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

// DatasetStatus is one dataset's state in the workspace, the cache and
// (when asked) the remote.
type DatasetStatus struct {
	Name     string      `json:"name"`
	Manifest cas.ID      `json:"manifest"`
	Files    int64       `json:"files"`
	InCache  bool        `json:"in_cache"`
	Clean    bool        `json:"clean"`
	Status   *cas.Status `json:"status,omitempty"`
	Pushed   *bool       `json:"pushed,omitempty"`
}

// DataStatus compares the named datasets (all when empty) with their
// workspace folders; remote: also whether each is complete on the remote
// (one request each).
func (p *Project) DataStatus(ctx context.Context, names []string, remote bool) ([]DatasetStatus, error) {
	ds, err := p.Datasets(names)
	if err != nil {
		return nil, err
	}
	rb, err := p.remoteIf(ctx, remote)
	if err != nil {
		return nil, err
	}
	ix := p.Store.LoadIndex()
	out := []DatasetStatus{}
	for _, d := range ds {
		st := DatasetStatus{Name: d.Name, Manifest: d.Manifest, Files: d.Files}
		m, err := p.Store.ReadManifest(d.Manifest)
		switch {
		case errors.Is(err, cas.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("%s: %w", DatasetPath(d.Name), err)
		default:
			if err := checkManifest(d, m); err != nil {
				return nil, err
			}
			st.InCache = true
			prog, finish := p.meter("checking " + d.Name)
			s, err := p.Store.Status(ctx, m, p.Path(d.WorkDir()), cas.TreeOptions{Index: ix, IndexPrefix: d.WorkDir(), Progress: prog})
			finish()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Name, err)
			}
			st.Status, st.Clean = s, s.Clean()
			p.Log.Debug("status", "dataset", d.Name, "rehashed", s.Rehashed)
		}
		if rb != nil {
			ok, err := cas.IsComplete(ctx, rb, d.ClosureID())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Name, err)
			}
			st.Pushed = &ok
		}
		out = append(out, st)
	}
	p.saveIndex(ix)
	return out, nil
}

// TransferOptions are the settings of PushData and PullData.
type TransferOptions struct {
	Names      []string // datasets; empty: all
	Jobs       int      // parallel transfers; 0: [remote] jobs
	NoCheckout bool     // pull: only fill the cache
	Link       string   // pull: how checkout makes files (see LinkMode)
}

// TransferReport is what a push or pull moved.
type TransferReport struct {
	Remote   string `json:"remote"`
	Datasets int    `json:"datasets"`
	*cas.TransferResult
	CheckedOut *int `json:"checked_out,omitempty"` // files written in data/ (pull with checkout)
}

// transfer pushes or pulls (move) the closures of datasets ds.
func (p *Project) transfer(ctx context.Context, ds []*Dataset, jobs int, step string,
	move func(context.Context, *cas.Store, cas.Backend, []cas.ID, cas.TransferOptions) (*cas.TransferResult, error),
	topts cas.TransferOptions,
) (*TransferReport, error) {
	remote, err := p.Remote(ctx)
	if err != nil {
		return nil, err
	}
	prog, finish := p.meter(step)
	topts.Jobs, topts.Progress = p.jobs(jobs), prog
	res, err := move(ctx, p.Store, remote, roots(ds), topts)
	finish()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", remote, err)
	}
	return &TransferReport{Remote: remote.String(), Datasets: len(ds), TransferResult: res}, nil
}

// PushData sends the closure of each dataset (manifest, case
// sub-manifests, files) from the cache to the remote, then marks each
// closure complete.
func (p *Project) PushData(ctx context.Context, o TransferOptions) (*TransferReport, error) {
	unlock, err := p.LockStore(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	all, err := p.Datasets(o.Names)
	if err != nil {
		return nil, err
	}
	remote, err := p.Remote(ctx)
	if err != nil {
		return nil, err
	}
	var ds []*Dataset // not complete on the remote yet
	for _, d := range all {
		ok, err := cas.IsComplete(ctx, remote, d.ClosureID())
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", remote, d.Name, err)
		}
		if !ok {
			ds = append(ds, d)
		}
	}
	rep, err := p.transfer(ctx, ds, o.Jobs, "pushing", cas.Push, cas.TransferOptions{})
	if err != nil {
		return nil, err
	}
	rep.Datasets, rep.Complete = len(all), rep.Complete+len(all)-len(ds)
	for _, d := range ds {
		if err := cas.MarkComplete(ctx, remote, d.ClosureID()); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", remote, d.Name, err)
		}
	}
	return rep, nil
}

// PullData fetches datasets from the remote and, unless o.NoCheckout,
// checks them out; files are written as their objects arrive and a
// checkout after the transfer does what is left.
func (p *Project) PullData(ctx context.Context, o TransferOptions) (*TransferReport, error) {
	link, err := p.LinkMode(o.Link)
	if err != nil {
		return nil, err
	}
	unlock, err := p.LockStore(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ds, err := p.Datasets(o.Names)
	if err != nil {
		return nil, err
	}
	ix := p.Store.LoadIndex()
	defer p.saveIndex(ix)
	var topts cas.TransferOptions
	if !o.NoCheckout {
		for _, d := range ds {
			co := cas.CheckoutOptions{Link: link, TreeOptions: cas.TreeOptions{Index: ix, IndexPrefix: d.WorkDir()}}
			topts.Targets = append(topts.Targets, cas.PullTarget{Manifest: d.Manifest, Dir: p.Path(d.WorkDir()), Options: co})
		}
	}
	rep, err := p.transfer(ctx, ds, o.Jobs, "pulling", cas.Pull, topts)
	if err != nil {
		return nil, err
	}
	if !o.NoCheckout {
		n, err := p.checkout(ctx, ds, cas.CheckoutOptions{Link: link, TreeOptions: cas.TreeOptions{Index: ix}})
		if err != nil {
			return nil, err
		}
		written := rep.Placed + n
		rep.CheckedOut = &written
	}
	return rep, nil
}

// ErrBadLink is a link mode that is none of reflink, hardlink and copy.
var ErrBadLink = errors.New("want reflink, hardlink or copy")

// LinkMode is how checkouts make files: flag when given, else the
// project's [data] link.
func (p *Project) LinkMode(flag string) (cas.LinkMode, error) {
	switch cas.LinkMode(flag) {
	case cas.LinkAuto:
		if p.Config.Data.Link == LinkHardlink {
			return cas.LinkHardlink, nil
		}
		return cas.LinkAuto, nil
	case cas.LinkReflink, cas.LinkHardlink, cas.LinkCopy:
		return cas.LinkMode(flag), nil
	}
	return "", fmt.Errorf("--link %q: %w", flag, ErrBadLink)
}

// CheckoutOptions are the settings of CheckoutData.
type CheckoutOptions struct {
	Names []string
	Link  string // see LinkMode
	Force bool   // replace workspace files that differ
}

// CheckoutData makes data/<name>/ of each dataset match its pointer, from
// the cache, and returns the number of files written.
func (p *Project) CheckoutData(ctx context.Context, o CheckoutOptions) (datasets, written int, err error) {
	link, err := p.LinkMode(o.Link)
	if err != nil {
		return 0, 0, err
	}
	unlock, err := p.LockStore(ctx, false)
	if err != nil {
		return 0, 0, err
	}
	defer unlock()
	ds, err := p.Datasets(o.Names)
	if err != nil {
		return 0, 0, err
	}
	ix := p.Store.LoadIndex()
	defer p.saveIndex(ix)
	n, err := p.checkout(ctx, ds, cas.CheckoutOptions{Link: link, Force: o.Force, TreeOptions: cas.TreeOptions{Index: ix}})
	return len(ds), n, err
}

// checkout checks out each dataset, recording files in opts.Index; a
// corrupt cache object is repaired from the remote when it can be, then
// the checkout is retried.
func (p *Project) checkout(ctx context.Context, ds []*Dataset, opts cas.CheckoutOptions) (int, error) {
	written := 0
	for _, d := range ds {
		m, err := p.Store.ReadManifest(d.Manifest)
		if errors.Is(err, cas.ErrNotFound) {
			return written, fmt.Errorf("%s: not in the cache (run 'medcad data pull %s')", d.Name, d.Name)
		}
		if err != nil {
			return written, fmt.Errorf("%s: %w", d.Name, err)
		}
		if err := checkManifest(d, m); err != nil {
			return written, err
		}
		o := opts
		o.IndexPrefix = d.WorkDir()
		prog, finish := p.meter("checkout " + d.Name)
		o.Progress = prog
		dir := p.Path(d.WorkDir())
		res, err := p.Store.Checkout(ctx, m, dir, o)
		finish()
		if errors.Is(err, cas.ErrCorrupt) {
			p.Log.Debug("corrupt cache object; repairing from the remote", "dataset", d.Name)
			if rerr := p.repairManifest(ctx, m); rerr != nil {
				return written, fmt.Errorf("%s: %w; repair from the remote failed: %v", d.Name, err, rerr)
			}
			res, err = p.Store.Checkout(ctx, m, dir, o)
		}
		if err != nil {
			return written, fmt.Errorf("%s: %w", d.Name, err)
		}
		written += res.Written
	}
	return written, nil
}

// repairManifest re-fetches every corrupt object of m from the remote.
func (p *Project) repairManifest(ctx context.Context, m *cas.Manifest) error {
	remote, err := p.Remote(ctx)
	if err != nil {
		return err
	}
	for _, e := range m.Entries {
		if err := p.Store.VerifyObject(e.ID); errors.Is(err, cas.ErrCorrupt) {
			if err := cas.Repair(ctx, p.Store, remote, e.ID, cas.TransferOptions{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// VerifyReport is what VerifyData found.
type VerifyReport struct {
	Objects       int      `json:"objects"`
	Corrupt       []string `json:"corrupt"`
	Repaired      []string `json:"repaired"`
	MissingRemote []string `json:"missing_remote"`
	// Unrepairable lists corrupt objects the remote could not replace,
	// with the reason.
	Unrepairable []string `json:"-"`
}

// Failed reports whether corrupt objects are left or objects are missing
// on the remote.
func (r *VerifyReport) Failed() bool {
	return len(r.Corrupt) > len(r.Repaired) || len(r.MissingRemote) > 0
}

// VerifyData re-hashes every object of the cache; remote: corrupt objects
// are replaced from the remote, and every object of every dataset is
// checked to be there.
func (p *Project) VerifyData(ctx context.Context, remote bool, jobs int) (*VerifyReport, error) {
	unlock, err := p.LockStore(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := p.Store.CleanTemp(); err != nil {
		return nil, err
	}
	var objs []cas.Entry
	if err := p.Store.Each(func(id cas.ID, size int64) error {
		objs = append(objs, cas.Entry{ID: id, Size: size})
		return nil
	}); err != nil {
		return nil, err
	}
	rep := &VerifyReport{Objects: len(objs), Corrupt: []string{}, Repaired: []string{}, MissingRemote: []string{}}
	prog, finish := p.meter("verifying")
	corrupt, err := cas.VerifyAll(ctx, p.Store, objs, max(jobs, 0), prog)
	finish()
	if err != nil {
		return nil, err
	}
	rb, err := p.remoteIf(ctx, remote)
	if err != nil {
		return nil, err
	}
	for _, id := range corrupt {
		rep.Corrupt = append(rep.Corrupt, id.String())
		if rb != nil {
			if err := cas.Repair(ctx, p.Store, rb, id, cas.TransferOptions{}); err != nil {
				rep.Unrepairable = append(rep.Unrepairable, fmt.Sprintf("cannot repair %s: %v", id, err))
				continue
			}
			rep.Repaired = append(rep.Repaired, id.String())
		}
	}
	if rb != nil {
		ds, err := p.Datasets(nil)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			missing, err := cas.MissingOnRemote(ctx, p.Store, rb, d.Roots(), p.jobs(0))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Name, err)
			}
			for _, id := range missing {
				rep.MissingRemote = append(rep.MissingRemote, d.Name+" "+id.String())
			}
		}
	}
	return rep, nil
}

// DatasetDiff is one dataset's change between two revisions.
type DatasetDiff struct {
	Name     string   `json:"name"`
	Change   string   `json:"change"` // added | removed | changed
	Old      cas.ID   `json:"old,omitzero"`
	New      cas.ID   `json:"new,omitzero"`
	Files    [2]int64 `json:"files"` // old, new counts
	Added    *int     `json:"files_added,omitempty"`
	Removed  *int     `json:"files_removed,omitempty"`
	Modified *int     `json:"files_modified,omitempty"`
	Note     string   `json:"note,omitempty"`
}

// DiffData lists the datasets added, removed and changed from rev1 to
// rev2 ("": the working tree).
func (p *Project) DiffData(rev1, rev2 string) ([]DatasetDiff, error) {
	repo, err := p.Repo()
	if err != nil {
		return nil, err
	}
	load := func(rev string) (map[string]*Dataset, error) {
		var ds []*Dataset
		if rev == "" {
			if ds, err = ListDatasets(p.Root); err != nil {
				return nil, err
			}
		} else {
			c, err := gitrepo.Resolve(repo, rev)
			if err != nil {
				return nil, err
			}
			if ds, err = DatasetsAt(c); err != nil {
				return nil, err
			}
		}
		out := map[string]*Dataset{}
		for _, d := range ds {
			out[d.Name] = d
		}
		return out, nil
	}
	old, err := load(rev1)
	if err != nil {
		return nil, err
	}
	cur, err := load(rev2)
	if err != nil {
		return nil, err
	}
	var names []string
	for n := range old {
		names = append(names, n)
	}
	for n := range cur {
		if old[n] == nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	diffs := []DatasetDiff{}
	for _, n := range names {
		o, c := old[n], cur[n]
		d := DatasetDiff{Name: n}
		switch {
		case o == nil:
			d.Change, d.New, d.Files[1] = "added", c.Manifest, c.Files
		case c == nil:
			d.Change, d.Old, d.Files[0] = "removed", o.Manifest, o.Files
		case o.Manifest == c.Manifest:
			continue
		default:
			d.Change, d.Old, d.New, d.Files = "changed", o.Manifest, c.Manifest, [2]int64{o.Files, c.Files}
			mo, err1 := p.Store.ReadManifest(o.Manifest)
			mc, err2 := p.Store.ReadManifest(c.Manifest)
			if err1 != nil || err2 != nil {
				d.Note = "manifests not in the cache (run 'medcad data pull'); file counts only"
				break
			}
			ad, rm, md := diffManifests(mo, mc)
			d.Added, d.Removed, d.Modified = &ad, &rm, &md
		}
		diffs = append(diffs, d)
	}
	return diffs, nil
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

// GCReport is what GC kept and removed.
type GCReport struct {
	DryRun bool          `json:"dry_run"`
	Roots  int           `json:"roots"`
	Cache  *cas.GCResult `json:"cache"`
	Remote *cas.GCResult `json:"remote,omitempty"`
}

// GC removes the objects of the cache (and, remote: of the remote) that no
// branch, tag, run record or working-tree pointer references. It holds the
// store's lock exclusive, so it first waits for every add, pull, push,
// checkout, verify and pipeline run in progress to finish.
func (p *Project) GC(ctx context.Context, dryRun, remote bool) (*GCReport, error) {
	// Exclusive, and before the roots are read: an add, pull or run in
	// progress finishes and writes its pointers first.
	unlock, err := p.LockStore(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	repo, err := p.Repo()
	if errors.Is(err, gitrepo.ErrNoRepo) {
		repo = nil
	} else if err != nil {
		return nil, err
	}
	digests, err := ReferencedDigests(repo, p.Root)
	if err != nil {
		return nil, err
	}
	roots := make([]cas.ID, 0, len(digests))
	for _, d := range digests {
		id, err := cas.ParseID(d)
		if err != nil {
			return nil, err
		}
		roots = append(roots, id)
	}
	rb, err := p.remoteIf(ctx, remote)
	if err != nil {
		return nil, err
	}
	keep, err := cas.Reachable(ctx, p.Store, rb, roots)
	if err != nil {
		return nil, err
	}
	rep := &GCReport{DryRun: dryRun, Roots: len(roots)}
	if rep.Cache, err = cas.CollectGarbage(ctx, p.Store, keep, dryRun); err != nil {
		return nil, err
	}
	if rb != nil {
		if rep.Remote, err = cas.CollectRemoteGarbage(ctx, rb, keep, dryRun); err != nil {
			return nil, fmt.Errorf("%s: %w", rb, err)
		}
	}
	return rep, nil
}
