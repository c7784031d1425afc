package stages

import (
	"io/fs"
	"path/filepath"
	"sync"
)

// DiskPeak tracks how far a project folder grows during a run: the
// bytes of its files (work tree and cache; .git is left out), sampled
// when Sample is called, less those there at the start. Files that
// vanish while it walks are skipped; hard links count once per path.
type DiskPeak struct {
	root  string
	mu    sync.Mutex
	start int64
	peak  int64
}

// NewDiskPeak measures root now, as the start.
func NewDiskPeak(root string) *DiskPeak {
	d := &DiskPeak{root: root}
	d.start = d.size()
	return d
}

// Sample measures root and returns the peak growth so far.
func (d *DiskPeak) Sample() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.peak = max(d.peak, d.size()-d.start)
	return d.peak
}

func (d *DiskPeak) size() int64 {
	var n int64
	filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished or unreadable: skipped
		}
		if e.IsDir() && e.Name() == ".git" && p != d.root {
			return filepath.SkipDir
		}
		if e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
