package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// ErrTagExists means the version tag is already taken.
var ErrTagExists = errors.New("tag already exists")

// Bot is the identity of CI's commits and tags (GitHub's Actions bot).
func Bot(when time.Time) *object.Signature {
	return &object.Signature{Name: "github-actions[bot]", Email: "41898282+github-actions[bot]@users.noreply.github.com", When: when}
}

// CommitOptions describe one bot commit.
type CommitOptions struct {
	// Parent is the commit to build on; nil makes a root commit.
	Parent *object.Commit
	// Files maps slash-separated paths to their new content; the rest of
	// the parent's tree is kept.
	Files   map[string][]byte
	Message string
	When    time.Time
}

// Commit writes a commit with the files changed on top of the parent. It
// returns the parent's hash and false when nothing would change.
func Commit(repo *git.Repository, o CommitOptions) (plumbing.Hash, bool, error) {
	var base *object.Tree
	if o.Parent != nil {
		t, err := o.Parent.Tree()
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		base = t
	}
	files := make(map[string][]byte, len(o.Files))
	for p, data := range o.Files {
		clean := path.Clean(p)
		if clean != p || p == "" || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "../") || p == ".." || strings.Contains(p, "/.git/") || strings.HasPrefix(p, ".git/") {
			return plumbing.ZeroHash, false, fmt.Errorf("commit: path %q is not a clean relative path", p)
		}
		files[p] = data
	}
	treeHash, err := writeTree(repo.Storer, base, files)
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	if o.Parent != nil && treeHash == o.Parent.TreeHash {
		return o.Parent.Hash, false, nil
	}
	c := &object.Commit{Author: *Bot(o.When), Committer: *Bot(o.When), Message: o.Message, TreeHash: treeHash}
	if o.Parent != nil {
		c.ParentHashes = []plumbing.Hash{o.Parent.Hash}
	}
	h, err := store(repo.Storer, c)
	return h, err == nil, err
}

type encoder interface {
	Encode(plumbing.EncodedObject) error
}

func store(s storer.EncodedObjectStorer, o encoder) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

func storeBlob(s storer.EncodedObjectStorer, data []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store blob: %w", err)
	}
	return h, nil
}

// writeTree writes base with files replaced or added and returns the new
// tree's hash.
func writeTree(s storer.EncodedObjectStorer, base *object.Tree, files map[string][]byte) (plumbing.Hash, error) {
	entries := map[string]object.TreeEntry{}
	if base != nil {
		for _, e := range base.Entries {
			entries[e.Name] = e
		}
	}
	sub := map[string]map[string][]byte{}
	for p, data := range files {
		dir, rest, nested := strings.Cut(p, "/")
		if nested {
			if sub[dir] == nil {
				sub[dir] = map[string][]byte{}
			}
			sub[dir][rest] = data
			continue
		}
		h, err := storeBlob(s, data)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries[p] = object.TreeEntry{Name: p, Mode: filemode.Regular, Hash: h}
	}
	for dir, fs := range sub {
		var subBase *object.Tree
		if e, ok := entries[dir]; ok && e.Mode == filemode.Dir && base != nil {
			t, err := base.Tree(dir)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			subBase = t
		}
		h, err := writeTree(s, subBase, fs)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries[dir] = object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: h}
	}
	t := &object.Tree{}
	for _, e := range entries {
		t.Entries = append(t.Entries, e)
	}
	// Git orders entries by name, a folder's name as if it ended in "/".
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(t.Entries, func(i, j int) bool { return key(t.Entries[i]) < key(t.Entries[j]) })
	return store(s, t)
}

