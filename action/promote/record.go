package promote

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/medcad/medcad/gitops/cas"
)

// RecordSchema is the version of the production record format.
const RecordSchema = 1

// Record is one version in a model's production chain: which artifact
// became production, from which pull request and merge, who approved and
// merged it, against which baseline its gates were checked, and the
// digest of the record before it. The promotion job signs it; every
// reader verifies the signature and the chain.
type Record struct {
	Schema  int    `json:"schema"`
	Model   string `json:"model"`
	Version int    `json:"version"`
	// Artifact is the model's outs; Eval its per-case evaluation.
	Artifact cas.ID `json:"artifact"`
	Eval     cas.ID `json:"eval,omitzero"`
	// Manifest is the digest of the model manifest file promoted, as
	// committed at ManifestCommit (for a rollback: the earlier version's).
	Manifest       cas.ID             `json:"manifest"`
	ManifestCommit string             `json:"manifest_commit"`
	Run            string             `json:"run"`
	CodeCommit     string             `json:"code_commit"`
	Commit         string             `json:"commit"` // the default branch's commit that was promoted
	PR             int                `json:"pull_request,omitempty"`
	MergedBy       string             `json:"merged_by,omitempty"`
	Approvers      []string           `json:"approved_by,omitempty"`
	CIRunURL       string             `json:"ci_run_url,omitempty"`
	Metrics        map[string]float64 `json:"metrics,omitempty"`
	Gate           GateRecord         `json:"gate"`
	Rollback       *Rollback          `json:"rollback,omitempty"`
	Prev           cas.ID             `json:"prev,omitzero"` // digest of the previous record's bytes
	PromotedAt     time.Time          `json:"promoted_at"`
	Signature      string             `json:"signature"`
}

// GateRecord is the verdict the promotion job computed.
type GateRecord struct {
	Result   string   `json:"result"`             // pass, or skipped for a rollback
	Baseline int      `json:"baseline,omitempty"` // the production version compared with; 0: none
	Gates    []string `json:"gates,omitempty"`    // one line per gate checked
}

// Rollback says that a version restores an earlier one's artifact.
type Rollback struct {
	Of     int    `json:"of"`
	Reason string `json:"reason"`
	By     string `json:"by"`
}

// Sentinel errors of production records.
var (
	ErrUnsigned     = errors.New("not signed")
	ErrBadSignature = errors.New("signature does not verify with the project's public key ([promote] public_key): the record was forged or edited")
	ErrBrokenChain  = errors.New("breaks the production chain")
	ErrNoPublicKey  = errors.New("no public key to verify production records: set [promote] public_key in medcad.toml ('medcad model keygen' makes a key pair)")
	ErrKeyMismatch  = errors.New(KeyEnv + " does not match [promote] public_key in medcad.toml")
	ErrNoKey        = errors.New(KeyEnv + " is not set (the promotion job's secret, in its protected GitHub Environment)")
	ErrShortKey     = fmt.Errorf("%s is shorter than %d bytes", KeyEnv, minKeyBytes)
	ErrVersionTaken = errors.New("version already recorded by another promotion")
)

// KeyEnv is the environment variable that holds the signing secret; only
// the promotion job has it.
const KeyEnv = "MEDCAD_SIGNING_KEY"

const (
	minKeyBytes = 16
	sigPrefix   = "ed25519:"
	// seedDomain separates medcad's key derivation from any other use of
	// the same secret.
	seedDomain     = "medcad production record signing key\x00"
	maxRecordBytes = 64 << 10
)

// Signer signs production records.
type Signer struct{ priv ed25519.PrivateKey }

// NewSigner derives the Ed25519 key pair from the secret in KeyEnv, so any
// random string of 16 bytes or more serves as the secret.
func NewSigner(secret string) (*Signer, error) {
	if secret == "" {
		return nil, ErrNoKey
	}
	if len(secret) < minKeyBytes {
		return nil, ErrShortKey
	}
	seed := sha256.Sum256([]byte(seedDomain + secret))
	return &Signer{priv: ed25519.NewKeyFromSeed(seed[:])}, nil
}

// Public is the key that verifies what s signs.
func (s *Signer) Public() PublicKey { return PublicKey(s.priv.Public().(ed25519.PublicKey)) }

// PublicKey verifies production records.
type PublicKey ed25519.PublicKey

// String is the key as medcad.toml holds it.
func (k PublicKey) String() string { return sigPrefix + base64.StdEncoding.EncodeToString(k) }

