package phantom

import (
	"fmt"
	"math"
	"strconv"

	"github.com/medcad/medcad/stages/volume"
)

// RNG streams: each purpose draws from its own generator so that adding a
// draw to one never changes another.
const (
	streamScene = iota + 1
	streamTexture
	streamNoise
)

// scene is the random layout of one case, in mm. Local coordinates: x, y
// relative to the image centre (RAS directions), z from the first slice.
type scene struct {
	dim     [3]int
	sp      [3]float64
	affine  volume.Affine
	blurVox [3]float64
	facts   Facts
	seed    uint64
	idx     int

	hu      [numTissues]float64
	texture [numTissues]float64
	noise   float64
	// noiseCorr is the weight of each in-plane neighbour in the noise:
	// reconstruction correlates CT noise between neighbouring pixels.
	noiseCorr float64
	height    float64 // z extent of the volume, mm

	body      ellipse
	skin, fat float64
	table     box
	bones     []longBone
	spine     vertebrae
	pelvis    []plate
	vessels   []tube
	plaques   []sphere
	metal     *tube
	streaks   streaks
	// The patient lies rotated by a small angle about the body centre
	// (the table does not rotate).
	cosPose, sinPose float64
}

type ellipse struct{ cx, cy, a, b float64 }

type box struct{ x0, x1, y0, y1, curve, cx float64 }

// longBone is a tube along z with a cortical shell, a trabecular ring and a
// medullary canal, ending with a cortical cap at zEnd (it spans z < zEnd,
// or z > zEnd when flipped).
type longBone struct {
	c0x, c0y, d1x, d1y, d2x, d2y float64 // centre(z) = c0 + d1·t + d2·t², t ∈ [-0.5, 0.5]
	r, ecc                       float64 // radius in x; y radius = r·ecc
	cortex, trab                 float64 // thicknesses, mm
	zEnd, meta                   float64 // end of the bone; metaphysis length (trabecular-filled)
	flip                         bool
	hu                           float64 // own trabecular HU offset
}

// vertebrae are elliptic cylinders stacked along z, separated by discs.
type vertebrae struct {
	cx, cy, rx, ry      float64
	height, disc, phase float64
	cortex              float64
}

// plate is a flat bone: an arc of an annulus (centre, radius, thickness,
// angles) present for z in [z0, z1].
type plate struct {
	cx, cy, r, th, a0, a1, z0, z1, cortex float64
	// cells are air cells in the bone (as in a mastoid or beside a
	// sinus), each lined by a bony wall of cellWall mm.
	cells    []sphere
	cellWall float64
}

// tube is a vessel or a metal rod: a disc of radius r moving along z.
type tube struct {
	c0x, c0y, d1x, d1y, r, hu, z0, z1 float64
}

type sphere struct{ x, y, z, r, hu float64 }

type streaks struct {
	amp, lambda, phase float64
	n                  int
}

var (
	surnames = []string{"DOE", "ROE", "MUSTERMANN", "NOVAK", "JANSEN", "ROSSI", "DUBOIS", "SILVA", "KOWALSKI", "NIELSEN"}
	given    = []string{"JANE", "JOHN", "ALEX", "MARIA", "LUCA", "EMMA", "NOAH", "SOFIA", "IVAN", "MEI"}
	places   = []string{"ST. EXAMPLE GENERAL HOSPITAL", "PHANTOM UNIVERSITY CLINIC", "NOWHERE COUNTY MEDICAL CENTER"}
)

