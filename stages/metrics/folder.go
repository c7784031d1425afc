package metrics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/medcad/medcad/stages/volume"
)

// Pair is a ground-truth and a predicted label map read from files.
type Pair struct {
	TruthPath, PredPath string
	Truth, Pred         *volume.Volume
}

// ReadPair reads both label maps; errors name the file.
func ReadPair(truthPath, predPath string) (*Pair, error) {
	truth, err := volume.Read(truthPath)
	if err != nil {
		return nil, err
	}
	pred, err := volume.Read(predPath)
	if err != nil {
		return nil, err
	}
	return &Pair{TruthPath: truthPath, PredPath: predPath, Truth: truth, Pred: pred}, nil
}

// Evaluate runs Evaluate on the pair; errors name the file at fault.
func (p *Pair) Evaluate(ctx context.Context, opts Options) (Result, error) {
	if err := CheckLabelMap(p.Truth); err != nil {
		return Result{}, fmt.Errorf("%s: %w", p.TruthPath, err)
	}
	if err := CheckLabelMap(p.Pred); err != nil {
		return Result{}, fmt.Errorf("%s: %w", p.PredPath, err)
	}
	if err := volume.SameGrid(p.Truth, p.Pred, GridTolerance); err != nil {
		return Result{}, fmt.Errorf("%s and %s are not on the same grid: %w", p.TruthPath, p.PredPath, err)
	}
	r, err := Evaluate(ctx, p.Truth, p.Pred, opts)
	if errors.Is(err, ErrLabelAbsent) {
		return r, fmt.Errorf("label %d is in neither %s nor %s: %w", opts.Label, p.TruthPath, p.PredPath, ErrLabelAbsent)
	}
	return r, err
}

// Dirs matches a folder of ground truths with a folder of predictions by
// case name: the file name without .nii or .nii.gz.
type Dirs struct {
	TruthDir, PredDir string
	// Cases are the names of the ground truths, sorted: the cases to
	// evaluate.
	Cases []string
	// Unmatched counts the predictions without a ground truth; they are
	// not evaluated.
	Unmatched int

	truths, preds map[string]string
}

// PairDirs lists the NIfTI files of both folders. A folder with no ground
// truth, or a case there twice (.nii and .nii.gz), is an error.
func PairDirs(truthDir, predDir string) (*Dirs, error) {
	truths, err := niftiFiles(truthDir)
	if err != nil {
		return nil, err
	}
	preds, err := niftiFiles(predDir)
	if err != nil {
		return nil, err
	}
	if len(truths) == 0 {
		return nil, fmt.Errorf("%s: no .nii or .nii.gz files", truthDir)
	}
	d := &Dirs{TruthDir: truthDir, PredDir: predDir, truths: truths, preds: preds, Cases: make([]string, 0, len(truths))}
	for n := range truths {
		d.Cases = append(d.Cases, n)
	}
	slices.Sort(d.Cases)
	for n := range preds {
		if _, ok := truths[n]; !ok {
			d.Unmatched++
		}
	}
	return d, nil
}

// Evaluate evaluates every case and aggregates the metrics of those
// evaluated. A case that cannot be evaluated (no prediction, unreadable,
// not comparable) has its Error set and stays out of the aggregate;
// onCase, if not nil, sees each case once done. Only a cancelled ctx
// makes it fail.
func (d *Dirs) Evaluate(ctx context.Context, opts Options, onCase func(Case)) (*Eval, error) {
	e := &Eval{TolerancesMM: opts.TolerancesMM, Cases: make([]Case, 0, len(d.Cases))}
	var good []Result
	for _, n := range d.Cases {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c := Case{ID: n}
		r, err := d.evaluateCase(ctx, n, opts)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			c.Error = err.Error()
		default:
			c.Result = &r
			good = append(good, r)
		}
		e.Cases = append(e.Cases, c)
		if onCase != nil {
			onCase(c)
		}
	}
	e.Aggregate = Aggregate(good, MetricNames(opts.TolerancesMM))
	return e, nil
}

func (d *Dirs) evaluateCase(ctx context.Context, name string, opts Options) (Result, error) {
	truthPath, predPath := d.truths[name], d.preds[name]
	if predPath == "" {
		return Result{}, fmt.Errorf("%s: no prediction %s.nii[.gz] in %s", truthPath, name, d.PredDir)
	}
	p, err := ReadPair(truthPath, predPath)
	if err != nil {
		return Result{}, err
	}
	return p.Evaluate(ctx, opts)
}

// caseName strips the NIfTI extension: the name that matches truth and
// prediction.
func caseName(file string) (string, bool) {
	for _, ext := range []string{".nii.gz", ".nii"} {
		if name, ok := strings.CutSuffix(file, ext); ok && name != "" {
			return name, true
		}
	}
	return "", false
}

// niftiFiles maps case name to file path for the NIfTI files of dir.
func niftiFiles(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for _, e := range entries {
		name, ok := caseName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		if prev, dup := files[name]; dup {
			return nil, fmt.Errorf("%s: case %q is there twice (%s and %s)", dir, name, filepath.Base(prev), e.Name())
		}
		files[name] = filepath.Join(dir, e.Name())
	}
	return files, nil
}
