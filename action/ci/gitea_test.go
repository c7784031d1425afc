package ci_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/action/giteatest"
	"github.com/medcad/medcad/gitops/cas/castest"
)

// giteaForge is a repository on a real Gitea: git over HTTP with the
// token, comments, commit statuses (Gitea has no Checks API) and merges
// through its API.
func giteaForge(t *testing.T, g *giteatest.Server, name string) forge {
	push := g.CreateRepo(t, name)
	f := forge{pushURL: push, cloneURL: g.URL + g.User + "/" + name + ".git", repo: g.User + "/" + name,
		apiURL: strings.TrimSuffix(g.API, "/"), token: g.Token}
	f.openPR = func(t *testing.T, head string) int { return g.CreatePR(t, name, head, "main", "Branch "+head) }
	f.merge = func(t *testing.T, n int, _, style string) string { return g.MergePRWith(t, name, n, style) }
	f.comments = func(t *testing.T, n int) []string {
		var cs []struct {
			Body string `json:"body"`
		}
		g.Do(t, "GET", fmt.Sprintf("repos/%s/%s/issues/%d/comments", g.User, name, n), nil, &cs)
		var out []string
		for _, c := range cs {
			out = append(out, c.Body)
		}
		return out
	}
	f.checks = func(t *testing.T, sha string) []string {
		// (Gitea names a status's state "status" in what it returns.)
		var sts []struct {
			State   string `json:"status"`
			Context string `json:"context"`
		}
		g.Do(t, "GET", fmt.Sprintf("repos/%s/%s/statuses/%s?sort=oldest", g.User, name, sha), nil, &sts)
		var out []string
		for _, st := range sts {
			if st.Context == "medcad" {
				out = append(out, st.State)
			}
		}
		return out
	}
	return f
}

// TestStoryGitea runs the story with real git pushes over HTTP with the
// token, a real GitHub-compatible API (Gitea) and a real S3 server
// (versitygw, checking signatures) as the store: the production alias
// lands on it.
func TestStoryGitea(t *testing.T) {
	g := giteatest.Start(t)
	s3, bucket := versitygwStore(t)
	config := fmt.Sprintf("\n[remote]\nendpoint = %q\npath_style = true\n", s3.Endpoint)
	s := newStory(t, giteaForge(t, g, "demo"), "s3://"+bucket+"/demo", config)
	runStory(t, s)
	if _, err := os.Stat(filepath.Join(s3.Dir, bucket, "demo", "aliases", "bone", "v1.json")); err != nil {
		t.Errorf("production alias not on the S3 server: %v", err)
	}
}

// TestMergeMethodsGitea merges three pull requests on a real Gitea, one
// each way (merge commit, squash, rebase), with the store on versitygw:
// each is promoted exactly once, with the pull request, merge commit and
// merger Gitea reports.
func TestMergeMethodsGitea(t *testing.T) {
	g := giteatest.Start(t)
	s3, bucket := versitygwStore(t)
	config := fmt.Sprintf("\n[remote]\nendpoint = %q\npath_style = true\n", s3.Endpoint)
	runMergeMethods(t, newStory(t, giteaForge(t, g, "methods"), "s3://"+bucket+"/methods", config))
}

// versitygwStore starts versitygw with a new bucket and points the AWS SDK
// of this process at it, with nothing from the machine's AWS setup.
func versitygwStore(t *testing.T) (*castest.S3Server, string) {
	t.Helper()
	s3 := castest.Versitygw(t)
	_, bucket := s3.NewBucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", castest.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", castest.SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	return s3, bucket
}
