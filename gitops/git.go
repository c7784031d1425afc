package gitops

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/medcad/medcad/gitops/gitrepo"
)

// DatasetsAt reads every dataset pointer of commit c, sorted by name.
func DatasetsAt(c *object.Commit) ([]*Dataset, error) {
	names, err := gitrepo.ListFiles(c, DatasetDir)
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
		data, err := gitrepo.ReadFile(c, p, MaxDatasetBytes)
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
		tips, err := gitrepo.Tips(repo)
		if err != nil {
			return nil, err
		}
		for _, tip := range tips {
			if tip.Blob != nil {
				data, err := gitrepo.ReadBlob(tip.Blob, maxScanBytes)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", tip.Name, err)
				}
				scan(data)
				continue
			}
			var files []string
			for _, d := range []struct{ dir, suffix string }{{DatasetDir, DatasetSuffix}, {"models", ".model.toml"}} {
				names, err := gitrepo.ListFiles(tip.Commit, d.dir)
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
				data, err := gitrepo.ReadFile(tip.Commit, f, maxScanBytes)
				if errors.Is(err, gitrepo.ErrNoFile) {
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

// RepoPath is the repository-relative, slash-separated path of rel in
// the project folder dir: "medcad.toml" at the repository's root,
// "ml/medcad.toml" for a project in ml/.
func RepoPath(repo *git.Repository, dir, rel string) string {
	return path.Join(RepoPrefix(repo, dir), rel)
}

// RepoPrefix is the project folder dir relative to the repository's
// root, slash-separated: "" at the root (and for a bare or unreadable
// worktree), "ml" for a project in ml/.
func RepoPrefix(repo *git.Repository, dir string) string {
	wt, err := repo.Worktree()
	if err != nil {
		return ""
	}
	root, err1 := filepath.Abs(wt.Filesystem.Root())
	abs, err2 := filepath.Abs(dir)
	r, err := filepath.Rel(root, abs)
	if err1 != nil || err2 != nil || err != nil || r == "." {
		return ""
	}
	return filepath.ToSlash(r)
}
