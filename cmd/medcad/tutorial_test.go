package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// tutorialStep is one command of docs/tutorial.md and the output shown
// under it.
type tutorialStep struct {
	line int // of the command in the Markdown
	cmd  string
	want []string
}

// tutorialSteps reads the ```console blocks of a Markdown file: "$ CMD"
// lines are commands, the lines after one up to the next command are its
// output.
func tutorialSteps(t *testing.T, file string) []tutorialStep {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []tutorialStep
	in := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case l == "```console":
			in = true
		case in && l == "```":
			in = false
		case in && strings.HasPrefix(l, "$ "):
			steps = append(steps, tutorialStep{line: n, cmd: strings.TrimPrefix(l, "$ ")})
		case in && len(steps) > 0:
			steps[len(steps)-1].want = append(steps[len(steps)-1].want, l)
		}
	}
	return steps
}

// TestTutorial runs the commands of docs/tutorial.md in a fresh folder
// and checks that each prints what the page shows. "…" in a shown line
// matches any text; a line that is only "…" allows any further lines.
// Lines may come in another order (cases run in parallel), but every
// shown line must match its own printed line.
func TestTutorial(t *testing.T) {
	t.Parallel()
	medcadBinary(t)
	steps := tutorialSteps(t, filepath.Join("..", "..", "docs", "tutorial.md"))
	if len(steps) < 10 {
		t.Fatalf("only %d commands found in docs/tutorial.md", len(steps))
	}
	dir := t.TempDir()
	env := append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	for _, s := range steps {
		if d, ok := strings.CutPrefix(s.cmd, "cd "); ok {
			dir = filepath.Join(dir, d)
			continue
		}
		cmd := exec.Command("sh", "-c", s.cmd)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tutorial.md:%d: %s: %v\n%s", s.line, s.cmd, err, out)
		}
		if msg := matchOutput(s.want, strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")); msg != "" {
			t.Errorf("tutorial.md:%d: %s: %s\nprinted:\n%s", s.line, s.cmd, msg, out)
		}
	}
}

// matchOutput pairs every shown line with a printed line it matches and
// says what is wrong, or "".
func matchOutput(want, got []string) string {
	if len(got) == 1 && got[0] == "" {
		got = nil
	}
	rest := false
	used := make([]bool, len(got))
	for _, w := range want {
		if w == "…" {
			rest = true
			continue
		}
		re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(w), "…", ".*") + "$")
		found := false
		for i, g := range got {
			if !used[i] && re.MatchString(g) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			return "no printed line matches " + w
		}
	}
	if !rest {
		for i, g := range got {
			if !used[i] {
				return "printed a line the page does not show: " + g
			}
		}
	}
	return ""
}