func newScene(opts Options, idx int) *scene {
	r := rng(opts.Seed, idx, streamScene)
	s := &scene{seed: opts.Seed, idx: idx}
	inPlane := uniform(r, 0.6, 1.0)
	slices := []float64{0.625, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0}
	sz := slices[r.IntN(len(slices))]
	if opts.Size == Full {
		s.dim = [3]int{512, 512, 280 + r.IntN(41)}
	} else {
		nx := 88 + r.IntN(17)
		s.dim = [3]int{nx, nx - r.IntN(9), 56 + r.IntN(17)}
	}
	s.sp = [3]float64{inPlane, inPlane, sz}
	nx, ny, nz := float64(s.dim[0]), float64(s.dim[1]), float64(s.dim[2])
	fovX, fovY := nx*inPlane, ny*inPlane
	L := min(fovX, fovY)
	s.height = nz * sz

	// Scanner coordinates: the table moves the patient, so the origin varies.
	tx, ty, tz := uniform(r, -20, 20), uniform(r, -20, 20), uniform(r, -600, -100)
	s.affine = volume.Affine{
		{-inPlane, 0, 0, (nx-1)/2*inPlane + tx},
		{0, inPlane, 0, -(ny-1)/2*inPlane + ty},
		{0, 0, sz, tz},
		{0, 0, 0, 1},
	}
	s.blurVox = [3]float64{uniform(r, 0.45, 0.8) / inPlane, uniform(r, 0.45, 0.8) / inPlane, 0.5}
	s.noise = uniform(r, 5, 30)

	osteo := r.Float64() < 0.35
	hasMetal := r.Float64() < 0.3
	s.hu = [numTissues]float64{
		Air:        -1000,
		Fat:        uniform(r, -120, -80),
		Muscle:     uniform(r, 35, 65),
		Skin:       uniform(r, 10, 50),
		Cortical:   uniform(r, 1000, 2000),
		Trabecular: uniform(r, 250, 550),
		Canal:      uniform(r, 0, 60),
		Disc:       uniform(r, 50, 70),
		Table:      uniform(r, 250, 700),
		Metal:      uniform(r, 2600, 3071),
	}
	if osteo {
		s.hu[Trabecular] = uniform(r, 80, 200)
	}
	s.texture[Cortical] = 60
	s.texture[Trabecular] = 110
	if osteo {
		s.texture[Trabecular] = 20
	}
	s.texture[Table] = 30

	// Body, skin and fat; the table under it (posterior, low y) with an air gap.
	a, b := uniform(r, 0.40, 0.45)*L, uniform(r, 0.29, 0.33)*L
	tableTh := max(uniform(r, 0.03, 0.05)*L, 3*inPlane)
	gap := max(uniform(r, 0.02, 0.04)*L, 3*inPlane)
	by := -fovY/2 + 2*inPlane + tableTh + gap + b + uniform(r, 0, 0.03)*L
	bx := uniform(r, -0.05, 0.05) * L
	s.body = ellipse{bx, by, a, b}
	s.skin = max(uniform(r, 1.2, 2.2), 1.5*inPlane)
	s.fat = uniform(r, 0.1, 0.18) * b
	top := by - b - gap
	s.table = box{x0: bx - 0.47*L, x1: bx + 0.47*L, y0: top - tableTh, y1: top, curve: uniform(r, 0, 0.25) * b / (a * a), cx: bx}

	minCortex := 2.2 * inPlane
	if osteo {
		minCortex = 1.8 * inPlane
	}
	// Long bones: left and right, ending inside the volume; flat bones beyond.
	flip := r.IntN(2) == 1
	zEnd := uniform(r, 0.55, 0.75) * s.height
	for side := -1.0; side <= 1; side += 2 {
		rad := uniform(r, 0.2, 0.25) * b
		cortex := min(max(uniform(r, 0.25, 0.35)*rad, minCortex), 0.45*rad)
		if osteo {
			cortex = min(max(0.7*cortex, minCortex), 0.45*rad)
		}
		lb := longBone{
			c0x: bx + side*uniform(r, 0.5, 0.6)*a, c0y: by + uniform(r, -0.1, 0.15)*b,
			d1x: uniform(r, -0.08, 0.08) * a, d1y: uniform(r, -0.08, 0.08) * b,
			d2x: uniform(r, -0.15, 0.15) * a, d2y: uniform(r, -0.1, 0.1) * b,
			r: rad, ecc: uniform(r, 0.85, 1.15), cortex: cortex, trab: uniform(r, 0.12, 0.2) * rad,
			zEnd: zEnd + uniform(r, -0.05, 0.05)*s.height, meta: uniform(r, 0.05, 0.12) * s.height, flip: flip,
			hu: uniform(r, -30, 30),
		}
		s.bones = append(s.bones, lb)
		// A vessel beside each long bone, anteromedial.
		vr := max(uniform(r, 0.06, 0.09)*b, 2*inPlane)
		dist := lb.r*max(1, lb.ecc) + vr + uniform(r, 1.5, 4)
		ang := math.Pi/2 + side*uniform(r, 0.3, 0.7)
		s.vessels = append(s.vessels, tube{
			c0x: lb.c0x + dist*math.Cos(ang), c0y: lb.c0y + dist*math.Sin(ang),
			d1x: lb.d1x, d1y: lb.d1y, r: vr, hu: uniform(r, 150, 450), z0: -1, z1: s.height + 1,
		})
	}
	// Spine: vertebral bodies at the posterior midline, aorta in front.
	rv := uniform(r, 0.22, 0.27) * b
	s.spine = vertebrae{
		cx: bx + uniform(r, -0.05, 0.05)*a, cy: by - uniform(r, 0.45, 0.52)*b,
		rx: rv * uniform(r, 1.1, 1.3), ry: rv,
		height: rv * uniform(r, 2.5, 3.5), phase: uniform(r, 0, 100),
		cortex: min(max(uniform(r, 0.15, 0.25)*rv, minCortex), 0.4*rv),
	}
	s.spine.disc = s.spine.height * uniform(r, 0.25, 0.35)
	ar := max(uniform(r, 0.1, 0.14)*b, 2*inPlane)
	s.vessels = append(s.vessels, tube{
		c0x: s.spine.cx + uniform(r, -0.3, 0.3)*s.spine.rx, c0y: s.spine.cy + s.spine.ry + ar + uniform(r, 1.5, 4),
		d1x: uniform(r, -2, 2), d1y: uniform(r, -1, 1), r: ar, hu: uniform(r, 150, 450), z0: -1, z1: s.height + 1,
	})
	// Flat pelvis-like bone beyond the long bones' ends, on one or both sides.
	z0, z1 := zEnd+uniform(r, 2, 5), s.height+1
	if flip {
		z0, z1 = -1, zEnd-uniform(r, 2, 5)
	}
	th := max(uniform(r, 0.12, 0.16)*b, 4*inPlane+2)
	pr := uniform(r, 0.62, 0.7) * b
	span := uniform(r, 0.6, 0.9)
	start := math.Pi + uniform(r, 0.15, 0.3)
	for side := range 1 + r.IntN(2) {
		a0, a1 := start, start+span
		if side == 1 {
			a0, a1 = 3*math.Pi-start-span, 3*math.Pi-start
		}
		s.pelvis = append(s.pelvis, plate{cx: bx, cy: by + 0.05*b, r: pr, th: th, a0: a0, a1: a1, z0: z0, z1: z1,
			cortex: min(max(uniform(r, 0.2, 0.3)*th, minCortex), 0.4*th)})
	}
	// Calcified plaques on vessel walls.
	for range 1 + r.IntN(4) {
		v := s.vessels[r.IntN(len(s.vessels))]
		z := uniform(r, 0.1, 0.9) * s.height
		cx, cy := v.centre(z, s.height)
		ang := uniform(r, 0, 2*math.Pi)
		s.plaques = append(s.plaques, sphere{
			x: cx + 0.85*v.r*math.Cos(ang), y: cy + 0.85*v.r*math.Sin(ang), z: z,
			r: max(uniform(r, 0.8, 1.6), 1.2*inPlane), hu: uniform(r, 500, 1200),
		})
	}
	// Optional metal rod lateral to a long bone, with streak artefacts.
	if hasMetal {
		lb := s.bones[r.IntN(len(s.bones))]
		// Anterolateral: away from the midline and towards the front.
		ang := math.Pi/2 - uniform(r, 0.5, 0.9)
		if lb.c0x < bx {
			ang = math.Pi - ang
		}
		mr := max(uniform(r, 1.0, 1.8), 1.5*inPlane)
		dist := lb.r*max(1, lb.ecc) + mr + uniform(r, 2, 4)
		cz := uniform(r, 0.3, 0.7) * s.height
		ln := uniform(r, 0.15, 0.3) * s.height
		s.metal = &tube{c0x: lb.c0x + dist*math.Cos(ang), c0y: lb.c0y + dist*math.Sin(ang), d1x: lb.d1x, d1y: lb.d1y,
			r: mr, hu: s.hu[Metal], z0: cz - ln/2, z1: cz + ln/2}
		s.streaks = streaks{amp: uniform(r, 150, 400), lambda: uniform(r, 0.15, 0.3) * L, phase: uniform(r, 0, math.Pi), n: 6 + r.IntN(5)}
	}

	s.facts = Facts{
		Rules: opts.LabelRules, Osteoporotic: osteo, Metal: hasMetal, NoiseHU: s.noise, Spacing: s.sp,
		BitsStored: []int{12, 16}[r.IntN(2)],
		Patient: Patient{
			Name:        surnames[r.IntN(len(surnames))] + "^" + given[r.IntN(len(given))],
			ID:          "PH" + itoa(10000000+r.IntN(90000000)),
			BirthDate:   itoa(1930+r.IntN(80)) + pad2(1+r.IntN(12)) + pad2(1+r.IntN(28)),
			Sex:         []string{"F", "M"}[r.IntN(2)],
			Institution: places[r.IntN(len(places))],
			Referrer:    surnames[r.IntN(len(surnames))] + "^" + given[r.IntN(len(given))] + "^^DR",
			StudyDate:   itoa(2015+r.IntN(11)) + pad2(1+r.IntN(12)) + pad2(1+r.IntN(28)),
			StudyTime:   pad2(7+r.IntN(12)) + pad2(r.IntN(60)) + pad2(r.IntN(60)),
			Accession:   "A" + itoa(1000000+r.IntN(9000000)),
		},
	}
	pose := uniform(r, -0.15, 0.15) // radians, about ±9°
	s.cosPose, s.sinPose = math.Cos(pose), math.Sin(pose)
	// Thin flat bones like a skull's: two cortical tables of 0.7–2 mm
	// around diploë, curved along the anterior body wall, where partial
	// volume dims the thin tables well below a thick cortex.
	for range 1 + r.IntN(2) {
		th := uniform(r, 3.5, 8)
		mid := math.Pi/2 + uniform(r, -0.6, 0.6)
		span := uniform(r, 0.4, 0.8)
		zc, zl := uniform(r, 0.2, 0.8)*s.height, uniform(r, 0.3, 0.8)*s.height
		p := plate{cx: bx, cy: by, r: uniform(r, 0.55, 0.7) * b, th: th, a0: mid - span/2, a1: mid + span/2,
			z0: zc - zl/2, z1: zc + zl/2, cortex: min(uniform(r, 0.7, 2), 0.35*th), cellWall: uniform(r, 0.5, 1.2)}
		for range r.IntN(5) {
			a, rad := uniform(r, p.a0, p.a1), p.r+uniform(r, -0.2, 0.2)*th
			p.cells = append(p.cells, sphere{x: bx + rad*math.Cos(a), y: by + rad*math.Sin(a), z: uniform(r, p.z0, p.z1), r: uniform(r, 1, th/2+2)})
		}
		s.pelvis = append(s.pelvis, p)
	}
	s.noiseCorr = uniform(r, 0, 0.6)
	return s
}

