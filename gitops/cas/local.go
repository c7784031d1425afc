package cas

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
	"strings"
	"syscall"
)

// Local is a remote in a local folder (file://…), for a shared disk or a
// mounted network share. Writes go to a temporary file, are fsynced and
// then linked to their key, which fails if the key exists, so an object is
// never replaced.
type Local struct {
	dir string
}

// NewLocal opens (creating when needed) the remote in folder dir.
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(abs, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("remote %s: %w", abs, err)
	}
	return &Local{dir: abs}, nil
}

func (l *Local) String() string { return "file://" + l.dir }

func (l *Local) path(key string) (string, error) {
	if key == "" || path.Clean(key) != key || strings.HasPrefix(key, "/") || strings.HasPrefix(key, "tmp/") || key == "tmp" || strings.Contains(key, "..") {
		return "", fmt.Errorf("remote key %q: %w", truncate(key, 80), ErrUnsafePath)
	}
	return filepath.Join(l.dir, filepath.FromSlash(key)), nil
}

func (l *Local) Stat(ctx context.Context, key string) (int64, error) {
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

func (l *Local) Get(ctx context.Context, key string) (io.ReadCloser, error) {
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
	return &ctxReadCloser{ctxReader: ctxReader{ctx: ctx, r: f}, c: f}, nil
}

func (l *Local) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, sum [sha256.Size]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return fmt.Errorf("%s: %w", key, ErrExists)
	}
	tmp, err := os.CreateTemp(filepath.Join(l.dir, "tmp"), "put-*")
	if err != nil {
		return l.err(key, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: io.LimitReader(body, size+1)})
	if err != nil {
		tmp.Close()
		return err
	}
	if n != size || [sha256.Size]byte(h.Sum(nil)) != sum {
		tmp.Close()
		return fmt.Errorf("put %s: %w", key, ErrCorrupt)
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
			return fmt.Errorf("%s: %w", key, ErrExists)
		}
		return l.err(key, err)
	}
	return nil
}

func (l *Local) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
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

func (l *Local) Delete(ctx context.Context, key string) error {
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

// err translates file errors to the package's sentinels.
func (l *Local) err(key string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%s: %w: %v", key, ErrPermission, err)
	}
	return fmt.Errorf("%s %s: %w", l, key, err)
}

type ctxReadCloser struct {
	ctxReader
	c io.Closer
}

func (c *ctxReadCloser) Close() error { return c.c.Close() }
