package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// tempFile is a pending file made with the os package (renameio does not
// support Windows).
type tempFile struct {
	*os.File
	path string // the name it is to have
	done bool   // renamed, or removed
}

// newPending starts the file that replaces path, with permissions perm.
func newPending(path string, perm fs.FileMode) (pending, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &tempFile{File: f, path: path}, nil
}

func (t *tempFile) Cleanup() error {
	if t.done {
		return nil
	}
	t.done = true
	t.File.Close()
	return os.Remove(t.Name())
}

func (t *tempFile) CloseAtomicallyReplace() error {
	if err := t.Sync(); err != nil {
		return err
	}
	if err := t.File.Close(); err != nil {
		return err
	}
	if err := os.Rename(t.Name(), t.path); err != nil {
		return err
	}
	t.done = true
	return nil
}
