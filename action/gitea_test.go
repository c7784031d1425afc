package action

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/action/giteatest"
)

// gitRun runs git in dir with a fixed identity.
func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestGitea runs the API client against a real Gitea: the sticky comment,
// the status fallback for check runs, and finding the merged PR.
func TestGitea(t *testing.T) {
	g := giteatest.Start(t)
	cloneURL := g.CreateRepo(t, "ct")
	work := t.TempDir()
	gitRun(t, work, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "README.md"), []byte("ct\n"), 0o644)
	gitRun(t, work, "add", "-A")
	gitRun(t, work, "commit", "-qm", "init")
	gitRun(t, work, "push", "-q", cloneURL, "main")
	gitRun(t, work, "checkout", "-qb", "batch3")
	os.WriteFile(filepath.Join(work, "b.txt"), []byte("b\n"), 0o644)
	gitRun(t, work, "add", "-A")
	gitRun(t, work, "commit", "-qm", "add batch3")
	gitRun(t, work, "push", "-q", cloneURL, "batch3")
	head := gitRun(t, work, "rev-parse", "HEAD")
	n := g.CreatePR(t, "ct", "batch3", "main", "Add batch3")

	ctx := context.Background()
	c, err := NewClient(ClientOptions{APIURL: g.API, Repository: g.User + "/ct", Token: g.Token})
	if err != nil {
		t.Fatal(err)
	}
	// Reviewers talk first: more comments than one API page.
	for i := range 35 {
		if _, err := c.AddComment(ctx, n, fmt.Sprintf("review note %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	marker := "<!-- medcad:report check=medcad -->"
	// Someone else posts the marker first (the admin's sudo acts as them):
	// medcad neither edits nor deletes it.
	g.Do(t, "POST", "admin/users", map[string]any{"username": "mallory", "email": "mallory@example.org", "password": "mallory-pass-1234", "must_change_password": false}, nil)
	var forged struct{ ID int64 }
	g.Do(t, "POST", fmt.Sprintf("repos/%s/ct/issues/%d/comments?sudo=mallory", g.User, n), map[string]any{"body": marker + "\nforged"}, &forged)
	var first int64
	for i := 1; i <= 3; i++ {
		res, err := c.UpsertComment(ctx, n, marker, fmt.Sprintf("report %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			first = res.Comment.ID
			if !res.Created {
				t.Error("first run did not create the comment")
			}
		} else if res.Created || res.Comment.ID != first {
			t.Errorf("run %d: %+v, want comment %d updated in place", i, res, first)
		}
	}
	all, err := c.Comments(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, cm := range all {
		if strings.HasPrefix(cm.Body, marker) {
			ours = append(ours, cm.Author+": "+cm.Body)
		}
	}
	want := []string{"mallory: " + marker + "\nforged", g.User + ": " + marker + "\nreport 3"}
	if len(all) != 37 || strings.Join(ours, "|") != strings.Join(want, "|") || first == forged.ID {
		t.Fatalf("%d comments, with the marker %q; want 37, and %q", len(all), ours, want)
	}

	// Gitea has no Checks API: the verdict becomes a commit status.
	for _, pass := range []bool{false, true} {
		kind, err := c.SetCheck(ctx, Check{Name: "medcad", SHA: head, Pass: pass, Title: "gates", Summary: "s"})
		if err != nil || kind != KindStatus {
			t.Fatalf("SetCheck = %q, %v; want a status", kind, err)
		}
	}
	// (Gitea names a status's state "status" in what it returns.)
	var sts []struct {
		Status  string `json:"status"`
		Context string `json:"context"`
	}
	g.Do(t, "GET", "repos/"+g.User+"/ct/statuses/"+head+"?sort=oldest", nil, &sts)
	if len(sts) != 2 || sts[0].Status != "failure" || sts[0].Context != "medcad" || sts[1].Status != "success" {
		t.Errorf("statuses %+v, want failure then success", sts)
	}

	sha := g.MergePR(t, "ct", n)
	got, err := c.MergedPullRequest(ctx, sha)
	if err != nil || got != n {
		t.Errorf("MergedPullRequest(%s) = %d, %v; want %d", sha, got, err, n)
	}
	if _, err := c.MergedPullRequest(ctx, head); err == nil {
		t.Error("the PR head was taken for a merge commit")
	}
}
