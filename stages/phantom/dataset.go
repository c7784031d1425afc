package phantom

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/medcad/medcad/internal/atomicfile"
	"github.com/medcad/medcad/stages/nnunet"
	"github.com/medcad/medcad/stages/volume"
)

// Output formats of WriteDataset.
const (
	FormatDICOM  = "dicom"  // DIR/<case>/CT/IM00001.dcm… and DIR/<case>/label.nii.gz
	FormatNNUNet = "nnunet" // nnU-Net v2 raw: dataset.json, imagesTr/, labelsTr/
)

// DatasetOptions configure WriteDataset.
type DatasetOptions struct {
	Options
	Dir    string
	Cases  int
	Format string // FormatDICOM or FormatNNUNet (default)
	// Progress, when set, is called after each case is written.
	Progress func(done, total int)
}

// CaseSummary is what WriteDataset reports about one case (no PHI).
type CaseSummary struct {
	ID           string     `json:"id"`
	Shape        [3]int     `json:"shape"`
	SpacingMM    [3]float64 `json:"spacing_mm"`
	BoneVoxels   int        `json:"bone_voxels"`
	NoiseHU      float64    `json:"noise_hu"`
	Osteoporotic bool       `json:"osteoporotic"`
	Metal        bool       `json:"metal"`
}

// WriteDataset generates opts.Cases cases (indices 0…Cases−1) into
// opts.Dir, which must be new or empty. Each file appears complete or not at all; a case folder of the
// DICOM format is assembled under a temporary name and renamed into place.
func WriteDataset(ctx context.Context, opts DatasetOptions) ([]CaseSummary, error) {
	if _, err := opts.Options.normalized(); err != nil {
		return nil, err
	}
	if opts.Format == "" {
		opts.Format = FormatNNUNet
	}
	if opts.Format != FormatDICOM && opts.Format != FormatNNUNet {
		return nil, fmt.Errorf("format %q (want dicom or nnunet): %w", opts.Format, ErrOptions)
	}
	if opts.Cases < 1 {
		return nil, fmt.Errorf("%d cases (want at least 1): %w", opts.Cases, ErrOptions)
	}
	// Never mix with older files: a stale case would silently join the set.
	if entries, err := os.ReadDir(opts.Dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s: not empty; phantoms go to a new or empty folder: %w", opts.Dir, ErrOptions)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	if opts.Format == FormatNNUNet {
		for _, sub := range []string{"imagesTr", "labelsTr"} {
			if err := os.MkdirAll(filepath.Join(opts.Dir, sub), 0o755); err != nil {
				return nil, err
			}
		}
	}
	var out []CaseSummary
	for i := range opts.Cases {
		c, err := Generate(ctx, opts.Options, i)
		if err != nil {
			return out, err
		}
		if opts.Format == FormatNNUNet {
			err = writeNNUNetCase(opts.Dir, c)
		} else {
			err = writeDICOMCase(opts.Dir, c)
		}
		if err != nil {
			return out, fmt.Errorf("case %s: %w", c.ID, err)
		}
		bone := 0
		for _, v := range c.Label.U8 {
			bone += int(v)
		}
		out = append(out, CaseSummary{ID: c.ID, Shape: c.CT.Dim, SpacingMM: c.Facts.Spacing, BoneVoxels: bone,
			NoiseHU: c.Facts.NoiseHU, Osteoporotic: c.Facts.Osteoporotic, Metal: c.Facts.Metal})
		if opts.Progress != nil {
			opts.Progress(i+1, opts.Cases)
		}
	}
	if opts.Format == FormatNNUNet {
		rules := opts.LabelRules
		if rules == "" {
			rules = RulesV2
		}
		dj := nnunet.DatasetJSON{
			Name:         "medcad phantom",
			Description:  fmt.Sprintf("synthetic CT bone phantoms, seed %d, size %s, label rules %s", opts.Seed, sizeOr(opts.Size), rules),
			ChannelNames: map[string]string{"0": "CT"},
			Labels:       map[string]int{"background": 0, "bone": 1},
			NumTraining:  opts.Cases,
			FileEnding:   ".nii.gz",
			LabelRules:   rules,
		}
		b, err := json.MarshalIndent(dj, "", "  ")
		if err != nil {
			return out, err
		}
		if err := atomicfile.WriteFile(filepath.Join(opts.Dir, "dataset.json"), append(b, '\n'), 0o644); err != nil {
			return out, err
		}
	}
	return out, nil
}

func sizeOr(s Size) Size {
	if s == "" {
		return Small
	}
	return s
}

func writeNNUNetCase(dir string, c *Case) error {
	if err := volume.Write(filepath.Join(dir, "imagesTr", c.ID+"_0000.nii.gz"), c.CT); err != nil {
		return err
	}
	return volume.Write(filepath.Join(dir, "labelsTr", c.ID+".nii.gz"), c.Label)
}

// writeDICOMCase writes DIR/<id>/CT/ and DIR/<id>/label.nii.gz through a
// temporary folder, replacing an older folder of the same name.
func writeDICOMCase(dir string, c *Case) error {
	final := filepath.Join(dir, c.ID)
	tmp, err := os.MkdirTemp(dir, "."+c.ID+".tmp*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := WriteDICOM(filepath.Join(tmp, "CT"), c); err != nil {
		return err
	}
	if err := volume.Write(filepath.Join(tmp, "label.nii.gz"), c.Label); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	old := ""
	if _, err := os.Stat(final); err == nil {
		old = tmp + ".old"
		if err := os.Rename(final, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}
