// Package gitrepo is medcad's one git layer, on top of go-git: open the
// repository, resolve revisions, read files and refs at a revision, find
// merge bases, commit files onto a branch, tag, and fetch and push with or
// without a token. It knows nothing of medcad's files; package gitops
// builds on it.
//
// Commits are built from trees directly (no worktree or index is
// touched), so a commit holds exactly the named files on top of its
// parent, whatever else the checkout contains. That part is written by
// hand on go-git's object model because go-git has no "commit these blobs
// onto that branch" operation.
package gitrepo

import (
	"errors"
	"fmt"
	"github.com/medcad/medcad/internal/plural"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

var (
	// ErrNoRepo means a folder is not inside a git repository.
	ErrNoRepo = errors.New("not in a git repository (nor in any parent folder)")
	// ErrNoCommit means the repository has no commit yet.
	ErrNoCommit = errors.New("nothing is committed yet: commit medcad.toml and your pointers first")
	// ErrNoRevision means a revision names no commit.
	ErrNoRevision = errors.New("no such branch, tag or commit")
	// ErrShortHistory means a revision such as HEAD~50 goes back further
	// than the history does.
	ErrShortHistory = errors.New("the history is shorter than the revision asks")
	// ErrNoFile means a path does not exist at a revision.
	ErrNoFile = errors.New("no such file at this revision")
	// ErrTooLarge means a file or blob is larger than the reader allows.
	ErrTooLarge = errors.New("larger than allowed")
	// ErrUnrelated means two commits share no history.
	ErrUnrelated = errors.New("no common history")
)

// Open opens the git repository that holds dir, searching dir and its
// parents as git does; a linked worktree (git worktree add) works too.
func Open(dir string) (*git.Repository, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoRepo)
	}
	if err != nil {
		return nil, fmt.Errorf("open git repository at %s: %w", dir, err)
	}
	return repo, nil
}

// Resolve resolves rev (HEAD, a branch, a tag, a hash or a prefix of one,
// HEAD~1, main^2, …) to a commit. Errors say what the user can do:
// ErrNoCommit in a repository without commits, ErrShortHistory for an
// ancestor beyond the root, ErrNoRevision for a name that is not there.
func Resolve(repo *git.Repository, rev string) (*object.Commit, error) {
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, explain(repo, rev, err)
	}
	c, err := repo.CommitObject(*h)
	if err != nil {
		return nil, fmt.Errorf("revision %q: %w", rev, err)
	}
	return c, nil
}

// ancestryRE splits a revision into a name and ~N / ^N steps.
var ancestryRE = regexp.MustCompile(`^(.*?)((?:[~^][0-9]*)*)$`)

// stepRE finds the ~N / ^N steps of a revision.
var stepRE = regexp.MustCompile(`[~^][0-9]*`)

