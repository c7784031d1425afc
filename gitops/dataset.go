package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/internal/atomicfile"
)

// Dataset pointers: data/<name>.dataset.toml.
const (
	DatasetDir    = "data"
	DatasetSuffix = ".dataset.toml"
	// MaxDatasetBytes bounds a pointer file (a pointer with 100,000 cases
	// stays well below it).
	MaxDatasetBytes = 16 << 20
	datasetSchema   = 1
	maxCases        = 200_000
	maxWarnings     = 100
	maxWarningLen   = 500
)

// ErrNoDataset means there is no pointer of that name.
var ErrNoDataset = errors.New("no such dataset")

// Dataset is a dataset pointer: one committed file per data batch naming
// the manifest of its files in the store.
type Dataset struct {
	Schema      int           `toml:"schema" json:"schema"`
	Name        string        `toml:"name" json:"name"`
	Manifest    cas.ID        `toml:"manifest" json:"manifest"` // the manifest object
	Files       int64         `toml:"files" json:"files"`
	Bytes       int64         `toml:"bytes" json:"bytes"`
	LabelRules  string        `toml:"label_rules" json:"label_rules"`
	DeidProfile string        `toml:"deid_profile" json:"deid_profile"`
	Cases       []DatasetCase `toml:"case" json:"cases,omitempty"`
}

// DatasetCase is one imaging case of a DICOM dataset. It holds no PHI:
// the ID is a keyed pseudonym and warnings are phrased without tag values.
type DatasetCase struct {
	ID        string    `toml:"id" json:"id"`
	Modality  string    `toml:"modality" json:"modality"`
	Slices    int       `toml:"slices" json:"slices"`
	Shape     []int     `toml:"shape" json:"shape"`
	SpacingMM []float64 `toml:"spacing_mm" json:"spacing_mm"`
	Image     cas.ID    `toml:"image" json:"image"`          // sub-manifest of the case's files
	Label     cas.ID    `toml:"label" json:"label,omitzero"` // label map object, if labelled
	// Split is the case's side of the held-out split, SplitTrain or
	// SplitTest, recorded by data add for a labelled case; "" in pointers
	// written before sides were recorded (Side then applies the hash rule).
	Split    string   `toml:"split" json:"split,omitempty"`
	Warnings []string `toml:"warnings" json:"warnings,omitempty"` // series problems found at ingest
}

// DatasetPath is the pointer's path relative to the project.
func DatasetPath(name string) string { return DatasetDir + "/" + name + DatasetSuffix }

// WorkDir is where the dataset's files are checked out, relative to the
// project: data/<name>.
func (d *Dataset) WorkDir() string { return DatasetDir + "/" + d.Name }

// ValidName reports whether name may name a dataset.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// ReadDataset reads the pointer of dataset name in the project dir.
func ReadDataset(dir, name string) (*Dataset, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%q: not a valid dataset name (letters, digits, . _ -)", name)
	}
	rel := DatasetPath(name)
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", rel, ErrNoDataset)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, unwrapPath(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxDatasetBytes+1)) // ParseDataset refuses the extra byte
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, unwrapPath(err))
	}
	d, err := ParseDataset(rel, data)
	if err != nil {
		return nil, err
	}
	if d.Name != name {
		return nil, &ConfigError{File: rel, Line: keyLine(data, "name"), Msg: fmt.Sprintf("name %q does not match the file name", d.Name)}
	}
	return d, nil
}

// unwrapPath drops the path readBounded already put in front.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ListDatasets reads every pointer in the project's data folder, sorted
// by name. A bad pointer is an error naming it.
func ListDatasets(dir string) ([]*Dataset, error) {
	matches, err := filepath.Glob(filepath.Join(dir, DatasetDir, "*"+DatasetSuffix))
	if err != nil {
		return nil, err
	}
	slices.Sort(matches)
	var out []*Dataset
	for _, m := range matches {
		d, err := ReadDataset(dir, strings.TrimSuffix(filepath.Base(m), DatasetSuffix))
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Write stores the pointer canonically and atomically in the project dir.
func (d *Dataset) Write(dir string) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%s: %w", DatasetPath(d.Name), err)
	}
	p := filepath.Join(dir, filepath.FromSlash(DatasetPath(d.Name)))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, d.Encode(), 0o644)
}

