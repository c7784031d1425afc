package testenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// modulePath is the module whose go.mod marks the root that Fixture
// resolves paths under.
const modulePath = "github.com/medcad/medcad"

var moduleRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			first, _, _ := strings.Cut(string(data), "\n")
			if strings.TrimSpace(first) == "module "+modulePath {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of %s above %s", modulePath, dir)
		}
	}
})

// ModuleRoot is the folder of medcad's go.mod, found by walking up from
// the working directory (a package folder under go test).
func ModuleRoot() (string, error) { return moduleRoot() }

// FixturePath is the path of the shared fixture rel (a slash path under
// the module's top-level testdata/ folder); it fails when it is missing.
func FixturePath(rel string) (string, error) {
	if !fs.ValidPath(rel) || rel == "." {
		return "", fmt.Errorf("fixture %q: not a slash path inside testdata/", rel)
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "testdata", filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("fixture %s: %w", rel, err)
	}
	return p, nil
}

// Fixture is the path of the shared fixture rel under the module's
// testdata/ (for example "projects/ci-pipeline"). Tests read it; they
// copy it (CopyFixture) before changing anything.
func Fixture(t testing.TB, rel string) string {
	t.Helper()
	p, err := FixturePath(rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ReadFixture returns the contents of the fixture file rel.
func ReadFixture(t testing.TB, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(Fixture(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// CopyFixture copies the fixture folder (or file) rel into dst, creating
// dst; "" copies it into a new t.TempDir(). It returns dst.
func CopyFixture(t testing.TB, rel, dst string) string {
	t.Helper()
	if dst == "" {
		dst = t.TempDir()
	}
	if err := CopyFixtureTo(rel, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// CopyFixtureTo is CopyFixture for callers without a testing.TB (a
// testscript command): it copies fixture rel into dst.
func CopyFixtureTo(rel, dst string) error {
	src, err := FixturePath(rel)
	if err != nil {
		return err
	}
	return copyTree(src, dst)
}

// copyTree copies the regular files and folders of src into dst, keeping
// the permission bits (scripts stay executable).
func copyTree(src, dst string) error {
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		return copyFile(src, filepath.Join(dst, filepath.Base(src)), info.Mode().Perm())
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type().IsRegular():
			return copyFile(p, to, info.Mode().Perm())
		default:
			return fmt.Errorf("fixture %s: %w", p, errors.ErrUnsupported)
		}
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, perm)
}
