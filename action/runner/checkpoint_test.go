package runner

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseCheckpoint: a record either is refused or round-trips through
// its JSON to the same record; input past the bound is refused unread.
func FuzzParseCheckpoint(f *testing.F) {
	run := Run{Repository: "lab/ct", ID: 4242, Attempt: 2}
	f.Add([]byte(`{"schema":1,"repository":"lab/ct","run":4242,"attempt":1,"instance":"i-0","notice":"spot {}","saved_at":"2026-12-02T12:00:00Z","manifest":"sha256:` +
		strings.Repeat("0f", 32) + `","files":2,"bytes":9,"stages":["train"]}`))
	f.Add([]byte(`{"schema":1,"repository":"other/x","run":4242,"manifest":"sha256:` + strings.Repeat("0f", 32) + `"}`))
	f.Add([]byte(`{"schema":2}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := parseCheckpoint("k", data, run)
		if err != nil {
			return
		}
		if len(data) > maxCheckpointRecord {
			t.Fatalf("accepted %d bytes", len(data))
		}
		again, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		rec2, err := parseCheckpoint("k", again, run)
		if err != nil {
			t.Fatalf("re-encoded record refused: %v\n%s", err, again)
		}
		if d := cmp.Diff(rec, rec2); d != "" {
			t.Errorf("round trip (-first +second):\n%s", d)
		}
	})
}
