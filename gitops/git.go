package gitops

import (
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrNoFile means a path does not exist at a revision.
var ErrNoFile = errors.New("no such file at this revision")

// OpenRepo opens the git repository that holds dir (searching parents).
func OpenRepo(dir string) (*git.Repository, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("open git repository at %s: %w", dir, err)
	}
	return repo, nil
}

// ResolveCommit resolves rev (HEAD, a branch, a tag, a hash, HEAD~1, …)
// to a commit.
func ResolveCommit(repo *git.Repository, rev string) (*object.Commit, error) {
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("revision %q: %w", rev, err)
	}
	c, err := repo.CommitObject(*h)
	if err != nil {
		return nil, fmt.Errorf("revision %q: %w", rev, err)
	}
	return c, nil
}

// ReadFileAt reads the file at path (slash-separated, from the repository
// root) in commit c; files larger than limit are refused.
func ReadFileAt(c *object.Commit, p string, limit int64) ([]byte, error) {
	f, err := c.File(p)
	if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("%s at %s: %w", p, c.Hash.String()[:12], ErrNoFile)
	}
	if err != nil {
		return nil, fmt.Errorf("%s at %s: %w", p, c.Hash.String()[:12], err)
	}
	return readBlob(&f.Blob, limit, p)
}

func readBlob(b *object.Blob, limit int64, name string) ([]byte, error) {
	if b.Size > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	r, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, limit))
}

// ListFilesAt lists the names of the files directly in folder dir
// (slash-separated; "" for the root) in commit c, sorted.
func ListFilesAt(c *object.Commit, dir string) ([]string, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, err
	}
	if dir != "" {
		tree, err = tree.Tree(dir)
		if errors.Is(err, object.ErrDirectoryNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
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

// DatasetsAt reads every dataset pointer of commit c, sorted by name.
func DatasetsAt(c *object.Commit) ([]*Dataset, error) {
	names, err := ListFilesAt(c, DatasetDir)
	if err != nil {
		return nil, err
	}
	var out []*Dataset
	for _, n := range names {
		name, ok := strings.CutSuffix(n, DatasetSuffix)
		if !ok {
			continue
		}
		p := path.Join(DatasetDir, n)
		data, err := ReadFileAt(c, p, MaxDatasetBytes)
		if err != nil {
			return nil, err
		}
		d, err := ParseDataset(p+"@"+c.Hash.String()[:12], data)
		if err != nil {
			return nil, err
		}
		if d.Name != name {
			return nil, fmt.Errorf("%s@%s: name %q does not match the file name", p, c.Hash.String()[:12], d.Name)
		}
		out = append(out, d)
	}
	return out, nil
}

// RefTip is what one reference points at: a commit (branches, tags,
// HEAD) or a blob (run records under refs/medcad/runs).
type RefTip struct {
	Name   string
	Commit *object.Commit // nil when the ref is not a commit
	Blob   *object.Blob   // set when the ref points at a blob
}

// RefTips lists HEAD and every reference of the repository (branches,
// remote-tracking branches, tags peeled to their target, and others such
// as refs/medcad/…), sorted by name.
func RefTips(repo *git.Repository) ([]RefTip, error) {
	iter, err := repo.References()
	if err != nil {
		return nil, err
	}
	var tips []RefTip
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference {
			return nil
		}
		tip := RefTip{Name: ref.Name().String()}
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
			return nil // trees and missing objects hold nothing for us
		}
		tips = append(tips, tip)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if head, err := repo.Head(); err == nil {
		if c, err := repo.CommitObject(head.Hash()); err == nil {
			tips = append(tips, RefTip{Name: "HEAD", Commit: c})
		}
	}
	slices.SortFunc(tips, func(a, b RefTip) int { return strings.Compare(a.Name, b.Name) })
	return tips, nil
}

// ReadBlob reads a blob of at most limit bytes.
func ReadBlob(b *object.Blob, limit int64) ([]byte, error) {
	return readBlob(b, limit, "blob "+b.Hash.String()[:12])
}

// digestRE finds object IDs in committed files.
var digestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// maxScanBytes bounds each file scanned for digests.
const maxScanBytes = 64 << 20

// ReferencedDigests returns every object ID ("sha256:…") that the project
// still needs: those named by dataset pointers (data/*.dataset.toml),
// model manifests (models/*.model.toml) and the pipeline lock
// (medcad.lock) at the tip of every branch, remote-tracking branch, tag and
// HEAD, in the working tree of dir, and in blobs that refs point at
// directly (run records under refs/medcad/runs). repo may be nil (no git).
func ReferencedDigests(repo *git.Repository, dir string) ([]string, error) {
	seen := map[string]bool{}
	scan := func(data []byte) {
		for _, m := range digestRE.FindAll(data, -1) {
			seen[string(m)] = true
		}
	}
	// The working tree, committed or not.
	for _, pat := range []string{"data/*" + DatasetSuffix, "models/*.model.toml", "medcad.lock"} {
		matches, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			data, err := readBounded(m, maxScanBytes)
			if err != nil {
				return nil, err
			}
			scan(data)
		}
	}
	if repo != nil {
		tips, err := RefTips(repo)
		if err != nil {
			return nil, err
		}
		for _, tip := range tips {
			if tip.Blob != nil {
				data, err := ReadBlob(tip.Blob, maxScanBytes)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", tip.Name, err)
				}
				scan(data)
				continue
			}
			var files []string
			for _, d := range []struct{ dir, suffix string }{{DatasetDir, DatasetSuffix}, {"models", ".model.toml"}} {
				names, err := ListFilesAt(tip.Commit, d.dir)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", tip.Name, err)
				}
				for _, n := range names {
					if strings.HasSuffix(n, d.suffix) {
						files = append(files, d.dir+"/"+n)
					}
				}
			}
			files = append(files, "medcad.lock")
			for _, f := range files {
				data, err := ReadFileAt(tip.Commit, f, maxScanBytes)
				if errors.Is(err, ErrNoFile) {
					continue
				}
				if err != nil {
					return nil, fmt.Errorf("%s: %w", tip.Name, err)
				}
				scan(data)
			}
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	slices.Sort(out)
	return out, nil
}