// ParseDataset decodes a pointer strictly: bounded input, no unknown
// keys, valid values; errors name the file and line. Use Encode to get
// the canonical form; a canonical file re-encodes to the same bytes.
func ParseDataset(name string, data []byte) (*Dataset, error) {
	if len(data) > MaxDatasetBytes {
		return nil, &ConfigError{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxDatasetBytes)}
	}
	if !utf8.Valid(data) {
		return nil, &ConfigError{File: name, Msg: "not UTF-8"}
	}
	var f datasetFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &ConfigError{File: name, Line: pe.Position.Line, Msg: pe.Message}
		}
		if m := badTypeRE.FindStringSubmatch(err.Error()); m != nil {
			return nil, &ConfigError{File: name, Line: keyLine(data, m[1]), Msg: fmt.Sprintf("key %q: wrong type: %s, want %s", m[1], m[2], m[3])}
		}
		return nil, &ConfigError{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, &ConfigError{File: name, Line: keyLine(data, und[0].String()), Msg: unknownKeyMsg(und[0])}
	}
	d, err := f.dataset()
	if err == nil {
		err = d.validate(true)
	}
	if err != nil {
		line := 0
		var ve *valueError
		if errors.As(err, &ve) {
			line = keyLine(data, ve.key)
			if i, ok := caseIndex(ve.key); ok {
				line = caseLine(data, i)
			}
			err = &valueError{key: stripCaseIndex(ve.key), msg: ve.msg}
		}
		return nil, &ConfigError{File: name, Line: line, Msg: err.Error()}
	}
	return d, nil
}

// datasetFile is a pointer as written, digests as text: ParseDataset
// decodes into it so that a malformed digest is a value error naming its
// key, like any other bad value.
type datasetFile struct {
	Schema      int        `toml:"schema"`
	Name        string     `toml:"name"`
	Manifest    string     `toml:"manifest"`
	Files       int64      `toml:"files"`
	Bytes       int64      `toml:"bytes"`
	LabelRules  string     `toml:"label_rules"`
	DeidProfile string     `toml:"deid_profile"`
	Cases       []caseFile `toml:"case"`
}

type caseFile struct {
	ID        string    `toml:"id"`
	Modality  string    `toml:"modality"`
	Slices    int       `toml:"slices"`
	Shape     []int     `toml:"shape"`
	SpacingMM []float64 `toml:"spacing_mm"`
	Image     string    `toml:"image"`
	Label     string    `toml:"label"`
	Split     string    `toml:"split"`
	Warnings  []string  `toml:"warnings"`
}

// dataset parses the digests; errors are value errors with the key.
func (f *datasetFile) dataset() (*Dataset, error) {
	d := &Dataset{Schema: f.Schema, Name: f.Name, Files: f.Files, Bytes: f.Bytes, LabelRules: f.LabelRules, DeidProfile: f.DeidProfile}
	var err error
	if d.Manifest, err = parseDigest("manifest", f.Manifest, false); err != nil {
		return nil, err
	}
	if f.Cases != nil {
		d.Cases = make([]DatasetCase, len(f.Cases))
	}
	for i, c := range f.Cases {
		k := func(f string) string { return fmt.Sprintf("case[%d].%s", i, f) }
		dc := DatasetCase{ID: c.ID, Modality: c.Modality, Slices: c.Slices, Shape: c.Shape, SpacingMM: c.SpacingMM, Split: c.Split, Warnings: c.Warnings}
		if dc.Image, err = parseDigest(k("image"), c.Image, false); err != nil {
			return nil, err
		}
		if dc.Label, err = parseDigest(k("label"), c.Label, true); err != nil {
			return nil, err
		}
		d.Cases[i] = dc
	}
	return d, nil
}

