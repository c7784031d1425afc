package promote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/cas/local"
)

var testKey = []byte("0123456789abcdef-ci-secret")

// fixture is a project whose run and artifact are real: a run record in
// git and an artifact pushed (complete) to a local remote.
type fixture struct {
	repo   *git.Repository
	remote cas.Backend
	model  *gitops.Model
	run    *gitops.Run
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	proj := t.TempDir()
	s, err := cas.Open(proj)
	if err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(t.TempDir(), "model")
	os.MkdirAll(art, 0o755)
	os.WriteFile(filepath.Join(art, "model.toml"), []byte("weights = [1, 2, 3]\n"), 0o644)
	res, err := s.AddDir(ctx, art, cas.TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	remote, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cas.Push(ctx, s, remote, []cas.ID{res.ID}, cas.TransferOptions{Jobs: 2}); err != nil {
		t.Fatal(err)
	}
	repo, err := git.Init(memory.NewStorage(), nil)
	if err != nil {
		t.Fatal(err)
	}
	run := &gitops.Run{
		ID: "20261126T150000Z-abcdef12", Stage: "train", Commit: strings.Repeat("c", 40),
		Params: map[string]string{"train.epochs": "6"}, Datasets: map[string]cas.ID{"batch1": repeatID(0x11)},
		Metrics: map[string]float64{"dice": 0.91}, Artifact: res.ID, Eval: repeatID(0xee),
		Started: time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC),
	}
	if err := gitops.SaveRun(repo, run); err != nil {
		t.Fatal(err)
	}
	m := &gitops.Model{
		Schema: 1, Name: "bone", Artifact: run.Artifact, Run: run.ID, Commit: run.Commit, Eval: run.Eval,
		Datasets: run.Datasets, Params: run.Params, Metrics: run.Metrics,
		Gate: gitops.Verdict{Result: "pass", Baseline: repeatID(0xbb)},
	}
	return &fixture{repo: repo, remote: remote, model: m, run: run}
}

func TestRunMismatch(t *testing.T) {
	f := newFixture(t)
	if d := runMismatch(f.model, f.run); d != "" {
		t.Fatalf("fixture mismatch %q", d)
	}
	f.model.Params = map[string]string{"train.epochs": "60"}
	if d := runMismatch(f.model, f.run); d != "params" {
		t.Errorf("edited params: %q", d)
	}
}

func TestKeys(t *testing.T) {
	if _, err := NewSigner(""); !errors.Is(err, ErrNoKey) {
		t.Errorf("empty: %v", err)
	}
	if _, err := NewSigner("short"); !errors.Is(err, ErrShortKey) {
		t.Errorf("short: %v", err)
	}
	s, err := NewSigner(string(testKey))
	if err != nil {
		t.Fatal(err)
	}
	pub := s.Public().String()
	if back, err := ParsePublicKey(pub); err != nil || back.String() != pub {
		t.Fatalf("round trip %q: %v", pub, err)
	}
	if _, err := ParsePublicKey("ed25519:AAAA"); err == nil {
		t.Error("a short key parsed")
	}
	if k, err := Keys(pub, ""); err != nil || k.String() != pub {
		t.Errorf("configured only: %v %v", k, err)
	}
	if k, err := Keys("", string(testKey)); err != nil || k.String() != pub {
		t.Errorf("secret only: %v %v", k, err)
	}
	if _, err := Keys(pub, "another-secret-0123456789"); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("mismatch: %v", err)
	}
	if _, err := Keys("", ""); !errors.Is(err, ErrNoPublicKey) {
		t.Errorf("none: %v", err)
	}
}

// chainFixture is a store holding bone v1..v3, signed with testKey.
func chainFixture(t *testing.T) (cas.Backend, *Signer) {
	t.Helper()
	ctx := context.Background()
	b, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(string(testKey))
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadChain(ctx, b, "bone", s.Public())
	if err != nil || c.Production() != nil {
		t.Fatalf("fresh store: %v %v", c, err)
	}
	for v := 1; v <= 3; v++ {
		r := &Record{Artifact: repeatID(byte(v)), Manifest: repeatID(0xf0 + byte(v)), ManifestCommit: strings.Repeat("c", 40),
			Commit: strings.Repeat("d", 40), PR: v, Gate: GateRecord{Result: "pass", Baseline: v - 1},
			PromotedAt: time.Date(2026, 12, 1, v, 0, 0, 0, time.UTC)}
		if err := c.Append(ctx, b, s, r); err != nil {
			t.Fatal(err)
		}
	}
	return b, s
}

