package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/internal/atomicfile"
)

// CAS is the runner's Store over medcad's content-addressed store: outs
// are stored as manifests, the stat index spares re-hashing unchanged
// workspace files, and the run cache maps cache keys to outs manifests,
// locally under .medcad/runcache and, when a remote is given, under
// runcache/ on the remote (so CI restores what someone already trained).
//
// The remote's runcache/ is trusted: only trusted jobs write it (a
// developer's repro --push, the promotion job adopting a merged tree's
// lock). A pull request's job has a Namespace: its entries go to
// runcache-ns/<namespace>/ and it reads the trusted ones first, then its
// own; nothing else ever reads them, so a pull request cannot plant an
// entry that main restores.
type CAS struct {
	Store     *cas.Store
	Remote    cas.Backend // optional
	Push      bool        // send new results to the remote
	Jobs      int
	Namespace string // "" writes the trusted run cache; "pr-12" a pull request's own
	// Meter, when set, draws the progress of storing, fetching, restoring
	// and pushing outputs of at least meterMinBytes.
	Meter func(step string) (p cas.Progress, finish func())

	index *cas.Index // safe for concurrent use
}

// NewCAS opens the run-cache view of a project's store.
func NewCAS(s *cas.Store, remote cas.Backend, push bool, jobs int) *CAS {
	return &CAS{Store: s, Remote: remote, Push: push, Jobs: jobs, index: s.LoadIndex()}
}

// Close saves the stat index.
func (c *CAS) Close() error { return c.Store.SaveIndex(c.index) }

// Snapshot implements Store.
func (c *CAS) Snapshot(ctx context.Context, root string, rels []string) (string, error) {
	prog, finish := c.meter("storing " + strings.Join(rels, ", "))
	defer finish()
	m := &cas.Manifest{}
	for _, rel := range rels {
		p := filepath.Join(root, filepath.FromSlash(rel))
		fi, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		if !fi.IsDir() {
			w := c.Store.NewWriter()
			id, n, err := w.PutFile(ctx, p)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return "", err
			}
			m.Entries = append(m.Entries, cas.Entry{Path: rel, Mode: cas.ModeOf(fi), Size: n, ID: id})
			continue
		}
		res, err := c.Store.AddDir(ctx, p, cas.TreeOptions{Jobs: c.Jobs, Progress: prog, Index: c.index, IndexPrefix: c.indexPrefix(p)})
		if err != nil {
			return "", err
		}
		for _, e := range res.Manifest.Entries {
			e.Path = path.Join(rel, e.Path)
			m.Entries = append(m.Entries, e)
		}
	}
	return c.putManifest(m)
}

// putManifest sorts, checks and stores m; it returns its digest.
func (c *CAS) putManifest(m *cas.Manifest) (string, error) {
	m.Sort()
	if err := m.Validate(); err != nil {
		return "", err
	}
	w := c.Store.NewWriter()
	id, err := w.PutBytes(m.Encode())
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// indexPrefix is the project-relative slash path of an absolute folder,
// or "" outside the project (which disables the index).
func (c *CAS) indexPrefix(abs string) string {
	a, err := filepath.Abs(abs)
	if err != nil {
		return ""
	}
	rel, err := filepath.Rel(c.Store.Root(), a)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return ""
	}
	return filepath.ToSlash(rel)
}

// Restore implements Store: it fetches what the cache lacks from the
// remote, then checks the tree out under root.
func (c *CAS) Restore(ctx context.Context, digest, root string) error {
	id, err := cas.ParseID(digest)
	if err != nil {
		return err
	}
	if c.Remote != nil {
		prog, finish := c.meter("fetching outputs")
		_, err := cas.Pull(ctx, c.Store, c.Remote, []cas.ID{id}, cas.TransferOptions{Jobs: c.Jobs, Progress: prog})
		finish()
		if err != nil {
			return err
		}
	}
	m, err := c.Store.ReadManifest(id)
	if err != nil {
		return err
	}
	prog, finish := c.meter("restoring " + outsOf(m))
	defer finish()
	_, err = c.Store.Checkout(ctx, m, root, cas.CheckoutOptions{TreeOptions: cas.TreeOptions{Jobs: c.Jobs, Progress: prog}, Force: true})
	return err
}

