package gitops

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sampleLock() *Lock {
	l := NewLock()
	l.Stages["train"] = &StageLock{
		Key:    "sha256:aa",
		Out:    "sha256:bb",
		Env:    "sha256:cc",
		Deps:   map[string]string{"ingest": "sha256:dd", "data/b 1": "sha256:ee"},
		Params: map[string]string{"train.lr": "0.1", "train.name": `"x\"y"`},
	}
	l.Stages["ingest"] = &StageLock{Key: "sha256:11", Out: "sha256:22", Cases: map[string]*Case{
		"c-2": {Key: "k2", Out: "o2"}, "c-1": {Key: "k1", Out: "o1"},
	}}
	return l
}

func TestLockRoundTrip(t *testing.T) {
	l := sampleLock()
	enc := l.Encode()
	got, err := ParseLock(LockFile, enc)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, enc)
	}
	if !bytes.Equal(got.Encode(), enc) {
		t.Errorf("re-encoding differs:\n%s\nvs\n%s", got.Encode(), enc)
	}
	if diff := cmp.Diff(l.Stages["ingest"], got.Stages["ingest"]); diff != "" {
		t.Errorf("ingest (-want +got):\n%s", diff)
	}
	// Canonical: stages and cases sorted, whatever the map order.
	if i, tr := bytes.Index(enc, []byte("[stage.ingest]")), bytes.Index(enc, []byte("[stage.train]")); i < 0 || tr < i {
		t.Errorf("stages not sorted:\n%s", enc)
	}
	if a, b := bytes.Index(enc, []byte("case.c-1]")), bytes.Index(enc, []byte("case.c-2]")); a < 0 || b < a {
		t.Errorf("cases not sorted:\n%s", enc)
	}
}

func TestParseLockRejects(t *testing.T) {
	for _, doc := range []string{
		"schema = 2\n",
		"schema = 1\n[stage.a]\nkey = \"k\"\nbogus = 1\n",
		"schema = 1\n[stage.a\n",
	} {
		if _, err := ParseLock(LockFile, []byte(doc)); err == nil {
			t.Errorf("ParseLock(%q) = nil error", doc)
		}
	}
}

func FuzzParseLock(f *testing.F) {
	f.Add(sampleLock().Encode())
	f.Add([]byte("schema = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLock(LockFile, data)
		if err != nil {
			return
		}
		for _, s := range l.Stages {
			if s == nil {
				return // an empty table; nothing to round-trip
			}
			for _, c := range s.Cases {
				if c == nil {
					return
				}
			}
		}
		enc := l.Encode()
		again, err := ParseLock(LockFile, enc)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, enc)
		}
		if !bytes.Equal(again.Encode(), enc) {
			t.Fatalf("not canonical after one round trip")
		}
	})
}
