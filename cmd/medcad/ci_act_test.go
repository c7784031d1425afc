package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/action/giteatest"
	"github.com/medcad/medcad/internal/testenv"
)

// outputsWorkflow is the scaffold's pr job plus a step that shows the
// action's outputs; the push runs the scaffolded workflow itself.
const outputsWorkflow = `name: medcad
on:
  pull_request:
  push:
    branches: [main]
jobs:
  pr:
    if: github.event_name == 'pull_request'
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
          fetch-depth: 0
      - id: medcad
        uses: medcad/medcad@main
        with:
          command: ci pr
          github-token: ${{ secrets.GITHUB_TOKEN }}
      - run: echo "verdict=$VERDICT digest=$DIGEST"
        env:
          VERDICT: ${{ steps.medcad.outputs.verdict }}
          DIGEST: ${{ steps.medcad.outputs.model-digest }}
`

// setupGoStub stands in for actions/setup-go: the host's Go is used.
const setupGoStub = `name: setup-go stub
description: the host's Go toolchain
runs:
  using: composite
  steps:
    - shell: bash
      run: go version
`

// checkoutStub stands in for actions/checkout: it clones the repository
// from GITHUB_SERVER_URL (the Gitea of the test) and checks out the ref.
const checkoutStub = `name: checkout stub
description: git clone from GITHUB_SERVER_URL
inputs:
  ref:
    default: ""
  fetch-depth:
    default: "1"
runs:
  using: composite
  steps:
    - shell: bash
      env:
        REF: ${{ inputs.ref }}
      run: |
        set -euo pipefail
        git clone -q "$GITHUB_SERVER_URL/$GITHUB_REPOSITORY.git" .
        git checkout -q --detach "${REF:-$GITHUB_SHA}"
`

// copySource copies medcad's working tree (tracked and untracked files
// that git does not ignore) to dir: the action's own source.
func copySource(t *testing.T, dir string) {
	t.Helper()
	root := gitCmd(t, ".", "rev-parse", "--show-toplevel")
	list := gitCmd(t, root, "ls-files", "-co", "--exclude-standard")
	for _, f := range strings.Split(list, "\n") {
		if f == "" || strings.Contains(f, "/testdata/") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the working tree
		}
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testActionAct runs action.yml with nektos/act on the host: a
// pull_request event on a demo repository in Gitea ends with the report
// comment and the status; the pull request is squash-merged, and the push
// event runs the workflow `medcad init` scaffolded, which promotes and
// tags.
func testActionAct(t *testing.T, g *giteatest.Server, bin string) {
	act := testenv.LookPath(t, "act")
	root := t.TempDir()
	repoURL := g.URL + g.User + "/act.git"
	key := "ci-secret-key-0123456789"
	store := "file://" + filepath.Join(root, "store")
	actionSrc := filepath.Join(root, "medcad-src")
	copySource(t, actionSrc)
	stub := filepath.Join(root, "setup-go")
	os.MkdirAll(stub, 0o755)
	os.WriteFile(filepath.Join(stub, "action.yml"), []byte(setupGoStub), 0o644)
	checkout := filepath.Join(root, "checkout")
	os.MkdirAll(checkout, 0o755)
	os.WriteFile(filepath.Join(checkout, "action.yml"), []byte(checkoutStub), 0o644)
	authURL, pr := giteaProject(t, g, bin, "act", store, nil)
	outputs := filepath.Join(root, "outputs.yml")
	os.WriteFile(outputs, []byte(outputsWorkflow), 0o644)

	runAct := func(dir, event, workflow string, payload any) string {
		t.Helper()
		ev := filepath.Join(root, event+".json")
		b, _ := json.Marshal(payload)
		os.WriteFile(ev, b, 0o644)
		cmd := exec.Command(act, event, "-W", workflow, "-e", ev, "-P", "ubuntu-latest=-self-hosted",
			"--action-offline-mode", "--no-cache-server",
			"--local-repository", "medcad/medcad@main="+actionSrc,
			"--local-repository", "actions/setup-go@v5="+stub,
			"--local-repository", "actions/checkout@v4="+checkout,
			"--env", "GITHUB_API_URL="+strings.TrimSuffix(g.API, "/"),
			"--env", "GITHUB_SERVER_URL="+strings.TrimSuffix(g.URL, "/"),
			"--env", "GITHUB_REPOSITORY="+g.User+"/act",
			"--env", "MEDCAD_REMOTE="+store,
			"-s", "GITHUB_TOKEN="+g.Token, "-s", "MEDCAD_SIGNING_KEY="+key)
		cmd.Dir = dir
		// act keeps its cache under HOME; Go keeps using the host's caches.
		cmd.Env = append(os.Environ(), "HOME="+filepath.Join(root, "home"))
		for _, v := range []string{"GOPATH", "GOMODCACHE", "GOCACHE"} {
			if out, err := exec.Command("go", "env", v).Output(); err == nil {
				cmd.Env = append(cmd.Env, v+"="+strings.TrimSpace(string(out)))
			}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("act %s: %v\n%s", event, err, out)
		}
		if strings.Contains(string(out), g.Token) || strings.Contains(string(out), key) {
			t.Fatalf("act output holds the token or the key")
		}
		return string(out)
	}

	ci := filepath.Join(root, "ci")
	gitCmd(t, root, "clone", "-q", "-b", "batch1", repoURL, ci)
	out := runAct(ci, "pull_request", outputs, map[string]any{"number": pr, "pull_request": map[string]any{"number": pr,
		"head": map[string]any{"ref": "batch1", "sha": gitCmd(t, ci, "rev-parse", "HEAD"), "repo": map[string]any{"full_name": g.User + "/act"}},
		"base": map[string]any{"ref": "main", "repo": map[string]any{"full_name": g.User + "/act"}}},
		"repository": map[string]any{"full_name": g.User + "/act", "default_branch": "main"}})
	if !strings.Contains(out, "verdict=pass digest=sha256:") {
		t.Errorf("the action's outputs did not reach the next step:\n%s", out)
	}
	var comments []giteaComment
	g.Do(t, "GET", fmt.Sprintf("repos/%s/act/issues/%d/comments", g.User, pr), nil, &comments)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "medcad: promote bone") {
		t.Fatalf("comments after act: %+v\n%s", comments, out)
	}
	head := strings.Fields(gitCmd(t, root, "ls-remote", authURL, "refs/heads/batch1"))[0]
	var sts []giteaStatus
	g.Do(t, "GET", fmt.Sprintf("repos/%s/act/statuses/%s", g.User, head), nil, &sts)
	if len(sts) == 0 || sts[0].State != "success" {
		t.Fatalf("statuses: %+v", sts)
	}

	sha := g.MergePRWith(t, "act", pr, "squash")
	main := filepath.Join(root, "main")
	gitCmd(t, root, "clone", "-q", "-b", "main", repoURL, main)
	out = runAct(main, "push", filepath.Join(main, ".github", "workflows", "medcad.yml"), map[string]any{"ref": "refs/heads/main", "after": sha,
		"repository": map[string]any{"full_name": g.User + "/act", "default_branch": "main"}})
	if !strings.Contains(out, "promoted bone v1") {
		t.Errorf("push event did not promote:\n%s", out)
	}
	if tags := gitCmd(t, root, "ls-remote", "--tags", authURL); !strings.Contains(tags, "refs/tags/models/bone/v1") {
		t.Errorf("no tag models/bone/v1 on Gitea: %s", tags)
	}
}
