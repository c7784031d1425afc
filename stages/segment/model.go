package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/medcad/medcad/internal/atomicfile"
)

// Model file identity.
const (
	Format  = "medcad-bone-model"
	Version = 1
	// MaxModelBytes bounds what ReadModel reads: a model is a few kB.
	MaxModelBytes = 4 << 20
)

// ErrModel means a model file is not a valid medcad bone model.
var ErrModel = errors.New("invalid model file")

// Feature kinds, computed on the body's working box (see docs/models.md).
const (
	FeatHU       = "hu"        // the voxel's HU
	FeatMean     = "mean"      // box mean of HU, radius RadiusMM
	FeatGradient = "gradient"  // gradient magnitude (HU/mm) of the base mean
	FeatMax      = "max"       // maximum of the base mean, radius RadiusMM
	FeatMin      = "min"       // minimum of the base mean, radius RadiusMM
	FeatRing     = "ring"      // 1 inside a closed bright ring on the axial slice
	FeatRingMean = "ring_mean" // box mean of ring, radius RadiusMM
	FeatStd      = "std"       // standard deviation of HU over a box, radius RadiusMM
	// FeatOutward is the HU RadiusMM mm from the voxel down the gradient
	// of the base mean: the tissue just outside a surface (fat or muscle),
	// which sets how bright a surface voxel must be to be bone.
	FeatOutward = "outward"
	// FeatOutwardMean is FeatOutward sampled from the base mean, for noisy
	// scans.
	FeatOutwardMean = "outward_mean"
)

// Model is the self-describing model artifact: everything prediction
// needs, and how it was made. Its canonical encoding is TOML (Encode);
// the file's SHA-256 is its digest.
type Model struct {
	Format    string    `toml:"format"`
	Version   int       `toml:"version"`
	Kind      string    `toml:"kind"` // "mlp"
	Labels    []string  `toml:"labels"`
	Localizer Localizer `toml:"localizer"`
	Features  Features  `toml:"features"`
	MLP       MLP       `toml:"mlp"`
	Refine    Refine    `toml:"refine"`
	Training  Training  `toml:"training"`
}

// Localizer finds the patient: the largest 6-connected component above
// BodyMinHU. Everything outside it (air, the table) is background.
type Localizer struct {
	BodyMinHU float64 `toml:"body_min_hu"`
	MarginMM  float64 `toml:"margin_mm"`
}

// Features lists the classifier inputs in order.
type Features struct {
	// BaseRadiusMM is the radius of the box mean the gradient, extrema and
	// ring features start from.
	BaseRadiusMM float64 `toml:"base_radius_mm"`
	// RingMinHU is the base-mean HU above which a voxel is part of a ring.
	RingMinHU float64 `toml:"ring_min_hu"`
	// CandidateMinHU: only voxels in a ring or with base mean above it are
	// classified; all others are background.
	CandidateMinHU float64 `toml:"candidate_min_hu"`
	// MaxHoleMM2 bounds the holes that the ring feature and hole filling
	// close, per axial slice (0: any size).
	MaxHoleMM2 float64   `toml:"max_hole_mm2"`
	List       []Feature `toml:"list"`
}

// Feature is one classifier input.
type Feature struct {
	Kind     string  `toml:"kind"`
	RadiusMM float64 `toml:"radius_mm"`
}

// MLP is a one-hidden-layer perceptron: p = σ(W2·tanh(W1·z + B1) + B2),
// where z = (x − Mean) / Std are the standardized features.
type MLP struct {
	Mean []float64   `toml:"mean"`
	Std  []float64   `toml:"std"`
	W1   [][]float64 `toml:"w1"` // hidden × inputs
	B1   []float64   `toml:"b1"`
	W2   []float64   `toml:"w2"`
	B2   float64     `toml:"b2"`
}

// Refine turns probabilities into the mask.
type Refine struct {
	Threshold       float64 `toml:"threshold"`
	MinComponentMM3 float64 `toml:"min_component_mm3"`
	FillHoles       bool    `toml:"fill_holes"` // fill holes per axial slice
}

// Training records how the model was made (no times: the artifact of the
// same inputs, params and seed is byte-identical).
type Training struct {
	Trainer   string  `toml:"trainer"`
	Dataset   string  `toml:"dataset"` // sha256 over the training files
	Cases     int     `toml:"cases"`
	Samples   int     `toml:"samples"`
	Seed      uint64  `toml:"seed"`
	Params    Params  `toml:"params"`
	TrainDice float64 `toml:"train_dice"`
}