// Merge implements the runner's merger: the manifest of a foreach
// stage's union, each case tree's "out/…" files under outs[0], built from
// the case manifests (fetched from the remote when the cache lacks them)
// without their files. It is the digest Snapshot gives the laid-out
// union.
func (c *CAS) Merge(ctx context.Context, cases []string, outs []string) (string, error) {
	if len(outs) == 0 {
		return "", nil
	}
	m := &cas.Manifest{}
	from := map[string]string{} // path → case outs, for the error
	for _, d := range cases {
		id, err := cas.ParseID(d)
		if err != nil {
			return "", err
		}
		cm, err := c.manifest(ctx, id)
		if err != nil {
			return "", err
		}
		for _, e := range cm.Entries {
			rel, ok := strings.CutPrefix(e.Path, "out/")
			if !ok {
				continue
			}
			e.Path = path.Join(outs[0], rel)
			if other, dup := from[e.Path]; dup {
				return "", fmt.Errorf("two cases wrote %s (%s, %s)", e.Path, other, d)
			}
			from[e.Path] = d
			m.Entries = append(m.Entries, e)
		}
	}
	return c.putManifest(m)
}

// manifest reads manifest id, fetching it alone (not its files) from the
// remote when the cache lacks it.
func (c *CAS) manifest(ctx context.Context, id cas.ID) (*cas.Manifest, error) {
	if !c.Store.Has(id) && c.Remote != nil {
		if _, err := cas.Fetch(ctx, c.Store, c.Remote, []cas.Entry{{ID: id, Size: -1}}, cas.TransferOptions{Jobs: 1}); err != nil {
			return nil, err
		}
	}
	return c.Store.ReadManifest(id)
}

