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
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors callers test with errors.Is.
var (
	ErrNotFound    = errors.New("object not found")
	ErrExists      = errors.New("object already exists")
	ErrCorrupt     = errors.New("content does not match its digest")
	ErrThrottled   = errors.New("remote is throttling requests")
	ErrPermission  = errors.New("remote refused access")
	ErrUnsupported = errors.New("not supported by this remote")
)

// Layout of a project's working state.
const (
	stateDir   = ".medcad"
	cacheDir   = ".medcad/cache"
	tmpDir     = cacheDir + "/tmp"
	indexFile  = ".medcad/index"
	smallLimit = 4 << 20 // files up to this size are read whole
)

// Store is the local object cache of a project:
// .medcad/cache/objects/<2 hex>/<62 hex>, objects read-only.
type Store struct {
	root string // the project folder, absolute
	dir  string // the cache folder
	tmp  string // temporary files, same file system as dir

	probeOnce   sync.Once
	unnamed     bool        // the file system has O_TMPFILE and linkat works
	noEmptyPath atomic.Bool // linkat(AT_EMPTY_PATH) refused: link through /proc
	cloned      atomic.Bool // a file was cloned into the cache (FICLONE)
	noClone     atomic.Bool // the first clone failed: files are copied
	align       int         // alignment of direct I/O on the file system; 0: none
	blocks      blockPool

	checkedMu sync.Mutex
	checked   map[ID]bool // objects hashed by this process since Open
}

// Open opens (creating when needed) the cache of the project in dir.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{root: abs, dir: filepath.Join(abs, cacheDir), tmp: filepath.Join(abs, tmpDir)}
	if err := os.MkdirAll(s.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("open cache: %w", err)
	}
	return s, nil
}

// Root is the project folder the store belongs to.
func (s *Store) Root() string { return s.root }

// Path is where object id lives in the cache.
func (s *Store) Path(id ID) string { return filepath.Join(s.dir, filepath.FromSlash(objectKey(id))) }

// markChecked records whether object id was found good when this process
// hashed it (writing or verifying it), so that a checkout that follows
// need not hash a good one again.
func (s *Store) markChecked(id ID, good bool) {
	s.checkedMu.Lock()
	defer s.checkedMu.Unlock()
	if s.checked == nil {
		s.checked = map[ID]bool{}
	}
	if good {
		s.checked[id] = true
	} else {
		delete(s.checked, id)
	}
}

func (s *Store) wasChecked(id ID) bool {
	s.checkedMu.Lock()
	defer s.checkedMu.Unlock()
	return s.checked[id]
}

// newBlockWriter writes the new cache file f, with direct I/O where the
// file system offers it.
func (s *Store) newBlockWriter(f *os.File) *blockWriter {
	s.probeOnce.Do(s.probe)
	return newBlockWriter(f, s.align, &s.blocks)
}

// Has reports whether the cache holds object id (it does not re-hash it).
func (s *Store) Has(id ID) bool {
	_, err := os.Stat(s.Path(id))
	return err == nil
}

