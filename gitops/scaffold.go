package gitops

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/internal/atomicfile"
)

//go:embed scaffold
var scaffoldFS embed.FS

// ScaffoldResult says what Scaffold did to each path, relative to the project.
type ScaffoldResult struct {
	GitInit bool     `json:"git_init"` // a repository was created
	Created []string `json:"created"`
	Kept    []string `json:"kept"`    // existed and were left alone
	Written []string `json:"written"` // existed and were overwritten (force)
}

// scaffoldFiles maps template names to project paths.
var scaffoldFiles = []struct{ tmpl, path string }{
	{"medcad.toml", ConfigFile},
	{"gitignore", ".gitignore"},
	{"medcad.yml", ".github/workflows/medcad.yml"},
	{"README.md", "README.md"},
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// ScaffoldOptions say what Scaffold writes.
type ScaffoldOptions struct {
	Force bool // overwrite existing files
	// Runner "ec2" writes the workflow that trains on ephemeral EC2 GPU
	// runners and sets [runner] provider = "ec2"; "" the GitHub-hosted one.
	Runner string
}

// Scaffold lays out a medcad project in dir: a git repository (created with
// go-git when dir is not inside one), medcad.toml, .gitignore, data/,
// models/, the workflow and a README. Existing files are kept unless force.
func Scaffold(dir string, force bool) (ScaffoldResult, error) {
	return ScaffoldWith(dir, ScaffoldOptions{Force: force})
}

// ScaffoldWith is Scaffold with options.
func ScaffoldWith(dir string, o ScaffoldOptions) (ScaffoldResult, error) {
	var res ScaffoldResult
	force := o.Force
	if o.Runner != "" && o.Runner != "ec2" {
		return res, fmt.Errorf("runner %q: want \"\" or \"ec2\"", o.Runner)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return res, err
	}
	if _, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true}); errors.Is(err, git.ErrRepositoryNotExists) {
		if _, err := git.PlainInitWithOptions(abs, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: "refs/heads/main"}}); err != nil {
			return res, fmt.Errorf("git init %s: %w", dir, err)
		}
		res.GitInit = true
	} else if err != nil {
		return res, fmt.Errorf("open git repository %s: %w", dir, err)
	}
	name := unsafeName.ReplaceAllString(filepath.Base(abs), "-")
	if !nameRE.MatchString(name) {
		name = "medcad-project"
	}
	for _, d := range []string{"data", "models"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o755); err != nil {
			return res, err
		}
		keep := filepath.Join(abs, d, ".gitkeep")
		if _, err := os.Stat(keep); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(keep, nil, 0o644); err != nil {
				return res, err
			}
			res.Created = append(res.Created, filepath.Join(d, ".gitkeep"))
		}
	}
	for _, f := range scaffoldFiles {
		tmpl := f.tmpl
		if tmpl == "medcad.yml" && o.Runner == "ec2" {
			tmpl = "medcad-ec2.yml"
		}
		text, err := scaffoldFS.ReadFile("scaffold/" + tmpl)
		if err != nil {
			return res, err
		}
		if tmpl == "medcad.toml" && o.Runner == "ec2" {
			text = bytes.Replace(text, []byte(`# provider = ""                          # "ec2": ephemeral self-hosted GPU runners`),
				[]byte(`provider = "ec2"                         # ephemeral self-hosted GPU runners: set ami, subnets, region`), 1)
		}
		var buf bytes.Buffer
		buf.Write(bytes.ReplaceAll(text, []byte("{{.Name}}"), []byte(name)))
		target := filepath.Join(abs, f.path)
		_, statErr := os.Stat(target)
		exists := statErr == nil
		if exists && !force {
			res.Kept = append(res.Kept, f.path)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return res, err
		}
		if err := atomicfile.WriteFile(target, buf.Bytes(), 0o644); err != nil {
			return res, err
		}
		if exists {
			res.Written = append(res.Written, f.path)
		} else {
			res.Created = append(res.Created, f.path)
		}
	}
	return res, nil
}
