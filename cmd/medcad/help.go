package main

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
)

// helpTOML is what each command's help says beyond its flags.
//
//go:embed help.toml
var helpTOML string

// helpText is one command's entry of help.toml.
type helpText struct {
	Command string `toml:"command"`
	Long    string `toml:"long"`    // used when the command sets no Long
	Example string `toml:"example"` // shown as Examples
	JSON    string `toml:"json"`    // what --json prints; "" = not supported
	Exit    string `toml:"exit"`    // exit codes beyond the usual ones
}

// helpTexts decodes help.toml by command path.
func helpTexts() (map[string]helpText, error) {
	var f struct {
		Command []helpText `toml:"command"`
	}
	if _, err := toml.Decode(helpTOML, &f); err != nil {
		return nil, fmt.Errorf("help.toml: %w", err)
	}
	out := make(map[string]helpText, len(f.Command))
	for _, h := range f.Command {
		out[h.Command] = h
	}
	return out, nil
}

// applyHelp sets every command's Long, Example and output lines from
// help.toml.
func applyHelp(root *cobra.Command) {
	texts, err := helpTexts()
	if err != nil {
		return // embedded, and TestHelpComplete fails on a file that does not decode
	}
	var apply func(c *cobra.Command)
	apply = func(c *cobra.Command) {
		if h, ok := texts[c.CommandPath()]; ok {
			long := c.Long
			if long == "" {
				long = h.Long
			}
			var tail []string
			if h.JSON != "" {
				tail = append(tail, "--json: "+strings.TrimPrefix(h.JSON, "--json: "))
			}
			if h.Exit != "" {
				tail = append(tail, "Exit codes: 0 ok; "+strings.TrimSuffix(h.Exit, ".")+"; 1 other errors; 2 usage errors; 130 interrupted.")
			}
			if len(tail) > 0 {
				long = strings.TrimRight(long, "\n") + "\n\n" + strings.Join(tail, "\n")
			}
			c.Long = long
			if c.Example == "" {
				c.Example = h.Example
			}
		}
		for _, sub := range c.Commands() {
			apply(sub)
		}
	}
	apply(root)
}
