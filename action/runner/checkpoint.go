package runner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/medcad/medcad/gitops/cas"
)

// Checkpoints is where the agent keeps the job's checkpoint folder
// (MEDCAD_CHECKPOINT_DIR, one subfolder per stage) beyond the instance:
// on a spot interruption or rebalance notice it stores the folder in the
// project's store, content-addressed (its files as objects, a manifest
// listing them), under a record
//
//	checkpoints/<owner>_<name>/run-<id>/attempt-<n>.json
//
// written once; a later attempt of the same workflow run restores the
// newest earlier record's folder before its runner starts, when Resume.
type Checkpoints struct {
	Remote cas.Backend // the project's store remote
	Cache  string      // a folder for the local object cache
	Run    Run         // whose checkpoints: repository, run id, this attempt
	Resume bool        // restore an earlier attempt's checkpoint first
	// Grace is how long the stages get after SIGTERM to write their
	// checkpoint and exit before the folder is stored (0: 60 s; a spot
	// instance is reclaimed two minutes after the notice).
	Grace time.Duration
}

func (c *Checkpoints) grace() time.Duration {
	if c.Grace <= 0 {
		return 60 * time.Second
	}
	return c.Grace
}

// Checkpoint is the record of one stored checkpoint folder.
type Checkpoint struct {
	Schema     int       `json:"schema"`
	Repository string    `json:"repository"`
	Run        int64     `json:"run"`
	Attempt    int       `json:"attempt"`
	Instance   string    `json:"instance"`
	Notice     string    `json:"notice"` // the interruption notice that made the agent store it
	SavedAt    time.Time `json:"saved_at"`
	Manifest   cas.ID    `json:"manifest"`
	Files      int       `json:"files"`
	Bytes      int64     `json:"bytes"`
	Stages     []string  `json:"stages"` // the folder's top-level subfolders
}

// String is the checkpoint as a tag and the cost line show it.
func (c *Checkpoint) String() string {
	return fmt.Sprintf("attempt %d %s", c.Attempt, c.Manifest)
}

const maxCheckpointRecord = 16 << 10

// CheckpointPrefix is the store folder of run r's checkpoint records.
func CheckpointPrefix(r Run) string {
	return fmt.Sprintf("checkpoints/%s/run-%d/", strings.ReplaceAll(r.Repository, "/", "_"), r.ID)
}

func checkpointKey(r Run) string {
	return fmt.Sprintf("%sattempt-%d.json", CheckpointPrefix(r), r.Attempt)
}

// ErrNoCheckpoint means a folder held no file to store.
var ErrNoCheckpoint = errors.New("no checkpoint written")

// Save stores the folder dir and the record of this attempt's checkpoint.
// An empty folder stores nothing (ErrNoCheckpoint). Objects go to the
// remote before the record, so a record always names a whole folder.
func (c *Checkpoints) Save(ctx context.Context, dir, instance, notice string, now time.Time) (*Checkpoint, error) {
	store, err := cas.Open(c.Cache)
	if err != nil {
		return nil, err
	}
	added, err := store.AddDir(ctx, dir, cas.TreeOptions{})
	if err != nil {
		return nil, fmt.Errorf("checkpoint folder: %w", err)
	}
	if len(added.Manifest.Entries) == 0 {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoCheckpoint)
	}
	if _, err := cas.Push(ctx, store, c.Remote, []cas.ID{added.ID}, cas.TransferOptions{}); err != nil {
		return nil, fmt.Errorf("store the checkpoint in %s: %w", c.Remote, err)
	}
	rec := &Checkpoint{Schema: 1, Repository: c.Run.Repository, Run: c.Run.ID, Attempt: c.Run.Attempt, Instance: instance,
		Notice: notice, SavedAt: now.UTC().Truncate(time.Second), Manifest: added.ID,
		Files: len(added.Manifest.Entries), Bytes: added.Manifest.Bytes()}
	for _, e := range added.Manifest.Entries {
		if top, _, ok := strings.Cut(e.Path, "/"); ok && !slices.Contains(rec.Stages, top) {
			rec.Stages = append(rec.Stages, top)
		}
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	key := checkpointKey(c.Run)
	if err := c.Remote.Put(ctx, key, bytes.NewReader(data), int64(len(data)), sha256.Sum256(data)); err != nil {
		return nil, fmt.Errorf("record the checkpoint as %s in %s: %w", key, c.Remote, err)
	}
	return rec, nil
}

// Restore fills dir with the newest checkpoint an earlier attempt of the
// run stored; nil when there is none. A record that does not parse, or
// names another run, is an error naming it.
func (c *Checkpoints) Restore(ctx context.Context, dir string) (*Checkpoint, error) {
	prefix := CheckpointPrefix(c.Run)
	var best string
	bestAttempt := 0
	err := c.Remote.List(ctx, prefix, func(key string, size int64) error {
		var n int
		if _, err := fmt.Sscanf(path.Base(key), "attempt-%d.json", &n); err != nil || path.Base(key) != fmt.Sprintf("attempt-%d.json", n) {
			return nil // not a record
		}
		if size > maxCheckpointRecord {
			return fmt.Errorf("checkpoint record %s: %d bytes, more than %d", key, size, maxCheckpointRecord)
		}
		if n < c.Run.Attempt && n > bestAttempt {
			best, bestAttempt = key, n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoints in %s: %w", c.Remote, err)
	}
	if best == "" {
		return nil, nil
	}
	rec, err := c.read(ctx, best)
	if err != nil {
		return nil, err
	}
	store, err := cas.Open(c.Cache)
	if err != nil {
		return nil, err
	}
	if _, err := cas.Pull(ctx, store, c.Remote, []cas.ID{rec.Manifest}, cas.TransferOptions{}); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", best, err)
	}
	m, err := store.ReadManifest(rec.Manifest)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", best, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := store.Checkout(ctx, m, dir, cas.CheckoutOptions{Link: cas.LinkCopy, Force: true}); err != nil {
		return nil, fmt.Errorf("restore checkpoint %s into %s: %w", best, dir, err)
	}
	return rec, nil
}

// read reads and checks the record at key.
func (c *Checkpoints) read(ctx context.Context, key string) (*Checkpoint, error) {
	rc, err := c.Remote.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("checkpoint record %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxCheckpointRecord+1))
	if err != nil {
		return nil, fmt.Errorf("checkpoint record %s: %w", key, err)
	}
	return parseCheckpoint(key, data, c.Run)
}

// parseCheckpoint decodes the record at key; it must be of run r.
func parseCheckpoint(key string, data []byte, r Run) (*Checkpoint, error) {
	if len(data) > maxCheckpointRecord {
		return nil, fmt.Errorf("checkpoint record %s: more than %d bytes", key, maxCheckpointRecord)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var rec Checkpoint
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("checkpoint record %s: %w", key, err)
	}
	switch {
	case rec.Schema != 1:
		return nil, fmt.Errorf("checkpoint record %s: schema %d, want 1", key, rec.Schema)
	case rec.Repository != r.Repository || rec.Run != r.ID:
		return nil, fmt.Errorf("checkpoint record %s: of %s run %d, not of this run", key, rec.Repository, rec.Run)
	case rec.Manifest.IsZero():
		return nil, fmt.Errorf("checkpoint record %s: no manifest", key)
	}
	return &rec, nil
}