// unrotate maps image coordinates into the patient's (unrotated) frame.
func (s *scene) unrotate(x, y float64) (float64, float64) {
	dx, dy := x-s.body.cx, y-s.body.cy
	return s.body.cx + s.cosPose*dx + s.sinPose*dy, s.body.cy - s.sinPose*dx + s.cosPose*dy
}

func (t tube) centre(z, height float64) (float64, float64) {
	u := z/height - 0.5
	return t.c0x + t.d1x*u, t.c0y + t.d1y*u
}

func (lb longBone) centre(z, height float64) (float64, float64) {
	u := z/height - 0.5
	return lb.c0x + lb.d1x*u + lb.d2x*u*u, lb.c0y + lb.d1y*u + lb.d2y*u*u
}

// tissueAt classifies the point (x, y, z); the first structure that
// contains it wins (implants, then plaques, vessels, bones, table, body).
func (s *scene) tissueAt(ix, iy float64, sl *sliceShapes) Tissue {
	z, bones, vessels := sl.z, sl.bones, sl.vessels
	x, y := s.unrotate(ix, iy)
	if m := s.metal; m != nil && z >= m.z0 && z <= m.z1 {
		cx, cy := m.centre(z, s.height)
		if sq(x-cx)+sq(y-cy) <= sq(m.r) {
			return Metal
		}
	}
	for _, p := range s.plaques {
		if sq(x-p.x)+sq(y-p.y)+sq(z-p.z) <= sq(p.r) {
			return Plaque
		}
	}
	for _, v := range vessels {
		if sq(x-v.x)+sq(y-v.y) <= v.r2 {
			return Vessel
		}
	}
	for _, b := range bones {
		if t := b.at(x, y); t != Air {
			return t
		}
	}
	if t := s.spineAt(x, y, z); t != Air {
		return t
	}
	for _, p := range s.pelvis {
		if t := p.at(x, y, z); t != Air {
			return t
		}
	}
	e := s.body
	rho := math.Sqrt(sq((x-e.cx)/e.a) + sq((y-e.cy)/e.b))
	if rho > 1 {
		tb := s.table
		top := tb.y1 + tb.curve*sq(ix-tb.cx)
		if ix >= tb.x0 && ix <= tb.x1 && iy <= top && iy >= top-(tb.y1-tb.y0) {
			return Table
		}
		return Air
	}
	depth := (1 - rho) * (e.a + e.b) / 2
	switch {
	case depth < s.skin:
		return Skin
	case depth < s.skin+s.fat:
		return Fat
	}
	return Muscle
}

