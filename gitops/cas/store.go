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
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
// allows (O_TMPFILE), the temporary file has no name at all, a crash
// leaves nothing behind, and objects are made durable in batches: one
// syncfs(2) per batch instead of one synchronous write per object.
// Elsewhere each object is named in the cache's tmp folder, fdatasynced
// and renamed. Objects are visible to Has once named: by the end of
// Close at the latest, which also makes the new names durable.
// A Writer is safe for concurrent use.
type Writer struct {
	s    *Store
	mu   sync.Mutex
	err  error
	pool sync.Pool
	// objDirs holds open descriptors (plus one; 0: none) of the cache
	// folders objects/xx, by first byte of the object ID: names are made
	// relative to them. Set under mu, read without it. unsynced marks
	// those that got names since they were last synced.
	objDirs  [256]atomic.Int32
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
	return w.putFileAt(ctx, unix.AT_FDCWD, path, path)
}

// putFileAt is PutFile for the file name in the open folder dirfd; path
// names it in errors.
func (w *Writer) putFileAt(ctx context.Context, dirfd int, name, path string) (ID, int64, error) {
	fd, err := openSource(dirfd, name)
	if err != nil {
		return ID{}, 0, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
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
	if err := cloneFD(int(tmp.Fd()), f); err != nil {
		tmp.discard()
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) ||
			errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EBADF) || errors.Is(err, unix.EPERM) {
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

// cloneFD makes the file dst a clone of the whole of src.
func cloneFD(dst int, src *os.File) error {
	rc, err := src.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.IoctlFileClone(dst, int(fd)) }); err != nil {
		return err
	}
	return cerr
}

// sameVersion reports whether two stats of one file show the same
// content: same size, modification and change times.
func sameVersion(a, b fs.FileInfo) bool {
	sa, oka := a.Sys().(*syscall.Stat_t)
	sb, okb := b.Sys().(*syscall.Stat_t)
	return oka && okb && a.Size() == b.Size() && sa.Mtim == sb.Mtim && sa.Ctim == sb.Ctim
}

// openSource opens the file name in the folder dirfd for reading, not
// following a symbolic link, and without updating its access time where
// the process may (as the file's owner or root): storing a file is not a
// use of it, and the update costs an inode write per file.
func openSource(dirfd int, name string) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	return fd, err
}

