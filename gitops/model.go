package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/medcad/medcad/internal/atomicfile"
)

// ModelDir holds the model manifests, models/<name>.model.toml.
const ModelDir = "models"

const maxModelBytes = 1 << 20

// ErrNoModel means the branch has no manifest for the model.
var ErrNoModel = errors.New("no model manifest")

// Model is a model manifest: the model on this branch and everything it
// came from, so any model traces to data, code, environment and params.
type Model struct {
	Schema     int                `toml:"schema" json:"schema"`
	Name       string             `toml:"name" json:"name"`
	Artifact   string             `toml:"artifact" json:"artifact"` // digest of the trained model's outs
	Trainer    string             `toml:"trainer" json:"trainer"`   // the train stage's command
	Run        string             `toml:"run" json:"run"`           // run record id
	Commit     string             `toml:"code_commit" json:"code_commit"`
	EnvLock    string             `toml:"env_lock,omitempty" json:"env_lock,omitempty"`
	Eval       string             `toml:"eval" json:"eval"` // digest of the per-case evaluation
	LabelRules string             `toml:"label_rules,omitempty" json:"label_rules,omitempty"`
	Datasets   map[string]string  `toml:"datasets" json:"datasets"`
	Params     map[string]string  `toml:"params" json:"params"`
	Metrics    map[string]float64 `toml:"metrics" json:"metrics"`
	Gate       Verdict            `toml:"gate" json:"gate"`
	Provenance Provenance         `toml:"provenance" json:"provenance"`
}

// Verdict is the gate result a manifest was promoted or blocked with.
type Verdict struct {
	Result   string `toml:"result" json:"result"`     // "", "pass" or "fail"
	Baseline string `toml:"baseline" json:"baseline"` // artifact digest of the baseline compared with
}

// Provenance says who produced the manifest.
type Provenance struct {
	CIRunURL  string `toml:"ci_run_url" json:"ci_run_url"`
	Signature string `toml:"signature" json:"signature"` // HMAC over the run record, set by CI
}

// ModelPath is the manifest's path relative to the project.
func ModelPath(name string) string { return ModelDir + "/" + name + ".model.toml" }

// ReadModel reads models/<name>.model.toml of the project in dir.
func ReadModel(dir, name string) (*Model, error) {
	rel := ModelPath(name)
	data, err := readBounded(filepath.Join(dir, filepath.FromSlash(rel)), maxModelBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", rel, ErrNoModel)
	}
	if err != nil {
		return nil, err
	}
	return ParseModel(rel, data)
}

// ParseModel decodes a manifest strictly.
func ParseModel(file string, data []byte) (*Model, error) {
	if len(data) > maxModelBytes {
		return nil, &ConfigError{File: file, Msg: fmt.Sprintf("larger than %d bytes", maxModelBytes)}
	}
	var m Model
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&m)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &ConfigError{File: file, Line: pe.Position.Line, Msg: pe.Message}
		}
		return nil, &ConfigError{File: file, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, &ConfigError{File: file, Line: keyLine(data, strings.Join(u[0], ".")), Msg: unknownKeyMsg(u[0])}
	}
	if m.Schema != 1 {
		return nil, &ConfigError{File: file, Msg: fmt.Sprintf("schema %d is not supported (want 1)", m.Schema)}
	}
	if !nameRE.MatchString(m.Name) {
		return nil, &ConfigError{File: file, Line: keyLine(data, "name"), Msg: fmt.Sprintf("key \"name\": %q is not a valid model name", m.Name)}
	}
	return &m, nil
}

// Encode writes the manifest canonically (fixed key order, sorted tables).
func (m *Model) Encode() []byte {
	var b bytes.Buffer
	b.WriteString("# Model manifest written by medcad; merging it into the default branch promotes the model.\n")
	if err := toml.NewEncoder(&b).Encode(m); err != nil {
		panic(err) // strings, floats and string maps only
	}
	return b.Bytes()
}

// Write writes the manifest atomically into the project in dir.
func (m *Model) Write(dir string) error {
	p := filepath.Join(dir, filepath.FromSlash(ModelPath(m.Name)))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, m.Encode(), 0o644)
}
