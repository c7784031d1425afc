package cas

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Progress receives progress of long operations; core code never prints.
// A nil Progress is allowed everywhere.
type Progress interface {
	Total(files int, bytes int64) // adds to the work expected
	Done(files int, bytes int64)  // adds to the work done
}

func total(p Progress, files int, bytes int64) {
	if p != nil {
		p.Total(files, bytes)
	}
}

func done(p Progress, files int, bytes int64) {
	if p != nil {
		p.Done(files, bytes)
	}
}

// TreeOptions tune AddDir, Status and Checkout.
type TreeOptions struct {
	Jobs     int      // parallel workers; 0: one per CPU (two for I/O-bound work)
	Progress Progress // may be nil
	// Index, when set, saves re-hashing unchanged files; IndexPrefix is
	// the folder's slash path relative to the project ("" when the folder
	// is outside it, which disables the index).
	Index       *Index
	IndexPrefix string
	// Adopt makes AddDir hard-link each file into the cache instead of
	// copying it (no data is written): the file becomes read-only and
	// shares its inode with the cache object. Falls back to a copy across
	// file systems and for executable files.
	Adopt bool
}

func (o TreeOptions) jobs(perCPU int) int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return perCPU * runtime.GOMAXPROCS(0)
}

func (o TreeOptions) indexPath(rel string) string {
	if o.Index == nil || o.IndexPrefix == "" {
		return ""
	}
	return o.IndexPrefix + "/" + rel
}

// fileInfo is one regular file found by walkTree.
type fileInfo struct {
	rel string
	fi  fs.FileInfo
}

// errNotRegular: a dataset folder holds something other than files and
// folders.
var (
	errNotRegular = errors.New("not a regular file")
	errSymlink    = errors.New("symbolic link (datasets hold regular files only)")
)

// walkTree lists the regular files under dir, sorted by path. Symbolic
// links and special files are errors naming the path: datasets hold
// regular files. Folders are read in parallel and files are stat'ed
// relative to their folder's descriptor (no path lookups), which is what
// keeps a no-op status on 100,000 files fast.
func walkTree(ctx context.Context, dir string, skipMissing bool) ([]fileInfo, error) {
	return walkTreeClean(ctx, dir, skipMissing, false)
}

// walkTreeClean is walkTree; with clean it also removes the temporary
// files of interrupted checkouts.
func walkTreeClean(ctx context.Context, dir string, skipMissing, clean bool) ([]fileInfo, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		if skipMissing && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a folder", dir)
	}
	// The first failure cancels the walk: no folder is opened after it.
	g, gctx := errgroup.WithContext(ctx)
	w := &walker{ctx: gctx, g: g, root: dir, clean: clean, sem: make(chan struct{}, 4*runtime.GOMAXPROCS(0))}
	g.Go(func() error { return w.dir("") })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.SortFunc(w.files, func(a, b fileInfo) int { return strings.Compare(a.rel, b.rel) })
	return w.files, nil
}

type walker struct {
	ctx   context.Context
	root  string
	clean bool            // remove checkout temporaries
	sem   chan struct{}   // bounds open folders
	g     *errgroup.Group // walks the folders; its context is ctx
	mu    sync.Mutex
	files []fileInfo
}

// dir reads folder rel (slash path, "" for the root) and walks its
// subfolders in new goroutines of w.g.
func (w *walker) dir(rel string) error {
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		return context.Cause(w.ctx)
	}
	defer func() { <-w.sem }()
	if err := w.ctx.Err(); err != nil {
		return context.Cause(w.ctx)
	}
	full := filepath.Join(w.root, filepath.FromSlash(rel))
	f, err := os.Open(full)
	if err != nil {
		return err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	// Files are stat'ed relative to the folder, in one call (not one per
	// file: each would allocate).
	var local []fileInfo
	if cerr := withFolder(f, full, func(d folder) { local, err = w.entries(d, full, rel, ents) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.files = append(w.files, local...)
	w.mu.Unlock()
	return nil
}

// entries stats the regular files among ents, the entries of folder rel
// (at full, open as dir), and starts walking its subfolders.
func (w *walker) entries(dir folder, full, rel string, ents []fs.DirEntry) ([]fileInfo, error) {
	at := func(name string) string { return filepath.Join(full, name) } // for errors
	local := make([]fileInfo, 0, len(ents))
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, checkoutTemp) {
			if w.clean {
				os.Remove(at(name))
			}
			continue // left by an interrupted checkout
		}
		erel := name
		if rel != "" {
			erel = rel + "/" + name
		}
		switch t := e.Type(); {
		case t&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("%s: %w", at(name), errSymlink)
		case t.IsDir():
			w.g.Go(func() error { return w.dir(erel) })
			continue
		case !t.IsRegular():
			return nil, fmt.Errorf("%s: %w", at(name), errNotRegular)
		}
		info, err := lstatAt(dir, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at(name), err)
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: %w", at(name), errNotRegular)
		}
		if info.Size() > MaxFileSize {
			return nil, fmt.Errorf("%s: larger than %d bytes", at(name), int64(MaxFileSize))
		}
		local = append(local, fileInfo{rel: erel, fi: info})
	}
	return local, nil
}

