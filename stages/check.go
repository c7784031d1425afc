package stages

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/stages/segment"
)

// Check validates cfg as repro would before running anything and returns
// every problem: those of [NewPlan], and params that the stage's built-in
// command would refuse (medcad segment train reading {params.toml}).
func Check(cfg gitops.Config, ws Workspace) []Problem {
	_, problems := newPlan(cfg, ws)
	for i, s := range cfg.Stages {
		problems = append(problems, checkParams(cfg.Params, i, s)...)
	}
	return problems
}

var segmentTrainRE = regexp.MustCompile(`^\s*medcad\s+segment\s+train\s.*--params[=\s]+\{params\.toml\}`)

// checkParams checks the params tables of a stage whose command is
// built in and reads them, one key at a time, so that every bad key is
// reported at its own line.
func checkParams(all map[string]map[string]any, i int, s gitops.Stage) []Problem {
	if !segmentTrainRE.MatchString(s.Run) {
		return nil
	}
	var problems []Problem
	seen := map[string]string{} // key → table
	for _, t := range s.Params {
		keys := make([]string, 0, len(all[t]))
		for k := range all[t] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			full := "params." + t + "." + k
			fail := func(msg string) {
				problems = append(problems, Problem{-1, full, &PlanError{s.Name, fmt.Sprintf("key %q: %s", full, msg)}})
			}
			if other, dup := seen[k]; dup {
				fail(fmt.Sprintf("also set in [params.%s]; medcad segment train reads one merged table", other))
				continue
			}
			seen[k] = t
			doc, err := toml.Marshal(map[string]any{k: all[t][k]})
			if err != nil {
				fail(err.Error())
				continue
			}
			if _, err := segment.ParseParams(doc); err != nil {
				fail(paramsMessage(k, err))
			}
		}
	}
	return problems
}

var paramsTypeRE = regexp.MustCompile(`incompatible types: TOML value has type (\S+); destination has type (\S+)`)

// paramsMessage turns a segment.ParseParams error about the one-key
// document of key k into what the user wrote wrong.
func paramsMessage(k string, err error) string {
	msg := strings.TrimSuffix(err.Error(), ": "+segment.ErrParams.Error())
	if !errors.Is(err, segment.ErrParams) {
		return msg
	}
	switch m := paramsTypeRE.FindStringSubmatch(msg); {
	case m != nil:
		return fmt.Sprintf("wrong type: %s, want %s", tomlType(m[1]), tomlType(m[2]))
	case strings.HasPrefix(msg, ": unknown key "):
		return "unknown key (medcad segment train reads " + strings.Join(segmentParamKeys(), ", ") + ")"
	}
	msg = strings.TrimPrefix(msg, ": ")
	return strings.TrimPrefix(msg, k+" = ")
}

// tomlType names a Go type as the TOML type a user writes.
func tomlType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"):
		return "integer"
	case strings.HasPrefix(goType, "float"):
		return "float"
	case strings.HasPrefix(goType, "[]"), goType == "slice":
		return "array"
	case goType == "map":
		return "table"
	case goType == "bool":
		return "boolean"
	}
	return goType
}

// segmentParamKeys lists the keys segment.Params reads.
func segmentParamKeys() []string {
	var keys []string
	doc, _ := toml.Marshal(segment.DefaultParams())
	var m map[string]any
	if _, err := toml.Decode(string(doc), &m); err == nil {
		for k := range m {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
