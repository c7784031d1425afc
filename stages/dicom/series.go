package dicom

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/medcad/medcad/stages/volume"
	"golang.org/x/sync/errgroup"
)

// ErrIrregular means a series has uneven spacing, missing or duplicate
// slices or a tilted gantry, and Options.Strict made that an error.
var ErrIrregular = errors.New("irregular series")

// ErrInconsistent means the images of a series cannot form one volume
// (their size changes, or geometry is missing).
var ErrInconsistent = errors.New("inconsistent series")

// Options control series assembly.
type Options struct {
	// Strict makes irregularities (uneven spacing, missing or duplicate
	// slices, gantry tilt) errors instead of warnings.
	Strict bool
	// Resample puts an irregular series on a uniform orthogonal grid
	// (spacing = the median slice gap) by linear interpolation.
	Resample bool
	// AllImages converts, as dcm2niix does, the images that are no CT
	// volume to segment: localizers (each its own series, marked
	// Series.Localizer), Segmentation objects (uint8 labels) and RT Dose
	// grids (float32 dose). Without it, as pipelines that assemble CT
	// want, they are left out with a note in Scan.Skipped.
	AllImages bool
}

// Series is one volume: the images of a SeriesInstanceUID that share an
// orientation, sorted along the slice normal.
type Series struct {
	// ID names the series within one Discover result ("series-01", …),
	// ordered by series number; it holds nothing from the headers.
	ID             string
	Modality       string
	SeriesNumber   int
	TransferSyntax string // UID of the first file; see TransferSyntaxName
	// Slices is the number of images assembled (after dropping
	// duplicates); Dim[2] differs from it after resampling.
	Slices int
	Dim    [3]int // columns, rows, slices of the output volume
	// Spacing is the output voxel size in mm (columns, rows, slices).
	Spacing [3]float64
	// Affine is the voxel-to-RAS+ transform of the output volume, rows
	// stored bottom-up as dcm2niix writes them.
	Affine volume.Affine
	// DType is the voxel type of Volume: Int16 (Hounsfield units for CT),
	// Float32 for other modalities whose rescale gives fractions or that
	// hold 32-bit samples (RT Dose: stored value × DoseGridScaling), Uint8
	// for 1-bit labels (Segmentation).
	DType volume.DType
	// Orientation is the axis code of the volume (nibabel's aff2axcodes,
	// e.g. "LAS" for an axial scan as dcm2niix writes it).
	Orientation string
	// Warnings describe irregularities, in words without tag values.
	Warnings []string
	// Files are the paths of the series' files in slice order.
	Files []string
	// Err, when set, says why the series cannot be converted.
	Err error
	// Localizer marks a series of LOCALIZER images (scouts: projections,
	// not slices of a volume); only with Options.AllImages.
	Localizer bool
	// Segment is a Segmentation's ReferencedSegmentNumber: each segment
	// of a SEG object is its own series of 0/1 labels.
	Segment int

	opts      Options
	studyUID  string
	seriesUID string
	slices    []sliceRef
	resample  bool
	positions []float64 // slice positions along the normal, sorted
	lps       volume.Affine
}

// sliceRef is one frame of one file.
type sliceRef struct {
	in    *Instance
	frame int
	d     float64 // position along the normal
}

// UIDs returns the series' original StudyInstanceUID and SeriesInstanceUID.
// They identify the patient's study: pass them to a de-identifier (deid),
// never to a log, an error or a file.
func (s *Series) UIDs() (study, series string) { return s.studyUID, s.seriesUID }

// orientKey quantises an orientation for grouping.
func orientKey(o [6]float64) string {
	var b strings.Builder
	for _, x := range o {
		fmt.Fprintf(&b, "%.3f,", x+0) // +0 folds -0 into 0
	}
	return strings.ReplaceAll(b.String(), "-0.000", "0.000")
}

