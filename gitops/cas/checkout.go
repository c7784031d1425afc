package cas

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// checkoutTemp starts the names of Checkout's temporary files.
const checkoutTemp = ".medcad-tmp-"

// LinkMode says how Checkout materializes files from the cache.
type LinkMode string

// Link modes. LinkAuto tries reflink, then copies.
const (
	LinkAuto     LinkMode = ""
	LinkReflink  LinkMode = "reflink"
	LinkHardlink LinkMode = "hardlink"
	LinkCopy     LinkMode = "copy"
)

// ErrModified means a workspace file differs from what a checkout would
// write, and Force was not given.
var ErrModified = errors.New("modified in the workspace")

// CheckoutOptions tune Checkout.
type CheckoutOptions struct {
	TreeOptions
	Link  LinkMode
	Force bool // replace workspace files that differ
}

// CheckoutResult counts what Checkout did.
type CheckoutResult struct {
	Written   int `json:"written"`
	Unchanged int `json:"unchanged"`
}

// Checkout makes the folder dir hold the files of manifest m, taking them
// from the cache and verifying each against its digest (a corrupt cache
// object is an error wrapping ErrCorrupt). Files already right are left
// alone; files that differ are replaced only with Force. It never follows
// a symbolic link inside dir, so a manifest cannot write outside it.
// Files in dir that m does not list are left alone. A file appears whole
// or not at all: it is written unnamed (or under a temporary name) and
// named when complete.
func (s *Store) Checkout(ctx context.Context, m *Manifest, dir string, opts CheckoutOptions) (*CheckoutResult, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Remove what interrupted checkouts left. Symbolic links and other
	// odd files are dealt with below, only where they are in the way.
	if _, err := walkTreeClean(ctx, dir, true, true); err != nil && !errors.Is(err, errNotRegular) && !errors.Is(err, errSymlink) {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	s.probeOnce.Do(s.probe)
	total(opts.Progress, len(m.Entries), m.Bytes())
	c := &checkout{s: s, root: root, dir: dir, opts: opts, dirs: map[string]error{}}
	var res CheckoutResult
	var mu sync.Mutex
	// Eight workers per core: with direct I/O, workers wait on the disk.
	err = forEach(ctx, opts.jobs(8), folderBatches(m.Entries, entryFile, checkoutBatch), func(ctx context.Context, _ int, b []Entry) error {
		r, err := c.batch(ctx, b)
		mu.Lock()
		res.Written += r.Written
		res.Unchanged += r.Unchanged
		mu.Unlock()
		return err
	})
	return &res, err
}

// checkoutBatch is the most files of one folder a checkout worker takes at
// a time.
const checkoutBatch = 64

// folderBatches cuts items (sorted by path) into batches of files of one
// folder, at most n files or batchBytes bytes (or one larger file) each,
// ordered round-robin over the folders: parallel workers then work in
// different folders instead of queueing for the lock of one, each opens
// its folder once per batch, and large files still go to all workers.
func folderBatches[T any](items []T, file func(T) (string, int64), n int) [][]T {
	dir := func(i int) string { p, _ := file(items[i]); return path.Dir(p) }
	var folders [][][]T
	for i := 0; i < len(items); {
		d := dir(i)
		var f [][]T
		for i < len(items) && dir(i) == d {
			_, bytes := file(items[i])
			j := i + 1
			for ; j < len(items) && j-i < n && dir(j) == d; j++ {
				_, size := file(items[j])
				if bytes += size; bytes > batchBytes {
					break
				}
			}
			f = append(f, items[i:j])
			i = j
		}
		folders = append(folders, f)
	}
	var out [][]T
	for len(folders) > 0 {
		left := folders[:0]
		for _, f := range folders {
			out = append(out, f[0])
			if len(f) > 1 {
				left = append(left, f[1:])
			}
		}
		folders = left
	}
	return out
}

// batchBytes bounds the bytes of a batch of folderBatches.
const batchBytes = 8 << 20

func entryFile(e Entry) (string, int64) { return e.Path, e.Size }

type checkout struct {
	s    *Store
	root *os.Root
	dir  string
	opts CheckoutOptions
	mu   sync.Mutex
	dirs map[string]error // folders made and checked to be real folders

	noReflink atomic.Bool // a reflink failed: LinkAuto copies from then on
	alignOnce sync.Once
	align     int // alignment of direct I/O in dir; 0: none
}

// batch materializes entries of one folder and counts what it did.
func (c *checkout) batch(ctx context.Context, entries []Entry) (CheckoutResult, error) {
	var r CheckoutResult
	rel := path.Dir(entries[0].Path)
	if err := c.mkdirs(entries[0].Path); err != nil {
		return r, err
	}
	// Opened through the root: no symbolic link on the way. Every name
	// below is relative to this folder.
	d, err := c.root.Open(rel)
	if err != nil {
		return r, err
	}
	defer d.Close()
	dir := folderOf(c.root, rel, d)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		wrote, err := c.one(dir, e)
		if err != nil {
			return r, err
		}
		if wrote {
			r.Written++
		} else {
			r.Unchanged++
		}
		done(c.opts.Progress, 1, e.Size)
	}
	return r, nil
}

