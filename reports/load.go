package reports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/gitrepo"
	"github.com/medcad/medcad/stages/metrics"
)

// WorkTree is the Ref of a side read from the working tree.
const WorkTree = "working tree"

// ErrNotCached means an object a report needs is neither in the local
// cache nor fetchable (no remote configured, or not on the remote).
var ErrNotCached = errors.New("not in the local cache")

// Loader reads the sides of a comparison from a project: model manifests,
// their per-case evaluations (from the store), dataset pointers and
// environment locks, at a git revision or in the working tree.
type Loader struct {
	Dir    string          // the project folder
	Repo   *git.Repository // nil: no git, only the working tree and files
	Store  *cas.Store
	Remote cas.Backend // nil: objects missing from the cache are ErrNotCached
	Config gitops.Config
}

// Rev reads the model of the project's configured name at a git revision.
// A revision without a manifest returns an error wrapping gitops.ErrNoModel.
func (l *Loader) Rev(ctx context.Context, rev string) (*Side, error) {
	if l.Repo == nil {
		return nil, fmt.Errorf("revision %q: %s is not in a git repository", rev, l.Dir)
	}
	c, err := gitrepo.Resolve(l.Repo, rev)
	if err != nil {
		return nil, err
	}
	ref := rev + "@" + c.Hash.String()[:12]
	if len(rev) >= 7 && strings.HasPrefix(c.Hash.String(), rev) {
		ref = c.Hash.String()[:12]
	}
	prefix, err := l.prefix()
	if err != nil {
		return nil, err
	}
	file := path.Join(prefix, gitops.ModelPath(l.Config.Project.Model))
	data, err := gitrepo.ReadFile(c, file, 1<<20)
	if errors.Is(err, gitrepo.ErrNoFile) {
		return nil, fmt.Errorf("%s at %s: %w", gitops.ModelPath(l.Config.Project.Model), ref, gitops.ErrNoModel)
	}
	if err != nil {
		return nil, err
	}
	m, err := gitops.ParseModel(gitops.ModelPath(l.Config.Project.Model)+"@"+ref, data)
	if err != nil {
		return nil, err
	}
	s := &Side{Ref: ref, Model: m, CommitSubject: l.subject(m.Commit)}
	if s.Eval, err = l.eval(ctx, ref, m.Eval); err != nil {
		return nil, err
	}
	if prefix == "" {
		s.Datasets, _ = gitops.DatasetsAt(c) // details only: a bad pointer elsewhere must not stop the report
	}
	if data, err := gitrepo.ReadFile(c, path.Join(prefix, gitops.LockFile), 64<<20); err == nil {
		s.Lock = lockOf(gitops.LockFile+"@"+ref, data)
	}
	for _, lock := range l.Config.Env.Lock {
		if filepath.Base(lock) != "uv.lock" {
			continue
		}
		data, err := gitrepo.ReadFile(c, path.Join(prefix, filepath.ToSlash(lock)), 64<<20)
		if err != nil {
			continue
		}
		if e, err := gitops.ParseEnvLock(lock, data); err == nil {
			s.Env = e
		}
	}
	return s, nil
}

// WorkTree reads the model in the working tree.
func (l *Loader) WorkTree(ctx context.Context) (*Side, error) {
	m, err := gitops.ReadModel(l.Dir, l.Config.Project.Model)
	if err != nil {
		return nil, err
	}
	s := &Side{Ref: WorkTree, Model: m, CommitSubject: l.subject(m.Commit)}
	if s.Eval, err = l.eval(ctx, WorkTree, m.Eval); err != nil {
		return nil, err
	}
	s.Datasets, _ = gitops.ListDatasets(l.Dir)
	if lock, err := gitops.ReadLock(l.Dir); err == nil {
		s.Lock = lock
	}
	for _, lock := range l.Config.Env.Lock {
		if filepath.Base(lock) == "uv.lock" {
			if e, err := gitops.ReadEnvLock(l.Dir, lock); err == nil {
				s.Env = e
			}
		}
	}
	return s, nil
}

// File reads a model manifest file (for example one CI produced); its
// dataset pointers and env lock are not known.
func (l *Loader) File(ctx context.Context, file string) (*Side, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	m, err := gitops.ParseModel(file, data)
	if err != nil {
		return nil, err
	}
	s := &Side{Ref: file, Model: m, CommitSubject: l.subject(m.Commit)}
	if s.Eval, err = l.eval(ctx, file, m.Eval); err != nil {
		return nil, err
	}
	return s, nil
}

// prefix is the project folder relative to the repository root, "" when
// the project is the root.
func (l *Loader) prefix() (string, error) {
	wt, err := l.Repo.Worktree()
	if err != nil {
		return "", nil // a bare repository: the project is the root
	}
	root := wt.Filesystem.Root()
	abs, err := filepath.Abs(l.Dir)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || rel == "." {
		return "", nil
	}
	return filepath.ToSlash(rel), nil
}

