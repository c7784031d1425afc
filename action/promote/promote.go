// Package promote decides whether a merged model may become the production
// model, and keeps the production chain: one signed record per version.
//
// A manifest on the default branch is a text file that the pull request's
// job wrote, so promotion trusts nothing in it that it cannot check: the
// run record must match it, the artifact and the evaluation must be
// complete on the store, the manifest's datasets, params and environment
// lock must be those of the tree being promoted, its code commit must be
// in that tree's history or in the merged pull request's, and the gates
// are evaluated again here, from the content-addressed evaluations of the
// candidate and of the production model, under the default branch's
// rules. Only then does the promotion job, the one holder of the signing
// secret, append a record to the chain on the store (aliases/<model>/vN.json,
// immutable, each naming its predecessor's digest, Ed25519-signed) and
// mirror it in git as the annotated tag models/<model>/vN plus the moving
// ref refs/medcad/prod/<model>. Readers verify every record with the public
// key committed in medcad.toml.
//
// Written by hand: the record format and the chain are medcad's own
// contract; crypto/ed25519 does the cryptography.
package promote

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/gitrepo"
	"github.com/medcad/medcad/stages"
)

// Sentinel errors: why a manifest is refused.
var (
	ErrNoRun          = errors.New("no run record backs it")
	ErrRunMismatch    = errors.New("does not match its run record")
	ErrNoArtifact     = errors.New("artifact is not complete on the remote store")
	ErrGateFailed     = errors.New("gates did not pass against the production model")
	ErrTreeMismatch   = errors.New("does not match the tree being promoted")
	ErrNotMerged      = errors.New("its code commit is neither in the promoted history nor in the merged pull request")
	ErrNoPullRequest  = errors.New("the commit is not the merge of a pull request: only merged pull requests promote")
	ErrNotDefault     = errors.New("only the default branch promotes")
	ErrRolledBack     = errors.New("this artifact was production before and was rolled back; train a new model, or roll forward with 'medcad promote --rollback vN'")
	ErrNoReason       = errors.New("a rollback needs --reason and who asked for it (--by, or GITHUB_ACTOR)")
	ErrRollbackTarget = errors.New("no such version to roll back to")
)

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

// Tree is the commit being promoted, as the check reads it.
type Tree struct {
	Commit *object.Commit
	Prefix string // the project's folder in the repository ("" at the root)
	// Env is the environment lock digest of the working tree, which must
	// hold the commit's lock files.
	Env string
}

// CheckOptions is what Check verifies a manifest against.
type CheckOptions struct {
	File   string          // the manifest's path, for messages
	Model  *gitops.Model   // the merged manifest
	Repo   *git.Repository // holds refs/medcad/runs (fetched)
	Remote cas.Backend     // the shared store
	Tree   Tree
	// PRHead is the merged pull request's head commit ("" when none): the
	// code commit may be in its history (squash and rebase merges rewrite
	// it out of the default branch's).
	PRHead string
}

// Check verifies that the manifest describes the tree being promoted and
// is backed by a run record and complete evidence on the store. Every
// refusal is a *RefusedError wrapping a sentinel error. The gates are not
// Check's: see Gates.
func Check(ctx context.Context, o CheckOptions) error {
	refuse := func(err error, detail string) error { return &RefusedError{File: o.File, Err: err, Detail: detail} }
	m := o.Model
	run, err := gitops.LoadRun(o.Repo, m.Run)
	if errors.Is(err, gitops.ErrRunNotFound) {
		return refuse(ErrNoRun, "run "+m.Run+" is not under "+gitops.RunRefPrefix)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", o.File, err)
	}
	if d := runMismatch(m, run); d != "" {
		return refuse(ErrRunMismatch, d)
	}
	if d, err := treeMismatch(m, o.Tree); err != nil {
		return fmt.Errorf("%s: %w", o.File, err)
	} else if d != "" {
		return refuse(ErrTreeMismatch, d)
	}
	if !reachable(o.Repo, m.Commit, o.Tree.Commit.Hash.String(), o.PRHead) {
		return refuse(ErrNotMerged, fmt.Sprintf("code_commit %.12s", m.Commit))
	}
	for _, ev := range []struct {
		what string
		id   cas.ID
	}{{"artifact", m.Artifact}, {"eval", m.Eval}} {
		if ev.id.IsZero() {
			return refuse(ErrNoArtifact, ev.what+` "" is not a digest`)
		}
		ok, err := cas.IsComplete(ctx, o.Remote, ev.id)
		if err != nil {
			return fmt.Errorf("%s: %s on %s: %w", o.File, ev.what, o.Remote, err)
		}
		if !ok {
			return refuse(ErrNoArtifact, ev.what+" "+ev.id.String()+" on "+o.Remote.String())
		}
	}
	return nil
}

