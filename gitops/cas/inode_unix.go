//go:build unix

package cas

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// inode is the inode number of the file fi describes, 0 where unknown.
func inode(fi fs.FileInfo) uint64 {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return st.Ino
	case *unix.Stat_t:
		return st.Ino
	}
	return 0
}
