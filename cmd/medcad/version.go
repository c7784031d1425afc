package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildInfo describes the running binary.
type buildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Dirty   bool   `json:"dirty"`
	Go      string `json:"go"`
}

// stampedVersion is the version a build stamps with -ldflags "-X
// main.stampedVersion=…" (the Action does, since it builds from a source
// tree the toolchain cannot version). It is only displayed.
var stampedVersion string

// readBuildInfo reads version and VCS facts embedded by the Go toolchain.
func readBuildInfo() buildInfo {
	bi := buildInfo{Version: "(devel)", Commit: "unknown", Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi
	}
	if v := info.Main.Version; v != "" {
		bi.Version = v
	}
	if stampedVersion != "" {
		bi.Version = stampedVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.Commit = s.Value
		case "vcs.modified":
			bi.Dirty = s.Value == "true"
		}
	}
	return bi
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print medcad's version, build commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bi := readBuildInfo()
			if a.json {
				return a.printJSON(bi)
			}
			dirty := ""
			if bi.Dirty {
				dirty = " (modified)"
			}
			_, err := fmt.Fprintf(a.out, "medcad %s\ncommit %s%s\n%s\n", bi.Version, bi.Commit, dirty, bi.Go)
			return err
		},
	}
}
