package gitops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/gitrepo"
)

// RunRefPrefix is where run records are indexed in git, so they travel
// with git push and fetch and need no tracking server.
const RunRefPrefix = "refs/medcad/runs/"

// maxRunBytes bounds a run record.
const maxRunBytes = 4 << 20

// ErrRunNotFound means no run record has the asked id.
var ErrRunNotFound = errors.New("no such run")

// Run is the record every training run writes: what went in (commit,
// params, data, environment) and what came out (metrics, artifacts). Its
// JSON is runJSON's (digests as text, a zero one "" or left out).
type Run struct {
	ID        string
	Stage     string
	Started   time.Time
	Finished  time.Time
	Commit    string
	Dirty     bool
	Branch    string
	Key       string // the stage's cache key
	Params    map[string]string
	Datasets  map[string]cas.ID // name → manifest
	Env       cas.ID            // env lock
	Facts     map[string]string // Go, Python, OS, CPU, GPU, driver
	Metrics   map[string]float64
	Outs      cas.ID // the stage's outs
	Eval      cas.ID // the per-case evaluation
	Artifact  cas.ID // the model artifact
	Signature string // legacy: older CI signed run records; read, never written or trusted
}

var runIDRE = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6,64}$`)

// NewRunID returns a sortable id: UTC start time and a digest prefix.
func NewRunID(started time.Time, key string) string {
	h := strings.TrimPrefix(key, "sha256:")
	if len(h) > 8 {
		h = h[:8]
	}
	return started.UTC().Format("20060102T150405Z") + "-" + h
}

// SaveRun stores the record as a git blob and points refs/medcad/runs/<id>
// at it.
func SaveRun(repo *git.Repository, r *Run) error {
	if !runIDRE.MatchString(r.ID) {
		return fmt.Errorf("run id %q: not a valid id", r.ID)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	h, err := gitrepo.WriteBlob(repo, append(data, '\n'))
	if err != nil {
		return fmt.Errorf("store run %s: %w", r.ID, err)
	}
	return repo.Storer.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(RunRefPrefix+r.ID), h))
}

// LoadRun reads one run record; id may be a unique prefix.
func LoadRun(repo *git.Repository, id string) (*Run, error) {
	refs, err := runRefs(repo)
	if err != nil {
		return nil, err
	}
	var match []*plumbing.Reference
	for _, ref := range refs {
		rid := strings.TrimPrefix(ref.Name().String(), RunRefPrefix)
		if rid == id {
			match = []*plumbing.Reference{ref}
			break
		}
		if strings.HasPrefix(rid, id) {
			match = append(match, ref)
		}
	}
	switch len(match) {
	case 0:
		return nil, fmt.Errorf("run %q: %w", id, ErrRunNotFound)
	case 1:
		return readRun(repo, match[0])
	default:
		return nil, fmt.Errorf("run %q is ambiguous: %d runs start with it", id, len(match))
	}
}

// ListRuns returns every run record, oldest first.
func ListRuns(repo *git.Repository) ([]*Run, error) {
	refs, err := runRefs(repo)
	if err != nil {
		return nil, err
	}
	runs := make([]*Run, 0, len(refs))
	for _, ref := range refs {
		r, err := readRun(repo, ref)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].ID < runs[j].ID })
	return runs, nil
}

func runRefs(repo *git.Repository) ([]*plumbing.Reference, error) {
	return gitrepo.Refs(repo, RunRefPrefix)
}

func readRun(repo *git.Repository, ref *plumbing.Reference) (*Run, error) {
	blob, err := repo.BlobObject(ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref.Name(), err)
	}
	data, err := gitrepo.ReadBlob(blob, maxRunBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: run record: %w", ref.Name(), err)
	}
	var r Run
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: bad run record: %w", ref.Name(), err)
	}
	return &r, nil
}

// runRefSpec maps run refs one to one between repositories.
const runRefSpec = "+" + RunRefPrefix + "*:" + RunRefPrefix + "*"

// PushRuns pushes every run ref to the git remote.
func PushRuns(ctx context.Context, repo *git.Repository, r gitrepo.Remote) error {
	return gitrepo.Push(ctx, repo, r, runRefSpec)
}

// PullRuns fetches every run ref from the git remote.
func PullRuns(ctx context.Context, repo *git.Repository, r gitrepo.Remote) error {
	return gitrepo.Fetch(ctx, repo, r, runRefSpec)
}
