package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/medcad/medcad/internal/atomicfile"
)

// LockFile is the pipeline state's file name at the project root.
const LockFile = "medcad.lock"

const maxLockBytes = 16 << 20

// Lock is medcad.lock: per stage (and per case of foreach stages) the cache
// key and the digests of deps, params and outs of the last successful run.
// It is written canonically (sorted tables, one table per stage and case) so
// that two runs on the same inputs write byte-identical files and git merges
// concurrent changes to different stages or cases cleanly.
type Lock struct {
	Schema int                   `toml:"schema"`
	Stages map[string]*StageLock `toml:"stage"`
}

// StageLock is one stage's entry.
type StageLock struct {
	Key    string            `toml:"key"`              // cache key
	Out    string            `toml:"out,omitempty"`    // digest of the outs tree (union of cases for foreach)
	Env    string            `toml:"env,omitempty"`    // env lock digest, for env = true stages
	Deps   map[string]string `toml:"deps,omitempty"`   // dep name → digest
	Params map[string]string `toml:"params,omitempty"` // "table.key" → the value written as TOML
	Cases  map[string]*Case  `toml:"case,omitempty"`   // foreach = "case"
}

// Case is one case's entry of a foreach stage.
type Case struct {
	Key string `toml:"key"`
	Out string `toml:"out"`
}

// NewLock returns an empty lock.
func NewLock() *Lock { return &Lock{Schema: 1, Stages: map[string]*StageLock{}} }

// ReadLock reads dir/medcad.lock; a missing file is an empty lock.
func ReadLock(dir string) (*Lock, error) {
	data, err := readBounded(filepath.Join(dir, LockFile), maxLockBytes)
	if errors.Is(err, os.ErrNotExist) {
		return NewLock(), nil
	}
	if err != nil {
		return nil, err
	}
	return ParseLock(LockFile, data)
}

// ParseLock decodes a lock strictly.
func ParseLock(name string, data []byte) (*Lock, error) {
	l := NewLock()
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(l)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &ConfigError{File: name, Line: pe.Position.Line, Msg: pe.Message}
		}
		return nil, &ConfigError{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, &ConfigError{File: name, Line: keyLine(data, strings.Join(u[0], ".")), Msg: unknownKeyMsg(u[0])}
	}
	if l.Schema != 1 {
		return nil, &ConfigError{File: name, Msg: fmt.Sprintf("schema %d is not supported (want 1)", l.Schema)}
	}
	if l.Stages == nil {
		l.Stages = map[string]*StageLock{}
	}
	return l, nil
}

// Encode writes the lock canonically.
func (l *Lock) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# medcad.lock: pipeline state written by medcad repro. Do not edit.\nschema = %d\n", l.Schema)
	for _, name := range sortedKeys(l.Stages) {
		s := l.Stages[name]
		fmt.Fprintf(&b, "\n[stage.%s]\nkey = %s\n", tomlKey(name), tomlString(s.Key))
		if s.Out != "" {
			fmt.Fprintf(&b, "out = %s\n", tomlString(s.Out))
		}
		if s.Env != "" {
			fmt.Fprintf(&b, "env = %s\n", tomlString(s.Env))
		}
		writeStringTable(&b, "stage."+tomlKey(name)+".deps", s.Deps)
		writeStringTable(&b, "stage."+tomlKey(name)+".params", s.Params)
		for _, id := range sortedKeys(s.Cases) {
			c := s.Cases[id]
			fmt.Fprintf(&b, "\n[stage.%s.case.%s]\nkey = %s\nout = %s\n", tomlKey(name), tomlKey(id), tomlString(c.Key), tomlString(c.Out))
		}
	}
	return b.Bytes()
}

// Write writes the lock atomically to dir/medcad.lock, unless the file
// already holds exactly this lock.
func (l *Lock) Write(dir string) error { return WriteLockBytes(dir, l.Encode()) }

// WriteLockBytes writes an encoded lock like Write does.
func WriteLockBytes(dir string, data []byte) error {
	p := filepath.Join(dir, LockFile)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return atomicfile.WriteFile(p, data, 0o644)
}

// writeStringTable writes a sub-table of string values.
func writeStringTable(b *bytes.Buffer, header string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(b, "\n[%s]\n", header)
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(b, "%s = %s\n", tomlKey(k), tomlString(m[k]))
	}
}

// tomlKey quotes a key unless it is a bare TOML key.
func tomlKey(k string) string {
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return tomlString(k)
		}
	}
	if k == "" {
		return `""`
	}
	return k
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}