// boneSlice is a long bone's cross-section on one slice.
type boneSlice struct {
	cx, cy, rx, ry, cortex, trab float64
	cap, meta                    bool
}

func (b boneSlice) at(x, y float64) Tissue {
	rho := math.Sqrt(sq((x-b.cx)/b.rx) + sq((y-b.cy)/b.ry))
	if rho > 1 {
		return Air
	}
	depth := (1 - rho) * (b.rx + b.ry) / 2
	switch {
	case b.cap || depth < b.cortex:
		return Cortical
	case b.meta || depth < b.cortex+b.trab:
		return Trabecular
	}
	return Canal
}

func (lb longBone) slice(z, height float64) (boneSlice, bool) {
	// dz: distance from the bone's end into the bone.
	dz := lb.zEnd - z
	if lb.flip {
		dz = z - lb.zEnd
	}
	if dz < 0 {
		return boneSlice{}, false
	}
	cx, cy := lb.centre(z, height)
	flare := 1 + 0.15*math.Max(0, 1-dz/lb.meta) // wider towards the end
	return boneSlice{
		cx: cx, cy: cy, rx: lb.r * flare, ry: lb.r * lb.ecc * flare,
		cortex: lb.cortex, trab: lb.trab, cap: dz < lb.cortex, meta: dz < lb.meta,
	}, true
}

