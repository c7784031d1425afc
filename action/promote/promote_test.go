package promote

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/google/go-cmp/cmp"
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
	SignRun(testKey, run)
	if err := gitops.SaveRun(repo, run); err != nil {
		t.Fatal(err)
	}
	m := &gitops.Model{
		Schema: 1, Name: "bone", Artifact: run.Artifact, Run: run.ID, Commit: run.Commit, Eval: run.Eval,
		Datasets: run.Datasets, Params: run.Params, Metrics: run.Metrics,
		Gate: gitops.Verdict{Result: "pass", Baseline: repeatID(0xbb)},
	}
	SignModel(testKey, m)
	return &fixture{repo: repo, remote: remote, model: m, run: run}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	f := newFixture(t)
	// The signature survives the canonical file round trip.
	back, err := gitops.ParseModel("m", f.model.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyModel(testKey, back); err != nil {
		t.Fatalf("re-read manifest: %v", err)
	}
	if err := VerifyRun(testKey, f.run); err != nil {
		t.Fatal(err)
	}
	if err := VerifyModel([]byte("another-key-of-16-bytes"), back); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other key: %v", err)
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		edit     func(f *fixture)
		baseline string // "" keeps the fixture's baseline
		want     error
		detail   string
	}{
		{"backed, signed, passed", nil, "", nil, ""},
		{"hand-edited metric", func(f *fixture) { f.model.Metrics = map[string]float64{"dice": 0.99} }, "", ErrBadSignature, ""},
		{"hand-edited gate", func(f *fixture) { f.model.Gate.Result = "pass"; f.model.Gate.Baseline = cas.ID{} }, "", ErrBadSignature, ""},
		{"unsigned", func(f *fixture) { f.model.Provenance.Signature = "" }, "", ErrUnsigned, ""},
		{"forged with a guessed key", func(f *fixture) { SignModel([]byte("guessed-key-0000000"), f.model) }, "", ErrBadSignature, ""},
		{"no run record", func(f *fixture) { f.model.Run = "20250101T000000Z-ffffff"; SignModel(testKey, f.model) }, "", ErrNoRun, ""},
		{"run record re-signed elsewhere", func(f *fixture) {
			f.run.Metrics = map[string]float64{"dice": 0.5}
			SignRun([]byte("other-key-0123456789"), f.run)
			gitops.SaveRun(f.repo, f.run)
		}, "", ErrBadSignature, ""},
		{"manifest does not match the run", func(f *fixture) {
			f.model.Params = map[string]string{"train.epochs": "60"}
			SignModel(testKey, f.model)
		}, "", ErrRunMismatch, "params"},
		{"artifact not on the remote", func(f *fixture) {
			f.model.Artifact = repeatID(0xaa)
			f.run.Artifact = f.model.Artifact
			SignRun(testKey, f.run)
			gitops.SaveRun(f.repo, f.run)
			SignModel(testKey, f.model)
		}, "", ErrNoArtifact, ""},
		{"gate failed", func(f *fixture) { f.model.Gate.Result = "fail"; SignModel(testKey, f.model) }, "", ErrGateFailed, ""},
		{"checked against an old baseline", nil, "sha256:" + strings.Repeat("9", 64), ErrBaseline, "re-run CI"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.edit != nil {
				tc.edit(f)
			}
			base := f.model.Gate.Baseline
			if tc.baseline != "" {
				var err error
				if base, err = cas.ParseID(tc.baseline); err != nil {
					t.Fatal(err)
				}
			}
			if tc.name == "hand-edited gate" {
				base = cas.ID{}
			}
			err := Check(ctx, CheckOptions{File: "models/bone.model.toml", Model: f.model, Key: testKey, Repo: f.repo, Remote: f.remote, Baseline: base})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var re *RefusedError
			if !errors.Is(err, tc.want) || !errors.As(err, &re) {
				t.Fatalf("err = %v, want a refusal wrapping %v", err, tc.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "models/bone.model.toml: refused: ") || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.detail) {
				t.Errorf("message %q: want one line naming the file (and %q)", msg, tc.detail)
			}
			if strings.Contains(msg, string(testKey)) {
				t.Error("message holds the key")
			}
		})
	}
}

func TestKey(t *testing.T) {
	if _, err := Key(""); !errors.Is(err, ErrNoKey) {
		t.Errorf("empty: %v", err)
	}
	if _, err := Key("short"); !errors.Is(err, ErrShortKey) {
		t.Errorf("short: %v", err)
	}
	if k, err := Key(string(testKey)); err != nil || string(k) != string(testKey) {
		t.Errorf("good key: %q %v", k, err)
	}
}

func TestAliases(t *testing.T) {
	ctx := context.Background()
	b, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if a, err := Production(ctx, b, "bone"); err != nil || a != nil {
		t.Fatalf("fresh remote: %v %v", a, err)
	}
	at := time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC)
	var want *Alias
	for v := 1; v <= 11; v++ { // 11 > 9: versions sort as numbers
		want = &Alias{Model: "bone", Version: v, Artifact: repeatID(0xaa), Tag: Tag("bone", v), PromotedAt: at}
		if err := Record(ctx, b, want); err != nil {
			t.Fatal(err)
		}
	}
	Record(ctx, b, &Alias{Model: "bone-other", Version: 40, PromotedAt: at})
	got, err := Production(ctx, b, "bone")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("production (-want +got):\n%s", diff)
	}
	if err := Record(ctx, b, &Alias{Model: "bone", Version: 11}); !errors.Is(err, ErrVersionTaken) {
		t.Errorf("second v11: %v", err)
	}
	if got.Tag != "models/bone/v11" {
		t.Errorf("tag %q", got.Tag)
	}
}

func FuzzVerifyModel(f *testing.F) {
	m := &gitops.Model{Schema: 1, Name: "bone", Artifact: repeatID(0xaa), Run: "r",
		Metrics: map[string]float64{"dice": 0.9}, Gate: gitops.Verdict{Result: "pass"}}
	SignModel(testKey, m)
	f.Add(m.Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := gitops.ParseModel("m", data)
		if err != nil {
			return
		}
		if VerifyModel(testKey, m) == nil {
			// Only a manifest whose canonical form equals a signed one can
			// verify: re-signing must give the same signature.
			sig := m.Provenance.Signature
			SignModel(testKey, m)
			if m.Provenance.Signature != sig {
				t.Fatalf("verified but re-signing differs")
			}
		}
	})
}

// repeatID is the object ID whose 32 bytes are all b.
func repeatID(b byte) cas.ID { return cas.ID(bytes.Repeat([]byte{b}, len(cas.ID{}))) }
