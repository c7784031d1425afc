package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/medcad/medcad/gitops"
)

// keyInput is everything a stage's (or case's) result depends on. Its
// canonical JSON (sorted maps) is hashed into the cache key.
type keyInput struct {
	Schema  int               `json:"schema"`
	Run     string            `json:"run"`
	Outs    []string          `json:"outs"`
	Foreach string            `json:"foreach,omitempty"`
	Case    string            `json:"case,omitempty"`
	Deps    map[string]string `json:"deps"`
	Params  map[string]string `json:"params"`
	Env     string            `json:"env,omitempty"`
	// Algorithm is what a built-in command computes, or medcad's build.
	Algorithm string `json:"algorithm,omitempty"`
}

// key returns "sha256:<hex>" of the canonical key input.
func (k keyInput) key() string {
	k.Schema = 1
	b, err := json.Marshal(k) // encoding/json sorts map keys
	if err != nil {
		panic(err) // only strings: cannot fail
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// isBuiltin reports whether a run command is medcad's own.
func isBuiltin(run string) bool {
	f := strings.Fields(run)
	return len(f) > 0 && f[0] == "medcad"
}

// flattenParams returns the values of the named params tables as
// "table.key" → the value written as TOML, nested tables flattened.
func flattenParams(all map[string]map[string]any, tables []string) (map[string]string, error) {
	out := map[string]string{}
	for _, t := range tables {
		vals, ok := all[t]
		if !ok {
			return nil, fmt.Errorf("params table %q is not defined", t)
		}
		if err := flattenInto(out, t, vals); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func flattenInto(out map[string]string, prefix string, m map[string]any) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		full := prefix + "." + k
		if sub, ok := m[k].(map[string]any); ok {
			if err := flattenInto(out, full, sub); err != nil {
				return err
			}
			continue
		}
		lit, err := tomlLiteral(m[k])
		if err != nil {
			return fmt.Errorf("param %s: %w", full, err)
		}
		out[full] = lit
	}
	return nil
}

// tomlLiteral writes one value as TOML, the form a user reads in messages.
func tomlLiteral(v any) (string, error) {
	b, err := toml.Marshal(map[string]any{"v": v})
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	return strings.TrimSpace(strings.TrimPrefix(s, "v =")), nil
}

// paramsJSON returns the params tables of a stage as the JSON document
// external commands read from MEDCAD_PARAMS.
func paramsJSON(all map[string]map[string]any, tables []string) ([]byte, error) {
	sel := map[string]any{}
	for _, t := range tables {
		sel[t] = all[t]
	}
	return json.MarshalIndent(sel, "", "  ")
}

// paramsTOML returns the keys of a stage's params tables merged into one
// top-level TOML document, for commands that read a params file (a key in
// two tables is an error).
func paramsTOML(all map[string]map[string]any, tables []string) ([]byte, error) {
	merged := map[string]any{}
	for _, t := range tables {
		for k, v := range all[t] {
			if _, dup := merged[k]; dup {
				return nil, fmt.Errorf("param %q is in two of the tables %s", k, strings.Join(tables, ", "))
			}
			merged[k] = v
		}
	}
	return toml.Marshal(merged)
}

// ConfigParams is every parameter the stages of cfg read, flattened as
// run records and manifests hold them ("train.epochs" = "6"): what a
// promotion checks a manifest's params against.
func ConfigParams(cfg gitops.Config) (map[string]string, error) {
	var tables []string
	for _, s := range cfg.Stages {
		for _, t := range s.Params {
			if !slices.Contains(tables, t) {
				tables = append(tables, t)
			}
		}
	}
	return flattenParams(cfg.Params, tables)
}
