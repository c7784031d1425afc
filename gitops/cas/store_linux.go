package cas

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The Linux fast paths of the cache: unnamed temporary files (O_TMPFILE)
// linked into place, FICLONE clones, adoption by hard link with raw
// system calls, and batch syncs with syncfs(2).

// reflink makes the file dst a clone of the whole of src (FICLONE: their
// blocks shared, copy on write).
func reflink(dst, src *os.File) error {
	rc, err := src.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.IoctlFileClone(int(dst.Fd()), int(fd)) }); err != nil {
		return err
	}
	return cerr
}

// cloneUnsupported reports whether a reflink failed because the file
// systems cannot clone (rather than for an I/O error).
func cloneUnsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EBADF) || errors.Is(err, unix.EPERM)
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
		w.s.markChecked(id, true) // the object is the file just hashed: a checkout need not hash it again
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

// createUnnamed starts a new object file without a name (O_TMPFILE),
// read-only from the start; it returns nil and no error where the file
// system has none, and the caller names one.
func (s *Store) createUnnamed() (*tempFile, error) {
	if !s.unnamed {
		return nil, nil
	}
	fd, err := unix.Open(s.tmp, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o444)
	if err == nil {
		return &tempFile{File: os.NewFile(uintptr(fd), filepath.Join(s.tmp, "(unnamed)"))}, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) {
		return nil, &fs.PathError{Op: "create", Path: s.tmp, Err: err}
	}
	return nil, nil
}

// linkFile gives the open unnamed file f the name name in the folder dir.
func (s *Store) linkFile(f *os.File, dir folder, name string) error {
	return s.linkFD(int(f.Fd()), dir, name)
}

// syncFS makes everything written to the file system of f durable.
func syncFS(f *os.File) error { return unix.Syncfs(int(f.Fd())) }

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