// Encode returns the canonical TOML encoding of m.
func (m *Model) Encode() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# medcad bone segmentation model; see docs/models.md\n")
	if err := toml.NewEncoder(&b).Encode(m); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Decode parses and validates a model file's content. Unknown keys are
// errors; every error wraps ErrModel.
func Decode(data []byte) (*Model, error) {
	var m Model
	md, err := toml.Decode(string(data), &m)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("line %d: %s: %w", pe.Position.Line, firstLine(pe.Message), ErrModel)
		}
		return nil, fmt.Errorf("%s: %w", firstLine(err.Error()), ErrModel)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("unknown key %q: %w", und[0].String(), ErrModel)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func (m *Model) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf(format+": %w", append(args, ErrModel)...)
	}
	if m.Format != Format {
		return bad("format %q, want %q", m.Format, Format)
	}
	if m.Version != Version {
		return bad("version %d, this medcad reads version %d", m.Version, Version)
	}
	if m.Kind != "mlp" {
		return bad("kind %q, want \"mlp\"", m.Kind)
	}
	f := m.Features
	nIn := len(f.List)
	if nIn == 0 || nIn > 64 {
		return bad("%d features (want 1…64)", nIn)
	}
	for _, x := range []float64{m.Localizer.BodyMinHU, m.Localizer.MarginMM, f.BaseRadiusMM, f.RingMinHU, f.CandidateMinHU,
		m.Refine.Threshold, m.Refine.MinComponentMM3, m.MLP.B2} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return bad("non-finite number")
		}
	}
	if f.BaseRadiusMM < 0 || f.BaseRadiusMM > 50 || m.Localizer.MarginMM < 0 || m.Localizer.MarginMM > 100 {
		return bad("radius out of range")
	}
	if !(f.MaxHoleMM2 >= 0 && f.MaxHoleMM2 <= 1e6) {
		return bad("max_hole_mm2 %v out of [0, 1000000]", f.MaxHoleMM2)
	}
	for i, ft := range f.List {
		switch ft.Kind {
		case FeatHU, FeatMean, FeatGradient, FeatMax, FeatMin, FeatRing, FeatRingMean, FeatStd, FeatOutward, FeatOutwardMean:
		default:
			return bad("feature %d: unknown kind %q", i+1, ft.Kind)
		}
		if !(ft.RadiusMM >= 0 && ft.RadiusMM <= 50) {
			return bad("feature %d: radius %v mm out of [0, 50]", i+1, ft.RadiusMM)
		}
	}
	p := m.MLP
	nHid := len(p.W1)
	if nHid == 0 || nHid > 256 {
		return bad("%d hidden units (want 1…256)", nHid)
	}
	if len(p.Mean) != nIn || len(p.Std) != nIn || len(p.B1) != nHid || len(p.W2) != nHid {
		return bad("mlp sizes do not match %d features and %d hidden units", nIn, nHid)
	}
	for i, row := range p.W1 {
		if len(row) != nIn {
			return bad("mlp.w1 row %d has %d weights, want %d", i+1, len(row), nIn)
		}
		if !allFinite(row) {
			return bad("mlp.w1 row %d: non-finite weight", i+1)
		}
	}
	if !allFinite(p.Mean) || !allFinite(p.B1) || !allFinite(p.W2) || !allFinite(p.Std) {
		return bad("mlp: non-finite weight")
	}
	for _, s := range p.Std {
		if s <= 0 {
			return bad("mlp.std must be positive")
		}
	}
	if !(m.Refine.Threshold > 0 && m.Refine.Threshold < 1) {
		return bad("refine.threshold %v not in (0, 1)", m.Refine.Threshold)
	}
	if m.Refine.MinComponentMM3 < 0 {
		return bad("refine.min_component_mm3 is negative")
	}
	return nil
}

func allFinite(x []float64) bool {
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// Digest is the model artifact's identity: "sha256:" and the hex SHA-256
// of the file.
func Digest(data []byte) string {
	h := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(h[:])
}

// ReadModel reads and validates a model file; errors name the file.
func ReadModel(path string) (*Model, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxModelBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxModelBytes {
		return nil, "", fmt.Errorf("%s: larger than %d bytes: %w", path, MaxModelBytes, ErrModel)
	}
	m, err := Decode(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return m, Digest(data), nil
}

// WriteModel writes m to path atomically and returns its digest.
func WriteModel(path string, m *Model) (string, error) {
	data, err := m.Encode()
	if err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return "", err
	}
	return Digest(data), nil
}

// Algorithm is the version of what the built-in models compute
// (features, training, prediction): a pipeline's cache keys depend on it,
// not on medcad's build, so bump it whenever a trained model or a
// prediction would come out different.
const Algorithm = "4"