// Size returns the size of object id in the cache.
func (s *Store) Size(id ID) (int64, error) {
	fi, err := os.Stat(s.Path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%s: %w in cache", id.Short(), ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Open opens object id for reading.
func (s *Store) Open(id ID) (*os.File, error) {
	f, err := os.Open(s.Path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w in cache", id.Short(), ErrNotFound)
	}
	return f, err
}

// ReadObject reads object id whole, verifying its digest; it refuses
// objects larger than max bytes.
func (s *Store) ReadObject(id ID, max int64) ([]byte, error) {
	f, err := s.Open(id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read object %s: %w", id.Short(), err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("object %s: larger than %d bytes", id.Short(), max)
	}
	if Sum(data) != id {
		return nil, fmt.Errorf("cache object %s: %w", id.Short(), ErrCorrupt)
	}
	return data, nil
}

// ReadManifest reads and parses manifest id from the cache.
func (s *Store) ReadManifest(id ID) (*Manifest, error) {
	data, err := s.ReadObject(id, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", id.Short(), err)
	}
	return m, nil
}

// VerifyObject re-hashes object id and returns ErrCorrupt when its content
// no longer matches its name.
func (s *Store) VerifyObject(id ID) error {
	f, err := s.Open(id)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.checkContent(f, id)
}

// checkContent hashes the open object file f (id) from where it is and
// leaves it at its start again; content that is not id is ErrCorrupt.
func (s *Store) checkContent(f *os.File, id ID) error {
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read object %s: %w", id.Short(), err)
	}
	if err := s.judge(id, h); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// judge records whether h, the hash of the content of object id, is id,
// and returns an error wrapping ErrCorrupt when it is not.
func (s *Store) judge(id ID, h hash.Hash) error {
	ok := ID(h.Sum(nil)) == id
	s.markChecked(id, ok)
	if !ok {
		return fmt.Errorf("cache object %s: %w", id.Short(), ErrCorrupt)
	}
	return nil
}

// Remove deletes object id from the cache.
func (s *Store) Remove(id ID) error {
	err := os.Remove(s.Path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w in cache", id.Short(), ErrNotFound)
	}
	return err
}

// Each calls fn for every object in the cache.
func (s *Store) Each(fn func(id ID, size int64) error) error {
	objects := filepath.Join(s.dir, "objects")
	dirs, err := os.ReadDir(objects)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, d := range dirs {
		ents, err := os.ReadDir(filepath.Join(objects, d.Name()))
		if err != nil {
			return err
		}
		for _, e := range ents {
			id, ok := parseObjectKey("objects/" + d.Name() + "/" + e.Name())
			if !ok {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			if err := fn(id, fi.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

// CleanTemp removes temporary files left by interrupted writes: those
// older than an hour, so that writes running now are not disturbed.
func (s *Store) CleanTemp() error {
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-time.Hour)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(s.tmp, e.Name()))
		}
	}
	return nil
}

// Writer adds objects to the cache. Each object is written to a
// temporary file first, made durable and only then given its name, so a
// crash leaves either no object or a good one. Where the file system
// allows (O_TMPFILE, on Linux), the temporary file has no name at all, a
// crash leaves nothing behind, and objects are made durable in batches:
// one syncfs(2) per batch instead of one synchronous write per object.
// Elsewhere each object is named in the cache's tmp folder, synced
// (fdatasync; fsync, F_FULLFSYNC on macOS) and renamed. Objects are visible to Has once named: by the end of
// Close at the latest, which also makes the new names durable.
// A Writer is safe for concurrent use.
type Writer struct {
	s    *Store
	mu   sync.Mutex
	err  error
	pool sync.Pool
	// objDirs holds the open cache folders objects/xx (nil: not open),
	// by first byte of the object ID: names are made relative to them.
	// Set under mu, read without it. unsynced marks those that got names
	// since they were last synced.
	objDirs  [256]atomic.Pointer[folder]
	unsynced [256]atomic.Bool

	waiting      []waitingObject // unnamed objects written, not yet synced
	waitingBytes int64
}

type waitingObject struct {
	f  *tempFile
	id ID
}

// Limits of a batch of unnamed objects synced together; smaller batches
// than syncfsAbove are synced file by file.
const (
	syncBatchFiles = 512
	syncBatchBytes = 128 << 20
	syncfsAbove    = 16
)

// NewWriter starts a batch of writes.
func (s *Store) NewWriter() *Writer {
	return &Writer{s: s, pool: sync.Pool{New: func() any { b := make([]byte, smallLimit); return &b }}}
}

// PutBytes stores data and returns its ID.
func (w *Writer) PutBytes(data []byte) (ID, error) {
	id := Sum(data)
	if w.s.Has(id) {
		return id, nil
	}
	f, err := w.s.createTemp()
	if err != nil {
		return id, fmt.Errorf("cache: %w", err)
	}
	bw := w.s.newBlockWriter(f.File)
	_, err = bw.Write(data)
	if cerr := bw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		f.discard()
		return id, fmt.Errorf("cache: %w", err)
	}
	return id, w.finish(f, id, int64(len(data)))
}

// PutFile stores the content of the file at path and returns its ID and
// size. The source file is only read.
func (w *Writer) PutFile(ctx context.Context, path string) (ID, int64, error) {
	return w.putFileAt(ctx, cwd(), path, path)
}

// putFileAt is PutFile for the file name in the open folder dir; path
// names it in errors.
func (w *Writer) putFileAt(ctx context.Context, dir folder, name, path string) (ID, int64, error) {
	f, err := openSourceFile(dir, name, path)
	if err != nil {
		return ID{}, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ID{}, 0, err
	}
	if !fi.Mode().IsRegular() {
		return ID{}, 0, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > MaxFileSize {
		return ID{}, 0, fmt.Errorf("%s: larger than %d bytes", path, int64(MaxFileSize))
	}
	if !w.s.noClone.Load() {
		if id, n, ok, err := w.cloneFile(ctx, f, fi, path); ok {
			return id, n, err
		}
	}
	if fi.Size() <= smallLimit {
		bp := w.pool.Get().(*[]byte)
		defer w.pool.Put(bp)
		n, err := io.ReadFull(f, (*bp)[:smallLimit])
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return ID{}, 0, fmt.Errorf("%s: %w", path, err)
		}
		if n == smallLimit { // grew while reading: take the slow path
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return ID{}, 0, err
			}
		} else {
			id, err := w.PutBytes((*bp)[:n])
			return id, int64(n), err
		}
	}
	id, n, err := w.putStream(ctx, f, nil, -1, nil)
	if err != nil {
		return id, n, fmt.Errorf("%s: %w", path, err)
	}
	return id, n, nil
}

// cloneFile stores the open file f (fi: its stat before) as a clone
// (FICLONE: its blocks shared, copy on write), so that no data is
// written, and hashes it from the page cache; path names it in errors. ok
// is false when the file systems of f and the cache cannot clone: then
// nothing was stored and the caller copies. A file that changes while it
// is cloned and hashed is an error, as the clone may hold other bytes
// than were hashed (on Linux 6.13 and later any write after fi was taken
// gives the file a new change time).
func (w *Writer) cloneFile(ctx context.Context, f *os.File, fi fs.FileInfo, path string) (id ID, n int64, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return ID{}, 0, true, err
	}
	tmp, err := w.s.createTemp()
	if err != nil {
		return ID{}, 0, true, fmt.Errorf("cache: %w", err)
	}
	if err := reflink(tmp.File, f); err != nil {
		tmp.discard()
		if cloneUnsupported(err) {
			if !w.s.cloned.Load() {
				w.s.noClone.Store(true) // the first clone failed: copy from now on
			}
			return ID{}, 0, false, nil
		}
		return ID{}, 0, true, fmt.Errorf("%s: clone into the cache: %w", path, err)
	}
	w.s.cloned.Store(true)
	h := sha256.New()
	bp := w.pool.Get().(*[]byte)
	n, err = io.CopyBuffer(h, io.LimitReader(f, fi.Size()+1), *bp)
	w.pool.Put(bp)
	if err != nil {
		tmp.discard()
		return ID{}, 0, true, fmt.Errorf("%s: %w", path, err)
	}
	after, err := f.Stat()
	if err != nil {
		tmp.discard()
		return ID{}, 0, true, err
	}
	if n != fi.Size() || !sameVersion(fi, after) {
		tmp.discard()
		return ID{}, 0, true, fmt.Errorf("%s: changed while it was being added", path)
	}
	id = ID(h.Sum(nil))
	if w.s.Has(id) {
		tmp.discard()
		return id, n, true, nil
	}
	return id, n, true, w.finish(tmp, id, n)
}