// assemble groups instances into series.
func assemble(insts []*Instance, opts Options) ([]*Series, []Note) {
	var notes []Note
	groups := map[string]*Series{}
	var order []string
	for _, in := range insts {
		if !opts.AllImages {
			switch {
			case in.Segmentation:
				notes = append(notes, Note{Path: in.Path, Reason: "a Segmentation (SEG) object: labels, not an image"})
				continue
			case in.SOPClassUID == sopRTDose:
				notes = append(notes, Note{Path: in.Path, Reason: "an RT Dose grid, not an image"})
				continue
			}
		}
		localizers := 0
		for f, fr := range in.Frames {
			if fr.Localizer && !opts.AllImages {
				localizers++
				continue
			}
			key := fmt.Sprintf("%s|%s|%v|%d", in.seriesUID, orientKey(fr.Orientation), fr.Localizer, fr.Segment)
			if in.mosaic != nil {
				key += "|" + in.Path // each mosaic is one volume (of a time series)
			}
			s, ok := groups[key]
			if !ok {
				s = &Series{Modality: in.Modality, SeriesNumber: in.SeriesNumber, TransferSyntax: in.TransferSyntax,
					Localizer: fr.Localizer, Segment: fr.Segment,
					studyUID: in.studyUID, seriesUID: in.seriesUID, opts: opts}
				groups[key] = s
				order = append(order, key)
			}
			s.slices = append(s.slices, sliceRef{in: in, frame: f})
		}
		if localizers > 0 {
			notes = append(notes, Note{Path: in.Path, Reason: "LOCALIZER image, not part of a volume"})
		}
	}
	series := make([]*Series, 0, len(order))
	for _, k := range order {
		series = append(series, groups[k])
	}
	slices.SortStableFunc(series, func(a, b *Series) int {
		// Localizers last: a volume keeps the ID it has when they are
		// left out (as data add does).
		return cmp.Or(boolCompare(a.Localizer, b.Localizer), cmp.Compare(a.SeriesNumber, b.SeriesNumber), cmp.Compare(a.seriesUID, b.seriesUID),
			cmp.Compare(orientKey(a.slices[0].geom().Orientation), orientKey(b.slices[0].geom().Orientation)),
			cmp.Compare(a.Segment, b.Segment))
	})
	for i, s := range series {
		s.ID = fmt.Sprintf("series-%02d", i+1)
		s.geometry()
	}
	warnTimeSeries(series)
	return series, notes
}

// boolCompare orders false before true.
func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func (r sliceRef) geom() Frame { return r.in.Frames[r.frame] }

func (s *Series) warn(format string, args ...any) {
	s.Warnings = append(s.Warnings, fmt.Sprintf(format, args...))
}

// irregular records an irregularity: a warning, or the series' error when
// strict. at is the file where it shows first ("" when it is the whole
// series'): the error names it, the warning (stored with a dataset) does
// not.
func (s *Series) irregular(at, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.Warnings = append(s.Warnings, msg)
	if s.opts.Strict && s.Err == nil {
		if at != "" {
			msg = at + ": " + msg
		}
		s.Err = fmt.Errorf("%w: %s (--strict)", ErrIrregular, msg)
	}
}