// adoptFileAt makes the file name in the open folder dirfd an object by
// hard-linking it into the cache (no data is copied) after syncing it to
// disk and making it read-only; path names it in errors. If the file
// changed while it was hashed, nothing is linked and the error says so.
// Across file systems it copies (putFileAt).
func (w *Writer) adoptFileAt(ctx context.Context, dirfd int, name, path string) (ID, int64, error) {
	if err := ctx.Err(); err != nil {
		return ID{}, 0, err
	}
	// Raw system calls: os.File's poller registration and mode switches
	// cost more than the rest when adding 100,000 small files.
	fd, err := openSource(dirfd, name)
	if err != nil {
		return ID{}, 0, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var before unix.Stat_t
	if err := unix.Fstat(fd, &before); err != nil {
		return ID{}, 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if before.Mode&unix.S_IFMT != unix.S_IFREG {
		return ID{}, 0, fmt.Errorf("%s: not a regular file", path)
	}
	if before.Size > MaxFileSize {
		return ID{}, 0, fmt.Errorf("%s: larger than %d bytes", path, int64(MaxFileSize))
	}
	h := sha256.New()
	bp := w.pool.Get().(*[]byte)
	// Read the size fstat gave, no further: a file that grows or shrinks
	// meanwhile fails the check after the read.
	var n int64
	for n < before.Size {
		k, err := unix.Read(fd, (*bp)[:min(int64(len(*bp)), before.Size-n)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			w.pool.Put(bp)
			return ID{}, 0, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if k == 0 {
			break
		}
		h.Write((*bp)[:k])
		n += int64(k)
	}
	w.pool.Put(bp)
	id := ID(h.Sum(nil))
	// No look for an existing object first (a lookup that misses costs a
	// folder search): the link below fails when one is there.
	// Flush the file's dirty pages (cheap when it is already on disk); the
	// folder syncs of Close make the new name durable after them.
	if err := unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER); err != nil {
		return ID{}, 0, fmt.Errorf("%s: sync: %w", path, err)
	}
	if err := unix.Fchmod(fd, uint32(before.Mode&0o777&^0o222)); err != nil {
		return ID{}, 0, &fs.PathError{Op: "chmod", Path: path, Err: err}
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return ID{}, 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if after.Size != n || after.Mtim != before.Mtim {
		return ID{}, 0, fmt.Errorf("%s: changed while it was being added", path)
	}
	objfd, base, err := w.objectDir(id)
	if err != nil {
		return ID{}, 0, fmt.Errorf("cache: %w", err)
	}
	// Link the open file, which is what was hashed, where the kernel
	// lets the process; else by name, which is that file unless it was
	// replaced since it was opened.
	if tried, lerr := w.s.tryLinkFD(fd, objfd, base); tried {
		err = lerr
	} else {
		err = unix.Linkat(dirfd, name, objfd, base, 0)
	}
	switch {
	case err == nil:
		w.unsynced[id[0]].Store(true)
		return id, n, nil
	case errors.Is(err, unix.EEXIST):
		// Same content already cached: unless this file is that object,
		// it stays as it was.
		var cached unix.Stat_t
		if unix.Fstatat(objfd, base, &cached, 0) == nil && (cached.Ino != before.Ino || cached.Dev != before.Dev) {
			unix.Fchmod(fd, uint32(before.Mode&0o777))
		}
		return id, n, nil
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.EPERM), errors.Is(err, unix.EMLINK):
		unix.Fchmod(fd, uint32(before.Mode&0o777))
		return w.putFileAt(ctx, dirfd, name, path) // another file system: copy
	default:
		return ID{}, 0, fmt.Errorf("%s: link into the cache: %w", path, err)
	}
}

// objectDir returns an open descriptor of the cache folder that holds
// object id, created when missing, and the object's name in it. The
// folder is synced and closed by Close.
func (w *Writer) objectDir(id ID) (int, string, error) {
	hex := id.Hex()
	if fd := w.objDirs[id[0]].Load(); fd > 0 {
		return int(fd - 1), hex[2:], nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if fd := w.objDirs[id[0]].Load(); fd > 0 {
		return int(fd - 1), hex[2:], nil
	}
	dir := filepath.Join(w.s.dir, "objects", hex[:2])
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		}
	}
	if err != nil {
		return -1, "", &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	w.objDirs[id[0]].Store(int32(fd + 1))
	return fd, hex[2:], nil
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
	if s.unnamed {
		fd, err := unix.Open(s.tmp, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o444)
		if err == nil {
			return &tempFile{File: os.NewFile(uintptr(fd), filepath.Join(s.tmp, "(unnamed)"))}, nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) {
			return nil, &fs.PathError{Op: "create", Path: s.tmp, Err: err}
		}
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

// probe checks once what the cache's file system offers: unnamed
// temporary files that can be linked into the cache (O_TMPFILE, and /proc
// for linkat), and direct I/O.
func (s *Store) probe() {
	fd, err := unix.Open(s.tmp, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o444)
	if err != nil {
		if f, err := os.CreateTemp(s.tmp, "probe-*"); err == nil {
			s.align = directAlign(int(f.Fd()))
			f.Close()
			os.Remove(f.Name())
		}
		return
	}
	defer unix.Close(fd)
	s.align = directAlign(fd)
	probe := filepath.Join(s.tmp, fmt.Sprintf("probe-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if s.linkFD(fd, unix.AT_FDCWD, probe) == nil {
		os.Remove(probe)
		s.unnamed = true
	}
}

// linkFD gives the open file fd the name path, relative to the folder
// dirfd (unix.AT_FDCWD: the working folder, or path is absolute). It
// links the descriptor itself (AT_EMPTY_PATH) where the kernel lets the
// process, else through /proc/self/fd, whose lookup costs more.
func (s *Store) linkFD(fd, dirfd int, path string) error {
	if tried, err := s.tryLinkFD(fd, dirfd, path); tried {
		return err
	}
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, path, unix.AT_SYMLINK_FOLLOW)
}

// tryLinkFD links the open file fd as path relative to dirfd with
// AT_EMPTY_PATH. tried is false when the kernel does not let the process
// (before Linux 6.10 it takes CAP_DAC_READ_SEARCH): now or before, as the
// first refusal is remembered.
func (s *Store) tryLinkFD(fd, dirfd int, path string) (tried bool, err error) {
	if s.noEmptyPath.Load() {
		return false, nil
	}
	err = unix.Linkat(fd, "", dirfd, path, unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		s.noEmptyPath.Store(true)
		return false, nil
	}
	return true, err
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
	if err == nil {
		err = w.name(f, id)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
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
		err = unix.Syncfs(int(batch[0].f.Fd()))
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
	objfd, base, err := w.objectDir(id)
	if err != nil {
		return err
	}
	if f.named {
		err = unix.Renameat(unix.AT_FDCWD, f.Name(), objfd, base)
	} else if err = w.s.linkFD(int(f.Fd()), objfd, base); errors.Is(err, unix.EEXIST) {
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
	return forEach(context.Background(), 32, dirs, func(_ int, i int) error {
		if err := unix.Fsync(int(w.objDirs[i].Load() - 1)); err != nil {
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
		if fd := w.objDirs[i].Swap(0); fd > 0 {
			unix.Close(int(fd - 1))
		}
	}
}

// fdatasync flushes f's data (not all metadata) to disk. It goes through
// SyscallConn, because File.Fd would switch f to blocking mode.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	return serr
}

// ctxReader stops reading when ctx is done.
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