// ParsePublicKey reads a key written by PublicKey.String.
func ParsePublicKey(s string) (PublicKey, error) {
	b64, ok := strings.CutPrefix(s, sigPrefix)
	b, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: want %s followed by %d base64-encoded bytes", s, sigPrefix, ed25519.PublicKeySize)
	}
	return PublicKey(b), nil
}

// Keys picks the key that verifies records: the configured public key,
// else the one derived from the secret; both present must agree.
func Keys(configured, secret string) (PublicKey, error) {
	var pub PublicKey
	if configured != "" {
		var err error
		if pub, err = ParsePublicKey(configured); err != nil {
			return nil, fmt.Errorf("medcad.toml: promote.public_key: %w", err)
		}
	}
	if secret == "" {
		if pub == nil {
			return nil, ErrNoPublicKey
		}
		return pub, nil
	}
	s, err := NewSigner(secret)
	if err != nil {
		return nil, err
	}
	if pub != nil && !bytes.Equal(pub, s.Public()) {
		return nil, ErrKeyMismatch
	}
	return s.Public(), nil
}

// payload is the canonical encoding that is signed: the record without
// its signature (struct order; encoding/json sorts map keys).
func (r *Record) payload() []byte {
	c := *r
	c.Signature = ""
	b, err := json.Marshal(&c)
	if err != nil {
		panic(err) // numbers, strings, digests and times only
	}
	return b
}

// Sign sets the record's signature.
func (s *Signer) Sign(r *Record) {
	r.Signature = sigPrefix + base64.StdEncoding.EncodeToString(ed25519.Sign(s.priv, r.payload()))
}