// treeMismatch names the first of the manifest's inputs that differs from
// the tree: params from its medcad.toml, datasets from its pointers, the
// environment lock from its lock files.
func treeMismatch(m *gitops.Model, t Tree) (string, error) {
	at := "@" + t.Commit.Hash.String()[:12]
	data, err := gitrepo.ReadFile(t.Commit, path.Join(t.Prefix, gitops.ConfigFile), 1<<20)
	if err != nil {
		return "", err
	}
	cfg, err := gitops.ParseConfig(gitops.ConfigFile+at, data)
	if err != nil {
		return "", err
	}
	params, err := stages.ConfigParams(cfg)
	if err != nil {
		return "", fmt.Errorf("%s%s: %w", gitops.ConfigFile, at, err)
	}
	if !maps.Equal(params, m.Params) {
		for _, k := range sortedKeys(params, m.Params) {
			if params[k] != m.Params[k] {
				return fmt.Sprintf("param %s is %s in %s, %s in the manifest", k, orEmpty(params[k]), gitops.ConfigFile+at, orEmpty(m.Params[k])), nil
			}
		}
	}
	for _, name := range sortedKeys(m.Datasets, nil) {
		p := path.Join(t.Prefix, gitops.DatasetPath(name))
		data, err := gitrepo.ReadFile(t.Commit, p, gitops.MaxDatasetBytes)
		if errors.Is(err, gitrepo.ErrNoFile) {
			return fmt.Sprintf("dataset %s has no pointer %s%s", name, gitops.DatasetPath(name), at), nil
		}
		if err != nil {
			return "", err
		}
		d, err := gitops.ParseDataset(p+at, data)
		if err != nil {
			return "", err
		}
		if d.Manifest != m.Datasets[name] {
			return fmt.Sprintf("dataset %s is %s in %s%s, %s in the manifest", name, d.Manifest.Short(), gitops.DatasetPath(name), at, m.Datasets[name].Short()), nil
		}
	}
	if env := gitops.DigestText(m.EnvLock); env != t.Env && !(m.EnvLock.IsZero() && t.Env == "") {
		return fmt.Sprintf("environment lock is %s in the tree, %s in the manifest", orEmpty(t.Env), orEmpty(env)), nil
	}
	return "", nil
}

// TreeOf reads the tree of commit c as the project dir holds it checked
// out: the environment lock digest of its lock files, which must be
// those committed (a promotion promotes a commit, not a working tree).
func TreeOf(ctx context.Context, p *gitops.Project, repo *git.Repository, c *object.Commit) (Tree, error) {
	t := Tree{Commit: c, Prefix: gitops.RepoPrefix(repo, p.Root)}
	for _, f := range p.Config.Env.Lock {
		committed, err := gitrepo.ReadFile(c, path.Join(t.Prefix, f), 64<<20)
		if err != nil {
			return Tree{}, fmt.Errorf("environment lock %s@%.12s: %w", f, c.Hash, err)
		}
		if here, err := os.ReadFile(p.Path(f)); err != nil || string(here) != string(committed) {
			return Tree{}, fmt.Errorf("environment lock %s: the working tree's differs from %.12s: promote from a clean checkout", f, c.Hash)
		}
	}
	cs := stages.NewCAS(p.Store, nil, false, 0)
	defer cs.Close()
	env, err := stages.EnvDigest(ctx, cs, p.Root, p.Config.Env.Lock)
	if err != nil {
		return Tree{}, err
	}
	t.Env = env
	return t, nil
}

// reachable reports whether commit is tip or an ancestor of it, or of the
// pull request's head prHead.
func reachable(repo *git.Repository, commit, tip, prHead string) bool {
	for _, top := range []string{tip, prHead} {
		if top == "" {
			continue
		}
		if top == commit {
			return true
		}
		t, err1 := gitrepo.Resolve(repo, top)
		c, err2 := gitrepo.Resolve(repo, commit)
		if err1 != nil || err2 != nil {
			continue
		}
		if ok, err := c.IsAncestor(t); err == nil && ok {
			return true
		}
	}
	return false
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

// sortedKeys are the keys of a and b, sorted.
func sortedKeys[V any](a, b map[string]V) []string {
	both := maps.Clone(a)
	if both == nil {
		both = map[string]V{}
	}
	maps.Copy(both, b)
	return slices.Sorted(maps.Keys(both))
}

func orEmpty(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Lineage is the Markdown list that says where a promoted model came from.
func Lineage(r *Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- model `%s` v%d, tag `%s`\n", r.Model, r.Version, Tag(r.Model, r.Version))
	if r.Rollback != nil {
		fmt.Fprintf(&b, "- **rollback** to v%d by %s: %s\n", r.Rollback.Of, r.Rollback.By, r.Rollback.Reason)
	}
	fmt.Fprintf(&b, "- artifact `%s`\n", r.Artifact)
	fmt.Fprintf(&b, "- run `%s`, code commit `%.12s`, promoted commit `%.12s`\n", r.Run, r.CodeCommit, r.Commit)
	if r.PR > 0 {
		fmt.Fprintf(&b, "- pull request #%d, merged by %s, approved by %s\n", r.PR, orEmpty(r.MergedBy), orEmpty(strings.Join(r.Approvers, ", ")))
	}
	if r.Rollback == nil {
		base := "none (first version)"
		if r.Gate.Baseline > 0 {
			base = fmt.Sprintf("v%d", r.Gate.Baseline)
		}
		fmt.Fprintf(&b, "- gates %s against %s\n", r.Gate.Result, base)
	}
	if r.CIRunURL != "" {
		fmt.Fprintf(&b, "- CI run %s\n", r.CIRunURL)
	}
	return b.String()
}
