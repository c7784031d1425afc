package dicom

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
)

// Note says why a file was skipped.
type Note struct {
	Path   string
	Reason string
}

// Scan is the result of Discover.
type Scan struct {
	Series  []*Series
	Skipped []Note
}

// Discover walks paths (files or folders, recursively), reads the header of
// every file, and assembles the DICOM images into series. Files that are
// not DICOM, unreadable or without an image are listed in Skipped with the
// reason; a series that cannot become a volume carries its error in
// Series.Err. The error is for the walk itself (a path that does not
// exist, cancellation).
func Discover(ctx context.Context, paths []string, opts Options) (*Scan, error) {
	var files []string
	for _, root := range paths {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			switch {
			case d.Type().IsRegular():
				files = append(files, p)
			case d.Type()&fs.ModeSymlink != 0:
				// A link to a file counts; links to folders are not followed
				// (no cycles).
				if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
					files = append(files, p)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(files)
	files = slices.Compact(files)

	insts := make([]*Instance, len(files))
	errs := make([]error, len(files))
	idx := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), len(files))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				insts[i], errs[i] = ReadHeader(files[i])
			}
		}()
	}
feed:
	for i := range files {
		select {
		case idx <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	scan := &Scan{}
	var good []*Instance
	for i, in := range insts {
		if errs[i] != nil {
			scan.Skipped = append(scan.Skipped, Note{Path: files[i], Reason: skipReason(files[i], errs[i])})
			continue
		}
		good = append(good, in)
	}
	series, notes := assemble(good, opts)
	scan.Series = series
	scan.Skipped = append(scan.Skipped, notes...)
	slices.SortStableFunc(scan.Skipped, func(a, b Note) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	return scan, nil
}

// skipReason is the error without the path prefix the note already shows.
func skipReason(path string, err error) string {
	msg := err.Error()
	if p := path + ": "; len(msg) > len(p) && msg[:len(p)] == p {
		msg = msg[len(p):]
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		msg = pe.Err.Error()
	}
	return fmt.Sprint(msg)
}
