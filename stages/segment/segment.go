// Package segment holds medcad's built-in bone segmentation models for CT,
// which train and predict on a CPU in seconds:
//
//   - a body localizer: the largest connected component above a body
//     threshold gives the working box; the table and air outside it are
//     dropped;
//   - a voxel classifier: a small multilayer perceptron over multi-scale
//     features (HU, box means at several radii, gradient magnitude, local
//     maxima and minima, "inside a closed bright ring" on the axial
//     slice, and the tissue just outside a surface), trained on
//     class-balanced samples;
//   - a refinement step: removal of small connected fragments and filling
//     of holes per axial slice (chosen on the training set);
//   - the classical baseline to beat: an HU threshold plus the largest
//     connected components.
//
// Written by hand because no reachable Go library does 3-D image
// filtering, connected components or a small trainable MLP without cgo;
// they are a few hundred lines here. The model artifact is one canonical
// TOML file (Model) whose SHA-256 is its digest; training is deterministic
// for a seed, so the same data, params and seed give the same digest.
// docs/models.md documents the contract for external trainers.
package segment

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// Errors callers test.
var (
	// ErrDataset means the training folder is not a usable nnU-Net raw
	// dataset (missing dataset.json or labels, no cases, mismatched grids).
	ErrDataset = errors.New("invalid training dataset")
	// ErrParams means a params file or value is invalid.
	ErrParams = errors.New("invalid training params")
)

// Params are the training hyper-parameters (the --params TOML file; every
// key optional, unknown keys are errors).
type Params struct {
	Hidden           int       `toml:"hidden"`              // hidden units of the MLP
	Epochs           int       `toml:"epochs"`              // passes over the samples
	SamplesPerCase   int       `toml:"samples_per_case"`    // balanced: half bone, half not
	BatchSize        int       `toml:"batch_size"`          // Adam minibatch
	LearningRate     float64   `toml:"learning_rate"`       // Adam step, cosine-decayed
	L2               float64   `toml:"l2"`                  // weight decay
	BaseRadiusMM     float64   `toml:"base_radius_mm"`      // smoothing under gradient/extrema/ring
	MeanRadiiMM      []float64 `toml:"mean_radii_mm"`       // box-mean features
	ExtremaRadiusMM  float64   `toml:"extrema_radius_mm"`   // local max/min features
	RingMeanRadiusMM float64   `toml:"ring_mean_radius_mm"` // smoothed ring feature
	StdRadiusMM      float64   `toml:"std_radius_mm"`       // texture (local standard deviation) feature
	OutwardMM        float64   `toml:"outward_mm"`          // HU this far outside a surface
	OutwardMeanMM    float64   `toml:"outward_mean_mm"`     // base mean this far outside a surface
	RingMinHU        float64   `toml:"ring_min_hu"`         // bright ring threshold
	CandidateMinHU   float64   `toml:"candidate_min_hu"`    // voxels below are background
	BodyMinHU        float64   `toml:"body_min_hu"`         // localizer threshold
	MinComponentMM3  float64   `toml:"min_component_mm3"`   // smaller fragments are removed
	MaxHoleMM2       float64   `toml:"max_hole_mm2"`        // larger holes are not rings, nor filled
}

// DefaultParams are the params used when a file sets nothing.
func DefaultParams() Params {
	return Params{
		Hidden: 16, Epochs: 6, SamplesPerCase: 16000, BatchSize: 64, LearningRate: 0.01, L2: 1e-5,
		BaseRadiusMM: 1, MeanRadiiMM: []float64{1, 3, 7}, ExtremaRadiusMM: 2.5, RingMeanRadiusMM: 3, StdRadiusMM: 1.5, OutwardMM: 1, OutwardMeanMM: 1.5,
		RingMinHU: 500, CandidateMinHU: 100, BodyMinHU: -400, MinComponentMM3: 30, MaxHoleMM2: 2500,
	}
}

