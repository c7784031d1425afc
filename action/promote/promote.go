// Package promote decides whether a merged model manifest may become the
// production model, and records the promotion.
//
// A manifest on the default branch is only a text file anyone with push
// rights could edit, so promotion trusts it only when CI vouches for it:
// CI signs the canonical encoding of the manifest and of its run record
// with HMAC-SHA256 under a key only CI holds (the MEDCAD_SIGNING_KEY
// secret). Check then verifies both signatures, that the run record
// matches the manifest, that the artifact is complete on the remote store
// and that the gates passed against the model that is production now.
// Promotions are recorded on the remote as immutable, append-only alias
// objects aliases/<model>/v<N>.json; the highest N is production.
//
// Written by hand: the signature scheme and the alias layout are medcad's
// own contract; crypto/hmac does the cryptography.
package promote

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
)

// KeyEnv is the environment variable that holds the signing key.
const KeyEnv = "MEDCAD_SIGNING_KEY"

// sigPrefix names the signature scheme in signatures.
const sigPrefix = "hmac-sha256:"

// minKeyBytes is the shortest signing key accepted.
const minKeyBytes = 16

// Sentinel errors: why a manifest is refused.
var (
	ErrNoKey        = errors.New(KeyEnv + " is not set (add the signing key to the CI secrets)")
	ErrShortKey     = fmt.Errorf("%s is shorter than %d bytes", KeyEnv, minKeyBytes)
	ErrUnsigned     = errors.New("not signed by CI")
	ErrBadSignature = errors.New("signature does not match: the file was edited after CI signed it, or signed with another key")
	ErrNoRun        = errors.New("no run record backs it")
	ErrRunMismatch  = errors.New("does not match its run record")
	ErrNoArtifact   = errors.New("artifact is not complete on the remote store")
	ErrGateFailed   = errors.New("gates did not pass")
	ErrBaseline     = errors.New("gates were checked against another baseline than the production model")
)

// Key checks a signing key taken from the environment.
func Key(s string) ([]byte, error) {
	if s == "" {
		return nil, ErrNoKey
	}
	if len(s) < minKeyBytes {
		return nil, ErrShortKey
	}
	return []byte(s), nil
}

func mac(key, payload []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write(payload)
	return sigPrefix + hex.EncodeToString(h.Sum(nil))
}

func verify(key, payload []byte, sig string) error {
	if sig == "" {
		return ErrUnsigned
	}
	want := mac(key, payload)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return ErrBadSignature
	}
	return nil
}

// modelPayload is the canonical manifest without its signature.
func modelPayload(m *gitops.Model) []byte {
	c := *m
	c.Provenance.Signature = ""
	return c.Encode()
}

// runPayload is the canonical run record without its signature
// (encoding/json sorts map keys, so the encoding is stable).
func runPayload(r *gitops.Run) []byte {
	c := *r
	c.Signature = ""
	b, err := json.Marshal(&c)
	if err != nil {
		panic(err) // strings, numbers, times and string maps only
	}
	return b
}

// SignModel sets the manifest's signature.
func SignModel(key []byte, m *gitops.Model) { m.Provenance.Signature = mac(key, modelPayload(m)) }

// SignRun sets the run record's signature.
func SignRun(key []byte, r *gitops.Run) { r.Signature = mac(key, runPayload(r)) }

// VerifyModel checks the manifest's signature.
func VerifyModel(key []byte, m *gitops.Model) error {
	return verify(key, modelPayload(m), m.Provenance.Signature)
}

// VerifyRun checks the run record's signature.
func VerifyRun(key []byte, r *gitops.Run) error { return verify(key, runPayload(r), r.Signature) }