func fileMode(fi fs.FileInfo) fs.FileMode {
	if fi.Mode()&0o100 != 0 {
		return 0o755
	}
	return 0o644
}

// forEach runs fn on items with at most n at a time and returns the
// first error. fn gets a context that the first failure cancels, so work
// in flight stops with it, and no item starts after a failure or once ctx
// is done.
func forEach[T any](ctx context.Context, n int, items []T, fn func(context.Context, int, T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, n))
	for i := range items {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // failed or cancelled while this one waited for a slot
			}
			return fn(gctx, i, items[i])
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// AddResult is what AddDir stored.
type AddResult struct {
	ID       ID // the manifest's object ID
	Manifest *Manifest
	Hashed   int // files read and hashed (the others were known to the index)
}

// addBatchFiles is the most files of one folder an add worker takes at a
// time.
const addBatchFiles = 64

// AddDir stores every file under dir and a manifest listing them; it
// returns the manifest's ID. Files are hashed in parallel; files the index
// knows unchanged are not read again. Nothing is stored, and with
// opts.Adopt no file changed, unless the whole folder was listed and every
// name is acceptable; nothing is recorded unless every file was read: an
// unreadable file is an error naming it.
func (s *Store) AddDir(ctx context.Context, dir string, opts TreeOptions) (*AddResult, error) {
	files, err := walkTree(ctx, dir, false)
	if err != nil {
		return nil, err
	}
	var bytes int64
	for _, f := range files {
		if err := CheckPath(f.rel); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, filepath.FromSlash(f.rel)), err)
		}
		bytes += f.fi.Size()
	}
	total(opts.Progress, len(files), bytes)
	w := s.NewWriter()
	var hashed atomic.Int64
	m := &Manifest{Entries: make([]Entry, len(files))}
	// Batches of positions in files: runs of consecutive ones.
	idx := make([]int, len(files))
	for i := range idx {
		idx[i] = i
	}
	batches := folderBatches(idx, func(i int) (string, int64) { return files[i].rel, files[i].fi.Size() }, addBatchFiles)
	err = forEach(ctx, opts.jobs(8), batches, func(ctx context.Context, _ int, b []int) error {
		lo, hi := b[0], b[0]+len(b)
		n, err := s.addBatch(ctx, w, dir, files[lo:hi], m.Entries[lo:hi], opts)
		hashed.Add(int64(n))
		return err
	})
	var id ID
	if err == nil {
		// The files' names are synced (waiting on the disk) while the
		// manifest is made.
		synced := make(chan error, 1)
		go func() { synced <- w.syncNames() }()
		m.Sort()
		if err = m.Validate(); err == nil {
			id, err = w.PutBytes(m.Encode())
		}
		if serr := <-synced; err == nil {
			err = serr
		}
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return &AddResult{ID: id, Manifest: m, Hashed: int(hashed.Load())}, nil
}

// addBatch stores files of one folder under dir with w, sets their
// manifest entries in out and returns how many it read and hashed. The
// folder is opened at the first file the index does not know, and files
// are opened and linked relative to it.
func (s *Store) addBatch(ctx context.Context, w *Writer, dir string, files []fileInfo, out []Entry, opts TreeOptions) (int, error) {
	var dirf folder
	opened, hashed := false, 0
	defer func() {
		if opened {
			closeFolder(dirf)
		}
	}()
	for i, f := range files {
		e := Entry{Path: f.rel, Mode: fileMode(f.fi), Size: f.fi.Size()}
		ip := opts.indexPath(f.rel)
		if id, ok := opts.Index.Lookup(ip, f.fi); ok && ip != "" && s.Has(id) {
			e.ID = id
		} else {
			full := filepath.Join(dir, filepath.FromSlash(f.rel))
			if !opened {
				d, err := openFolder(filepath.Dir(full))
				if err != nil {
					return hashed, &fs.PathError{Op: "open", Path: filepath.Dir(full), Err: err}
				}
				dirf, opened = d, true
			}
			var err error
			if e.ID, e.Size, err = addFile(ctx, w, dirf, full, f, ip, opts); err != nil {
				return hashed, err
			}
			hashed++
		}
		out[i] = e
		done(opts.Progress, 1, e.Size)
	}
	return hashed, nil
}

