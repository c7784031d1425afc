package cas

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Adding files, copied or linked, and checking them leave their access
// times alone where the process may (it owns them): storing or checking a
// file is not a use of it.
func TestAddStatusKeepAccessTimes(t *testing.T) {
	atime := func(p string) syscall.Timespec {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Atim
	}
	for _, adopt := range []bool{false, true} {
		t.Run(fmt.Sprintf("adopt=%v", adopt), func(t *testing.T) {
			proj := t.TempDir()
			s, _ := Open(proj)
			work := filepath.Join(proj, "data", "ds")
			writeTree(t, work, map[string]string{"a.dcm": "one", "sub/b.dcm": "two"})
			writeTree(t, proj, map[string]string{"control": "three"})
			control := filepath.Join(proj, "control")
			before := atime(control)
			if _, err := os.ReadFile(control); err != nil {
				t.Fatal(err)
			}
			if atime(control) == before {
				t.Skip("this file system does not update access times on reads")
			}
			want := atime(filepath.Join(work, "sub/b.dcm"))
			res, err := s.AddDir(context.Background(), work, TreeOptions{Adopt: adopt})
			if err != nil {
				t.Fatal(err)
			}
			if got := atime(filepath.Join(work, "sub/b.dcm")); got != want {
				t.Errorf("access time %v after the add, want %v as before", got, want)
			}
			// Without an index, status reads every file.
			st, err := s.Status(context.Background(), res.Manifest, work, TreeOptions{})
			if err != nil || !st.Clean() || st.Rehashed != 2 {
				t.Fatalf("status: %+v, %v", st, err)
			}
			if got := atime(filepath.Join(work, "sub/b.dcm")); got != want {
				t.Errorf("access time %v after a status, want %v as before", got, want)
			}
		})
	}
}