// Verify checks the record's signature.
func (k PublicKey) Verify(r *Record) error {
	b64, ok := strings.CutPrefix(r.Signature, sigPrefix)
	if r.Signature == "" {
		return ErrUnsigned
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || !ed25519.Verify(ed25519.PublicKey(k), r.payload(), sig) {
		return ErrBadSignature
	}
	return nil
}

// Encode is the record as stored: indented JSON, one trailing newline.
func (r *Record) Encode() []byte {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// RecordError names the record that failed to verify.
type RecordError struct {
	Where  string // the record's key and store, or its git tag
	Err    error
	Detail string
}

func (e *RecordError) Error() string {
	msg := e.Where + ": " + e.Err.Error()
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

func (e *RecordError) Unwrap() error { return e.Err }

// parseRecord decodes one stored record strictly.
func parseRecord(where string, data []byte) (*Record, error) {
	if len(data) > maxRecordBytes {
		return nil, &RecordError{Where: where, Err: errors.New("not a production record"), Detail: fmt.Sprintf("larger than %d bytes", maxRecordBytes)}
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, &RecordError{Where: where, Err: errors.New("not a production record"), Detail: err.Error()}
	}
	if r.Schema != RecordSchema {
		return nil, &RecordError{Where: where, Err: errors.New("not a production record"), Detail: fmt.Sprintf("schema %d, want %d", r.Schema, RecordSchema)}
	}
	return &r, nil
}

// Chain is a model's verified production history, oldest first; the last
// record is production.
type Chain struct {
	Model   string
	Records []*Record
	digests []cas.ID // of each record's stored bytes
	Source  string   // where the chain was read
}

// Production is the current production record, nil when never promoted.
func (c *Chain) Production() *Record {
	if len(c.Records) == 0 {
		return nil
	}
	return c.Records[len(c.Records)-1]
}

// Next is the version number a new record gets.
func (c *Chain) Next() int { return len(c.Records) + 1 }

// head is the digest the next record's Prev must hold.
func (c *Chain) head() cas.ID {
	if len(c.digests) == 0 {
		return cas.ID{}
	}
	return c.digests[len(c.digests)-1]
}

// Version returns record vN.
func (c *Chain) Version(n int) (*Record, bool) {
	if n < 1 || n > len(c.Records) {
		return nil, false
	}
	return c.Records[n-1], true
}

// Resolve finds the record a reference names: "production", "vN",
// "N" or the tag models/<model>/vN.
func (c *Chain) Resolve(ref string) (*Record, error) {
	if ref == "production" || ref == "prod" {
		if p := c.Production(); p != nil {
			return p, nil
		}
		return nil, fmt.Errorf("%s has no production version yet (nothing was promoted)", c.Model)
	}
	s := strings.TrimPrefix(ref, "models/"+c.Model+"/")
	s = strings.TrimPrefix(s, "v")
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("%q: not a model version (want production, vN or %s)", ref, Tag(c.Model, 1))
	}
	r, ok := c.Version(n)
	if !ok {
		return nil, fmt.Errorf("%s v%d does not exist: the latest is v%d", c.Model, n, len(c.Records))
	}
	return r, nil
}

// appendVerified adds the record read from where, checking its
// signature and its place in the chain.
func (c *Chain) appendVerified(pub PublicKey, where string, data []byte) error {
	r, err := parseRecord(where, data)
	if err != nil {
		return err
	}
	if err := pub.Verify(r); err != nil {
		return &RecordError{Where: where, Err: err}
	}
	want := len(c.Records) + 1
	switch {
	case r.Model != c.Model || r.Version != want:
		return &RecordError{Where: where, Err: ErrBrokenChain, Detail: fmt.Sprintf("it names %s v%d", r.Model, r.Version)}
	case r.Prev != c.head():
		return &RecordError{Where: where, Err: ErrBrokenChain, Detail: fmt.Sprintf("prev %s, but v%d is %s", orNone(r.Prev), want-1, orNone(c.head()))}
	case r.Rollback != nil && (r.Rollback.Of < 1 || r.Rollback.Of >= want):
		return &RecordError{Where: where, Err: ErrBrokenChain, Detail: fmt.Sprintf("rollback to v%d, which is not an earlier version", r.Rollback.Of)}
	}
	c.Records = append(c.Records, r)
	c.digests = append(c.digests, cas.Sum(data))
	return nil
}

// RecordKey is the store key of version v of model.
func RecordKey(model string, v int) string { return fmt.Sprintf("aliases/%s/v%d.json", model, v) }

// Tag is the git tag of version v of model.
func Tag(model string, v int) string { return fmt.Sprintf("models/%s/v%d", model, v) }

var recordKeyRE = regexp.MustCompile(`^aliases/([A-Za-z0-9._-]+)/v([1-9][0-9]{0,8})\.json$`)

// LoadChain reads and verifies model's production chain from the store.
// Versions must run 1..N without a gap; every record must verify with
// pub and name its predecessor's digest.
func LoadChain(ctx context.Context, b cas.Backend, model string, pub PublicKey) (*Chain, error) {
	var versions []int
	err := b.List(ctx, "aliases/"+model+"/", func(key string, _ int64) error {
		if m := recordKeyRE.FindStringSubmatch(key); m != nil && m[1] == model {
			v, _ := strconv.Atoi(m[2])
			versions = append(versions, v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list production records of %s on %s: %w", model, b, err)
	}
	sort.Ints(versions)
	c := &Chain{Model: model, Source: b.String()}
	for i, v := range versions {
		where := RecordKey(model, v) + " on " + b.String()
		if v != i+1 {
			return nil, &RecordError{Where: where, Err: ErrBrokenChain, Detail: fmt.Sprintf("v%d is missing", i+1)}
		}
		data, err := readAll(ctx, b, RecordKey(model, v))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := c.appendVerified(pub, where, data); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func readAll(ctx context.Context, b cas.Backend, key string) ([]byte, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxRecordBytes+1))
}

// Append signs r as the chain's next version and writes it to the store.
// The key is immutable: when another promotion wrote the version first,
// Append returns ErrVersionTaken and nothing is replaced.
func (c *Chain) Append(ctx context.Context, b cas.Backend, s *Signer, r *Record) error {
	r.Schema, r.Model, r.Version, r.Prev = RecordSchema, c.Model, c.Next(), c.head()
	s.Sign(r)
	data := r.Encode()
	key := RecordKey(c.Model, r.Version)
	if _, err := b.Stat(ctx, key); err == nil {
		return fmt.Errorf("%s: %w", key, ErrVersionTaken)
	} else if !errors.Is(err, cas.ErrNotFound) {
		return fmt.Errorf("%s on %s: %w", key, b, err)
	}
	err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), sha256.Sum256(data))
	if errors.Is(err, cas.ErrExists) {
		return fmt.Errorf("%s: %w", key, ErrVersionTaken)
	}
	if err != nil {
		return fmt.Errorf("%s on %s: %w", key, b, err)
	}
	c.Records = append(c.Records, r)
	c.digests = append(c.digests, cas.Sum(data))
	return nil
}

// orNone writes a digest, "none" when not set.
func orNone(id cas.ID) string {
	if id.IsZero() {
		return "none"
	}
	return id.String()
}
