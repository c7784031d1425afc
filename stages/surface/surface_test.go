package surface

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/medcad/medcad/stages/volume"
)

// checkWatertight fails t unless every edge of m borders exactly two
// triangles that traverse it in opposite directions (a closed, consistently
// oriented surface), and no triangle repeats a vertex.
func checkWatertight(t *testing.T, m *Mesh) {
	t.Helper()
	directed := map[[2]uint32]int{}
	for n, tr := range m.Triangles {
		if tr[0] == tr[1] || tr[1] == tr[2] || tr[0] == tr[2] {
			t.Fatalf("triangle %d repeats a vertex: %v", n, tr)
		}
		for e := range 3 {
			directed[[2]uint32{tr[e], tr[(e+1)%3]}]++
		}
	}
	for e, c := range directed {
		if c != 1 {
			t.Fatalf("directed edge %v used by %d triangles", e, c)
		}
		if directed[[2]uint32{e[1], e[0]}] != 1 {
			t.Fatalf("edge %v has no opposite half: open or inconsistently wound surface", e)
		}
	}
}

func TestCaseTable(t *testing.T) {
	t.Parallel()
	table, err := newCaseTable()
	if err != nil {
		t.Fatal(err)
	}
	for c, tris := range table {
		if (c == 0 || c == 255) != (len(tris) == 0) || len(tris)%3 != 0 {
			t.Errorf("case %d: %d edge indices", c, len(tris))
		}
	}
	// One inside corner: one triangle whose normal points away from it.
	m, err := Extract(context.Background(), boxVolume([3]int{1, 1, 1}, [3]int{0, 0, 0}, [3]int{1, 1, 1}, volume.Identity([3]float64{1, 1, 1})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Triangles != 8 || math.Abs(st.VolumeMM3-1.0/6) > 1e-6 {
		t.Errorf("single voxel: %+v, want the octahedron (8 triangles, volume 1/6)", st)
	}
}

// boxVolume is a dim-sized label map with voxels [lo, lo+size) set to 1.
func boxVolume(dim, lo, size [3]int, aff volume.Affine) *volume.Volume {
	v := volume.New(volume.Uint8, dim, aff)
	for k := lo[2]; k < lo[2]+size[2]; k++ {
		for j := lo[1]; j < lo[1]+size[1]; j++ {
			for i := lo[0]; i < lo[0]+size[0]; i++ {
				v.U8[v.Index(i, j, k)] = 1
			}
		}
	}
	return v
}

// TestBox compares with the analytic marching-cubes solid of an a×b×c box
// of voxels: the box of voxel faces with its 12 edges chamfered (legs of
// half a voxel) and 8 corners cut, so that (in voxel units)
// V = abc − (a+b+c−3)/2 − 5/6 and
// A = 2[(a−1)(b−1)+(b−1)(c−1)+(c−1)(a−1)] + 2√2(a+b+c−3) + √3.
func TestBox(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		dim, lo   [3]int
		size      [3]int
		spacing   [3]float64
		checkArea bool
	}{
		{"inside", [3]int{12, 10, 9}, [3]int{2, 3, 1}, [3]int{7, 5, 6}, [3]float64{1.5, 1.5, 1.5}, true},
		{"touching every face", [3]int{6, 5, 4}, [3]int{0, 0, 0}, [3]int{6, 5, 4}, [3]float64{1, 1, 1}, true},
		{"anisotropic", [3]int{20, 20, 10}, [3]int{3, 4, 2}, [3]int{11, 9, 5}, [3]float64{0.7, 0.8, 2.5}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := Extract(context.Background(), boxVolume(tc.dim, tc.lo, tc.size, volume.Identity(tc.spacing)), Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkWatertight(t, m)
			a, b, c := float64(tc.size[0]), float64(tc.size[1]), float64(tc.size[2])
			vox := tc.spacing[0] * tc.spacing[1] * tc.spacing[2]
			wantV := (a*b*c - (a+b+c-3)/2 - 5.0/6) * vox
			st := m.Stats()
			if math.Abs(st.VolumeMM3-wantV) > 1e-4*wantV {
				t.Errorf("volume %v mm³, want %v", st.VolumeMM3, wantV)
			}
			if tc.checkArea {
				s2 := tc.spacing[0] * tc.spacing[0]
				wantA := (2*((a-1)*(b-1)+(b-1)*(c-1)+(c-1)*(a-1)) + 2*math.Sqrt2*(a+b+c-3) + math.Sqrt(3)) * s2
				if math.Abs(st.AreaMM2-wantA) > 1e-4*wantA {
					t.Errorf("area %v mm², want %v", st.AreaMM2, wantA)
				}
			}
		})
	}
}

// sphere returns a label map of the voxels whose centres lie within r mm
// of the centre, and the same ball as a smooth field (r − distance, for an
// iso surface at 0).
func sphere(dim [3]int, sp [3]float64, r float64, aff volume.Affine) (*volume.Volume, *volume.Volume) {
	lab := volume.New(volume.Uint8, dim, aff)
	field := volume.New(volume.Float32, dim, aff)
	for k := range dim[2] {
		for j := range dim[1] {
			for i := range dim[0] {
				dx := (float64(i) - float64(dim[0]-1)/2) * sp[0]
				dy := (float64(j) - float64(dim[1]-1)/2) * sp[1]
				dz := (float64(k) - float64(dim[2]-1)/2) * sp[2]
				d := math.Sqrt(dx*dx + dy*dy + dz*dz)
				n := lab.Index(i, j, k)
				if d <= r {
					lab.U8[n] = 1
				}
				field.F32[n] = float32(r - d)
			}
		}
	}
	return lab, field
}

// TestSphere: a voxelised ball encloses the analytic volume within 2%, and
// the smooth iso surface matches volume and area within 1%.
func TestSphere(t *testing.T) {
	t.Parallel()
	const r = 20.0
	sp := [3]float64{0.9, 0.9, 1.2}
	dim := [3]int{52, 52, 40}
	// A rotation with a reflection (negative determinant) must still give
	// outward triangles.
	flipped := volume.Affine{{-sp[0], 0, 0, 100}, {0, 0, sp[2], -40}, {0, sp[1], 0, 7}, {0, 0, 0, 1}}
	for _, aff := range []volume.Affine{volume.Identity(sp), flipped} {
		lab, field := sphere(dim, sp, r, aff)
		wantV, wantA := 4.0/3*math.Pi*r*r*r, 4*math.Pi*r*r
		m, err := Extract(context.Background(), lab, Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkWatertight(t, m)
		st := m.Stats()
		voxels := 0
		for _, x := range lab.U8 {
			voxels += int(x)
		}
		voxV := float64(voxels) * sp[0] * sp[1] * sp[2]
		if math.Abs(st.VolumeMM3-wantV) > 0.02*wantV || math.Abs(st.VolumeMM3-voxV) > 0.02*voxV {
			t.Errorf("label sphere volume %v mm³, analytic %v, voxels %v", st.VolumeMM3, wantV, voxV)
		}
		if math.Abs(st.AreaMM2-wantA) > 0.1*wantA {
			t.Errorf("label sphere area %v mm², analytic %v", st.AreaMM2, wantA)
		}
		iso := 0.0
		m, err = Extract(context.Background(), field, Options{Iso: &iso})
		if err != nil {
			t.Fatal(err)
		}
		checkWatertight(t, m)
		st = m.Stats()
		if math.Abs(st.VolumeMM3-wantV) > 0.01*wantV || math.Abs(st.AreaMM2-wantA) > 0.01*wantA {
			t.Errorf("iso sphere volume %v (want %v), area %v (want %v)", st.VolumeMM3, wantV, st.AreaMM2, wantA)
		}
	}
}

// TestRandomWatertight: noise volumes exercise every case, ambiguous faces
// included; every mesh must be closed and consistently wound, with a
// positive volume.
func TestRandomWatertight(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 60 {
		dim := [3]int{1 + rng.IntN(12), 1 + rng.IntN(12), 1 + rng.IntN(12)}
		v := volume.New(volume.Int16, dim, volume.Identity([3]float64{1, 1.5, 2}))
		p := rng.Float64()
		for n := range v.I16 {
			v.I16[n] = int16(rng.IntN(2000) - 1000)
			if rng.Float64() < p {
				v.I16[n] = 1
			}
		}
		lab := volume.New(volume.Uint8, dim, v.Affine)
		for n, x := range v.I16 {
			lab.U8[n] = uint8(max(0, x) % 3)
		}
		for _, opts := range []Options{{Label: 1}, {Iso: ptr(float64(rng.IntN(1000) - 500))}} {
			in := v
			if opts.Iso == nil {
				in = lab
			}
			m, err := Extract(context.Background(), in, opts)
			if errors.Is(err, ErrEmpty) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			checkWatertight(t, m)
			if st := m.Stats(); !(st.VolumeMM3 > 0) {
				t.Fatalf("trial %d %+v: volume %v", trial, opts, st.VolumeMM3)
			}
		}
	}
}

func ptr[T any](x T) *T { return &x }

func TestEmptyAndBadInput(t *testing.T) {
	t.Parallel()
	v := volume.New(volume.Uint8, [3]int{3, 3, 3}, volume.Identity([3]float64{1, 1, 1}))
	if _, err := Extract(context.Background(), v, Options{}); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
	v.U8[4] = 2
	if _, err := Extract(context.Background(), v, Options{Label: 1}); !errors.Is(err, ErrEmpty) {
		t.Errorf("absent label: %v", err)
	}
	f := volume.New(volume.Float32, [3]int{2, 2, 2}, v.Affine)
	f.F32[0] = 0.5
	if _, err := Extract(context.Background(), f, Options{}); err == nil {
		t.Error("non-integer label map accepted")
	}
	if _, err := Extract(context.Background(), f, Options{Iso: ptr(math.NaN())}); err == nil {
		t.Error("NaN iso accepted")
	}
	f.F32[1] = float32(math.NaN())
	if _, err := Extract(context.Background(), f, Options{Iso: ptr(0.0)}); err == nil {
		t.Error("NaN voxel accepted")
	}
	ct := volume.New(volume.Int16, [3]int{2, 2, 2}, v.Affine)
	ct.I16[0] = -1000
	if _, err := Extract(context.Background(), ct, Options{}); err == nil {
		t.Error("CT accepted as a label map")
	}
}

// TestSTLRoundTrip: binary and ASCII STL read back to the same closed mesh.
func TestSTLRoundTrip(t *testing.T) {
	t.Parallel()
	lab, _ := sphere([3]int{14, 13, 12}, [3]float64{1, 1, 1.5}, 5, volume.Identity([3]float64{1, 1, 1.5}))
	m, err := Extract(context.Background(), lab, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := m.Stats()
	for _, ascii := range []bool{false, true} {
		var buf bytes.Buffer
		if err := EncodeSTL(&buf, m, ascii); err != nil {
			t.Fatal(err)
		}
		if !ascii && buf.Len() != 84+50*len(m.Triangles) {
			t.Errorf("binary STL of %d bytes for %d triangles", buf.Len(), len(m.Triangles))
		}
		back, err := DecodeSTL(&buf)
		if err != nil {
			t.Fatalf("ascii=%v: %v", ascii, err)
		}
		checkWatertight(t, back)
		got := back.Stats()
		if got.Triangles != want.Triangles || got.Vertices != want.Vertices ||
			math.Abs(got.AreaMM2-want.AreaMM2) > 1e-9*want.AreaMM2 || math.Abs(got.VolumeMM3-want.VolumeMM3) > 1e-9*want.VolumeMM3 {
			t.Errorf("ascii=%v: read back %+v, wrote %+v", ascii, got, want)
		}
	}
}

func TestDecodeSTLErrors(t *testing.T) {
	t.Parallel()
	head := make([]byte, 84)
	head[80] = 2 // two triangles claimed, none present
	tests := map[string][]byte{
		"short":        []byte("abc"),
		"truncated":    head,
		"ascii no end": []byte("solid x\n facet normal 0 0 1\n outer loop\n vertex 0 0 0\n vertex 1 0 0\n vertex 0 1 0\n endloop\n endfacet\n"),
		"ascii nan":    []byte("solid x\n facet normal 0 0 1\n outer loop\n vertex nan 0 0\n vertex 1 0 0\n vertex 0 1 0\n endloop\n endfacet\nendsolid x\n"),
		"ascii 2 vert": []byte("solid x\n facet normal 0 0 1\n outer loop\n vertex 0 0 0\n vertex 1 0 0\n endloop\n endfacet\nendsolid x\n"),
	}
	for name, b := range tests {
		if _, err := DecodeSTL(bytes.NewReader(b)); !errors.Is(err, ErrSTL) {
			t.Errorf("%s: error %v, want ErrSTL", name, err)
		}
	}
}

// TestSmooth: Taubin smoothing keeps the mesh closed, keeps the volume of a
// voxelised ball within 2% and brings its area close to the analytic 4πr².
func TestSmooth(t *testing.T) {
	t.Parallel()
	const r = 20.0
	sp := [3]float64{0.9, 0.9, 1.2}
	lab, _ := sphere([3]int{52, 52, 40}, sp, r, volume.Identity(sp))
	m, err := Extract(context.Background(), lab, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := m.Stats()
	m.Smooth(10)
	checkWatertight(t, m)
	after := m.Stats()
	wantV, wantA := 4.0/3*math.Pi*r*r*r, 4*math.Pi*r*r
	t.Logf("area %v -> %v (analytic %v), volume %v -> %v (analytic %v)", before.AreaMM2, after.AreaMM2, wantA, before.VolumeMM3, after.VolumeMM3, wantV)
	if math.Abs(after.VolumeMM3-wantV) > 0.02*wantV {
		t.Errorf("smoothed volume %v, analytic %v", after.VolumeMM3, wantV)
	}
	// The staircase overestimates the area by about 9%; smoothed, within 2%.
	if math.Abs(after.AreaMM2-wantA) > 0.02*wantA || math.Abs(after.AreaMM2-wantA) >= math.Abs(before.AreaMM2-wantA) {
		t.Errorf("smoothed area %v, analytic %v (unsmoothed %v)", after.AreaMM2, wantA, before.AreaMM2)
	}
}