// subject is the first line of a commit's message (at most 200 bytes),
// or "" when the commit is unknown.
func (l *Loader) subject(hash string) string {
	if l.Repo == nil || len(hash) != 40 {
		return ""
	}
	c, err := l.Repo.CommitObject(plumbing.NewHash(hash))
	if err != nil {
		return ""
	}
	return commitSubject(c)
}

func commitSubject(c *object.Commit) string {
	s, _, _ := strings.Cut(c.Message, "\n")
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}

// eval reads the per-case evaluation named by a manifest's eval digest:
// the eval.json entry of the evaluate stage's outs.
func (l *Loader) eval(ctx context.Context, ref string, id cas.ID) (*Eval, error) {
	if id.IsZero() {
		return nil, fmt.Errorf("%s: the model manifest has no evaluation (eval = \"\"); run 'medcad repro' with an evaluate stage", ref)
	}
	if err := l.fetch(ctx, ref, id); err != nil {
		return nil, err
	}
	m, err := l.Store.ReadManifest(id)
	if err != nil {
		return nil, fmt.Errorf("%s: evaluation %s: %w", ref, id.Short(), err)
	}
	var entry *cas.Entry
	for i, e := range m.Entries {
		if path.Base(e.Path) == "eval.json" {
			entry = &m.Entries[i]
			break
		}
	}
	if entry == nil {
		return nil, fmt.Errorf("%s: evaluation %s has no eval.json (the evaluate stage must write 'medcad eval --json' output there)", ref, id.Short())
	}
	if err := l.fetch(ctx, ref, entry.ID); err != nil {
		return nil, err
	}
	data, err := l.Store.ReadObject(entry.ID, metrics.MaxEvalBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", ref, entry.Path, err)
	}
	return ParseEval(ref+": "+entry.Path, data)
}

// fetch makes sure object id is in the cache, fetching it from the remote
// when there is one.
func (l *Loader) fetch(ctx context.Context, ref string, id cas.ID) error {
	if l.Store.Has(id) {
		return nil
	}
	if l.Remote == nil {
		return fmt.Errorf("%s: object %s: %w and no remote is configured (run 'medcad data pull' where it is)", ref, id.Short(), ErrNotCached)
	}
	if _, err := cas.Fetch(ctx, l.Store, l.Remote, []cas.Entry{{ID: id, Size: -1}}, cas.TransferOptions{Jobs: 1}); err != nil {
		if errors.Is(err, cas.ErrNotFound) {
			return fmt.Errorf("%s: object %s: %w, nor on the remote %s (was it pushed? 'medcad data push')", ref, id.Short(), ErrNotCached, l.Remote)
		}
		return fmt.Errorf("%s: %w", ref, err)
	}
	return nil
}

// DefaultBase returns the revision to compare the working tree with: the
// merge base of HEAD and the default branch (local, else origin's).
func (l *Loader) DefaultBase() (string, error) {
	if l.Repo == nil {
		return "", fmt.Errorf("%s is not in a git repository: give --base", l.Dir)
	}
	head, err := gitrepo.Resolve(l.Repo, "HEAD")
	if err != nil {
		return "", err
	}
	branch := l.Config.Project.DefaultBranch
	var target *object.Commit
	for _, rev := range []string{"refs/remotes/origin/" + branch, "refs/heads/" + branch} {
		if c, err := gitrepo.Resolve(l.Repo, rev); err == nil {
			target = c
			break
		}
	}
	if target == nil {
		return "", fmt.Errorf("default branch %q not found (neither origin/%s nor a local branch): give --base", branch, branch)
	}
	base, err := gitrepo.MergeBase(head, target)
	if errors.Is(err, gitrepo.ErrUnrelated) {
		return "", fmt.Errorf("HEAD and %s share no history: give --base", branch)
	}
	if err != nil {
		return "", fmt.Errorf("merge base of HEAD and %s: %w", branch, err)
	}
	return base.Hash.String(), nil
}

// PromoteAt reads the promotion gates of medcad.toml at a revision: the
// gates of the baseline's branch apply, so a pull request cannot loosen
// the rules it is judged by.
func (l *Loader) PromoteAt(rev string) (gitops.Promote, error) {
	c, err := gitrepo.Resolve(l.Repo, rev)
	if err != nil {
		return gitops.Promote{}, err
	}
	prefix, err := l.prefix()
	if err != nil {
		return gitops.Promote{}, err
	}
	data, err := gitrepo.ReadFile(c, path.Join(prefix, gitops.ConfigFile), 1<<20)
	if err != nil {
		return gitops.Promote{}, err
	}
	cfg, err := gitops.ParseConfig(gitops.ConfigFile+"@"+c.Hash.String()[:12], data)
	if err != nil {
		return gitops.Promote{}, err
	}
	return cfg.Promote, nil
}
