package cas

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// racyWindow: a file whose mtime is this close to (or after) the moment we
// started reading it may change again without its mtime changing (file
// system timestamps are coarse), so its index entry is not trusted.
const racyWindow = 100 * time.Millisecond

const indexMagic = "medcad-index 1\n"

// Index remembers, for files of the workspace, the size, mtime, inode and
// digest seen last time, so an unchanged file is never re-hashed (like
// git's index). Paths are slash-separated and relative to the project.
// Safe for concurrent use.
type Index struct {
	mu      sync.Mutex
	entries map[string]indexEntry
	dirty   bool
}

type indexEntry struct {
	size  int64
	mtime int64 // ns
	ino   uint64
	id    ID
	racy  bool
}

// LoadIndex reads the project's stat index. A missing or damaged index is
// an empty one: it only ever saves work.
func (s *Store) LoadIndex() *Index {
	ix := &Index{entries: map[string]indexEntry{}}
	data, err := os.ReadFile(filepath.Join(s.root, indexFile))
	if err != nil {
		return ix
	}
	if e, err := decodeIndex(data); err == nil {
		ix.entries = e
	}
	return ix
}

// SaveIndex writes the index atomically when it changed.
func (s *Store) SaveIndex(ix *Index) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if !ix.dirty {
		return nil
	}
	if err := writeAtomic(filepath.Join(s.root, indexFile), encodeIndex(ix.entries), false); err != nil {
		return fmt.Errorf("save index: %w", err)
	}
	ix.dirty = false
	return nil
}

// Lookup returns the digest recorded for path when fi still matches it and
// the entry is not racy.
func (ix *Index) Lookup(path string, fi fs.FileInfo) (ID, bool) {
	if ix == nil {
		return ID{}, false
	}
	ix.mu.Lock()
	e, ok := ix.entries[path]
	ix.mu.Unlock()
	if !ok || e.racy || e.size != fi.Size() || e.mtime != fi.ModTime().UnixNano() || e.ino != inode(fi) {
		return ID{}, false
	}
	return e.id, true
}

// Record remembers that path, as described by fi (taken before reading),
// had digest id when reading started at readStart.
func (ix *Index) Record(path string, fi fs.FileInfo, id ID, readStart time.Time) {
	if ix == nil {
		return
	}
	e := indexEntry{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: inode(fi), id: id}
	e.racy = !fi.ModTime().Before(readStart.Add(-racyWindow))
	ix.mu.Lock()
	if old, ok := ix.entries[path]; !ok || old != e {
		ix.entries[path] = e
		ix.dirty = true
	}
	ix.mu.Unlock()
}

// Forget drops the entries under the folder prefix (a slash path).
func (ix *Index) Forget(prefix string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for p := range ix.entries {
		if p == prefix || len(p) > len(prefix) && p[:len(prefix)] == prefix && p[len(prefix)] == '/' {
			delete(ix.entries, p)
			ix.dirty = true
		}
	}
}

// Len is the number of entries.
func (ix *Index) Len() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return len(ix.entries)
}

// encodeIndex: magic, then per entry (sorted by path) uvarint path length,
// path, varint size, varint mtime, uvarint inode, flags byte, 32-byte id;
// then the SHA-256 of everything before it.
func encodeIndex(entries map[string]indexEntry) []byte {
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	b := make([]byte, 0, len(indexMagic)+len(paths)*100+sha256.Size)
	b = append(b, indexMagic...)
	b = binary.AppendUvarint(b, uint64(len(paths)))
	for _, p := range paths {
		e := entries[p]
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
		b = binary.AppendVarint(b, e.size)
		b = binary.AppendVarint(b, e.mtime)
		b = binary.AppendUvarint(b, e.ino)
		var flags byte
		if e.racy {
			flags = 1
		}
		b = append(b, flags)
		b = append(b, e.id[:]...)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

var errBadIndex = errors.New("damaged index")

func decodeIndex(data []byte) (map[string]indexEntry, error) {
	if len(data) < len(indexMagic)+sha256.Size || !bytes.HasPrefix(data, []byte(indexMagic)) {
		return nil, errBadIndex
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if sha256.Sum256(body) != [32]byte(sum) {
		return nil, errBadIndex
	}
	r := body[len(indexMagic):]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			return 0, false
		}
		r = r[n:]
		return v, true
	}
	sv := func() (int64, bool) {
		v, n := binary.Varint(r)
		if n <= 0 {
			return 0, false
		}
		r = r[n:]
		return v, true
	}
	count, ok := uv()
	if !ok || count > uint64(len(r)) {
		return nil, errBadIndex
	}
	out := make(map[string]indexEntry, count)
	for range count {
		l, ok := uv()
		if !ok || l > uint64(len(r)) {
			return nil, errBadIndex
		}
		p := string(r[:l])
		r = r[l:]
		var e indexEntry
		var ok1, ok2, ok3 bool
		e.size, ok1 = sv()
		e.mtime, ok2 = sv()
		e.ino, ok3 = uv()
		if !ok1 || !ok2 || !ok3 || len(r) < 1+sha256.Size {
			return nil, errBadIndex
		}
		e.racy = r[0]&1 != 0
		copy(e.id[:], r[1:1+sha256.Size])
		r = r[1+sha256.Size:]
		out[p] = e
	}
	if len(r) != 0 {
		return nil, errBadIndex
	}
	return out, nil
}

// writeAtomic writes data to a temporary file beside path and renames it
// over path; with sync it is fsynced first.
func writeAtomic(path string, data []byte, sync bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