func sub(a, b [3]float64) [3]float64 { return [3]float64{a[0] - b[0], a[1] - b[1], a[2] - b[2]} }
func dot(a, b [3]float64) float64    { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }
func norm(a [3]float64) float64      { return math.Sqrt(dot(a, a)) }
func scale(a [3]float64, k float64) [3]float64 {
	return [3]float64{a[0] * k, a[1] * k, a[2] * k}
}
func cross(a, b [3]float64) [3]float64 {
	return [3]float64{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}

// geometry sorts the slices and computes the grid, warnings and errors.
func (s *Series) geometry() {
	first := s.slices[0]
	f0 := first.geom()
	rows, cols := first.in.Rows, first.in.Columns
	s.Files = s.files()
	seen := map[string]bool{}
	for _, r := range s.slices {
		for _, w := range r.in.Warnings {
			if !seen[w] {
				seen[w] = true
				s.warn("%s", w)
			}
		}
	}
	// A format medcad cannot decode (colour, 32 bits, a syntax) is the
	// reason to give, before anything about the geometry.
	if err := first.in.checkPixelFormat(); err != nil {
		s.Err = fmt.Errorf("%s: %w", first.in.Path, err)
		return
	}
	for _, r := range s.slices {
		if r.in.Rows != rows || r.in.Columns != cols {
			s.Err = fmt.Errorf("%w: image size changes within the series (%d×%d in %s, %d×%d in %s)",
				ErrInconsistent, cols, rows, first.in.Path, r.in.Columns, r.in.Rows, r.in.Path)
			return
		}
	}
	oneFile := true
	for _, r := range s.slices {
		oneFile = oneFile && r.in == first.in
	}
	for _, r := range s.slices {
		fr := r.geom()
		if !fr.HasPosition || !fr.HasOrient {
			if oneFile {
				s.imageAxes(fr)
				return
			}
			s.Err = fmt.Errorf("%w: %s has no ImagePositionPatient or ImageOrientationPatient", ErrInconsistent, r.in.Path)
			return
		}
	}
	if !f0.HasSpacing {
		s.warn("no PixelSpacing: 1 mm assumed")
		f0.Spacing = [2]float64{1, 1}
	}
	x := [3]float64(f0.Orientation[:3])
	y := [3]float64(f0.Orientation[3:])
	nx, ny := norm(x), norm(y)
	if nx < 0.5 || ny < 0.5 || math.Abs(dot(x, y)) > 0.01*nx*ny {
		s.Err = fmt.Errorf("%w: %s: ImageOrientationPatient is not two orthogonal directions", ErrInconsistent, first.in.Path)
		return
	}
	x, y = scale(x, 1/nx), scale(y, 1/ny)
	n := cross(x, y)
	n = scale(n, 1/norm(n))
	for i := range s.slices {
		s.slices[i].d = dot(s.slices[i].geom().Position, n)
	}
	slices.SortStableFunc(s.slices, func(a, b sliceRef) int {
		return cmp.Or(cmp.Compare(a.d, b.d), cmp.Compare(a.in.Path, b.in.Path), cmp.Compare(a.frame, b.frame))
	})

	// Duplicate positions: keep the first of each.
	const dupTol = 0.01 // mm
	kept := s.slices[:1]
	dups, firstDup := 0, ""
	for _, r := range s.slices[1:] {
		if r.d-kept[len(kept)-1].d < dupTol && norm(sub(r.geom().Position, kept[len(kept)-1].geom().Position)) < dupTol {
			if dups++; dups == 1 {
				firstDup = r.in.Path
			}
			continue
		}
		kept = append(kept, r)
	}
	s.slices = kept
	if dups > 0 {
		s.irregular(firstDup, "duplicate slice positions: %d image(s) dropped", dups)
	}
	s.Slices = len(s.slices)
	s.Files = s.files()
	s.positions = make([]float64, len(s.slices))
	for i, r := range s.slices {
		s.positions[i] = r.d
	}

	// Slice spacing from the sorted positions.
	pos0 := s.slices[0].geom().Position
	var step [3]float64
	spacing := sliceSpacing(first.in, f0)
	if len(s.slices) > 1 {
		last := s.slices[len(s.slices)-1].geom().Position
		step = scale(sub(last, pos0), 1/float64(len(s.slices)-1))
		gaps := make([]float64, len(s.slices)-1)
		for i := range gaps {
			gaps[i] = s.positions[i+1] - s.positions[i]
		}
		spacing = median(gaps)
		tol := 0.01*spacing + 0.005
		missing, worst := 0, 0.0
		gapAt, unevenAt := "", "" // the file after the first such gap
		for i, g := range gaps {
			m := math.Round(g / spacing)
			switch {
			case m >= 2 && math.Abs(g-m*spacing) <= tol:
				if missing == 0 {
					gapAt = s.slices[i+1].in.Path
				}
				missing += int(m) - 1
			case math.Abs(g-spacing) > tol:
				if worst == 0 {
					unevenAt = s.slices[i+1].in.Path
				}
				worst = max(worst, math.Abs(g-spacing))
			}
		}
		if missing > 0 {
			s.irregular(gapAt, "missing slices: %d gap(s) in a %.2f mm grid", missing, spacing)
			s.resample = true
		}
		if worst > 0 {
			s.irregular(unevenAt, "uneven slice spacing: max deviation %.2f mm from %.2f mm", worst, spacing)
			s.resample = true
		}
		// Gantry tilt: the slices advance off the normal.
		if l := norm(sub(last, pos0)); l > 0 {
			cos := math.Min(1, math.Abs(dot(sub(last, pos0), n))/l)
			if angle := math.Acos(cos) * 180 / math.Pi; angle > 0.1 {
				s.irregular("", "gantry tilt %.1f°: the slices are sheared", angle)
				s.resample = true
			}
		}
	} else {
		step = scale(n, spacing)
	}
	s.resample = s.resample && s.opts.Resample
	if s.resample {
		step = scale(n, spacing)
		s.warn("resampled to a uniform %.2f mm grid along the slice normal", spacing)
	}

	// Voxel-to-LPS, then rows flipped and LPS turned into RAS+.
	colStep := scale(x, f0.Spacing[1])
	rowStep := scale(y, f0.Spacing[0])
	var lps volume.Affine
	for r := range 3 {
		lps[r] = [4]float64{colStep[r], rowStep[r], step[r], pos0[r]}
	}
	lps[3][3] = 1
	s.lps = lps
	nk := len(s.slices)
	if s.resample {
		span := s.positions[len(s.positions)-1] - s.positions[0]
		if span/spacing > float64(4*len(s.slices)) {
			s.Err = fmt.Errorf("%w: resampling would make %.0f slices of %.3g mm from %d images", ErrInconsistent, span/spacing, spacing, len(s.slices))
			return
		}
		nk = int(math.Round(span/spacing)) + 1
	}
	s.Dim = [3]int{cols, rows, nk}
	var ras volume.Affine
	for r := range 3 {
		sign := 1.0
		if r < 2 {
			sign = -1
		}
		ras[r][0] = sign * lps[r][0]
		ras[r][1] = -sign * lps[r][1]
		ras[r][2] = sign * lps[r][2]
		ras[r][3] = sign * (lps[r][3] + float64(rows-1)*lps[r][1])
	}
	ras[3][3] = 1
	s.Affine = ras
	s.Spacing = ras.Spacing()
	s.Orientation = axisCodes(ras)
	s.setDType()
}

// imageAxes is the geometry of one file without patient geometry (a
// radiograph, a secondary capture, an angiography or nuclear medicine
// multi-frame): rows bottom-up, frames in file order, and a diagonal
// affine, as dcm2niix writes it. fr is one of its frames.
func (s *Series) imageAxes(fr Frame) {
	in := s.slices[0].in
	s.warn("no ImagePositionPatient/ImageOrientationPatient: image axes used as RAS+")
	sp := [2]float64{1, 1}
	if fr.HasSpacing {
		sp = fr.Spacing
	} else {
		s.warn("no PixelSpacing: 1 mm assumed")
	}
	sort.SliceStable(s.slices, func(i, j int) bool { return s.slices[i].frame < s.slices[j].frame })
	n := len(s.slices)
	s.Slices, s.Files, s.positions = n, []string{in.Path}, make([]float64, n)
	for k := range s.positions {
		s.positions[k] = float64(k)
	}
	s.Dim = [3]int{in.Columns, in.Rows, n}
	s.Affine = volume.Identity([3]float64{sp[1], sp[0], sliceSpacing(in, fr)})
	s.Spacing = s.Affine.Spacing()
	s.Orientation = axisCodes(s.Affine)
	s.setDType()
}

// sliceSpacing is the slice spacing of a single image: SpacingBetweenSlices,
// else SliceThickness, else 1 mm.
func sliceSpacing(in *Instance, f Frame) float64 {
	switch {
	case in.SpacingBetweenSlices > 0:
		return in.SpacingBetweenSlices
	case f.Thickness > 0:
		return f.Thickness
	}
	return 1
}

// setDType picks int16; uint8 for 1-bit labels (Segmentation); float32 for a
// non-CT series of 32-bit samples or whose rescale gives fractions.
func (s *Series) setDType() {
	in := s.slices[0].in
	s.DType = volume.Int16
	switch {
	case in.BitsAllocated == 1:
		s.DType = volume.Uint8
	case strings.EqualFold(s.Modality, "CT"):
	case in.BitsAllocated == 32:
		s.DType = volume.Float32
	default:
		for _, r := range s.slices {
			if fr := r.geom(); fr.Slope != math.Trunc(fr.Slope) || fr.Intercept != math.Trunc(fr.Intercept) {
				s.DType = volume.Float32
				break
			}
		}
	}
}

// files lists the series' files once each, in slice order.
func (s *Series) files() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range s.slices {
		if !seen[r.in.Path] {
			seen[r.in.Path] = true
			out = append(out, r.in.Path)
		}
	}
	return out
}

