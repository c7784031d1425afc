// Package cas is medcad's content-addressed store: object IDs, the local
// cache under .medcad/cache, directory manifests, the stat index that saves
// re-hashing unchanged files, the Backend interface with its local-directory
// and S3 remotes, retry and verification decorators, and the parallel
// transfer queue used by push and pull.
//
// Written by hand because no reachable library offers a content-addressed
// cache with this layout and crash contract: objects are named by the
// SHA-256 of their content, written to a temporary file, made durable and
// only then renamed to their name, so a crash never leaves a wrong object
// under a good name. Hashing, S3 access (aws-sdk-go-v2) and file cloning
// (golang.org/x/sys/unix) come from libraries.
package cas

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// IDPrefix starts every written object ID.
const IDPrefix = "sha256:"

// ID names an object: the SHA-256 of its content.
type ID [sha256.Size]byte

// ErrBadID means a string is not a well-formed object ID.
var ErrBadID = errors.New("not an object ID (want sha256:<64 lowercase hex>)")

// Sum returns the ID of data.
func Sum(data []byte) ID { return ID(sha256.Sum256(data)) }

// ParseID parses "sha256:<64 lowercase hex digits>".
func ParseID(s string) (ID, error) {
	var id ID
	hexPart, ok := strings.CutPrefix(s, IDPrefix)
	if !ok || len(hexPart) != 2*sha256.Size {
		return id, fmt.Errorf("%q: %w", truncate(s, 80), ErrBadID)
	}
	for i := 0; i < len(hexPart); i++ {
		if c := hexPart[i]; c >= 'A' && c <= 'F' { // canonical IDs are lower case
			return id, fmt.Errorf("%q: %w", truncate(s, 80), ErrBadID)
		}
	}
	if _, err := hex.Decode(id[:], []byte(hexPart)); err != nil {
		return id, fmt.Errorf("%q: %w", truncate(s, 80), ErrBadID)
	}
	return id, nil
}

// String writes the ID as "sha256:<hex>".
func (id ID) String() string { return IDPrefix + id.Hex() }

// Hex returns the 64 hex digits of the ID.
func (id ID) Hex() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex digits, for messages.
func (id ID) Short() string { return id.Hex()[:12] }

// ShortText is Short of a digest held as text; text that is not an ID
// ("", a placeholder) comes back unchanged.
func ShortText(s string) string {
	if id, err := ParseID(s); err == nil {
		return id.Short()
	}
	return s
}

// IsZero reports whether id is the zero value (no object).
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText writes the ID as "sha256:<hex>".
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses "sha256:<hex>".
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// objectKey is the object's key in a cache or on a remote:
// objects/ab/cdef… (two hex digits, then the other 62).
func objectKey(id ID) string {
	h := id.Hex()
	return "objects/" + h[:2] + "/" + h[2:]
}

// markerKey is the key of a manifest's "complete" marker on a remote.
func markerKey(manifest ID) string { return "complete/" + manifest.Hex() }

// ObjectKey is the remote key of object id.
func ObjectKey(id ID) string { return objectKey(id) }

// parseObjectKey inverts objectKey.
func parseObjectKey(key string) (ID, bool) {
	rest, ok := strings.CutPrefix(key, "objects/")
	if !ok || len(rest) != 65 || rest[2] != '/' {
		return ID{}, false
	}
	id, err := ParseID(IDPrefix + rest[:2] + rest[3:])
	return id, err == nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
