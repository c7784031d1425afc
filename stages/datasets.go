package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
)

// Pointers serves the runner the datasets of a project from their committed
// pointers (data/<name>.dataset.toml) and the store.
type Pointers struct {
	Dir   string
	Store *CAS
	// Holdout is the project's held-out fraction ([data] holdout): the
	// side of a case whose pointer predates recorded sides follows
	// gitops.HashSide with it.
	Holdout float64

	mu    sync.Mutex
	cache map[string]*gitops.Dataset
}

// NewPointers reads pointers of the project in dir on demand.
func NewPointers(dir string, store *CAS) *Pointers {
	return &Pointers{Dir: dir, Store: store, cache: map[string]*gitops.Dataset{}}
}

// IsDataset implements Workspace.
func (p *Pointers) IsDataset(name string) bool {
	if !gitops.ValidName(name) {
		return false
	}
	_, err := os.Stat(filepath.Join(p.Dir, filepath.FromSlash(gitops.DatasetPath(name))))
	return err == nil
}

// Datasets implements Workspace: the names of data/*.dataset.toml.
func (p *Pointers) Datasets() []string {
	files, _ := filepath.Glob(filepath.Join(p.Dir, gitops.DatasetDir, "*"+gitops.DatasetSuffix))
	names := make([]string, 0, len(files))
	for _, f := range files {
		n := strings.TrimSuffix(filepath.Base(f), gitops.DatasetSuffix)
		if gitops.ValidName(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// PathExists implements Workspace.
func (p *Pointers) PathExists(rel string) bool {
	_, err := os.Stat(filepath.Join(p.Dir, filepath.FromSlash(rel)))
	return err == nil
}

// Pointer returns the parsed pointer of a dataset.
func (p *Pointers) Pointer(name string) (*gitops.Dataset, error) { return p.read(name) }

func (p *Pointers) read(name string) (*gitops.Dataset, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.cache[name]; ok {
		return d, nil
	}
	d, err := gitops.ReadDataset(p.Dir, name)
	if err != nil {
		return nil, err
	}
	p.cache[name] = d
	return d, nil
}

// Digest implements Datasets: the pointer's manifest digest, which covers
// every file of the batch.
func (p *Pointers) Digest(name string) (string, error) {
	d, err := p.read(name)
	if err != nil {
		return "", err
	}
	return d.Manifest.String(), nil
}

// ErrNoCases means a dataset has no imaging cases: it is not a DICOM
// dataset.
var ErrNoCases = errors.New("has no [[case]] tables (not a DICOM dataset)")

// Cases implements Datasets. A label is a single stored file; the runner
// restores trees, so it is wrapped in a one-entry manifest label.nii.gz.
func (p *Pointers) Cases(name string) ([]CaseRef, error) {
	d, err := p.read(name)
	if err != nil {
		return nil, err
	}
	if len(d.Cases) == 0 {
		return nil, fmt.Errorf("%s %w", gitops.DatasetPath(name), ErrNoCases)
	}
	refs := make([]CaseRef, 0, len(d.Cases))
	for _, c := range d.Cases {
		ref := CaseRef{ID: c.ID, Image: c.Image.String(), Split: c.Side(p.Holdout)}
		if !c.Label.IsZero() {
			lbl, err := p.labelTree(c.Label)
			if err != nil {
				return nil, fmt.Errorf("%s: case %s: %w", gitops.DatasetPath(name), c.ID, err)
			}
			ref.Label = lbl
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// labelTree returns the digest of a manifest holding the label object as
// label.nii.gz. Its digest depends only on the label's, so keys are stable.
func (p *Pointers) labelTree(id cas.ID) (string, error) {
	size, err := p.Store.Store.Size(id)
	if (errors.Is(err, os.ErrNotExist) || errors.Is(err, cas.ErrNotFound)) && p.Store.Remote != nil {
		// A fresh clone that restores every stage needs no data: the
		// label's size (part of the case's key) comes from the remote.
		size, err = p.Store.Remote.Stat(context.Background(), cas.ObjectKey(id))
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, cas.ErrNotFound) {
		return "", fmt.Errorf("label %s is not in the cache (run 'medcad data pull')", id.Short())
	}
	if err != nil {
		return "", err
	}
	m := &cas.Manifest{Entries: []cas.Entry{{Path: "label.nii.gz", Mode: 0o644, Size: size, ID: id}}}
	w := p.Store.Store.NewWriter()
	mid, err := w.PutBytes(m.Encode())
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return mid.String(), nil
}

// Checkout implements Datasets: the batch's files under data/<name>,
// fetched from the remote first when the cache lacks them.
// Workspace files that differ from the pointer are never overwritten.
func (p *Pointers) Checkout(ctx context.Context, name string) (string, error) {
	d, err := p.read(name)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(p.Dir, filepath.FromSlash(d.WorkDir()))
	if p.Store.Remote != nil {
		// A fresh clone fetches a dataset when a stage that runs reads it.
		if _, err := cas.Pull(ctx, p.Store.Store, p.Store.Remote, []cas.ID{d.Manifest}, cas.TransferOptions{Jobs: p.Store.Jobs}); err != nil {
			return "", fmt.Errorf("%s: %w", gitops.DatasetPath(name), err)
		}
	}
	m, err := p.Store.Store.ReadManifest(d.Manifest)
	if err != nil {
		return "", fmt.Errorf("%s: %w (run 'medcad data pull %s')", gitops.DatasetPath(name), err, name)
	}
	if _, err := p.Store.Store.Checkout(ctx, m, dir, cas.CheckoutOptions{}); err != nil {
		return "", fmt.Errorf("check out %s: %w", d.WorkDir(), err)
	}
	return dir, nil
}