// RefusedError says why a manifest may not be promoted, naming the file.
type RefusedError struct {
	File   string
	Detail string // "" or what exactly differed
	Err    error  // one of the sentinel errors
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("%s: refused: %v", e.File, e.Err)
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

func (e *RefusedError) Unwrap() error { return e.Err }

// CheckOptions is what Check verifies a manifest against.
type CheckOptions struct {
	File   string          // the manifest's path, for messages
	Model  *gitops.Model   // the merged manifest
	Key    []byte          // the signing key
	Repo   *git.Repository // holds refs/medcad/runs (fetched)
	Remote cas.Backend     // the shared store
	// Baseline is the artifact of the production model before this
	// promotion (zero when there is none): the gates must have been checked
	// against it.
	Baseline cas.ID
}

// Check verifies that the manifest may be promoted. Every refusal is a
// *RefusedError wrapping a sentinel error.
func Check(ctx context.Context, o CheckOptions) error {
	refuse := func(err error, detail string) error { return &RefusedError{File: o.File, Err: err, Detail: detail} }
	m := o.Model
	if err := VerifyModel(o.Key, m); err != nil {
		return refuse(err, "")
	}
	run, err := gitops.LoadRun(o.Repo, m.Run)
	if errors.Is(err, gitops.ErrRunNotFound) {
		return refuse(ErrNoRun, "run "+m.Run+" is not under "+gitops.RunRefPrefix)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", o.File, err)
	}
	if err := VerifyRun(o.Key, run); err != nil {
		return refuse(fmt.Errorf("run record %s: %w", run.ID, err), "")
	}
	if d := runMismatch(m, run); d != "" {
		return refuse(ErrRunMismatch, d)
	}
	if m.Artifact.IsZero() {
		return refuse(ErrNoArtifact, `artifact "" is not a digest`)
	}
	ok, err := cas.IsComplete(ctx, o.Remote, m.Artifact)
	if err != nil {
		return fmt.Errorf("%s: artifact on %s: %w", o.File, o.Remote, err)
	}
	if !ok {
		return refuse(ErrNoArtifact, m.Artifact.String()+" on "+o.Remote.String())
	}
	if m.Gate.Result != "pass" {
		return refuse(ErrGateFailed, "gate result "+strconv.Quote(m.Gate.Result))
	}
	if m.Gate.Baseline != o.Baseline {
		return refuse(ErrBaseline, fmt.Sprintf("compared with %s, production is %s; re-run CI on the pull request", orNone(m.Gate.Baseline), orNone(o.Baseline)))
	}
	return nil
}

// orNone writes a digest, "none" when not set.
func orNone(id cas.ID) string {
	if id.IsZero() {
		return "none"
	}
	return id.String()
}

// runMismatch names the first field where manifest and run record differ.
func runMismatch(m *gitops.Model, r *gitops.Run) string {
	switch {
	case r.Artifact != m.Artifact:
		return "artifact"
	case r.Eval != m.Eval:
		return "eval"
	case r.Commit != m.Commit:
		return "code_commit"
	case r.Env != m.EnvLock:
		return "env_lock"
	case !maps.Equal(r.Datasets, m.Datasets):
		return "datasets"
	case !maps.Equal(r.Params, m.Params):
		return "params"
	case !maps.Equal(r.Metrics, m.Metrics):
		return "metrics"
	}
	return ""
}

// Alias records one promotion: version N of a model is this artifact.
type Alias struct {
	Model      string    `json:"model"`
	Version    int       `json:"version"`
	Artifact   cas.ID    `json:"artifact"`
	Manifest   cas.ID    `json:"manifest"` // the promoted manifest file's digest
	Run        string    `json:"run"`
	Commit     string    `json:"commit"` // the merge commit
	Tag        string    `json:"tag"`
	PR         int       `json:"pull_request,omitempty"`
	PromotedAt time.Time `json:"promoted_at"`
}

var aliasKeyRE = regexp.MustCompile(`^aliases/([A-Za-z0-9._-]+)/v([1-9][0-9]{0,8})\.json$`)

// AliasKey is the remote key of version v of model.
func AliasKey(model string, v int) string { return fmt.Sprintf("aliases/%s/v%d.json", model, v) }

// Tag is the git tag of version v of model.
func Tag(model string, v int) string { return fmt.Sprintf("models/%s/v%d", model, v) }

const maxAliasBytes = 64 << 10

// Production returns the newest alias of model on the remote, or nil when
// the model was never promoted.
func Production(ctx context.Context, b cas.Backend, model string) (*Alias, error) {
	var versions []int
	err := b.List(ctx, "aliases/"+model+"/", func(key string, _ int64) error {
		if m := aliasKeyRE.FindStringSubmatch(key); m != nil && m[1] == model {
			v, _ := strconv.Atoi(m[2])
			versions = append(versions, v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list aliases of %s on %s: %w", model, b, err)
	}
	if len(versions) == 0 {
		return nil, nil
	}
	sort.Ints(versions)
	key := AliasKey(model, versions[len(versions)-1])
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", key, b, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxAliasBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", key, b, err)
	}
	var a Alias
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil || len(data) > maxAliasBytes {
		return nil, fmt.Errorf("%s on %s: not a valid alias record", key, b)
	}
	if a.Model != model || a.Version != versions[len(versions)-1] {
		return nil, fmt.Errorf("%s on %s: names %s v%d", key, b, a.Model, a.Version)
	}
	return &a, nil
}

// ErrVersionTaken means another promotion wrote the same version first.
var ErrVersionTaken = errors.New("version already recorded by another promotion")

// Record writes the alias of a promotion; it never replaces an existing
// version (the key is immutable), so two racing promotions cannot both
// become version N.
func Record(ctx context.Context, b cas.Backend, a *Alias) error {
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	key := AliasKey(a.Model, a.Version)
	if _, err := b.Stat(ctx, key); err == nil {
		return fmt.Errorf("%s: %w", key, ErrVersionTaken)
	} else if !errors.Is(err, cas.ErrNotFound) {
		return fmt.Errorf("%s on %s: %w", key, b, err)
	}
	err = b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), sha256.Sum256(data))
	if errors.Is(err, cas.ErrExists) {
		return fmt.Errorf("%s: %w", key, ErrVersionTaken)
	}
	if err != nil {
		return fmt.Errorf("%s on %s: %w", key, b, err)
	}
	return nil
}

// Lineage is the Markdown list that says where a promoted model came from.
func Lineage(m *gitops.Model, a *Alias) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- model `%s` v%d, tag `%s`\n", m.Name, a.Version, a.Tag)
	fmt.Fprintf(&b, "- artifact `%s`\n", m.Artifact)
	fmt.Fprintf(&b, "- run `%s`, code commit `%.12s`\n", m.Run, m.Commit)
	if !m.EnvLock.IsZero() {
		fmt.Fprintf(&b, "- environment lock `%s`\n", m.EnvLock)
	}
	names := make([]string, 0, len(m.Datasets))
	for n := range m.Datasets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "- dataset `%s` `%s`\n", n, m.Datasets[n])
	}
	fmt.Fprintf(&b, "- gate %s against baseline `%s`\n", m.Gate.Result, orNone(m.Gate.Baseline))
	if m.Provenance.CIRunURL != "" {
		fmt.Fprintf(&b, "- CI run %s\n", m.Provenance.CIRunURL)
	}
	return b.String()
}
