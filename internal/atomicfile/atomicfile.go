// Package atomicfile creates or replaces files so that a reader, or a
// crash, sees the old file or the complete new one, never a part: the
// content goes to a temporary file in the same folder, is synced, and is
// renamed over the name (google/renameio does the work; on Windows, which
// it does not support, the same steps with the os package). Errors name
// the file, never the temporary name.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// WriteFile creates or replaces path with data.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write creates or replaces path with what fill writes (through a 1 MiB
// buffer). When fill fails, path is left as it was.
func Write(path string, perm fs.FileMode, fill func(io.Writer) error) error {
	t, err := newPending(path, perm)
	if err != nil {
		return named(path, err)
	}
	defer t.Cleanup()
	bw := bufio.NewWriterSize(t, 1<<20)
	if err := fill(bw); err != nil {
		return named(path, err)
	}
	if err := bw.Flush(); err != nil {
		return named(path, err)
	}
	return named(path, t.CloseAtomicallyReplace())
}

// named puts path in front of err, dropping the temporary file's name.
func named(path string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// pending is a temporary file in the folder of the file it is to become.
type pending interface {
	io.Writer
	// Cleanup removes the temporary file unless it was committed.
	Cleanup() error
	// CloseAtomicallyReplace syncs and closes the file and renames it
	// over its name.
	CloseAtomicallyReplace() error
}

// IsTemp reports whether a file name is one of the temporary names this
// package (through renameio: "." + name + random digits; on Windows
// "." + name + ".tmp" + digits) and medcad's key writer ("." + name +
// ".tmp-" + digits) use, so that readers of a folder can pass over what
// an interrupted write left.
func IsTemp(name string) bool {
	base := strings.TrimRight(name, "0123456789")
	digits := len(name) - len(base)
	if digits == 0 || len(base) < 2 || base[0] != '.' {
		return false
	}
	if strings.HasSuffix(base, ".tmp") || strings.HasSuffix(base, ".tmp-") {
		return true
	}
	return digits >= 8 // renameio: a random int64
}