var (
	caseIDRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	modalityRE = regexp.MustCompile(`^[A-Z]{1,16}$`)
	caseKeyRE  = regexp.MustCompile(`^case\[(\d+)\]\.`)
)

func caseIndex(key string) (int, bool) {
	m := caseKeyRE.FindStringSubmatch(key)
	if m == nil {
		return 0, false
	}
	i, err := strconv.Atoi(m[1])
	return i, err == nil
}

func stripCaseIndex(key string) string { return caseKeyRE.ReplaceAllString(key, "case.") }

// caseLine is the line of the i-th [[case]] header (0-based), 0 if absent.
func caseLine(data []byte, i int) int {
	n := 0
	for ln, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(stripComment(line)) == "[[case]]" {
			if n == i {
				return ln + 1
			}
			n++
		}
	}
	return 0
}

// parseDigest parses a digest of a committed file; "" is the zero ID
// when the key is optional.
func parseDigest(key, v string, optional bool) (cas.ID, error) {
	if v == "" && optional {
		return cas.ID{}, nil
	}
	id, err := cas.ParseID(v)
	if err != nil {
		return id, invalid(key, "%v", err)
	}
	return id, nil
}

// requireDigest requires a digest to be set.
func requireDigest(key string, id cas.ID) error {
	if id.IsZero() {
		_, err := parseDigest(key, "", false)
		return err
	}
	return nil
}

// DigestText writes a digest as committed files hold it: "" for the zero
// ID (not set).
func DigestText(id cas.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

// ParseDigest inverts DigestText: "" is the zero ID.
func ParseDigest(s string) (cas.ID, error) {
	if s == "" {
		return cas.ID{}, nil
	}
	return cas.ParseID(s)
}

func checkText(key, v string, max int) error {
	if len(v) > max {
		return invalid(key, "longer than %d bytes", max)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return invalid(key, "control character")
		}
	}
	return nil
}

// Validate checks every field of the pointer; the manifest and each
// case's image must be set.
func (d *Dataset) Validate() error { return d.validate(false) }

// validate checks the pointer. parsed: the digests were read from a file,
// where the all-zero digest is well-formed text (the zero ID is "not set"
// only in pointers built in memory).
func (d *Dataset) validate(parsed bool) error {
	checkDigest := func(key string, id cas.ID) error {
		if parsed {
			return nil
		}
		return requireDigest(key, id)
	}
	if d.Schema != datasetSchema {
		return invalid("schema", "%d: this medcad reads schema %d", d.Schema, datasetSchema)
	}
	if !ValidName(d.Name) {
		return invalid("name", "%q is not a valid dataset name (letters, digits, . _ -)", d.Name)
	}
	if err := checkDigest("manifest", d.Manifest); err != nil {
		return err
	}
	if d.Files < 0 || d.Files > cas.MaxManifestEntries {
		return invalid("files", "%d out of range 0…%d", d.Files, cas.MaxManifestEntries)
	}
	if d.Bytes < 0 || d.Bytes > d.Files*cas.MaxFileSize {
		return invalid("bytes", "%d out of range for %d files of at most %d bytes", d.Bytes, d.Files, int64(cas.MaxFileSize))
	}
	if err := checkText("label_rules", d.LabelRules, 64); err != nil {
		return err
	}
	if err := checkText("deid_profile", d.DeidProfile, 64); err != nil {
		return err
	}
	if len(d.Cases) > maxCases {
		return invalid("case", "%d cases, more than %d", len(d.Cases), maxCases)
	}
	seen := make(map[string]bool, len(d.Cases))
	for i, c := range d.Cases {
		k := func(f string) string { return fmt.Sprintf("case[%d].%s", i, f) }
		if !caseIDRE.MatchString(c.ID) {
			return invalid(k("id"), "%q is not a valid case id", truncateText(c.ID))
		}
		if seen[c.ID] {
			return invalid(k("id"), "case %q listed twice", c.ID)
		}
		seen[c.ID] = true
		if c.Modality != "" && !modalityRE.MatchString(c.Modality) {
			return invalid(k("modality"), "%q: want upper-case letters (CT, MR, …)", truncateText(c.Modality))
		}
		if c.Slices < 0 || c.Slices > 100_000 {
			return invalid(k("slices"), "%d out of range 0…100000", c.Slices)
		}
		if len(c.Shape) != 0 && len(c.Shape) != 3 {
			return invalid(k("shape"), "want 3 numbers, got %d", len(c.Shape))
		}
		for _, n := range c.Shape {
			if n < 1 || n > 65536 {
				return invalid(k("shape"), "%d out of range 1…65536", n)
			}
		}
		if len(c.SpacingMM) != 0 && len(c.SpacingMM) != 3 {
			return invalid(k("spacing_mm"), "want 3 numbers, got %d", len(c.SpacingMM))
		}
		for _, f := range c.SpacingMM {
			if math.IsNaN(f) || f <= 0 || f > 1000 {
				return invalid(k("spacing_mm"), "%v out of range (0, 1000]", f)
			}
		}
		if err := checkDigest(k("image"), c.Image); err != nil {
			return err
		}
		switch {
		case c.Split != "" && c.Split != SplitTrain && c.Split != SplitTest:
			return invalid(k("split"), "%q: want %q or %q", truncateText(c.Split), SplitTrain, SplitTest)
		case c.Split != "" && c.Label.IsZero():
			return invalid(k("split"), "an unlabelled case has no side (only labelled cases are split)")
		}
		if len(c.Warnings) > maxWarnings {
			return invalid(k("warnings"), "more than %d warnings", maxWarnings)
		}
		for _, w := range c.Warnings {
			if err := checkText(k("warnings"), w, maxWarningLen); err != nil {
				return err
			}
		}
	}
	return nil
}