func TestChain(t *testing.T) {
	ctx := context.Background()
	b, s := chainFixture(t)
	c, err := LoadChain(ctx, b, "bone", s.Public())
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Production(); p == nil || p.Version != 3 || p.Artifact != repeatID(3) || p.Prev.IsZero() {
		t.Fatalf("production %+v", p)
	}
	for ref, want := range map[string]int{"production": 3, "v1": 1, "2": 2, "models/bone/v3": 3} {
		if r, err := c.Resolve(ref); err != nil || r.Version != want {
			t.Errorf("Resolve(%q) = %v, %v; want v%d", ref, r, err, want)
		}
	}
	for _, ref := range []string{"v4", "v0", "latest", "models/other/v1"} {
		if _, err := c.Resolve(ref); err == nil {
			t.Errorf("Resolve(%q) succeeded", ref)
		}
	}
	// A second writer of v4 loses; nothing is replaced.
	if err := c.Append(ctx, b, s, &Record{Artifact: repeatID(4)}); err != nil {
		t.Fatal(err)
	}
	stale := &Chain{Model: "bone", Records: c.Records[:3], digests: c.digests[:3]}
	if err := stale.Append(ctx, b, s, &Record{Artifact: repeatID(5)}); !errors.Is(err, ErrVersionTaken) {
		t.Errorf("racing v4: %v", err)
	}
}

// TestChainRefusesForgery: every way of writing production without the
// signing key, or of rewriting the history, is an error naming the
// record.
func TestChainRefusesForgery(t *testing.T) {
	ctx := context.Background()
	put := func(t *testing.T, b cas.Backend, key string, data []byte) {
		t.Helper()
		if err := b.Delete(ctx, key); err != nil && !errors.Is(err, cas.ErrNotFound) {
			t.Fatal(err)
		}
		if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), sha256.Sum256(data)); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := NewSigner("someone-elses-secret-000")
	for _, tc := range []struct {
		name   string
		forge  func(t *testing.T, b cas.Backend, s *Signer)
		where  string
		want   error
		detail string
	}{
		{"unsigned v4 pointing at v1's artifact (a silent downgrade)", func(t *testing.T, b cas.Backend, s *Signer) {
			r := &Record{Schema: RecordSchema, Model: "bone", Version: 4, Artifact: repeatID(1)}
			put(t, b, RecordKey("bone", 4), r.Encode())
		}, "aliases/bone/v4.json", ErrUnsigned, ""},
		{"v4 signed with another key", func(t *testing.T, b cas.Backend, s *Signer) {
			r := &Record{Schema: RecordSchema, Model: "bone", Version: 4, Artifact: repeatID(1)}
			other.Sign(r)
			put(t, b, RecordKey("bone", 4), r.Encode())
		}, "aliases/bone/v4.json", ErrBadSignature, ""},
		{"v2 edited after signing", func(t *testing.T, b cas.Backend, s *Signer) {
			data, _ := readAll(ctx, b, RecordKey("bone", 2))
			put(t, b, RecordKey("bone", 2), bytes.Replace(data, []byte(`"pull_request": 2`), []byte(`"pull_request": 7`), 1))
		}, "aliases/bone/v2.json", ErrBadSignature, ""},
		{"v2 replaced by a validly signed record (history rewritten)", func(t *testing.T, b cas.Backend, s *Signer) {
			data, _ := readAll(ctx, b, RecordKey("bone", 2))
			r, _ := parseRecord("v2", data)
			r.Artifact = repeatID(9)
			s.Sign(r)
			put(t, b, RecordKey("bone", 2), r.Encode())
		}, "aliases/bone/v3.json", ErrBrokenChain, "prev"},
		{"v2 deleted", func(t *testing.T, b cas.Backend, s *Signer) { b.Delete(ctx, RecordKey("bone", 2)) }, "aliases/bone/v3.json", ErrBrokenChain, "v2 is missing"},
		{"v3 copied over from another model", func(t *testing.T, b cas.Backend, s *Signer) {
			data, _ := readAll(ctx, b, RecordKey("bone", 3))
			r, _ := parseRecord("v3", data)
			r.Model = "skull"
			s.Sign(r)
			put(t, b, RecordKey("bone", 3), r.Encode())
		}, "aliases/bone/v3.json", ErrBrokenChain, "names skull v3"},
		{"not JSON", func(t *testing.T, b cas.Backend, s *Signer) { put(t, b, RecordKey("bone", 3), []byte("{")) }, "aliases/bone/v3.json", nil, "not a production record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, s := chainFixture(t)
			tc.forge(t, b, s)
			_, err := LoadChain(ctx, b, "bone", s.Public())
			var re *RecordError
			if err == nil || !errors.As(err, &re) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want a RecordError wrapping %v", err, tc.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.where+" on ") || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.detail) {
				t.Errorf("message %q: want one line naming %s (and %q)", msg, tc.where, tc.detail)
			}
		})
	}
}

func FuzzParseRecord(f *testing.F) {
	s, _ := NewSigner(string(testKey))
	r := &Record{Schema: RecordSchema, Model: "bone", Version: 1, Artifact: repeatID(1), Metrics: map[string]float64{"dice": 0.9}}
	s.Sign(r)
	f.Add(r.Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseRecord("v1", data)
		if err != nil {
			return
		}
		if s.Public().Verify(r) == nil {
			// Only a record whose canonical form equals a signed one
			// verifies: re-signing gives the same signature (Ed25519 is
			// deterministic).
			sig := r.Signature
			s.Sign(r)
			if r.Signature != sig {
				t.Fatal("verified, but re-signing differs")
			}
		}
	})
}

// repeatID is the object ID whose 32 bytes are all b.
func repeatID(b byte) cas.ID { return cas.ID(bytes.Repeat([]byte{b}, len(cas.ID{}))) }
