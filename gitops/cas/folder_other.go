//go:build !linux

package cas

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// Elsewhere (macOS, the BSDs, Windows) names are resolved with the os
// package: a checkout's folders through its os.Root, so that no symbolic
// link leads out of the workspace, other folders by path.

// folder is a folder that names are resolved in: the folder rel (a slash
// path) of root when root is set, else the folder at the path full ("":
// the working folder).
type folder struct {
	root *os.Root
	rel  string
	full string
}

// at is the path of name in d.
func (d folder) at(name string) string { return filepath.Join(d.full, name) }

// inRoot is the name of name in d relative to d.root.
func (d folder) inRoot(name string) string { return path.Join(d.rel, name) }

// cwd is the working folder: names relative to it are paths.
func cwd() folder { return folder{} }

// folderOf is the folder rel of root (d is that folder, open).
func folderOf(root *os.Root, rel string, _ *os.File) folder {
	return folder{root: root, rel: rel, full: filepath.Join(root.Name(), filepath.FromSlash(rel))}
}

// withFolder calls fn with the open folder f (at full) as a folder.
func withFolder(_ *os.File, full string, fn func(folder)) error {
	fn(folder{full: full})
	return nil
}

// openFolder opens the folder at path, which must not be a symbolic link;
// closeFolder closes it.
func openFolder(path string) (folder, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return folder{}, err
	}
	if !fi.IsDir() {
		return folder{}, errors.New("not a folder")
	}
	return folder{full: path}, nil
}

// openObjectDir opens the cache folder at path, creating it when missing.
func openObjectDir(path string) (folder, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return folder{}, err
	}
	return folder{full: path}, nil
}

// closeFolder closes a folder from openFolder or openObjectDir.
func closeFolder(folder) {}

// syncDir makes the names in the folder d durable. Windows syncs no
// folder (NTFS journals its names), nor do some other file systems.
func syncDir(d folder) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	f, err := os.Open(d.full)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EINVAL) {
		return nil
	}
	return err
}

// lstatAt stats the file name in the folder d, not following a symbolic
// link.
func lstatAt(d folder, name string) (fs.FileInfo, error) {
	if d.root != nil {
		return d.root.Lstat(d.inRoot(name))
	}
	return os.Lstat(d.at(name))
}

// openSourceFile opens the file name in the folder d for reading, not
// following a symbolic link (one put in its place meanwhile is an error);
// path names it in errors.
func openSourceFile(d folder, name, path string) (*os.File, error) {
	before, err := os.Lstat(d.at(name))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: underlying(err)}
	}
	if before.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errSymlink}
	}
	f, err := os.Open(d.at(name))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: underlying(err)}
	}
	if after, err := f.Stat(); err != nil || !os.SameFile(before, after) {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("replaced while it was opened: %w", fs.ErrInvalid)}
	}
	return f, nil
}

// underlying is the error inside a *fs.PathError, else err.
func underlying(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// createAt makes a new file named tmp (never replacing a file) to write
// in the folder d with mode; named is always true, as unnamed files are
// Linux's.
func createAt(d folder, tmp string, mode fs.FileMode, _ bool) (f *os.File, named bool, err error) {
	if d.root != nil {
		f, err = d.root.OpenFile(d.inRoot(tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	} else {
		f, err = os.OpenFile(d.at(tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	}
	if err != nil {
		return nil, false, err
	}
	return f, true, nil
}

// renameAt renames from in the folder fromDir to to in toDir, replacing
// a file there.
func renameAt(fromDir folder, from string, toDir folder, to string) error {
	if fromDir.root != nil && fromDir.root == toDir.root {
		return fromDir.root.Rename(fromDir.inRoot(from), toDir.inRoot(to))
	}
	return os.Rename(fromDir.at(from), toDir.at(to))
}

// linkAt hard-links from in the folder fromDir as to in toDir; it fails
// when to exists.
func linkAt(fromDir folder, from string, toDir folder, to string) error {
	if fromDir.root != nil && fromDir.root == toDir.root {
		return fromDir.root.Link(fromDir.inRoot(from), toDir.inRoot(to))
	}
	return os.Link(fromDir.at(from), toDir.at(to))
}

// removeAt removes the file name in the folder d.
func removeAt(d folder, name string) error {
	if d.root != nil {
		return d.root.Remove(d.inRoot(name))
	}
	return os.Remove(d.at(name))
}

// settleAt sets the access and modification times of the file name in
// the folder d to t.
func settleAt(d folder, name string, t time.Time) error {
	if d.root != nil {
		return d.root.Chtimes(d.inRoot(name), t, t)
	}
	return os.Chtimes(d.at(name), t, t)
}
