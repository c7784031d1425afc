package gitops

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/medcad/medcad/gitops/cas"
)

func TestOpenRemote(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	root := t.TempDir()
	abs := filepath.Join(t.TempDir(), "abs")
	for _, tc := range []struct {
		url  string
		want string // the backend's String, or the error
	}{
		{"file://rel/remote", "file://" + filepath.Join(root, "rel", "remote")},
		{"file://" + abs, "file://" + abs},
		{"s3://bucket/some/prefix/", "s3://bucket/some/prefix"},
		{"s3://bucket", "s3://bucket"},
		{"file://", `remote "file://": empty path`},
		{"s3:///prefix", `remote "s3:///prefix": want s3://BUCKET/PREFIX`},
		{"http://host/x", `remote "http://host/x": want file://PATH or s3://BUCKET/PREFIX`},
	} {
		b, err := OpenRemote(context.Background(), Remote{URL: tc.url, Region: "eu-west-1"}, root, nil)
		var got string
		if err != nil {
			got = err.Error()
		} else {
			got = b.String()
		}
		if got != tc.want {
			t.Errorf("OpenRemote(%q) = %s; want %s", tc.url, got, tc.want)
		}
	}
}

// TestOpenRemoteVerifies: the backend OpenRemote returns checks what it
// reads against the object's name.
func TestOpenRemoteVerifies(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	b, err := OpenRemote(ctx, Remote{URL: "file://remote"}, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("content")
	id := cas.Sum(data)
	key := cas.ObjectKey(id)
	if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), id); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "remote", filepath.FromSlash(key))
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("CONTENT"), 0o444); err != nil {
		t.Fatal(err)
	}
	rc, err := b.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, cas.ErrCorrupt) {
		t.Errorf("read of a damaged object: %v; want ErrCorrupt", err)
	}
}
