package local_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/cas/castest"
	"github.com/medcad/medcad/gitops/cas/local"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	var dir string
	castest.Run(t, func(t *testing.T) cas.Backend {
		dir = t.TempDir()
		b, err := local.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, castest.Options{Corrupt: func(t *testing.T, key string) {
		p := filepath.Join(dir, filepath.FromSlash(key))
		os.Chmod(p, 0o644)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte("XX"), 10); err != nil {
			t.Fatal(err)
		}
	}})
}
