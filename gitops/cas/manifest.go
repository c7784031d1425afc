package cas

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on untrusted manifests and paths.
const (
	// MaxFileSize bounds one file of a dataset (4 GiB).
	MaxFileSize = 4 << 30
	// MaxManifestEntries bounds the files of one manifest.
	MaxManifestEntries = 10_000_000
	// MaxManifestBytes bounds a manifest object.
	MaxManifestBytes = 1 << 30
	// MaxPathLen bounds a path inside a dataset.
	MaxPathLen   = 1024
	maxPathDepth = 64
)

// manifestHeader starts every manifest object; it tells manifests from
// other objects.
const manifestHeader = "medcad-manifest 1\n"

// Sentinel errors of manifests and paths.
var (
	ErrBadManifest = errors.New("bad manifest")
	ErrUnsafePath  = errors.New("unsafe path")
)

// Entry is one file of a manifest.
type Entry struct {
	Path string      `json:"path"` // slash-separated, relative, clean
	Size int64       `json:"size"`
	Mode fs.FileMode `json:"mode"` // 0o644 or 0o755
	ID   ID          `json:"id"`
}

// Manifest lists the files of a directory tree, sorted by path. Its
// canonical encoding is an object of the store, so a tree is named by one
// ID. The encoding is text, one file a line:
//
//	medcad-manifest 1
//	644 65536 <64 hex> path/to/file
type Manifest struct {
	Entries []Entry
}

// Bytes is the total size of the files.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, e := range m.Entries {
		n += e.Size
	}
	return n
}

// Sort puts the entries in canonical (byte-wise path) order.
func (m *Manifest) Sort() {
	slices.SortFunc(m.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
}

// Encode returns the canonical encoding. The entries must be valid and
// sorted (Validate).
func (m *Manifest) Encode() []byte {
	var b bytes.Buffer
	b.Grow(len(manifestHeader) + len(m.Entries)*110)
	b.WriteString(manifestHeader)
	for _, e := range m.Entries {
		if e.Mode&0o111 != 0 {
			b.WriteString("755 ")
		} else {
			b.WriteString("644 ")
		}
		b.WriteString(strconv.FormatInt(e.Size, 10))
		b.WriteByte(' ')
		b.WriteString(e.ID.Hex())
		b.WriteByte(' ')
		b.WriteString(e.Path)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ID returns the manifest's object ID.
func (m *Manifest) ID() ID { return Sum(m.Encode()) }

// Validate checks that every path is safe, sorted and unique, that no file
// is also a folder of another, and that sizes are within bounds.
func (m *Manifest) Validate() error {
	if len(m.Entries) > MaxManifestEntries {
		return fmt.Errorf("%w: %d files, more than %d", ErrBadManifest, len(m.Entries), MaxManifestEntries)
	}
	dirs := map[string]struct{}{}
	for i, e := range m.Entries {
		if err := CheckPath(e.Path); err != nil {
			return err
		}
		if e.Size < 0 || e.Size > MaxFileSize {
			return fmt.Errorf("%w: %s: size %d out of range 0…%d", ErrBadManifest, e.Path, e.Size, int64(MaxFileSize))
		}
		if e.Mode != 0o644 && e.Mode != 0o755 {
			return fmt.Errorf("%w: %s: mode %o, want 644 or 755", ErrBadManifest, e.Path, e.Mode)
		}
		if i > 0 && m.Entries[i-1].Path >= e.Path {
			return fmt.Errorf("%w: %s: not sorted or duplicated", ErrBadManifest, e.Path)
		}
		for d := path.Dir(e.Path); d != "."; d = path.Dir(d) {
			if _, seen := dirs[d]; seen {
				break
			}
			dirs[d] = struct{}{}
		}
	}
	for _, e := range m.Entries {
		if _, isDir := dirs[e.Path]; isDir {
			return fmt.Errorf("%w: %s is both a file and a folder", ErrBadManifest, e.Path)
		}
	}
	return nil
}

// IsManifest reports whether data starts like a manifest object.
func IsManifest(data []byte) bool { return bytes.HasPrefix(data, []byte(manifestHeader)) }

// ParseManifest decodes a manifest strictly: the canonical encoding is the
// only accepted one, so ParseManifest(b).Encode() equals b.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadManifest, MaxManifestBytes)
	}
	rest, ok := bytes.CutPrefix(data, []byte(manifestHeader))
	if !ok {
		return nil, fmt.Errorf("%w: missing header %q", ErrBadManifest, strings.TrimSpace(manifestHeader))
	}
	n := bytes.Count(rest, []byte{'\n'})
	if n > MaxManifestEntries {
		return nil, fmt.Errorf("%w: more than %d files", ErrBadManifest, MaxManifestEntries)
	}
	m := &Manifest{Entries: make([]Entry, 0, n)}
	line := 1
	for len(rest) > 0 {
		line++
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("%w: line %d: no final newline", ErrBadManifest, line)
		}
		e, err := parseEntry(rest[:nl])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadManifest, line, err)
		}
		m.Entries = append(m.Entries, e)
		rest = rest[nl+1:]
	}
	if err := m.Validate(); err != nil {
		if errors.Is(err, ErrBadManifest) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	return m, nil
}

func parseEntry(l []byte) (Entry, error) {
	var e Entry
	var f [4][]byte
	for i := range 3 {
		sp := bytes.IndexByte(l, ' ')
		if sp < 0 {
			return e, errors.New("want: MODE SIZE HEX PATH")
		}
		f[i], l = l[:sp], l[sp+1:]
	}
	f[3] = l
	switch string(f[0]) {
	case "644":
		e.Mode = 0o644
	case "755":
		e.Mode = 0o755
	default:
		return e, fmt.Errorf("mode %q, want 644 or 755", truncate(string(f[0]), 10))
	}
	size, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != string(f[1]) {
		return e, fmt.Errorf("size %q is not a canonical number", truncate(string(f[1]), 24))
	}
	e.Size = size
	id, err := ParseID(IDPrefix + string(f[2]))
	if err != nil {
		return e, err
	}
	e.ID = id
	e.Path = string(f[3])
	return e, nil
}

// CheckPath reports whether p is safe as a path inside a dataset:
// relative, clean, slash-separated, no "..", no ".git" or ".medcad"
// component, valid UTF-8 without control characters, and bounded.
func CheckPath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %q: %s", ErrUnsafePath, truncate(p, 120), why) }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxPathLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxPathLen))
	case !utf8.ValidString(p):
		return bad("not UTF-8")
	case strings.HasPrefix(p, "/"):
		return bad("absolute")
	case strings.ContainsRune(p, '\\'):
		return bad("backslash")
	case len(p) >= 2 && p[1] == ':':
		return bad("drive letter")
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return bad("control character")
		}
	}
	// Component checks make a relative path clean: no empty, "." or ".."
	// parts (so no leading, trailing or doubled slashes).
	depth := 0
	for rest := p; ; {
		c, tail, more := strings.Cut(rest, "/")
		depth++
		switch {
		case c == "..":
			return bad("leaves its folder")
		case c == "." || c == "":
			return bad("not clean")
		case strings.EqualFold(c, ".git") || strings.EqualFold(c, ".medcad"):
			return bad("reserved name " + c)
		}
		if !more {
			break
		}
		rest = tail
	}
	if depth > maxPathDepth {
		return bad("too deep")
	}
	return nil
}
