//go:build !linux

package cas

import (
	"context"
	"errors"
	"io/fs"
	"os"
)

// Without Linux's calls the cache writes every object to a named
// temporary file in its tmp folder, syncs it and renames it into place;
// files are copied, never cloned or adopted by hard link.

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

// adoptFileAt stores the file name in the folder dir by copying it
// (putFileAt): adoption by hard link is done on Linux only.
func (w *Writer) adoptFileAt(ctx context.Context, dir folder, name, path string) (ID, int64, error) {
	return w.putFileAt(ctx, dir, name, path)
}

// fdatasync flushes f to disk (on macOS with F_FULLFSYNC, as os does).
func fdatasync(f *os.File) error { return f.Sync() }
