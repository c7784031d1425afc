//go:build !unix

package cas

import "io/fs"

// inode is the inode number of the file fi describes: 0, as os.Stat gives
// none here (the index compares sizes and times).
func inode(fs.FileInfo) uint64 { return 0 }