func (s *scene) spineAt(x, y, z float64) Tissue {
	v := s.spine
	rho := math.Sqrt(sq((x-v.cx)/v.rx) + sq((y-v.cy)/v.ry))
	if rho > 1 {
		return Air
	}
	w := math.Mod(z+v.phase, v.height+v.disc)
	if w < v.disc {
		return Disc
	}
	w -= v.disc
	depth := min((1-rho)*(v.rx+v.ry)/2, w, v.height-w)
	if depth < v.cortex {
		return Cortical
	}
	return Trabecular
}

func (p plate) at(x, y, z float64) Tissue {
	if z < p.z0 || z > p.z1 {
		return Air
	}
	r := math.Hypot(x-p.cx, y-p.cy)
	radial := p.th/2 - math.Abs(r-p.r)
	if radial < 0 {
		return Air
	}
	ang := math.Atan2(y-p.cy, x-p.cx)
	for ang < p.a0 {
		ang += 2 * math.Pi
	}
	if ang > p.a1 {
		return Air
	}
	for _, c := range p.cells {
		d := math.Sqrt(sq(x-c.x) + sq(y-c.y) + sq(z-c.z))
		if d < c.r {
			return Air
		}
		if d < c.r+p.cellWall {
			return Cortical
		}
	}
	depth := min(radial, (ang-p.a0)*p.r, (p.a1-ang)*p.r, z-p.z0, p.z1-z)
	if depth < p.cortex {
		return Cortical
	}
	return Trabecular
}