func median(xs []float64) float64 {
	c := slices.Clone(xs)
	slices.Sort(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

// axisCodes returns the RAS+ direction each voxel axis points to.
func axisCodes(a volume.Affine) string {
	var b strings.Builder
	for c := range 3 {
		best := 0
		for r := 1; r < 3; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[best][c]) {
				best = r
			}
		}
		pos, neg := "RAS"[best], "LPI"[best]
		if a[best][c] >= 0 {
			b.WriteByte(pos)
		} else {
			b.WriteByte(neg)
		}
	}
	return b.String()
}

// Volume reads and decodes the series' pixel data: stored value
// (sign-extended from BitsStored when PixelRepresentation = 1) ×
// RescaleSlope + RescaleIntercept, which for CT is Hounsfield units. The
// volume's type is s.DType; in int16, values that do not fit are clamped
// and fractional ones rounded, each adding a warning to s.Warnings.
func (s *Series) Volume(ctx context.Context) (*volume.Volume, error) {
	if s.Err != nil {
		return nil, s.Err
	}
	rows, cols := s.Dim[1], s.Dim[0]
	plane := rows * cols
	nk := len(s.slices)
	out := volume.New(s.DType, [3]int{cols, rows, nk}, s.Affine)
	// Frames grouped by file, so that each file is read once.
	byFile := map[*Instance][]int{}
	var files []*Instance
	for k, r := range s.slices {
		if _, ok := byFile[r.in]; !ok {
			files = append(files, r.in)
		}
		byFile[r.in] = append(byFile[r.in], k)
	}
	var (
		mu    sync.Mutex
		stats huStats
	)
	luts := newLUTCache()
	// Files are decoded in parallel, and the frames of each file by
	// frameWorkers goroutines: one per core in all, so that a single
	// multi-frame file uses every core while memory stays one file per
	// file worker and one frame per goroutine.
	procs := runtime.GOMAXPROCS(0)
	fileWorkers := min(procs, len(files))
	frameWorkers := max(1, procs/fileWorkers)
	// The first failure stops the feed: no file is decoded after it.
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan *Instance)
	for range fileWorkers {
		g.Go(func() error {
			var scratch []uint16
			var buf []byte
			for in := range work {
				st, err := s.decodeFile(in, byFile[in], out, plane, frameWorkers, &scratch, &buf, luts)
				mu.Lock()
				stats.add(st)
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
feed:
	for _, in := range files {
		select {
		case work <- in:
		case <-gctx.Done():
			break feed
		}
	}
	close(work)
	werr := g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, werr
	}
	if stats.clamped > 0 {
		s.warn("%d voxel(s) outside the int16 range were clamped", stats.clamped)
	}
	if stats.fractional > 0 {
		s.warn("%d voxel(s) had fractional HU (RescaleSlope/Intercept) and were rounded", stats.fractional)
	}
	if s.resample {
		out = s.resampled(out)
	}
	return out, nil
}

// decodeFile decodes the frames of one file into their slices of dst,
// with up to workers goroutines (each with its own scratch frame).
func (s *Series) decodeFile(in *Instance, ks []int, out *volume.Volume, plane, workers int, scratch *[]uint16, buf *[]byte, luts *lutCache) (huStats, error) {
	// The header was parsed by Discover: only the structure is scanned
	// again, to locate the pixel data, which must still fit the header.
	l, err := readLayout(in.Path, true, buf)
	if err != nil {
		return huStats{}, err
	}
	if l.ts != in.TransferSyntax || !l.hasPixels {
		return huStats{}, fmt.Errorf("%s: %w: file changed since it was scanned", in.Path, ErrInconsistent)
	}
	if err := in.checkSize(l); err != nil {
		return huStats{}, fmt.Errorf("%s: %w", in.Path, err)
	}
	stored := in
	if in.mosaic != nil {
		stored = in.mosaic.whole
	}
	dec, err := newFrameDecoder(stored, &pixels{native: l.native, fragments: l.fragments, ow: l.pixelOW}, luts)
	if err != nil {
		return huStats{}, fmt.Errorf("%s: %w", in.Path, err)
	}
	if in.mosaic != nil {
		return s.decodeMosaic(in, dec, ks, target{i16: out.I16, f32: out.F32}, plane, scratch)
	}
	// decodeFrames decodes the frames ks[i] for i ≡ first (mod step).
	decodeFrames := func(first, step int, scratch *[]uint16) (huStats, error) {
		var st huStats
		for i := first; i < len(ks); i += step {
			k := ks[i]
			var dst target
			switch out.DType {
			case volume.Float32:
				dst.f32 = out.F32[k*plane : (k+1)*plane]
			case volume.Uint8:
				dst.u8 = out.U8[k*plane : (k+1)*plane]
			default:
				dst.i16 = out.I16[k*plane : (k+1)*plane]
			}
			o, err := dec.decode(s.slices[k].frame, dst, !s.resample, scratch)
			if err != nil {
				return st, fmt.Errorf("%s: %w", in.Path, err)
			}
			st.add(o)
		}
		return st, nil
	}
	workers = min(workers, len(ks))
	if workers <= 1 {
		return decodeFrames(0, 1, scratch)
	}
	var (
		mu    sync.Mutex
		stats huStats
		g     errgroup.Group
	)
	for w := range workers {
		g.Go(func() error {
			sc := scratch
			if w > 0 {
				sc = new([]uint16)
			}
			st, err := decodeFrames(w, workers, sc)
			mu.Lock()
			stats.add(st)
			mu.Unlock()
			return err
		})
	}
	return stats, g.Wait()
}

// resampled interpolates the decoded slices (rows not yet flipped) onto
// the uniform orthogonal grid of s.Affine: linearly between the two
// nearest slices along the normal, bilinearly within each slice to undo
// the in-plane shift of a tilted gantry. Outside the data it fills with
// the volume's minimum.
func (s *Series) resampled(in *volume.Volume) *volume.Volume {
	cols, rows := s.Dim[0], s.Dim[1]
	plane := cols * rows
	out := volume.New(in.DType, s.Dim, s.Affine)
	fill := math.Inf(1)
	for n := range in.Len() {
		fill = min(fill, in.At(n))
	}
	x := [3]float64{s.lps[0][0], s.lps[1][0], s.lps[2][0]}
	y := [3]float64{s.lps[0][1], s.lps[1][1], s.lps[2][1]}
	dc, dr := norm(x), norm(y)
	x, y = scale(x, 1/dc), scale(y, 1/dr)
	pos0 := s.slices[0].geom().Position
	// In-plane shift of each input slice relative to slice 0, in pixels.
	shift := make([][2]float64, len(s.slices))
	for k, r := range s.slices {
		d := sub(r.geom().Position, pos0)
		shift[k] = [2]float64{dot(d, x) / dc, dot(d, y) / dr}
	}
	spacing := norm([3]float64{s.lps[0][2], s.lps[1][2], s.lps[2][2]})
	sample := func(k int, fi, fj float64) float64 {
		fi -= shift[k][0]
		fj -= shift[k][1]
		i0, j0 := int(math.Floor(fi)), int(math.Floor(fj))
		if i0 < 0 || j0 < 0 || i0 >= cols || j0 >= rows || (i0 == cols-1 && fi > float64(i0)) || (j0 == rows-1 && fj > float64(j0)) {
			return math.NaN()
		}
		ti, tj := fi-float64(i0), fj-float64(j0)
		i1, j1 := min(i0+1, cols-1), min(j0+1, rows-1)
		at := func(i, j int) float64 { return in.At(k*plane + j*cols + i) }
		v00, v10 := at(i0, j0), at(i1, j0)
		v01, v11 := at(i0, j1), at(i1, j1)
		return (v00*(1-ti)+v10*ti)*(1-tj) + (v01*(1-ti)+v11*ti)*tj
	}
	for k := range s.Dim[2] {
		z := s.positions[0] + float64(k)*spacing
		b, _ := slices.BinarySearch(s.positions, z)
		a := max(b-1, 0)
		if b >= len(s.positions) {
			b = len(s.positions) - 1
		}
		if s.positions[b] == z || a == b {
			a = b
		}
		w := 0.0
		if a != b {
			w = (z - s.positions[a]) / (s.positions[b] - s.positions[a])
		}
		// The output slice's origin moves along the normal only; its
		// in-plane offset relative to each input slice is the shift.
		for j := range rows {
			row := k*plane + (rows-1-j)*cols
			for i := range cols {
				va := sample(a, float64(i), float64(j))
				v := va
				if a != b {
					vb := sample(b, float64(i), float64(j))
					v = va*(1-w) + vb*w
				}
				if math.IsNaN(v) {
					v = fill
				}
				switch out.DType {
				case volume.Float32:
					out.F32[row+i] = float32(v)
				case volume.Uint8:
					out.U8[row+i] = uint8(math.Round(max(0, min(v, math.MaxUint8))))
				default:
					out.I16[row+i] = int16(math.Round(v))
				}
			}
		}
	}
	return out
}

// Version is the version of the volumes conversion writes (geometry, HU,
// sidecars); cache keys of stages that convert DICOM depend on it.
const Version = "1"