// explain turns go-git's failure to resolve rev ("reference not found",
// "EOF") into an error the user can act on.
func explain(repo *git.Repository, rev string, err error) error {
	if rev == "" {
		return fmt.Errorf("empty revision: %w", ErrNoRevision)
	}
	m := ancestryRE.FindStringSubmatch(rev)
	if m == nil || m[1] == "" {
		return fmt.Errorf("revision %q: %w", rev, err)
	}
	name, steps := m[1], m[2]
	if name == "@" {
		name = "HEAD"
	}
	h, nameErr := repo.ResolveRevision(plumbing.Revision(name))
	if nameErr != nil {
		if unborn(repo) && (name == "HEAD" || !hasBranches(repo)) {
			return fmt.Errorf("revision %q: %w", rev, ErrNoCommit)
		}
		if errors.Is(nameErr, plumbing.ErrReferenceNotFound) {
			return fmt.Errorf("revision %q: %w", rev, ErrNoRevision)
		}
		return fmt.Errorf("revision %q: %w", rev, nameErr)
	}
	if steps == "" {
		return fmt.Errorf("revision %q: %w", rev, err)
	}
	c, cerr := repo.CommitObject(*h)
	if cerr != nil {
		return fmt.Errorf("revision %q: %w", rev, err)
	}
	walked := 0 // first-parent steps taken from name
	for _, s := range stepRE.FindAllString(steps, -1) {
		n := 1
		if len(s) > 1 {
			if n, cerr = strconv.Atoi(s[1:]); cerr != nil {
				return fmt.Errorf("revision %q: %w", rev, err)
			}
		}
		if s[0] == '^' && n == 0 {
			continue
		}
		if s[0] == '^' && n > 1 { // the nth parent of a merge
			if n > c.NumParents() {
				return fmt.Errorf("revision %q: commit %.12s has no parent number %d: %w", rev, c.Hash, n, ErrNoRevision)
			}
			next, perr := c.Parent(n - 1)
			if perr != nil {
				return missingParent(repo, rev, c, perr)
			}
			c = next
			walked = -1 // off the first-parent line: the count would mislead
			continue
		}
		for range n { // ~n, or ^ (the first parent)
			if c.NumParents() == 0 {
				if walked < 0 {
					return fmt.Errorf("revision %q: commit %.12s has no parent: %w", rev, c.Hash, ErrShortHistory)
				}
				return &shortHistory{rev: rev, commits: walked + 1}
			}
			next, perr := c.Parent(0)
			if perr != nil {
				return missingParent(repo, rev, c, perr)
			}
			c = next
			if walked >= 0 {
				walked++
			}
		}
	}
	return fmt.Errorf("revision %q: %w", rev, err)
}

// missingParent explains a parent of c that is not in the repository:
// in a shallow clone (CI's default checkout) the history stops there.
func missingParent(repo *git.Repository, what string, c *object.Commit, err error) error {
	if errors.Is(err, plumbing.ErrObjectNotFound) && shallow(repo) {
		return fmt.Errorf("%s: the clone is shallow and its history stops at %.12s: fetch all of it (git fetch --unshallow; fetch-depth: 0 for actions/checkout): %w", what, c.Hash, ErrShortHistory)
	}
	return fmt.Errorf("%s: parent of %.12s: %w", what, c.Hash, err)
}

// shallow reports whether the repository is a shallow clone.
func shallow(repo *git.Repository) bool {
	hs, err := repo.Storer.Shallow()
	return err == nil && len(hs) > 0
}

// shortHistory says how long the history is that a revision overshoots.
type shortHistory struct {
	rev     string
	commits int
}

func (e *shortHistory) Error() string {
	return fmt.Sprintf("%s: the history has only %s", e.rev, plural.Of(e.commits, "commit"))
}

func (e *shortHistory) Is(target error) bool { return target == ErrShortHistory }

// unborn reports whether HEAD names a branch with no commit yet.
func unborn(repo *git.Repository) bool {
	_, err := repo.Head()
	return errors.Is(err, plumbing.ErrReferenceNotFound)
}

// hasBranches reports whether any local or remote-tracking branch exists.
func hasBranches(repo *git.Repository) bool {
	iter, err := repo.References()
	if err != nil {
		return false
	}
	defer iter.Close()
	found := false
	iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() == plumbing.HashReference && (ref.Name().IsBranch() || ref.Name().IsRemote()) {
			found = true
			return storer.ErrStop
		}
		return nil
	})
	return found
}

// ReadFile reads the file at p (slash-separated, from the repository
// root) in commit c; a file larger than limit bytes is ErrTooLarge, a
// missing one ErrNoFile.
func ReadFile(c *object.Commit, p string, limit int64) ([]byte, error) {
	f, err := c.File(p)
	if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("%s at %.12s: %w", p, c.Hash, ErrNoFile)
	}
	if err != nil {
		return nil, fmt.Errorf("%s at %.12s: %w", p, c.Hash, err)
	}
	return readBlob(&f.Blob, limit, p+" at "+c.Hash.String()[:12])
}

// ReadBlob reads a blob of at most limit bytes.
func ReadBlob(b *object.Blob, limit int64) ([]byte, error) {
	return readBlob(b, limit, "blob "+b.Hash.String()[:12])
}