// mkdirs creates the folders of rel, refusing symbolic links on the way.
func (c *checkout) mkdirs(rel string) error {
	d := path.Dir(rel)
	if d == "." {
		return nil
	}
	c.mu.Lock()
	err, ok := c.dirs[d]
	c.mu.Unlock()
	if ok {
		return err
	}
	if err = c.mkdirs(d); err == nil {
		fi, lerr := c.root.Lstat(d)
		switch {
		case errors.Is(lerr, fs.ErrNotExist):
			if err = c.root.Mkdir(d, 0o755); errors.Is(err, fs.ErrExist) {
				err = c.checkDir(d)
			}
		case lerr != nil:
			err = lerr
		case fi.Mode()&fs.ModeSymlink != 0:
			err = fmt.Errorf("%s: %w: symbolic link in the way", filepath.Join(c.dir, d), ErrUnsafePath)
		case !fi.IsDir():
			err = fmt.Errorf("%s: a file is in the way of a folder", filepath.Join(c.dir, d))
		}
	}
	c.mu.Lock()
	c.dirs[d] = err
	c.mu.Unlock()
	return err
}

func (c *checkout) checkDir(d string) error {
	fi, err := c.root.Lstat(d)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %w: not a folder", filepath.Join(c.dir, d), ErrUnsafePath)
	}
	return nil
}

// one materializes entry e in the folder dir; it reports whether it
// wrote the file.
func (c *checkout) one(dir folder, e Entry) (bool, error) {
	base := path.Base(e.Path)
	ip := c.opts.indexPath(e.Path)
	full := filepath.Join(c.dir, filepath.FromSlash(e.Path))
	st, err := lstatAt(dir, base)
	exists := err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, &fs.PathError{Op: "lstat", Path: full, Err: err}
	case !st.Mode().IsRegular():
		return false, fmt.Errorf("%s: %w: not a regular file", full, ErrUnsafePath)
	default:
		same := false
		if st.Size() == e.Size && fileMode(st) == e.Mode {
			id, ok := c.opts.Index.Lookup(ip, st)
			if !ok || ip == "" {
				start := time.Now()
				if id, err = hashFile(full); err != nil {
					return false, err
				}
				c.opts.Index.Record(ip, st, id, start)
			}
			same = id == e.ID
		}
		if same {
			return false, nil
		}
		if !c.opts.Force {
			return false, fmt.Errorf("%s: %w (use --force to replace it)", full, ErrModified)
		}
	}
	if c.opts.Link == LinkHardlink && c.s.wasChecked(e.ID) {
		// An object this process wrote or hashed is linked by its name:
		// there is nothing to read.
		err := place(dir, base, tempName(e), exists, func(name string) error { return linkAt(cwd(), c.s.Path(e.ID), dir, name) })
		if err != nil {
			return false, fmt.Errorf("write %s: %w", full, err)
		}
		c.record(dir, e)
		return true, nil
	}
	src, err := c.s.Open(e.ID)
	if err != nil {
		return false, fmt.Errorf("%s: %w", e.Path, err)
	}
	defer src.Close()
	if err := c.materialize(dir, src, e, base, exists); err != nil {
		return false, err
	}
	c.record(dir, e)
	return true, nil
}

// record notes the file of e, just written in the folder dir, in the
// index.
func (c *checkout) record(dir folder, e Entry) {
	ip := c.opts.indexPath(e.Path)
	if ip == "" {
		return
	}
	if st, err := lstatAt(dir, path.Base(e.Path)); err == nil {
		// Its time is settled in the past: the entry is not racy.
		c.opts.Index.Record(ip, st, e.ID, time.Now().Add(time.Hour))
	}
}