// CommitToBranch commits files onto branch of the remote and pushes it:
// onto parent when given (the pull request's head as CI checked it out),
// else onto the remote branch's tip, else as a root commit. It returns
// the commit that carries the files (the new one, or the parent when
// nothing changed) and whether it pushed. When earlier runs left bot
// commits on top of parent, it builds on them. A branch that moved on
// otherwise (a new push by a person) is a push error, never overwritten.
func CommitToBranch(ctx context.Context, repo *git.Repository, r Remote, branch string, parent *object.Commit, files map[string][]byte, msg string) (plumbing.Hash, bool, error) {
	if !validBranch(branch) {
		return plumbing.ZeroHash, false, fmt.Errorf("branch %q: not a valid branch name", branch)
	}
	tracking := plumbing.NewRemoteReferenceName(r.Name, branch)
	err := Fetch(ctx, repo, r, "+refs/heads/"+branch+":"+tracking.String())
	if err != nil && !isMissingRef(err) {
		return plumbing.ZeroHash, false, err
	}
	var tip *object.Commit
	if ref, err := repo.Reference(tracking, true); err == nil {
		if tip, err = repo.CommitObject(ref.Hash()); err != nil {
			return plumbing.ZeroHash, false, err
		}
	}
	if parent == nil || (tip != nil && botOnTop(repo, tip, parent.Hash)) {
		// A re-run builds on the commits earlier runs put on the parent.
		parent = tip
	}
	h, changed, err := Commit(repo, CommitOptions{Parent: parent, Files: files, Message: msg, When: time.Now()})
	if err != nil || !changed {
		return h, false, err
	}
	local := plumbing.ReferenceName("refs/medcad/push/" + branch)
	if err := repo.Storer.SetReference(plumbing.NewHashReference(local, h)); err != nil {
		return plumbing.ZeroHash, false, err
	}
	defer repo.Storer.RemoveReference(local)
	if err := Push(ctx, repo, r, local.String()+":refs/heads/"+branch); err != nil {
		return plumbing.ZeroHash, false, err
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(tracking, h)); err != nil {
		return plumbing.ZeroHash, false, err
	}
	return h, true, nil
}

// botOnTop reports whether tip is base with only bot commits on top (at
// most 50), as earlier CI runs leave a pull request's branch.
func botOnTop(repo *git.Repository, tip *object.Commit, base plumbing.Hash) bool {
	c := tip
	for range 50 {
		if c.Hash == base {
			return c != tip
		}
		if c.Author.Email != Bot(time.Time{}).Email || len(c.ParentHashes) != 1 {
			return false
		}
		p, err := repo.CommitObject(c.ParentHashes[0])
		if err != nil {
			return false
		}
		c = p
	}
	return false
}

func isMissingRef(err error) bool {
	return errors.Is(err, git.NoMatchingRefSpecError{}) || strings.Contains(err.Error(), "couldn't find remote ref")
}

func validBranch(b string) bool {
	return b != "" && plumbing.NewBranchReferenceName(b).Validate() == nil && !strings.HasPrefix(b, "-")
}

// Tag creates the annotated tag name on target, signed by the bot. A tag
// of that name already in the repository is ErrTagExists.
func Tag(repo *git.Repository, name string, target plumbing.Hash, msg string) error {
	ref := plumbing.NewTagReferenceName(name)
	if ref.Validate() != nil {
		return fmt.Errorf("tag %q: not a valid tag name", name)
	}
	if _, err := repo.Reference(ref, false); err == nil {
		return fmt.Errorf("tag %s: %w", name, ErrTagExists)
	}
	if _, err := repo.CreateTag(name, target, &git.CreateTagOptions{Tagger: Bot(time.Now()), Message: msg}); err != nil {
		return fmt.Errorf("tag %s: %w", name, err)
	}
	return nil
}

// TagAndPush creates the annotated tag name on target, signed by the bot,
// and pushes it. A tag already here or on the remote is ErrTagExists.
func TagAndPush(ctx context.Context, repo *git.Repository, r Remote, name string, target plumbing.Hash, msg string) error {
	ref := plumbing.NewTagReferenceName(name)
	if ref.Validate() != nil {
		return fmt.Errorf("tag %q: not a valid tag name", name)
	}
	if _, err := repo.Reference(ref, false); err == nil {
		return fmt.Errorf("tag %s: %w", name, ErrTagExists)
	}
	refs, err := r.list(ctx, repo)
	if err != nil {
		return err
	}
	for _, rr := range refs {
		if rr.Name() == ref {
			return fmt.Errorf("tag %s on %s: %w", name, r.Name, ErrTagExists)
		}
	}
	if err := Tag(repo, name, target, msg); err != nil {
		return err
	}
	if err := Push(ctx, repo, r, ref.String()+":"+ref.String()); err != nil {
		repo.DeleteTag(name)
		return err
	}
	return nil
}
