package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestHelpComplete walks the command tree: every runnable command has a
// description (Long) and an Examples section, and every --flag an example
// names exists on that command.
func TestHelpComplete(t *testing.T) {
	root := newRootCmd(&app{})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if !c.Runnable() || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		path := c.CommandPath()
		if strings.TrimSpace(c.Long) == "" {
			t.Errorf("%s: no Long description", path)
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: no Example", path)
		}
		if c != root && !strings.Contains(c.Long, "\n--json: ") { // the root only prints help
			t.Errorf("%s: its help does not say what --json prints (or that it is not supported)", path)
		}
		for _, line := range strings.Split(c.Example, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			words := strings.Fields(line)
			if words[0] != "medcad" {
				t.Errorf("%s: example %q does not start with medcad", path, line)
				continue
			}
			// The command the example runs: c, or (for a group's or the
			// root's examples) one of its subcommands.
			run, descend := root, true
			for i := 1; i < len(words); i++ {
				switch w := words[i]; {
				case w == "-C":
					i++
				case strings.HasPrefix(w, "-"):
				case descend:
					if sub := subcommand(run, w); sub != nil {
						run = sub
					} else {
						descend = false
					}
				}
			}
			if run != c && !strings.HasPrefix(run.CommandPath(), path+" ") {
				t.Errorf("%s: example %q runs %s", path, line, run.CommandPath())
			}
			run.InheritedFlags() // merges the persistent flags into Flags()
			for _, tok := range words {
				if !strings.HasPrefix(tok, "--") || tok == "--" {
					continue
				}
				name, _, _ := strings.Cut(strings.TrimPrefix(tok, "--"), "=")
				if run.Flags().Lookup(name) == nil {
					t.Errorf("%s: example %q names --%s, which %s does not have", path, line, name, run.CommandPath())
				}
			}
		}
	}
	walk(root)
	if c, _, err := root.Find([]string{"stage"}); err != nil || c.Hidden {
		t.Errorf("medcad stage is hidden or missing: %v", err)
	}
}

func subcommand(c *cobra.Command, name string) *cobra.Command {
	for _, sub := range c.Commands() {
		if sub.Name() == name {
			return sub
		}
	}
	return nil
}

// TestUsageHintNamesFailingCommand: a usage error sends the user to the
// help of the command that failed, not medcad's.
func TestUsageHintNamesFailingCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		hint string
	}{
		{[]string{"data", "add", t.TempDir()}, "Run 'medcad data add --help' for usage."}, // no --name
		{[]string{"data", "add", "--nope"}, "Run 'medcad data add --help' for usage."},    // unknown flag
		{[]string{"init", "a", "b"}, "Run 'medcad init --help' for usage."},               // too many args
		{[]string{"demo", "--cases", "0"}, "Run 'medcad demo --help' for usage."},
		{[]string{"demo", "--cases", "-3"}, "Run 'medcad demo --help' for usage."},
		{[]string{"bogus"}, "Run 'medcad --help' for usage."},
	} {
		_, stderr, code := medcadIn(t, false, tc.args...)
		if code != exitUsage {
			t.Errorf("medcad %s: exit %d, want %d; stderr %q", strings.Join(tc.args, " "), code, exitUsage, stderr)
		}
		if !strings.Contains(stderr, tc.hint) {
			t.Errorf("medcad %s: stderr %q lacks %q", strings.Join(tc.args, " "), stderr, tc.hint)
		}
	}
}