type disc struct{ x, y, r2 float64 }

// sliceShapes are the cross-sections of the moving structures on a slice.
type sliceShapes struct {
	z       float64
	bones   []boneSlice
	vessels []disc
}

// shapesAt returns the cross-sections of the moving structures at height z.
func (s *scene) shapesAt(z float64) *sliceShapes {
	sl := &sliceShapes{z: z}
	for _, lb := range s.bones {
		if b, ok := lb.slice(z, s.height); ok {
			sl.bones = append(sl.bones, b)
		}
	}
	for _, v := range s.vessels {
		cx, cy := v.centre(z, s.height)
		sl.vessels = append(sl.vessels, disc{cx, cy, v.r * v.r})
	}
	return sl
}

// imageXY returns the image coordinates (mm, relative to the image
// centre) of the point at voxel (i+di, j+dj) of the slice.
func (s *scene) imageXY(i, j int, di, dj float64) (float64, float64) {
	nx, ny := float64(s.dim[0]), float64(s.dim[1])
	return (nx-1)/2*s.sp[0] - s.sp[0]*(float64(i)+di), (float64(j)+dj)*s.sp[1] - (ny-1)/2*s.sp[1]
}

// classifySlice fills slice k of tis with the tissue at each voxel centre.
func (s *scene) classifySlice(k int, tis []uint8) {
	nx, ny := s.dim[0], s.dim[1]
	sl := s.shapesAt((float64(k) + 0.5) * s.sp[2])
	off := k * nx * ny
	for j := range ny {
		for i := range nx {
			x, y := s.imageXY(i, j, 0, 0)
			tis[off+j*nx+i] = uint8(s.tissueAt(x, y, sl))
		}
	}
}

// Partial volume: a voxel on a boundary (some of its 26 neighbours'
// centres are of another tissue) averages subXY × subXY × subZ points
// spread evenly over its footprint, so its value and bone fraction follow
// where a surface lies inside it; other voxels are rendered from their
// centre.
const subXY, subZ = 2, 4

// subOffset is the offset, in voxels, of sub-point q of n along an axis.
func subOffset(q, n int) float64 { return (float64(q)+0.5)/float64(n) - 0.5 }

// shadeSlice fills slice k of hu (noise-free HU with tissue texture and
// streaks), frac (the voxel's bone fraction by the label rules) and excess
// (the voxel's mean excess of bone over muscle: bone without artefacts)
// from the tissue classes in tis.
func (s *scene) shadeSlice(k int, tis []uint8, rules string, hu, frac, excess []float32) {
	nx, ny := s.dim[0], s.dim[1]
	zc := (float64(k) + 0.5) * s.sp[2]
	var subs [subZ]*sliceShapes
	for q := range subs {
		subs[q] = s.shapesAt(zc + subOffset(q, subZ)*s.sp[2])
	}
	tex := rng(s.seed, s.idx, streamTexture<<32|uint64(k))
	var mx, my float64
	streak := s.metal != nil && zc >= s.metal.z0 && zc <= s.metal.z1
	if streak {
		mx, my = s.metal.centre(zc, s.height)
	}
	muscle := s.hu[Muscle]
	off := k * nx * ny
	for j := range ny {
		for i := range nx {
			v := off + j*nx + i
			t := Tissue(tis[v])
			g := tex.NormFloat64() // the voxel's texture draw
			var sum, bone, exc, soft float64
			n := 0
			add := func(t Tissue, x, y, z float64) {
				px, py := s.unrotate(x, y)
				h := s.tissueHU(t, px, py, z) + s.texture[t]*g
				sum += h
				if IsBone(t, rules) {
					bone++
					exc += max(h-muscle, 0)
				}
				if t != Air && t != Metal && t != Table {
					soft++
				}
				n++
			}
			if s.uniform(tis, i, j, k) {
				x, y := s.imageXY(i, j, 0, 0)
				add(t, x, y, zc)
			} else {
				for qz, sl := range subs {
					z := zc + subOffset(qz, subZ)*s.sp[2]
					for qy := range subXY {
						for qx := range subXY {
							x, y := s.imageXY(i, j, subOffset(qx, subXY), subOffset(qy, subXY))
							add(s.tissueAt(x, y, sl), x, y, z)
						}
					}
				}
			}
			h := sum / float64(n)
			if streak && soft > 0 {
				x, y := s.imageXY(i, j, 0, 0)
				x, y = s.unrotate(x, y)
				dx, dy := x-mx, y-my
				ang := math.Atan2(dy, dx)
				h += soft / float64(n) * s.streaks.amp * math.Sin(float64(s.streaks.n)*ang+s.streaks.phase) * math.Exp(-math.Hypot(dx, dy)/s.streaks.lambda)
			}
			hu[v] = float32(h)
			frac[v] = float32(bone / float64(n))
			excess[v] = float32(exc / float64(n))
		}
	}
}

