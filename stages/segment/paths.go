package segment

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/medcad/medcad/stages/volume"
)

// FileResult reports one input of MapFiles.
type FileResult struct {
	In         string `json:"in"`
	Out        string `json:"out,omitempty"`
	BoneVoxels int    `json:"bone_voxels,omitempty"`
	Error      string `json:"error,omitempty"`
}

// OutputName is the mask name for CT file name: nnU-Net's convention,
// "<case>_0000.nii.gz" → "<case>.nii.gz"; other names are kept.
func OutputName(name string) string {
	if c, ok := strings.CutSuffix(name, "_0000.nii.gz"); ok {
		return c + ".nii.gz"
	}
	if c, ok := strings.CutSuffix(name, ".nii"); ok {
		return c + ".nii.gz"
	}
	return name
}

// Segmenter turns a CT volume into a mask on the same grid (Predict with a
// model, Baseline with a threshold, or an external model).
type Segmenter func(context.Context, *volume.Volume) (*volume.Volume, error)

// MapOptions configure MapFiles.
type MapOptions struct {
	In, Out string    // a NIfTI file and mask file, or two folders
	Segment Segmenter // what to run on each CT
	Done    func(FileResult)
}

// MapFiles applies opts.Segment to the CT file opts.In (writing the mask
// to opts.Out) or, when In is a folder, to each of its *.nii / *.nii.gz
// files (writing Out/OutputName(name)). A file that fails is reported in
// its result and the others go on; the error counts the failures. Masks
// are written atomically.
func MapFiles(ctx context.Context, opts MapOptions) ([]FileResult, error) {
	in, out, seg, done := opts.In, opts.Out, opts.Segment, opts.Done
	st, err := os.Stat(in)
	if err != nil {
		return nil, err
	}
	var pairs [][2]string
	if st.IsDir() {
		entries, err := os.ReadDir(in)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			n := e.Name()
			if e.Type().IsRegular() && (strings.HasSuffix(n, ".nii.gz") || strings.HasSuffix(n, ".nii")) {
				pairs = append(pairs, [2]string{filepath.Join(in, n), filepath.Join(out, OutputName(n))})
			}
		}
		if len(pairs) == 0 {
			return nil, fmt.Errorf("%s: no .nii or .nii.gz files", in)
		}
		sort.Slice(pairs, func(i, j int) bool { return pairs[i][0] < pairs[j][0] })
		if err := os.MkdirAll(out, 0o755); err != nil {
			return nil, err
		}
	} else {
		if fi, err := os.Stat(out); err == nil && fi.IsDir() {
			out = filepath.Join(out, OutputName(filepath.Base(in)))
		}
		pairs = [][2]string{{in, out}}
	}
	var res []FileResult
	failed := 0
	for _, p := range pairs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		r := FileResult{In: p[0]}
		n, err := mapFile(ctx, p[0], p[1], seg)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			failed++
			r.Error = err.Error()
		} else {
			r.Out, r.BoneVoxels = p[1], n
		}
		res = append(res, r)
		if done != nil {
			done(r)
		}
	}
	if failed > 0 {
		if len(pairs) == 1 {
			return res, fmt.Errorf("%s", res[0].Error)
		}
		return res, fmt.Errorf("%d of %d files failed", failed, len(pairs))
	}
	return res, nil
}

func mapFile(ctx context.Context, in, out string, seg Segmenter) (int, error) {
	ct, err := volume.Read(in)
	if err != nil {
		return 0, err
	}
	if ct.DType == volume.Uint8 {
		return 0, fmt.Errorf("%s: uint8 voxels look like a label map, not CT", in)
	}
	mask, err := seg(ctx, ct)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", in, err)
	}
	n := 0
	for _, v := range mask.U8 {
		n += int(v)
	}
	return n, volume.Write(out, mask)
}
