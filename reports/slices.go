package reports

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"path"
	"slices"
	"strings"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/stages/volume"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Contour colours of the case slices.
var (
	colourTruth     = color.RGBA{R: 0x00, G: 0xd0, B: 0x40, A: 0xff}
	colourCandidate = color.RGBA{R: 0xff, G: 0x30, B: 0x30, A: 0xff}
	colourBaseline  = color.RGBA{R: 0x30, G: 0x90, B: 0xff, A: 0xff}
)

// CT window of the slices (HU): a bone window.
const (
	windowLow  = -500.0
	windowHigh = 1300.0
)

// caseFiles are the stored NIfTI files of one case.
type caseFiles struct {
	image, truth, pred *cas.Entry
}

// findCaseFiles looks through the outs of every stage of a pipeline lock
// for the files of case id, by the nnU-Net layout medcad's pipeline
// writes: images{Tr,Ts}/<id>_0000.nii.gz (CT), labels{Tr,Ts}/<id>.nii.gz
// (truth) and any other <id>.nii.gz (the prediction).
func (l *Loader) findCaseFiles(ctx context.Context, ref string, lock *gitops.Lock, id string) (caseFiles, error) {
	var f caseFiles
	names := make([]string, 0, len(lock.Stages))
	for n := range lock.Stages {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		out := lock.Stages[n].Out
		mid, err := cas.ParseID(out)
		if err != nil {
			continue
		}
		if err := l.fetch(ctx, ref, mid); err != nil {
			return f, err
		}
		m, err := l.Store.ReadManifest(mid)
		if err != nil {
			return f, err
		}
		for i, e := range m.Entries {
			base := path.Base(e.Path)
			dir := path.Base(path.Dir(e.Path))
			switch {
			case (base == id+"_0000.nii.gz" || base == id+"_0000.nii") && f.image == nil:
				f.image = &m.Entries[i]
			case (base == id+".nii.gz" || base == id+".nii") && strings.HasPrefix(dir, "labels") && f.truth == nil:
				f.truth = &m.Entries[i]
			case (base == id+".nii.gz" || base == id+".nii") && !strings.HasPrefix(dir, "labels") && !strings.HasPrefix(dir, "images") && f.pred == nil:
				f.pred = &m.Entries[i]
			}
		}
	}
	return f, nil
}

func (l *Loader) readVolume(ctx context.Context, ref string, e *cas.Entry) (*volume.Volume, error) {
	if err := l.fetch(ctx, ref, e.ID); err != nil {
		return nil, err
	}
	v, err := volume.Read(l.Store.Path(e.ID))
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", ref, e.Path, err)
	}
	return v, nil
}

// ErrNoImages means the pipeline lock does not name the CT, truth and
// prediction files of a case.
var ErrNoImages = errors.New("no CT, truth and prediction files for the case")

