package ci

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/gitrepo"
)

// TestTrustAt: the [github] settings come from the base commit's
// medcad.toml (in the project's folder of the repository), the defaults
// where it has none, never the working tree's.
func TestTrustAt(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	proj := filepath.Join(root, "seg")
	os.MkdirAll(proj, 0o755)
	run("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(root, "README.md"), []byte("x\n"), 0o644)
	run("add", "-A")
	run("commit", "-qm", "no config")
	run("tag", "bare")
	os.WriteFile(filepath.Join(proj, gitops.ConfigFile), []byte("[github]\nfork_policy = \"label\"\ncheck_name = \"medcad-seg\"\n"), 0o644)
	run("add", "-A")
	run("commit", "-qm", "config")
	// The pull request's working tree says otherwise.
	os.WriteFile(filepath.Join(proj, gitops.ConfigFile), []byte("[github]\nfork_policy = \"evaluate-only\"\ncheck_name = \"build\"\nassets_branch = \"main\"\n"), 0o644)

	repo, err := git.PlainOpen(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rev  string
		want gitops.GitHub
	}{
		{"HEAD", gitops.GitHub{ForkPolicy: "label", CheckName: "medcad-seg", AssetsBranch: gitops.Default().GitHub.AssetsBranch}},
		{"bare", gitops.Default().GitHub},
	} {
		c, err := gitrepo.Resolve(repo, tc.rev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := trustAt(proj, repo, c)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.rev, got, err, tc.want)
		}
	}

	os.WriteFile(filepath.Join(proj, gitops.ConfigFile), []byte("[github]\nfork_policy = \"sometimes\"\n"), 0o644)
	run("commit", "-qam", "broken")
	c, _ := gitrepo.Resolve(repo, "HEAD")
	if _, err := trustAt(proj, repo, c); err == nil {
		t.Error("a base config that does not parse gave settings")
	}
}