func truncateText(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Encode returns the canonical TOML of the pointer: fixed key order,
// cases sorted by id, warnings sorted, empty optional keys left out.
func (d *Dataset) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "schema = %d\n", d.Schema)
	fmt.Fprintf(&b, "name = %s\n", tomlString(d.Name))
	fmt.Fprintf(&b, "manifest = %s\n", tomlString(d.Manifest.String()))
	fmt.Fprintf(&b, "files = %d\n", d.Files)
	fmt.Fprintf(&b, "bytes = %d\n", d.Bytes)
	fmt.Fprintf(&b, "label_rules = %s\n", tomlString(d.LabelRules))
	fmt.Fprintf(&b, "deid_profile = %s\n", tomlString(d.DeidProfile))
	cases := slices.Clone(d.Cases)
	slices.SortFunc(cases, func(a, b DatasetCase) int { return strings.Compare(a.ID, b.ID) })
	for _, c := range cases {
		b.WriteString("\n[[case]]\n")
		fmt.Fprintf(&b, "id = %s\n", tomlString(c.ID))
		fmt.Fprintf(&b, "modality = %s\n", tomlString(c.Modality))
		fmt.Fprintf(&b, "slices = %d\n", c.Slices)
		b.WriteString("shape = [")
		for i, n := range c.Shape {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(n))
		}
		b.WriteString("]\nspacing_mm = [")
		for i, f := range c.SpacingMM {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(tomlFloat(f))
		}
		b.WriteString("]\n")
		fmt.Fprintf(&b, "image = %s\n", tomlString(c.Image.String()))
		if !c.Label.IsZero() {
			fmt.Fprintf(&b, "label = %s\n", tomlString(c.Label.String()))
		}
		if c.Split != "" {
			fmt.Fprintf(&b, "split = %s\n", tomlString(c.Split))
		}
		if len(c.Warnings) > 0 {
			ws := slices.Clone(c.Warnings)
			slices.Sort(ws)
			b.WriteString("warnings = [")
			for i, w := range ws {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(tomlString(w))
			}
			b.WriteString("]\n")
		}
	}
	return b.Bytes()
}

// tomlFloat writes f as the shortest TOML float that reads back as f.
func tomlFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") { // n: inf, nan
		s += ".0"
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 && !strings.Contains(s[:i], ".") {
		s = s[:i] + ".0" + s[i:]
	}
	return s
}