// CaseSlices draws, for each of the n worst regressions of c (the first n
// paired cases when none regressed), the axial slice of the CT where the
// truth and the candidate's prediction disagree most, with the contours of
// the truth (green), the candidate's prediction (red) and the baseline's
// (blue, when its files are known). The files come from the pipeline
// locks of the two sides (Side.Lock); cases whose files are not found are
// skipped. The slices show anatomy: they belong in the project's own
// assets branch, never on a third-party host.
func (l *Loader) CaseSlices(ctx context.Context, in Input, c *Comparison, n int) ([]Plot, error) {
	if in.Candidate == nil || in.Candidate.Lock == nil || n <= 0 {
		return nil, nil
	}
	cases := c.Regressions
	if len(cases) == 0 {
		cases = c.Cases
	}
	var ids []string
	for _, cd := range cases[:min(n, len(cases))] {
		ids = append(ids, cd.Case)
	}
	if c.Base == nil {
		for _, cs := range in.Candidate.Eval.Cases[:min(n, len(in.Candidate.Eval.Cases))] {
			ids = append(ids, cs.ID)
		}
	}
	var out []Plot
	for _, id := range ids {
		p, err := l.caseSlice(ctx, in, id)
		if errors.Is(err, ErrNoImages) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (l *Loader) caseSlice(ctx context.Context, in Input, id string) (Plot, error) {
	cf, err := l.findCaseFiles(ctx, in.Candidate.Ref, in.Candidate.Lock, id)
	if err != nil {
		return Plot{}, err
	}
	if cf.image == nil || cf.truth == nil || cf.pred == nil {
		return Plot{}, fmt.Errorf("case %s: %w", id, ErrNoImages)
	}
	ct, err := l.readVolume(ctx, in.Candidate.Ref, cf.image)
	if err != nil {
		return Plot{}, err
	}
	truth, err := l.readVolume(ctx, in.Candidate.Ref, cf.truth)
	if err != nil {
		return Plot{}, err
	}
	pred, err := l.readVolume(ctx, in.Candidate.Ref, cf.pred)
	if err != nil {
		return Plot{}, err
	}
	if truth.Dim != ct.Dim || pred.Dim != ct.Dim {
		return Plot{}, fmt.Errorf("case %s: CT, truth and prediction differ in shape: %w", id, ErrNoImages)
	}
	var basePred *volume.Volume
	if in.Base != nil && in.Base.Lock != nil {
		if bf, err := l.findCaseFiles(ctx, in.Base.Ref, in.Base.Lock, id); err == nil && bf.pred != nil {
			if v, err := l.readVolume(ctx, in.Base.Ref, bf.pred); err == nil && v.Dim == ct.Dim {
				basePred = v
			}
		}
	}
	k := worstSlice(truth, pred)
	img := renderSlice(ct, k, []contour{{truth, colourTruth}, {basePred, colourBaseline}, {pred, colourCandidate}})
	p := plot.New()
	legend := "truth green, candidate red"
	if basePred != nil {
		legend += ", baseline blue"
	}
	p.Title.Text = fmt.Sprintf("case %s, slice %d of %d\n%s", id, k, ct.Dim[2], legend)
	p.HideAxes()
	b := img.Bounds()
	p.Add(plotter.NewImage(img, 0, 0, float64(b.Dx()), float64(b.Dy())))
	w := vg.Length(b.Dx()) * 0.75
	h := vg.Length(b.Dy())*0.75 + 40
	png, err := encodePNG(p, w, h)
	if err != nil {
		return Plot{}, err
	}
	return Plot{Name: "case-" + fileSafe(id) + ".png", Title: fmt.Sprintf("Case %s, slice %d: truth and prediction contours", id, k), PNG: png}, nil
}

// worstSlice is the axial slice k where truth and prediction disagree in
// the most voxels (the largest truth area when they agree everywhere).
func worstSlice(truth, pred *volume.Volume) int {
	nx, ny, nz := truth.Dim[0], truth.Dim[1], truth.Dim[2]
	best, bestK, bestArea, areaK := -1, 0, -1, 0
	for k := range nz {
		diff, area := 0, 0
		for j := range ny {
			for i := range nx {
				n := truth.Index(i, j, k)
				t, p := truth.At(n) != 0, pred.At(n) != 0
				if t != p {
					diff++
				}
				if t {
					area++
				}
			}
		}
		if diff > best {
			best, bestK = diff, k
		}
		if area > bestArea {
			bestArea, areaK = area, k
		}
	}
	if best == 0 {
		return areaK
	}
	return bestK
}

type contour struct {
	mask *volume.Volume // nil: not drawn
	col  color.RGBA
}

// renderSlice draws slice k of the CT in a bone window, scaled up to about
// 384 pixels, with the borders of each mask (mask voxels with a
// 4-neighbour outside it) in its colour; row j = 0 is at the bottom.
func renderSlice(ct *volume.Volume, k int, contours []contour) *image.RGBA {
	nx, ny := ct.Dim[0], ct.Dim[1]
	s := max(1, 384/max(nx, ny))
	img := image.NewRGBA(image.Rect(0, 0, nx*s, ny*s))
	set := func(i, j int, c color.RGBA) {
		for dy := range s {
			for dx := range s {
				img.SetRGBA(i*s+dx, (ny-1-j)*s+dy, c)
			}
		}
	}
	for j := range ny {
		for i := range nx {
			hu := ct.At(ct.Index(i, j, k))
			g := uint8(math.Round(255 * math.Min(1, math.Max(0, (hu-windowLow)/(windowHigh-windowLow)))))
			set(i, j, color.RGBA{R: g, G: g, B: g, A: 0xff})
		}
	}
	in := func(m *volume.Volume, i, j int) bool {
		return i >= 0 && j >= 0 && i < nx && j < ny && m.At(m.Index(i, j, k)) != 0
	}
	for _, c := range contours {
		if c.mask == nil {
			continue
		}
		for j := range ny {
			for i := range nx {
				if in(c.mask, i, j) && (!in(c.mask, i-1, j) || !in(c.mask, i+1, j) || !in(c.mask, i, j-1) || !in(c.mask, i, j+1)) {
					set(i, j, c.col)
				}
			}
		}
	}
	return img
}

// lockOf parses a medcad.lock; a missing or bad lock gives nil (the
// slices are then left out).
func lockOf(name string, data []byte) *gitops.Lock {
	l, err := gitops.ParseLock(name, data)
	if err != nil || strings.TrimSpace(string(data)) == "" {
		return nil
	}
	return l
}
