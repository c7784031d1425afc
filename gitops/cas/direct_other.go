//go:build !linux

package cas

import (
	"errors"
	"os"
)

// directAlign is 0: files are written through the page cache here.
func directAlign(int) int { return 0 }

// setDirect fails: there is no direct I/O here (directAlign is 0, so it
// is never asked for).
func setDirect(*os.File, bool) error { return errors.ErrUnsupported }