// addFile stores file f (at full, in the open folder dir) with w, linking
// it into the cache where opts ask, and records it in the index under ip.
func addFile(ctx context.Context, w *Writer, dir folder, full string, f fileInfo, ip string, opts TreeOptions) (ID, int64, error) {
	start := time.Now()
	put := w.putFileAt
	if opts.Adopt && f.fi.Mode()&0o111 == 0 {
		put = w.adoptFileAt
	}
	id, n, err := put(ctx, dir, path.Base(f.rel), full)
	if err != nil {
		return ID{}, 0, err
	}
	if ip != "" && n == f.fi.Size() {
		opts.Index.Record(ip, f.fi, id, start)
	}
	return id, n, nil
}

// hashFile returns the SHA-256 of a file (not of what a symbolic link in
// its place points at), without updating its access time where it may.
func hashFile(name string) (ID, error) {
	f, err := openSourceFile(cwd(), name, name)
	if err != nil {
		return ID{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ID{}, fmt.Errorf("%s: %w", name, err)
	}
	return ID(h.Sum(nil)), nil
}

// Status is how a folder differs from a manifest.
type Status struct {
	New      []string `json:"new"`      // in the folder, not in the manifest
	Modified []string `json:"modified"` // content or mode differs
	Missing  []string `json:"missing"`  // in the manifest, not in the folder
	Rehashed int      `json:"rehashed"` // files read and hashed to decide
}

// Clean reports whether the folder matches the manifest.
func (st *Status) Clean() bool {
	return len(st.New)+len(st.Modified)+len(st.Missing) == 0
}

// Status compares the folder dir with manifest m. Files the index knows
// unchanged are not read; the others are hashed in parallel and counted
// on opts.Progress.
func (s *Store) Status(ctx context.Context, m *Manifest, dir string, opts TreeOptions) (*Status, error) {
	files, err := walkTree(ctx, dir, true)
	if err != nil {
		return nil, err
	}
	st := &Status{}
	want := make(map[string]*Entry, len(m.Entries))
	for i := range m.Entries {
		want[m.Entries[i].Path] = &m.Entries[i]
	}
	var check []fileInfo
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		seen[f.rel] = true
		e, ok := want[f.rel]
		switch {
		case !ok:
			st.New = append(st.New, f.rel)
		case e.Size != f.fi.Size() || e.Mode != fileMode(f.fi):
			st.Modified = append(st.Modified, f.rel)
		default:
			if id, ok := opts.Index.Lookup(opts.indexPath(f.rel), f.fi); ok && opts.indexPath(f.rel) != "" {
				if id != e.ID {
					st.Modified = append(st.Modified, f.rel)
				}
				continue
			}
			check = append(check, f)
		}
	}
	for _, e := range m.Entries {
		if !seen[e.Path] {
			st.Missing = append(st.Missing, e.Path)
		}
	}
	var checkBytes int64
	for _, f := range check {
		checkBytes += f.fi.Size()
	}
	if len(check) > 0 {
		total(opts.Progress, len(check), checkBytes)
	}
	var mu sync.Mutex
	err = forEach(ctx, opts.jobs(2), check, func(_ context.Context, _ int, f fileInfo) error {
		start := time.Now()
		id, err := hashFile(filepath.Join(dir, filepath.FromSlash(f.rel)))
		if err != nil {
			return err
		}
		if ip := opts.indexPath(f.rel); ip != "" {
			opts.Index.Record(ip, f.fi, id, start)
		}
		done(opts.Progress, 1, f.fi.Size())
		mu.Lock()
		defer mu.Unlock()
		st.Rehashed++
		if id != want[f.rel].ID {
			st.Modified = append(st.Modified, f.rel)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(st.Modified)
	return st, nil
}
