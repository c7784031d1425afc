package cas

import (
	"errors"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux names are resolved relative to open folder descriptors
// (openat(2) and friends): no path lookups per file, and no symbolic
// link followed on the way.

// folder is an open folder that names are resolved in: its descriptor
// (unix.AT_FDCWD: the working folder).
type folder = int

// cwd is the working folder: names relative to it are paths.
func cwd() folder { return unix.AT_FDCWD }

// folderOf is the folder d, opened as rel in root; it is valid while d is
// open.
func folderOf(_ *os.Root, _ string, d *os.File) folder { return int(d.Fd()) }

// withFolder calls fn with the open folder f (at full) as a folder.
func withFolder(f *os.File, _ string, fn func(folder)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}

// openFolder opens the folder at path, which must not be a symbolic link;
// closeFolder closes it.
func openFolder(path string) (folder, error) {
	return unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
}

// openObjectDir opens the cache folder at path, creating it when missing.
func openObjectDir(path string) (folder, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		if err = os.MkdirAll(path, 0o755); err == nil {
			fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		}
	}
	return fd, err
}

// closeFolder closes a folder from openFolder or openObjectDir.
func closeFolder(d folder) { unix.Close(d) }

// syncDir makes the names in the folder d durable.
func syncDir(d folder) error { return unix.Fsync(d) }

// lstatAt stats the file name in the folder d, not following a symbolic
// link.
func lstatAt(d folder, name string) (fs.FileInfo, error) {
	info := &statInfo{name: name}
	if err := unix.Fstatat(d, name, &info.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, err
	}
	return info, nil
}

// openSourceFile opens the file name in the folder d for reading like
// openSource; path names it in errors.
func openSourceFile(d folder, name, path string) (*os.File, error) {
	fd, err := openSource(d, name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// createAt makes a new file to write in the folder d with mode: unnamed
// (O_TMPFILE) when unnamed is set and the file system allows, else named
// tmp (never replacing a file). named says which.
func createAt(d folder, tmp string, mode fs.FileMode, unnamed bool) (f *os.File, named bool, err error) {
	if unnamed {
		fd, err := unix.Openat(d, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(mode.Perm()))
		if err == nil {
			return os.NewFile(uintptr(fd), tmp), false, nil
		}
	}
	fd, err := unix.Openat(d, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return nil, false, err
	}
	return os.NewFile(uintptr(fd), tmp), true, nil
}

// renameAt renames from in the folder fromDir to to in toDir, replacing
// a file there.
func renameAt(fromDir folder, from string, toDir folder, to string) error {
	return unix.Renameat(fromDir, from, toDir, to)
}

// linkAt hard-links from in the folder fromDir as to in toDir; it fails
// when to exists.
func linkAt(fromDir folder, from string, toDir folder, to string) error {
	return unix.Linkat(fromDir, from, toDir, to, 0)
}

// removeAt removes the file name in the folder d.
func removeAt(d folder, name string) error { return unix.Unlinkat(d, name, 0) }

// settleAt sets the access and modification times of the file name in
// the folder d to t, not following a symbolic link.
func settleAt(d folder, name string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(d, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// statInfo is an fs.FileInfo built from fstatat(2).
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (s *statInfo) Name() string { return s.name }
func (s *statInfo) Size() int64  { return s.st.Size }
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFREG:
	default:
		m |= fs.ModeIrregular
	}
	return m
}
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Sec, s.st.Mtim.Nsec) }
func (s *statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *statInfo) Sys() any           { return &s.st }