// Validate reports the first invalid value.
func (p Params) Validate() error {
	bad := func(format string, args ...any) error { return fmt.Errorf(format+": %w", append(args, ErrParams)...) }
	switch {
	case p.Hidden < 1 || p.Hidden > 256:
		return bad("hidden = %d, want 1…256", p.Hidden)
	case p.Epochs < 1 || p.Epochs > 1000:
		return bad("epochs = %d, want 1…1000", p.Epochs)
	case p.SamplesPerCase < 2 || p.SamplesPerCase > 10_000_000:
		return bad("samples_per_case = %d, want 2…10000000", p.SamplesPerCase)
	case p.BatchSize < 1:
		return bad("batch_size = %d, want ≥ 1", p.BatchSize)
	case !(p.LearningRate > 0 && p.LearningRate < 10):
		return bad("learning_rate = %v, want (0, 10)", p.LearningRate)
	case !(p.L2 >= 0 && p.L2 < 1):
		return bad("l2 = %v, want [0, 1)", p.L2)
	case len(p.MeanRadiiMM) > 16:
		return bad("mean_radii_mm has %d radii, want at most 16", len(p.MeanRadiiMM))
	case !(p.MinComponentMM3 >= 0):
		return bad("min_component_mm3 = %v, want ≥ 0", p.MinComponentMM3)
	case !(p.MaxHoleMM2 >= 0 && p.MaxHoleMM2 <= 1e6):
		return bad("max_hole_mm2 = %v, want 0…1000000", p.MaxHoleMM2)
	}
	for _, r := range append([]float64{p.BaseRadiusMM, p.ExtremaRadiusMM, p.RingMeanRadiusMM, p.StdRadiusMM, p.OutwardMM, p.OutwardMeanMM}, p.MeanRadiiMM...) {
		if !(r >= 0 && r <= 50) {
			return bad("radius %v mm, want 0…50", r)
		}
	}
	for _, h := range []float64{p.RingMinHU, p.CandidateMinHU, p.BodyMinHU} {
		if !(h >= -1024 && h <= 4000) {
			return bad("HU threshold %v, want −1024…4000", h)
		}
	}
	return nil
}

// features lists the classifier inputs these params select.
func (p Params) features() Features {
	f := Features{BaseRadiusMM: p.BaseRadiusMM, RingMinHU: p.RingMinHU, CandidateMinHU: p.CandidateMinHU, MaxHoleMM2: p.MaxHoleMM2}
	f.List = append(f.List, Feature{Kind: FeatHU})
	for _, r := range p.MeanRadiiMM {
		f.List = append(f.List, Feature{Kind: FeatMean, RadiusMM: r})
	}
	f.List = append(f.List,
		Feature{Kind: FeatGradient},
		Feature{Kind: FeatMax, RadiusMM: p.ExtremaRadiusMM},
		Feature{Kind: FeatMin, RadiusMM: p.ExtremaRadiusMM},
		Feature{Kind: FeatRing},
		Feature{Kind: FeatRingMean, RadiusMM: p.RingMeanRadiusMM},
	)
	if p.StdRadiusMM > 0 {
		f.List = append(f.List, Feature{Kind: FeatStd, RadiusMM: p.StdRadiusMM})
	}
	if p.OutwardMM > 0 {
		f.List = append(f.List, Feature{Kind: FeatOutward, RadiusMM: p.OutwardMM})
	}
	if p.OutwardMeanMM > 0 {
		f.List = append(f.List, Feature{Kind: FeatOutwardMean, RadiusMM: p.OutwardMeanMM})
	}
	return f
}

// LoadParams reads a params TOML file over DefaultParams. Errors name the
// file and, for unknown keys, the key.
func LoadParams(path string) (Params, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return DefaultParams(), err
	}
	p, err := ParseParams(data)
	if err != nil {
		return p, fmt.Errorf("%s%w", path, err)
	}
	return p, nil
}

// ParseParams parses params TOML over DefaultParams and validates them.
// Error messages start with ":LINE: " or ": " so that a caller can put
// the file name in front.
func ParseParams(data []byte) (Params, error) {
	p := DefaultParams()
	md, err := toml.Decode(string(data), &p)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return p, fmt.Errorf(":%d: %s: %w", pe.Position.Line, firstLine(pe.Message), ErrParams)
		}
		return p, fmt.Errorf(": %s: %w", firstLine(err.Error()), ErrParams)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return p, fmt.Errorf(": unknown key %s: %w", strings.Join(keys, ", "), ErrParams)
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf(": %w", err)
	}
	return p, nil
}
