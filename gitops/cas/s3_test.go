package cas_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/cas/castest"
)

func TestFakeS3Conformance(t *testing.T) {
	t.Parallel()
	srv := castest.FakeS3(t)
	castest.Run(t, func(t *testing.T) cas.Backend {
		b, _ := srv.NewBucket(t)
		return b
	}, castest.Options{NoServerChecksum: true})
}

func TestVersitygwConformance(t *testing.T) {
	t.Parallel()
	srv := castest.Versitygw(t)
	var bucket string
	castest.Run(t, func(t *testing.T) cas.Backend {
		b, name := srv.NewBucket(t)
		bucket = name
		return b
	}, castest.Options{Corrupt: func(t *testing.T, key string) {
		p := filepath.Join(srv.Dir, bucket, "store", filepath.FromSlash(key))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[10] ^= 0xff
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}})
}
