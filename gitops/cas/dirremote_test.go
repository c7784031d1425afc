package cas

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// dirRemote is a Backend in folder dir for this package's tests: key k is
// the file dir/k, as in gitops/cas/local, which they cannot import (it
// imports cas). The conformance suite tests the real backends.
type dirRemote string

func (d dirRemote) String() string { return "file://" + string(d) }

func (d dirRemote) path(key string) string {
	return filepath.Join(string(d), filepath.FromSlash(key))
}

func (d dirRemote) err(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", d, key, err)
}

func (d dirRemote) Stat(ctx context.Context, key string) (int64, error) {
	fi, err := os.Stat(d.path(key))
	if err != nil {
		return 0, d.err(key, err)
	}
	return fi.Size(), nil
}

func (d dirRemote) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f, err := os.Open(d.path(key))
	if err != nil {
		return nil, d.err(key, err)
	}
	return f, nil
}

func (d dirRemote) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, sum [sha256.Size]byte) error {
	data, err := io.ReadAll(io.LimitReader(body, size+1))
	if err != nil {
		return err
	}
	if int64(len(data)) != size || sha256.Sum256(data) != sum {
		return fmt.Errorf("put %s: %w", key, ErrCorrupt)
	}
	p := d.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return d.err(key, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", key, ErrExists)
	} else if err != nil {
		return d.err(key, err)
	}
	_, err = io.Copy(f, bytes.NewReader(data))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (d dirRemote) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	return filepath.WalkDir(string(d), func(p string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(string(d), p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		return fn(key, fi.Size())
	})
}

func (d dirRemote) Delete(ctx context.Context, key string) error {
	if err := os.Remove(d.path(key)); err != nil {
		return d.err(key, err)
	}
	return nil
}