// objectDir returns the open cache folder that holds object id, created
// when missing, and the object's name in it. The folder is synced and
// closed by Close.
func (w *Writer) objectDir(id ID) (folder, string, error) {
	hex := id.Hex()
	if d := w.objDirs[id[0]].Load(); d != nil {
		return *d, hex[2:], nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if d := w.objDirs[id[0]].Load(); d != nil {
		return *d, hex[2:], nil
	}
	dir := filepath.Join(w.s.dir, "objects", hex[:2])
	d, err := openObjectDir(dir)
	if err != nil {
		return d, "", &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	w.objDirs[id[0]].Store(&d)
	return d, hex[2:], nil
}

// putStream copies r to a temporary file while hashing it, and to tee
// when it is not nil, and stores it. When want is set, it checks that r
// yielded object want of the given size (size < 0: any); on mismatch
// nothing is stored and the error wraps ErrCorrupt.
func (w *Writer) putStream(ctx context.Context, r io.Reader, want *ID, size int64, tee io.Writer) (ID, int64, error) {
	f, err := w.s.createTemp()
	if err != nil {
		return ID{}, 0, fmt.Errorf("cache: %w", err)
	}
	fail := func(err error) (ID, int64, error) {
		f.discard()
		return ID{}, 0, err
	}
	limit := int64(MaxFileSize)
	if size >= 0 {
		limit = size
	}
	// A reader from WithVerify already hashes what it yields and fails at
	// EOF when that is not want; hashing here too would double the work.
	var h hash.Hash
	src := io.Reader(&ctxReader{ctx: ctx, r: io.LimitReader(r, limit+1)})
	if v, ok := r.(interface{ verifies() ID }); !ok || want == nil || v.verifies() != *want {
		h = sha256.New()
		src = io.TeeReader(src, h)
	}
	if tee != nil {
		src = io.TeeReader(src, tee)
	}
	bw := w.s.newBlockWriter(f.File)
	n, err := bw.ReadFrom(src)
	if cerr := bw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	if n > limit || (size >= 0 && n != size) {
		return fail(fmt.Errorf("got %d bytes, want %d: %w", n, limit, ErrCorrupt))
	}
	var id ID
	if h == nil {
		id = *want // checked by the reader at EOF
	} else {
		id = ID(h.Sum(nil))
	}
	if want != nil && id != *want {
		return fail(fmt.Errorf("object %s: %w", want.Short(), ErrCorrupt))
	}
	if want == nil && w.s.Has(id) { // (fetches look before they download)
		fail(nil)
		return id, n, nil
	}
	return id, n, w.finish(f, id, n)
}

// tempFile is an object being written: an unnamed file (O_TMPFILE) or,
// where the file system has none, a file named in the cache's tmp folder.
type tempFile struct {
	*os.File
	named bool
}

// createTemp starts a new object file, read-only from the start.
func (s *Store) createTemp() (*tempFile, error) {
	s.probeOnce.Do(s.probe)
	if f, err := s.createUnnamed(); f != nil || err != nil {
		return f, err
	}
	f, err := os.CreateTemp(s.tmp, "obj-*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o444); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &tempFile{File: f, named: true}, nil
}

// discard drops an object file that will not be stored.
func (f *tempFile) discard() {
	f.Close()
	if f.named {
		os.Remove(f.Name())
	}
}

// finish makes a written object file durable, then gives it its name; a
// name already taken holds the same content. Unnamed files wait for their
// batch; named ones are fdatasynced in the calling worker, so that syncs
// of parallel workers share journal commits.
func (w *Writer) finish(f *tempFile, id ID, size int64) error {
	if !f.named {
		return w.wait(f, id, size)
	}
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if err == nil {
		err = fdatasync(f.File)
	}
	// Closed before it is renamed: Windows renames no open file.
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.name(f, id)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// wait queues an unnamed object file for the next batch sync, and runs
// that sync when the batch is full.
func (w *Writer) wait(f *tempFile, id ID, size int64) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		f.discard()
		return err
	}
	w.waiting = append(w.waiting, waitingObject{f: f, id: id})
	w.waitingBytes += size
	var batch []waitingObject
	if len(w.waiting) >= syncBatchFiles || w.waitingBytes >= syncBatchBytes {
		batch, w.waiting, w.waitingBytes = w.waiting, nil, 0
	}
	w.mu.Unlock()
	return w.syncAndName(batch)
}

// syncAndName makes a batch of unnamed object files durable, with one
// syncfs when the batch is large, then names them. A failure fails the
// Writer: its later Puts and Close return the error.
func (w *Writer) syncAndName(batch []waitingObject) error {
	var err error
	if len(batch) > syncfsAbove {
		err = syncFS(batch[0].f.File)
	} else {
		for _, o := range batch {
			if err = fdatasync(o.f.File); err != nil {
				break
			}
		}
	}
	for _, o := range batch {
		if err == nil {
			err = w.name(o.f, o.id)
		}
		o.f.Close()
	}
	if err != nil {
		err = fmt.Errorf("cache: %w", err)
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
	}
	return err
}

// name links or renames the durable object file f to the name of id.
func (w *Writer) name(f *tempFile, id ID) error {
	objdir, base, err := w.objectDir(id)
	if err != nil {
		return err
	}
	if f.named {
		// Windows renames no file over a read-only one: an object of
		// that name holds the same content.
		if err = renameAt(cwd(), f.Name(), objdir, base); err != nil && w.s.Has(id) {
			os.Remove(f.Name())
			err = nil
		}
	} else if err = w.s.linkFile(f.File, objdir, base); errors.Is(err, fs.ErrExist) {
		err = nil
	}
	if err != nil {
		return &fs.PathError{Op: "name", Path: w.s.Path(id), Err: err}
	}
	w.unsynced[id[0]].Store(true)
	w.s.markChecked(id, true)
	return nil
}

// Close makes the names given so far durable. A Writer is not used after
// Close.
func (w *Writer) Close() error {
	defer w.closeDirs()
	w.mu.Lock()
	batch := w.waiting
	w.waiting, w.waitingBytes = nil, 0
	err := w.err
	w.mu.Unlock()
	if err != nil {
		for _, o := range batch {
			o.f.discard()
		}
		return err
	}
	if err := w.syncAndName(batch); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.err = errors.New("cache writer closed")
	return w.syncNames()
}

// syncNames makes the names given so far durable: it syncs the cache
// folders that got names since their last sync. It may run while other
// objects are put; Close syncs what they name.
func (w *Writer) syncNames() error {
	var dirs []int
	for i := range w.unsynced {
		if w.unsynced[i].Swap(false) {
			dirs = append(dirs, i)
		}
	}
	// Parallel syncs share journal commits.
	return forEach(context.Background(), 32, dirs, func(_ context.Context, _ int, i int) error {
		if err := syncDir(*w.objDirs[i].Load()); err != nil {
			w.unsynced[i].Store(true)
			return fmt.Errorf("cache: sync %s: %w", filepath.Join(w.s.dir, "objects", fmt.Sprintf("%02x", i)), err)
		}
		return nil
	})
}

// closeDirs closes the cache folders the Writer opened.
func (w *Writer) closeDirs() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.objDirs {
		if d := w.objDirs[i].Swap(nil); d != nil {
			closeFolder(*d)
		}
	}
}

// ContextReader reads r until ctx is done, then returns ctx's error: a
// cancelled transfer stops at the next read.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return &ctxReader{ctx: ctx, r: r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// PutBytes stores data durably and returns its ID (one object; use a
// Writer for many).
func (s *Store) PutBytes(data []byte) (ID, error) {
	w := s.NewWriter()
	id, err := w.PutBytes(data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return id, err
}

// PutFile stores the file at path durably and returns its entry (path is
// the file's base name).
func (s *Store) PutFile(ctx context.Context, path string) (Entry, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Entry{}, err
	}
	w := s.NewWriter()
	id, n, err := w.PutFile(ctx, path)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return Entry{Path: filepath.Base(path), Size: n, Mode: ModeOf(fi), ID: id}, err
}

// ModeOf is the manifest mode of a file: 0o755 when its owner may
// execute it, else 0o644.
func ModeOf(fi fs.FileInfo) fs.FileMode { return fileMode(fi) }