// ReadFile reads the file at rel (a slash path) of tree digest from the
// store, fetching the manifest and that one object when the cache lacks
// them; os.ErrNotExist when the tree has no such file.
func (c *CAS) ReadFile(ctx context.Context, digest, rel string, limit int64) ([]byte, error) {
	id, err := cas.ParseID(digest)
	if err != nil {
		return nil, err
	}
	m, err := c.manifest(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, e := range m.Entries {
		if e.Path != rel {
			continue
		}
		if !c.Store.Has(e.ID) && c.Remote != nil {
			if _, err := cas.Fetch(ctx, c.Store, c.Remote, []cas.Entry{e}, cas.TransferOptions{Jobs: 1}); err != nil {
				return nil, err
			}
		}
		return c.Store.ReadObject(e.ID, limit)
	}
	return nil, fmt.Errorf("%s: %w", rel, os.ErrNotExist)
}

func (c *CAS) runCachePath(key string) string {
	return filepath.Join(c.Store.Root(), ".medcad", "runcache", strings.TrimPrefix(key, "sha256:"))
}

func runCacheKey(key string) string { return "runcache/" + strings.TrimPrefix(key, "sha256:") }

// NamespacePrefix is where the run-cache entries of namespace ns live on
// the remote.
func NamespacePrefix(ns string) string { return "runcache-ns/" + ns + "/" }

// readKeys are the remote keys Lookup tries, trusted first.
func (c *CAS) readKeys(key string) []string {
	keys := []string{runCacheKey(key)}
	if c.Namespace != "" {
		keys = append(keys, NamespacePrefix(c.Namespace)+strings.TrimPrefix(key, "sha256:"))
	}
	return keys
}

// Lookup implements Store. An entry whose outs are no longer in the cache
// (with all their files) nor complete on the remote is a miss: the stage
// runs again.
func (c *CAS) Lookup(ctx context.Context, key string) (string, bool, error) {
	if b, err := os.ReadFile(c.runCachePath(key)); err == nil {
		if d := strings.TrimSpace(string(b)); validDigest(d) {
			if id, _ := cas.ParseID(d); c.available(ctx, id) {
				return d, true, nil
			}
		}
	}
	if c.Remote == nil {
		return "", false, nil
	}
	for _, k := range c.readKeys(key) {
		d, found, err := c.remoteEntry(ctx, k)
		if err != nil {
			return "", false, err
		}
		if found {
			id, _ := cas.ParseID(d)
			if c.available(ctx, id) {
				return d, true, nil
			}
		}
	}
	return "", false, nil
}

// remoteEntry reads one entry from the remote.
func (c *CAS) remoteEntry(ctx context.Context, k string) (string, bool, error) {
	rc, err := c.Remote.Get(ctx, k)
	if errors.Is(err, cas.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("run cache on %s: %w", c.Remote, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 256))
	if err != nil {
		return "", false, fmt.Errorf("run cache on %s: %w", c.Remote, err)
	}
	d := strings.TrimSpace(string(b))
	if !validDigest(d) {
		return "", false, fmt.Errorf("run cache on %s: entry %s is not a digest", c.Remote, k)
	}
	return d, true, nil
}

// available reports whether outs id can be restored: its manifest and
// every file in the cache, or its complete marker on the remote.
func (c *CAS) available(ctx context.Context, id cas.ID) bool {
	if m, err := c.Store.ReadManifest(id); err == nil && c.hasAll(m) {
		return true
	}
	if c.Remote == nil {
		return false
	}
	ok, err := cas.IsComplete(ctx, c.Remote, id)
	return err == nil && ok
}

// hasAll reports whether every file of m is in the cache.
func (c *CAS) hasAll(m *cas.Manifest) bool {
	for _, e := range m.Entries {
		if !c.Store.Has(e.ID) {
			return false
		}
	}
	return true
}

func validDigest(d string) bool {
	_, err := cas.ParseID(d)
	return err == nil
}

// Remember implements Store. With Push, the outs and the entry go to the
// remote too: first every object (Push writes the complete marker), then
// the entry, so a reader never finds an entry whose outs are missing.
func (c *CAS) Remember(ctx context.Context, key, digest string) error {
	p := c.runCachePath(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, []byte(digest+"\n"), 0o644); err != nil {
		return err
	}
	if c.Remote == nil || !c.Push {
		return nil
	}
	return c.PushEntry(ctx, key, digest)
}

// PushEntry sends one run-cache entry and its outs to the remote.
func (c *CAS) PushEntry(ctx context.Context, key, digest string) error {
	id, err := cas.ParseID(digest)
	if err != nil {
		return err
	}
	prog, finish := c.meter("pushing outputs")
	defer finish()
	if _, err := cas.Push(ctx, c.Store, c.Remote, []cas.ID{id}, cas.TransferOptions{Jobs: c.Jobs, Progress: prog}); err != nil {
		return err
	}
	keys := c.readKeys(key)
	return putEntry(ctx, c.Remote, keys[len(keys)-1], digest)
}

// putEntry writes one run-cache entry; an entry already there stays.
func putEntry(ctx context.Context, b cas.Backend, k, digest string) error {
	body := []byte(digest + "\n")
	err := b.Put(ctx, k, strings.NewReader(string(body)), int64(len(body)), cas.Sum(body))
	if errors.Is(err, cas.ErrExists) {
		return nil
	}
	return err
}

// AdoptLock writes the trusted run-cache entries of a merged tree's
// pipeline lock: for each stage (or case) whose outs are complete on the
// remote, its cache key maps to its outs. The promotion job calls it once
// the tree is verified, so clones of main restore what the pull request
// trained without trusting anything the pull request's job wrote. It
// returns how many entries it wrote.
func AdoptLock(ctx context.Context, b cas.Backend, lock *gitops.Lock) (int, error) {
	n := 0
	adopt := func(key, out string) error {
		id, err := cas.ParseID(out)
		if key == "" || err != nil {
			return nil
		}
		if _, found, err := (&CAS{Remote: b}).remoteEntry(ctx, runCacheKey(key)); err != nil || found {
			return err
		}
		if ok, err := cas.IsComplete(ctx, b, id); err != nil || !ok {
			return err
		}
		n++
		return putEntry(ctx, b, runCacheKey(key), out)
	}
	for _, name := range slices.Sorted(maps.Keys(lock.Stages)) {
		st := lock.Stages[name]
		if len(st.Cases) == 0 {
			if err := adopt(st.Key, st.Out); err != nil {
				return n, fmt.Errorf("adopt stage %s: %w", name, err)
			}
			continue
		}
		for _, id := range slices.Sorted(maps.Keys(st.Cases)) {
			if err := adopt(st.Cases[id].Key, st.Cases[id].Out); err != nil {
				return n, fmt.Errorf("adopt stage %s case %s: %w", name, id, err)
			}
		}
	}
	return n, nil
}