func readBlob(b *object.Blob, limit int64, name string) ([]byte, error) {
	if b.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, %w (%d)", name, b.Size, ErrTooLarge, limit)
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, nil
}

// ListFiles lists the names of the files directly in folder dir
// (slash-separated; "" for the root) in commit c, sorted. A missing
// folder has no files.
func ListFiles(c *object.Commit, dir string) ([]string, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("tree of %.12s: %w", c.Hash, err)
	}
	if dir != "" {
		tree, err = tree.Tree(dir)
		if errors.Is(err, object.ErrDirectoryNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s at %.12s: %w", dir, c.Hash, err)
		}
	}
	var out []string
	for _, e := range tree.Entries {
		if e.Mode.IsFile() {
			out = append(out, e.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// MergeBase returns the best common ancestor of two commits; commits
// without one are ErrUnrelated.
func MergeBase(a, b *object.Commit) (*object.Commit, error) {
	bases, err := a.MergeBase(b)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("merge base of %.12s and %.12s: a commit of their history is missing, as in a shallow clone: fetch all of it (git fetch --unshallow; fetch-depth: 0 for actions/checkout): %w", a.Hash, b.Hash, ErrShortHistory)
	}
	if err != nil {
		return nil, fmt.Errorf("merge base of %.12s and %.12s: %w", a.Hash, b.Hash, err)
	}
	if len(bases) == 0 {
		return nil, fmt.Errorf("%.12s and %.12s: %w", a.Hash, b.Hash, ErrUnrelated)
	}
	return bases[0], nil
}

// Tip is what one reference points at: a commit (branches, tags, HEAD)
// or a blob (such as run records).
type Tip struct {
	Name   string
	Commit *object.Commit // nil when the ref is not a commit
	Blob   *object.Blob   // set when the ref points at a blob
}

// Tips lists HEAD and every reference of the repository (branches,
// remote-tracking branches, tags peeled to their target, and others such
// as refs/medcad/…) that points at a commit or a blob, sorted by name.
func Tips(repo *git.Repository) ([]Tip, error) {
	refs, err := Refs(repo, "refs/")
	if err != nil {
		return nil, err
	}
	var tips []Tip
	for _, ref := range refs {
		tip := Tip{Name: ref.Name().String()}
		h := ref.Hash()
		for range 10 { // peel annotated tags (possibly nested)
			tag, err := repo.TagObject(h)
			if err != nil {
				break
			}
			h = tag.Target
		}
		if c, err := repo.CommitObject(h); err == nil {
			tip.Commit = c
		} else if b, err := repo.BlobObject(h); err == nil {
			tip.Blob = b
		} else {
			continue // trees and missing objects hold nothing for us
		}
		tips = append(tips, tip)
	}
	if head, err := repo.Head(); err == nil {
		if c, err := repo.CommitObject(head.Hash()); err == nil {
			tips = append(tips, Tip{Name: "HEAD", Commit: c})
		}
	}
	slices.SortFunc(tips, func(a, b Tip) int { return strings.Compare(a.Name, b.Name) })
	return tips, nil
}

// Refs lists the references whose full name starts with prefix (such as
// "refs/tags/") and that point at an object, sorted by name.
func Refs(repo *git.Repository, prefix string) ([]*plumbing.Reference, error) {
	iter, err := repo.References()
	if err != nil {
		return nil, fmt.Errorf("list refs: %w", err)
	}
	defer iter.Close()
	var refs []*plumbing.Reference
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() == plumbing.HashReference && strings.HasPrefix(ref.Name().String(), prefix) {
			refs = append(refs, ref)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list refs: %w", err)
	}
	slices.SortFunc(refs, func(a, b *plumbing.Reference) int { return strings.Compare(a.Name().String(), b.Name().String()) })
	return refs, nil
}

// WriteBlob stores data as a blob and returns its hash.
func WriteBlob(repo *git.Repository, data []byte) (plumbing.Hash, error) {
	return storeBlob(repo.Storer, data)
}
