package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/cas/castest"
	"github.com/medcad/medcad/gitops/cas/s3"
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

// TestVersitygwDirectReads reads through the direct GET and HEAD path
// (signed by hand, not by the SDK's middleware) from a server that checks
// signatures, under a prefix that needs escaping, and checks the errors
// it maps.
func TestVersitygwDirectReads(t *testing.T) {
	t.Parallel()
	srv := castest.Versitygw(t)
	_, bucket := srv.NewBucket(t)
	ctx := context.Background()
	open := func(secret string) *s3.Backend {
		b, err := s3.New(ctx, s3.Config{
			Bucket: bucket, Prefix: "odd prefix/a+b=c&d", Endpoint: srv.Endpoint, PathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(castest.AccessKey, secret, ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open(castest.SecretKey)
	data := []byte("sixty-four kilobytes, give or take")
	id := cas.Sum(data)
	key := cas.ObjectKey(id)
	if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), id); err != nil {
		t.Fatal(err)
	}
	rc, err := b.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, %v; want %q", got, err, data)
	}
	if n, err := b.Stat(ctx, key); err != nil || n != int64(len(data)) {
		t.Errorf("Stat = %d, %v; want %d", n, err, len(data))
	}
	missing := cas.ObjectKey(cas.Sum([]byte("never put")))
	if _, err := b.Get(ctx, missing); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("Get of a missing object: %v; want ErrNotFound", err)
	}
	if _, err := b.Stat(ctx, missing); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("Stat of a missing object: %v; want ErrNotFound", err)
	}
	wrong := open("not-the-secret")
	if _, err := wrong.Get(ctx, key); !errors.Is(err, cas.ErrPermission) {
		t.Errorf("Get with a wrong secret: %v; want ErrPermission", err)
	} else if strings.Contains(err.Error(), "not-the-secret") {
		t.Errorf("error shows the secret: %v", err)
	}
}

// BenchmarkVersitygwGet compares the direct read path with the SDK's on
// 64 KiB objects, the size where the SDK's middleware shows.
func BenchmarkVersitygwGet(b *testing.B) {
	srv := castest.Versitygw(b)
	be, _ := srv.NewBucket(b)
	ctx := context.Background()
	data := bytes.Repeat([]byte("x"), 64<<10)
	id := cas.Sum(data)
	key := cas.ObjectKey(id)
	if err := be.Put(ctx, key, bytes.NewReader(data), int64(len(data)), id); err != nil {
		b.Fatal(err)
	}
	for name, r := range map[string]*s3.Backend{"direct": be, "sdk": s3.SDKReads(be)} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				rc, err := r.Get(ctx, key)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}