// settled is the mtime given to files written by Checkout: a moment in the
// past, so that any later write changes the mtime and the index entry is
// never racy.
func settled() time.Time { return time.Now().Add(-2 * time.Second).Truncate(time.Second) }

// tempName is a name for a file of e being written, which walks skip and
// the next checkout removes.
func tempName(e Entry) string {
	return fmt.Sprintf("%s%d-%s", checkoutTemp, time.Now().UnixNano(), e.ID.Short())
}

// newWriter writes dst, a new file in the checkout's folder, with direct
// I/O where the file system offers it (probed on the first file).
func (c *checkout) newWriter(dst *os.File) *blockWriter {
	c.alignOnce.Do(func() { c.align = directAlign(int(dst.Fd())) })
	return newBlockWriter(dst, c.align, &c.s.blocks)
}

// materialize writes object src (entry e) as base in the folder dir,
// verifying its content; replace says a file of that name is there.
func (c *checkout) materialize(dir folder, src *os.File, e Entry, base string, replace bool) error {
	// Objects this process wrote or hashed moments ago are not hashed
	// again (a pull's checkout); all others are, while they are copied,
	// or before when they are linked.
	verify := !c.s.wasChecked(e.ID)
	if verify && (c.opts.Link == LinkHardlink || c.reflinks()) {
		if err := c.s.checkContent(src, e.ID); err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		verify = false
	}
	err := c.write(dir, src, e, base, tempName(e), replace, verify)
	if err == nil && c.opts.Link != LinkHardlink {
		err = settleAt(dir, base, settled())
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(c.dir, filepath.FromSlash(e.Path)), err)
	}
	return nil
}

// write makes the file base in the folder dir from object src.
func (c *checkout) write(dir folder, src *os.File, e Entry, base, tmp string, replace, verify bool) error {
	if c.opts.Link == LinkHardlink {
		return place(dir, base, tmp, replace, func(name string) error {
			return linkAt(cwd(), src.Name(), dir, name)
		})
	}
	dst, named, err := c.create(dir, tmp, e.Mode)
	if err != nil {
		return err
	}
	err = c.fill(dst, src, e, verify)
	if err == nil && !named {
		err = place(dir, base, tmp, replace, func(name string) error { return c.s.linkFile(dst, dir, name) })
	}
	// Closed before it is renamed: Windows renames no open file.
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil && named {
		err = renameAt(dir, tmp, dir, base)
	}
	if err != nil && named {
		removeAt(dir, tmp)
	}
	return err
}

// place gives a finished file its name base with link: straight there
// when the name is free (a link fails rather than replace), else under
// tmp, renamed over base.
func place(dir folder, base, tmp string, replace bool, link func(name string) error) error {
	if !replace {
		return link(base)
	}
	if err := link(tmp); err != nil {
		return err
	}
	if err := renameAt(dir, tmp, dir, base); err != nil {
		removeAt(dir, tmp)
		return err
	}
	return nil
}

// create makes the file to write in folder dir: unnamed where the file
// system allows, else named tmp.
func (c *checkout) create(dir folder, tmp string, mode fs.FileMode) (f *os.File, named bool, err error) {
	return createAt(dir, tmp, mode, c.s.unnamed)
}

// reflinks says whether files are to be cloned (tried, with LinkAuto).
func (c *checkout) reflinks() bool {
	return c.opts.Link == LinkReflink || (c.opts.Link == LinkAuto && !c.noReflink.Load())
}

// fill copies object src into dst (a reflink where asked and possible),
// hashing what it copies when verify is set, and gives dst the entry's
// mode.
func (c *checkout) fill(dst, src *os.File, e Entry, verify bool) error {
	cloned := false
	if c.reflinks() {
		err := reflink(dst, src)
		cloned = err == nil
		if !cloned && c.opts.Link == LinkReflink {
			return fmt.Errorf("reflink: %w (the file system may not support it; try --link copy)", err)
		}
		if !cloned {
			c.noReflink.Store(true) // same file system for every file
		}
	}
	if !cloned {
		bw := c.newWriter(dst)
		r := io.Reader(newDirectReader(src, e.Size, c.s.align))
		var h hash.Hash
		if verify {
			h = sha256.New()
			r = io.TeeReader(r, h)
		}
		_, err := bw.ReadFrom(r)
		if cerr := bw.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if verify {
			if err := c.s.judge(e.ID, h); err != nil {
				return fmt.Errorf("%s: %w", e.Path, err)
			}
		}
	}
	return dst.Chmod(e.Mode)
}
