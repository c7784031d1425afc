//go:build !linux

package cas

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// Without Linux's calls the cache writes every object to a named
// temporary file in its tmp folder, syncs it and renames it into place;
// files are copied, never cloned.

// probe finds nothing to use: no unnamed temporary files, no direct I/O.
func (s *Store) probe() {}

// createUnnamed returns nil and no error: there are no unnamed files, and
// the caller names one.
func (s *Store) createUnnamed() (*tempFile, error) { return nil, nil }

// linkFile would name an unnamed file; there are none here.
func (s *Store) linkFile(*os.File, folder, string) error { return errors.ErrUnsupported }

// syncFS would sync a batch of unnamed files; there are none here.
func syncFS(*os.File) error { return errors.ErrUnsupported }

// reflink fails with errors.ErrUnsupported: files are copied.
func reflink(_, _ *os.File) error { return errors.ErrUnsupported }

// cloneUnsupported reports whether a reflink failed because the file
// systems cannot clone.
func cloneUnsupported(err error) bool { return errors.Is(err, errors.ErrUnsupported) }

// sameVersion reports whether two stats of one file show the same
// content: same size and modification time.
func sameVersion(a, b fs.FileInfo) bool {
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// adoptFileAt makes the file name in the folder dir an object by
// hard-linking it into the cache after syncing it to disk and making it
// read-only; path names it in errors. A file that changed while it was
// hashed is not linked, and the error says so. Where no link can be made
// (another file system; Windows, where a file opened for reading can be
// neither synced nor made read-only) it copies (putFileAt).
func (w *Writer) adoptFileAt(ctx context.Context, dir folder, name, path string) (ID, int64, error) {
	if runtime.GOOS == "windows" {
		return w.putFileAt(ctx, dir, name, path)
	}
	if err := ctx.Err(); err != nil {
		return ID{}, 0, err
	}
	f, err := openSourceFile(dir, name, path)
	if err != nil {
		return ID{}, 0, err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return ID{}, 0, err
	}
	if !before.Mode().IsRegular() {
		return ID{}, 0, fmt.Errorf("%s: not a regular file", path)
	}
	if before.Size() > MaxFileSize {
		return ID{}, 0, fmt.Errorf("%s: larger than %d bytes", path, int64(MaxFileSize))
	}
	h := sha256.New()
	bp := w.pool.Get().(*[]byte)
	n, err := io.CopyBuffer(h, io.LimitReader(f, before.Size()), *bp)
	w.pool.Put(bp)
	if err != nil {
		return ID{}, 0, fmt.Errorf("%s: %w", path, err)
	}
	id := ID(h.Sum(nil))
	if err := f.Sync(); err != nil {
		return ID{}, 0, fmt.Errorf("%s: sync: %w", path, err)
	}
	if err := f.Chmod(before.Mode().Perm() &^ 0o222); err != nil {
		return ID{}, 0, err
	}
	restore := func() { f.Chmod(before.Mode().Perm()) }
	after, err := f.Stat()
	if err != nil {
		restore()
		return ID{}, 0, err
	}
	if n != before.Size() || !sameVersion(before, after) {
		restore()
		return ID{}, 0, fmt.Errorf("%s: changed while it was being added", path)
	}
	objdir, base, err := w.objectDir(id)
	if err != nil {
		restore()
		return ID{}, 0, fmt.Errorf("cache: %w", err)
	}
	switch err := linkAt(dir, name, objdir, base); {
	case err == nil:
		w.unsynced[id[0]].Store(true)
		w.s.markChecked(id, true) // the object is the file just hashed: a checkout need not hash it again
		return id, n, nil
	case errors.Is(err, fs.ErrExist):
		// Same content already cached: unless this file is that object,
		// it stays as it was.
		if cached, err := os.Stat(objdir.at(base)); err == nil && !os.SameFile(cached, before) {
			restore()
		}
		return id, n, nil
	default:
		restore()
		return w.putFileAt(ctx, dir, name, path) // no link here: copy
	}
}

// fdatasync flushes f to disk (on macOS with F_FULLFSYNC, as os does).
func fdatasync(f *os.File) error { return f.Sync() }