// uniform reports whether the centres of voxel (i, j, k) and of all its
// 26 neighbours inside the volume are of one tissue.
func (s *scene) uniform(tis []uint8, i, j, k int) bool {
	nx, ny, nz := s.dim[0], s.dim[1], s.dim[2]
	t := tis[(k*ny+j)*nx+i]
	for c := max(k-1, 0); c <= min(k+1, nz-1); c++ {
		for b := max(j-1, 0); b <= min(j+1, ny-1); b++ {
			row := tis[(c*ny+b)*nx:]
			for a := max(i-1, 0); a <= min(i+1, nx-1); a++ {
				if row[a] != t {
					return false
				}
			}
		}
	}
	return true
}

// tissueHU is the noise-free HU of tissue t at (x, y, z) in the patient's
// frame, before texture.
func (s *scene) tissueHU(t Tissue, x, y, z float64) float64 {
	switch t {
	case Vessel:
		return s.vesselHU(x, y, z)
	case Plaque:
		return s.plaqueHU(x, y, z)
	case Trabecular, Canal:
		return s.hu[t] + s.boneOffset(x, y, z)
	}
	return s.hu[t]
}

func (s *scene) vesselHU(x, y, z float64) float64 {
	best, hu := math.Inf(1), s.hu[Muscle]
	for _, v := range s.vessels {
		cx, cy := v.centre(z, s.height)
		if d := sq(x-cx) + sq(y-cy); d < best {
			best, hu = d, v.hu
		}
	}
	return hu
}

func (s *scene) plaqueHU(x, y, z float64) float64 {
	for _, p := range s.plaques {
		if sq(x-p.x)+sq(y-p.y)+sq(z-p.z) <= sq(p.r) {
			return p.hu
		}
	}
	return s.hu[Plaque]
}

// boneOffset varies trabecular density between bones.
func (s *scene) boneOffset(x, y, z float64) float64 {
	for _, lb := range s.bones {
		cx, cy := lb.centre(z, s.height)
		if sq(x-cx)+sq(y-cy) <= sq(lb.r*1.2*max(1, lb.ecc)) {
			return lb.hu
		}
	}
	return 0
}

// noiseSlice adds correlated Gaussian noise (standard deviation s.noise)
// to slice k and stores rounded, clipped HU.
func (s *scene) noiseSlice(k int, hu []float32, out []int16) {
	r := rng(s.seed, s.idx, streamNoise<<32|uint64(k))
	nx, ny := s.dim[0], s.dim[1]
	white := make([]float64, nx*ny)
	for p := range white {
		white[p] = r.NormFloat64()
	}
	c := s.noiseCorr
	norm := s.noise / math.Sqrt(1+4*c*c)
	off := k * nx * ny
	for j := range ny {
		for i := range nx {
			p := j*nx + i
			w := white[p] + c*(white[j*nx+max(i-1, 0)]+white[j*nx+min(i+1, nx-1)]+white[max(j-1, 0)*nx+i]+white[min(j+1, ny-1)*nx+i])
			h := float64(hu[off+p]) + norm*w
			out[off+p] = int16(math.Round(min(max(h, -1024), 3071)))
		}
	}
}

func sq(x float64) float64 { return x * x }

func itoa(n int) string { return strconv.Itoa(n) }

func pad2(n int) string { return fmt.Sprintf("%02d", n) }

// Version is the version of the phantoms Generate draws for a seed; cache
// keys of stages that make phantoms depend on it.
const Version = "3"
