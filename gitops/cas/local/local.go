// Package local is a cas.Backend in a local folder (file://…): a shared
// disk or a mounted network share.
package local

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/medcad/medcad/gitops/cas"
)

// Backend is a remote in a local folder. Writes go to a temporary file,
// are fsynced and then linked to their key, which fails if the key
// exists, so an object is never replaced.
type Backend struct {
	dir string
}

// New opens (creating when needed) the remote in folder dir.
func New(dir string) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(abs, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("remote %s: %w", abs, err)
	}
	return &Backend{dir: abs}, nil
}

func (l *Backend) String() string { return "file://" + l.dir }

func (l *Backend) path(key string) (string, error) {
	if key == "" || path.Clean(key) != key || strings.HasPrefix(key, "/") || strings.HasPrefix(key, "tmp/") || key == "tmp" || strings.Contains(key, "..") {
		return "", fmt.Errorf("remote key %q: %w", truncate(key, 80), cas.ErrUnsafePath)
	}
	return filepath.Join(l.dir, filepath.FromSlash(key)), nil
}

func (l *Backend) Stat(ctx context.Context, key string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p, err := l.path(key)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, l.err(key, err)
	}
	return fi.Size(), nil
}

func (l *Backend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, l.err(key, err)
	}
	return ctxReadCloser{Reader: cas.ContextReader(ctx, f), c: f}, nil
}

func (l *Backend) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, sum [sha256.Size]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return fmt.Errorf("%s: %w", key, cas.ErrExists)
	}
	tmp, err := os.CreateTemp(filepath.Join(l.dir, "tmp"), "put-*")
	if err != nil {
		return l.err(key, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), cas.ContextReader(ctx, io.LimitReader(body, size+1)))
	if err != nil {
		tmp.Close()
		return err
	}
	if n != size || [sha256.Size]byte(h.Sum(nil)) != sum {
		tmp.Close()
		return fmt.Errorf("put %s: %w", key, cas.ErrCorrupt)
	}
	if err := tmp.Chmod(0o444); err != nil {
		tmp.Close()
		return l.err(key, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return l.err(key, err)
	}
	if err := tmp.Close(); err != nil {
		return l.err(key, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return l.err(key, err)
	}
	if err := os.Link(tmp.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", key, cas.ErrExists)
		}
		return l.err(key, err)
	}
	if runtime.GOOS == "windows" {
		// Removing the read-only temporary link clears the read-only
		// attribute the two links share; set it again.
		os.Remove(tmp.Name())
		os.Chmod(p, 0o444)
	}
	return nil
}

func (l *Backend) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	start := l.dir
	if d := path.Dir(prefix); prefix != "" && d != "." {
		start = filepath.Join(l.dir, filepath.FromSlash(d))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(l.dir, p)
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if key == "tmp" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		return fn(key, fi.Size())
	})
	return err
}

func (l *Backend) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return l.err(key, err)
	}
	return nil
}

// err translates file errors to the cas sentinel errors.
func (l *Backend) err(key string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", key, cas.ErrNotFound)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%s: %w: %v", key, cas.ErrPermission, err)
	}
	return fmt.Errorf("%s %s: %w", l, key, err)
}

// ctxReadCloser reads and closes f, stopping when ctx is done.
type ctxReadCloser struct {
	io.Reader
	c io.Closer
}

func (c ctxReadCloser) Close() error { return c.c.Close() }

// truncate shortens s to at most n bytes for messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
