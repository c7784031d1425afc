package gitops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/internal/atomicfile"
)

// ModelDir holds the model manifests, models/<name>.model.toml.
const ModelDir = "models"

const maxModelBytes = 1 << 20

// ErrNoModel means the branch has no manifest for the model.
var ErrNoModel = errors.New("no model manifest")

// Model is a model manifest: the model on this branch and everything it
// came from, so any model traces to data, code, environment and params.
// A zero digest is one not set; the file writes it as "" (or leaves an
// optional key out).
type Model struct {
	Schema     int
	Name       string
	Artifact   cas.ID // the trained model's outs
	Trainer    string // the train stage's command
	Run        string // run record id
	Commit     string
	EnvLock    cas.ID
	Eval       cas.ID // the per-case evaluation
	LabelRules string
	Datasets   map[string]cas.ID // dataset name → manifest
	Params     map[string]string
	Metrics    map[string]float64
	Gate       Verdict
	Provenance Provenance
}

// Verdict is the gate result a manifest was promoted or blocked with.
type Verdict struct {
	Result   string // "", "pass" or "fail"
	Baseline cas.ID // artifact of the baseline compared with; zero for none
}

// Provenance says who produced the manifest.
type Provenance struct {
	CIRunURL string `toml:"ci_run_url" json:"ci_run_url"`
	// Signature is what CI wrote before production records were signed
	// instead; read from older manifests, never written, never trusted.
	Signature string `toml:"signature,omitempty" json:"signature,omitempty"`
}

// modelFile is the manifest as written, digests as text; its field order
// is the file's key order.
type modelFile struct {
	Schema     int                `toml:"schema" json:"schema"`
	Name       string             `toml:"name" json:"name"`
	Artifact   string             `toml:"artifact" json:"artifact"`
	Trainer    string             `toml:"trainer" json:"trainer"`
	Run        string             `toml:"run" json:"run"`
	Commit     string             `toml:"code_commit" json:"code_commit"`
	EnvLock    string             `toml:"env_lock,omitempty" json:"env_lock,omitempty"`
	Eval       string             `toml:"eval" json:"eval"`
	LabelRules string             `toml:"label_rules,omitempty" json:"label_rules,omitempty"`
	Datasets   map[string]string  `toml:"datasets" json:"datasets"`
	Params     map[string]string  `toml:"params" json:"params"`
	Metrics    map[string]float64 `toml:"metrics" json:"metrics"`
	Gate       verdictFile        `toml:"gate" json:"gate"`
	Provenance Provenance         `toml:"provenance" json:"provenance"`
}

type verdictFile struct {
	Result   string `toml:"result" json:"result"`
	Baseline string `toml:"baseline" json:"baseline"`
}

func (m *Model) file() *modelFile {
	f := &modelFile{
		Schema: m.Schema, Name: m.Name, Artifact: DigestText(m.Artifact), Trainer: m.Trainer, Run: m.Run,
		Commit: m.Commit, EnvLock: DigestText(m.EnvLock), Eval: DigestText(m.Eval), LabelRules: m.LabelRules,
		Params: m.Params, Metrics: m.Metrics, Provenance: m.Provenance,
		Gate: verdictFile{Result: m.Gate.Result, Baseline: DigestText(m.Gate.Baseline)},
	}
	if m.Datasets != nil {
		f.Datasets = make(map[string]string, len(m.Datasets))
		for k, id := range m.Datasets {
			f.Datasets[k] = DigestText(id)
		}
	}
	return f
}

// model parses the digests; an empty one is zero. Errors are value
// errors naming the key.
func (f *modelFile) model() (*Model, error) {
	m := &Model{
		Schema: f.Schema, Name: f.Name, Trainer: f.Trainer, Run: f.Run, Commit: f.Commit, LabelRules: f.LabelRules,
		Params: f.Params, Metrics: f.Metrics, Provenance: f.Provenance, Gate: Verdict{Result: f.Gate.Result},
	}
	var err error
	for _, d := range []struct {
		key string
		dst *cas.ID
		v   string
	}{
		{"artifact", &m.Artifact, f.Artifact},
		{"env_lock", &m.EnvLock, f.EnvLock},
		{"eval", &m.Eval, f.Eval},
		{"gate.baseline", &m.Gate.Baseline, f.Gate.Baseline},
	} {
		if *d.dst, err = parseDigest(d.key, d.v, true); err != nil {
			return nil, err
		}
	}
	if f.Datasets != nil {
		m.Datasets = make(map[string]cas.ID, len(f.Datasets))
		for _, k := range sortedKeys(f.Datasets) {
			if m.Datasets[k], err = parseDigest("datasets."+tomlKey(k), f.Datasets[k], true); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// MarshalJSON writes the manifest's keys, digests as text.
func (m *Model) MarshalJSON() ([]byte, error) { return json.Marshal(m.file()) }

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Model) UnmarshalJSON(b []byte) error {
	var f modelFile
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	v, err := f.model()
	if err != nil {
		return err
	}
	*m = *v
	return nil
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
	var f modelFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
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
	if f.Schema != 1 {
		return nil, &ConfigError{File: file, Msg: fmt.Sprintf("schema %d is not supported (want 1)", f.Schema)}
	}
	if !nameRE.MatchString(f.Name) {
		return nil, &ConfigError{File: file, Line: keyLine(data, "name"), Msg: fmt.Sprintf("key \"name\": %q is not a valid model name", f.Name)}
	}
	m, err := f.model()
	if err != nil {
		line := 0
		var ve *valueError
		if errors.As(err, &ve) {
			line = keyLine(data, ve.key)
		}
		return nil, &ConfigError{File: file, Line: line, Msg: err.Error()}
	}
	return m, nil
}

// Encode writes the manifest canonically (fixed key order, sorted tables).
func (m *Model) Encode() []byte {
	var b bytes.Buffer
	b.WriteString("# Model manifest written by medcad; merging it into the default branch promotes the model.\n")
	if err := toml.NewEncoder(&b).Encode(m.file()); err != nil {
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
