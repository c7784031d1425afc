package promote

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/gitrepo"
)

// ReadChain reads the production chain of p's model, verified with the
// public key of p's medcad.toml (or the one derived from secret): from
// the store, or, when the project has no reachable store, from the git
// tags that mirror it (fetched from gitRemote when it exists).
func ReadChain(ctx context.Context, p *gitops.Project, secret, gitRemote string) (*Chain, error) {
	pub, err := Keys(p.Config.Promote.PublicKey, secret)
	if err != nil {
		return nil, err
	}
	model := p.Config.Project.Model
	store, serr := p.Remote(ctx)
	if serr == nil {
		return LoadChain(ctx, store, model, pub)
	}
	repo, err := p.Repo()
	if err != nil {
		return nil, fmt.Errorf("remote store: %w", serr)
	}
	if gitRemote == "" {
		gitRemote = "origin"
	}
	if _, err := repo.Remote(gitRemote); err == nil {
		if err := gitrepo.Fetch(ctx, repo, gitrepo.Remote{Name: gitRemote}, "+refs/tags/models/*:refs/tags/models/*"); err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return nil, err
		}
	}
	return LoadChainFromGit(repo, model, pub)
}

// GetResult is what Get wrote.
type GetResult struct {
	Record *Record `json:"record"`
	Dir    string  `json:"dir"`
	Files  int     `json:"files"`
	Bytes  int64   `json:"bytes"`
}

// Get fetches the artifact of record r from p's store into dir and checks
// it against the record: every object is verified against its digest on
// the way in, and the artifact's manifest is the one the signed record
// names. dir must be empty or absent.
func Get(ctx context.Context, p *gitops.Project, r *Record, dir string) (*GetResult, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s: not empty; model get writes into an empty or new folder", dir)
	}
	store, err := p.Remote(ctx)
	if err != nil {
		return nil, fmt.Errorf("remote store: %w", err)
	}
	if _, err := cas.Pull(ctx, p.Store, store, []cas.ID{r.Artifact}, cas.TransferOptions{}); err != nil {
		return nil, fmt.Errorf("%s v%d: artifact %s: %w", r.Model, r.Version, r.Artifact, err)
	}
	m, err := p.Store.ReadManifest(r.Artifact)
	if err != nil {
		return nil, err
	}
	if cas.Sum(m.Encode()) != r.Artifact {
		return nil, fmt.Errorf("%s v%d: artifact %s: the manifest does not hash to the signed digest", r.Model, r.Version, r.Artifact)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := p.Store.Checkout(ctx, trimCommonDir(m), abs, cas.CheckoutOptions{}); err != nil {
		return nil, err
	}
	res := &GetResult{Record: r, Dir: dir, Files: len(m.Entries)}
	for _, e := range m.Entries {
		res.Bytes += e.Size
	}
	return res, nil
}

// trimCommonDir drops the folders all of m's paths share (an artifact is
// the train stage's outs, e.g. build/model/…), so the files land at the
// top of the folder they are fetched to.
func trimCommonDir(m *cas.Manifest) *cas.Manifest {
	if len(m.Entries) == 0 {
		return m
	}
	prefix := path.Dir(m.Entries[0].Path)
	for _, e := range m.Entries[1:] {
		for prefix != "." && !strings.HasPrefix(e.Path, prefix+"/") {
			prefix = path.Dir(prefix)
		}
	}
	if prefix == "." {
		return m
	}
	out := &cas.Manifest{Entries: make([]cas.Entry, len(m.Entries))}
	for i, e := range m.Entries {
		e.Path = strings.TrimPrefix(e.Path, prefix+"/")
		out.Entries[i] = e
	}
	return out
}

// ManifestOf reads the model manifest record r promoted, from the commit
// that holds it, and checks it against the record's digest.
func ManifestOf(repo *git.Repository, prefix string, r *Record) (*gitops.Model, error) {
	c, err := repo.CommitObject(plumbing.NewHash(r.ManifestCommit))
	if err != nil {
		return nil, fmt.Errorf("%s v%d: manifest commit %.12s is not in this clone (git fetch): %w", r.Model, r.Version, r.ManifestCommit, err)
	}
	file := gitops.ModelPath(r.Model)
	if prefix != "" {
		file = prefix + "/" + file
	}
	data, err := gitrepo.ReadFile(c, file, 1<<20)
	if err != nil {
		return nil, err
	}
	if cas.Sum(data) != r.Manifest {
		return nil, &RecordError{Where: RecordKey(r.Model, r.Version), Err: ErrBrokenChain, Detail: fmt.Sprintf("%s@%.12s does not hash to its manifest digest", file, r.ManifestCommit)}
	}
	return gitops.ParseModel(file+"@"+r.ManifestCommit[:12], data)
}

// NewSecret returns a fresh random signing secret.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
