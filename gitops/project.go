package gitops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/gitrepo"
)

// RemoteEnv overrides [remote] url when set.
const RemoteEnv = "MEDCAD_REMOTE"

// ErrNoProject means no folder from the working directory up holds a
// medcad.toml.
var ErrNoProject = errors.New("not inside a medcad project (no medcad.toml here or in any parent folder)")

// Project is an opened medcad project: its root folder, its configuration
// with environment overrides applied, the local store, and (opened when
// first needed) the git repository and the remote. Commands and CI open
// one per invocation and call its methods.
type Project struct {
	Root   string
	Config Config
	Store  *cas.Store
	Log    *slog.Logger // never nil
	// Meter, when set, draws the progress of one long step (hashing,
	// pushing, …); finish is called when the step ends.
	Meter func(step string) (p cas.Progress, finish func())
	// OnLockWait, when set, is called when an operation finds the
	// store's lock (lockFile) held by another command and starts to wait.
	OnLockWait func(lockFile string)

	remoteOnce sync.Once
	remote     cas.Backend
	remoteErr  error
	fetched    cas.Counter // what was read from the remote
}

// OpenOptions are Open's settings.
type OpenOptions struct {
	Log    *slog.Logger
	Getenv func(string) string // nil: os.Getenv
}

// FindRoot walks up from dir to the first folder holding medcad.toml.
func FindRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ConfigFile)); err == nil {
			return d, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s: %w", abs, ErrNoProject)
		}
	}
}

// Open finds the project holding dir (walking up like git), loads its
// configuration, applies MEDCAD_REMOTE, and opens the local store.
func Open(ctx context.Context, dir string, o OpenOptions) (*Project, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := FindRoot(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(root)
	if err != nil {
		return nil, err
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if u := getenv(RemoteEnv); u != "" {
		cfg.Remote.URL = u
	}
	store, err := cas.Open(root)
	if err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Project{Root: root, Config: cfg, Store: store, Log: log}, nil
}

// Path is the project-relative slash path rel as a file path.
func (p *Project) Path(rel string) string { return filepath.Join(p.Root, filepath.FromSlash(rel)) }

// Repo opens the project's git repository.
func (p *Project) Repo() (*git.Repository, error) { return gitrepo.Open(p.Root) }

// Remote opens the configured remote once, with retries and verification
// of every object read.
func (p *Project) Remote(ctx context.Context) (cas.Backend, error) {
	p.remoteOnce.Do(func() {
		p.remote, p.remoteErr = openRemote(ctx, p.Config.Remote, p.Root, p.Log, &p.fetched)
		if p.remoteErr != nil {
			p.remoteErr = fmt.Errorf("remote: %w", p.remoteErr)
		}
	})
	return p.remote, p.remoteErr
}

// Fetched counts the objects and bytes read from the remote since the
// project was opened.
func (p *Project) Fetched() *cas.Counter { return &p.fetched }

// remoteIf opens the remote when want is set; it is nil otherwise.
func (p *Project) remoteIf(ctx context.Context, want bool) (cas.Backend, error) {
	if !want {
		return nil, nil
	}
	return p.Remote(ctx)
}

// meter starts the progress display of one step; it is a no-op without a
// Meter.
func (p *Project) meter(step string) (cas.Progress, func()) {
	if p.Meter == nil {
		return nil, func() {}
	}
	return p.Meter(step)
}

// Datasets reads the named pointers, or all of them when names is empty.
func (p *Project) Datasets(names []string) ([]*Dataset, error) {
	if len(names) == 0 {
		return ListDatasets(p.Root)
	}
	out := make([]*Dataset, 0, len(names))
	for _, n := range names {
		d, err := ReadDataset(p.Root, n)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// jobs is the number of parallel transfers: flag when positive, else
// [remote] jobs.
func (p *Project) jobs(flag int) int {
	if flag > 0 {
		return flag
	}
	return p.Config.Remote.Jobs
}

// saveIndex saves the stat index; it only saves work, so a failure is
// logged, not an error.
func (p *Project) saveIndex(ix *cas.Index) {
	if err := p.Store.SaveIndex(ix); err != nil {
		p.Log.Debug("stat index not saved", "err", err)
	}
}

// LockStore takes the store's lock (see [cas.Store.Lock]), shared for an
// operation that writes or uses cache objects, exclusive for garbage
// collection, waiting for it while ctx allows. unlock cannot fail in a
// way the caller must handle: a failure is logged, and closing the lock
// file releases the lock anyway.
func (p *Project) LockStore(ctx context.Context, exclusive bool) (unlock func(), err error) {
	release, ok, err := p.Store.TryLock(exclusive)
	if err != nil {
		return nil, err
	}
	if !ok {
		if p.OnLockWait != nil {
			p.OnLockWait(cas.LockFile)
		}
		if release, err = p.Store.Lock(ctx, exclusive); err != nil {
			return nil, err
		}
	}
	return func() {
		if err := release(); err != nil {
			p.Log.Debug("store lock not released cleanly", "err", err)
		}
	}, nil
}
