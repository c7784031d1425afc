package segment

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func randomGrid(seed uint64, dim [3]int) (grid, []float32) {
	r := rand.New(rand.NewPCG(seed, 1))
	g := grid{dim: dim, sp: [3]float64{0.8, 0.9, 2}}
	in := make([]float32, g.len())
	for i := range in {
		in[i] = float32(r.IntN(2000) - 1000)
	}
	return g, in
}

// brute computes a box mean, max or min by visiting the whole box.
func brute(g grid, in []float32, r [3]int, op string) []float32 {
	out := make([]float32, len(in))
	for k := range g.dim[2] {
		for j := range g.dim[1] {
			for i := range g.dim[0] {
				var sum float64
				n := 0
				mx, mn := float32(-1e30), float32(1e30)
				for c := max(k-r[2], 0); c <= min(k+r[2], g.dim[2]-1); c++ {
					for b := max(j-r[1], 0); b <= min(j+r[1], g.dim[1]-1); b++ {
						for a := max(i-r[0], 0); a <= min(i+r[0], g.dim[0]-1); a++ {
							v := in[a+g.dim[0]*(b+g.dim[1]*c)]
							sum += float64(v)
							n++
							mx, mn = max(mx, v), min(mn, v)
						}
					}
				}
				o := float32(sum / float64(n))
				if op == "max" {
					o = mx
				} else if op == "min" {
					o = mn
				}
				out[i+g.dim[0]*(j+g.dim[1]*k)] = o
			}
		}
	}
	return out
}

func TestFiltersMatchBruteForce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dim [3]int
		r   [3]int
	}{
		{[3]int{7, 5, 4}, [3]int{1, 1, 1}},
		{[3]int{9, 6, 5}, [3]int{2, 0, 1}},
		{[3]int{4, 9, 3}, [3]int{0, 3, 0}},
		{[3]int{5, 5, 7}, [3]int{6, 6, 6}}, // radius past the edges
		{[3]int{1, 1, 1}, [3]int{1, 1, 1}},
		{[3]int{23, 19, 17}, [3]int{5, 4, 7}}, // several doubling levels
	} {
		g, in := randomGrid(uint64(tc.dim[0]), tc.dim)
		approx := cmpopts.EquateApprox(0, 1e-3)
		if d := cmp.Diff(brute(g, in, tc.r, "mean"), filters{g: g}.mean(in, tc.r), approx); d != "" {
			t.Errorf("boxMean %v r %v (-brute +got):\n%s", tc.dim, tc.r, d)
		}
		mx, mn := filters{g: g}.extrema(in, tc.r)
		if d := cmp.Diff(brute(g, in, tc.r, "max"), mx); d != "" {
			t.Errorf("max %v r %v (-brute +got):\n%s", tc.dim, tc.r, d)
		}
		if d := cmp.Diff(brute(g, in, tc.r, "min"), mn); d != "" {
			t.Errorf("min %v r %v (-brute +got):\n%s", tc.dim, tc.r, d)
		}
	}
}

func maskOf(rows ...string) (grid, []bool) {
	// rows of one slice; '|' starts the next slice.
	var slices [][]string
	cur := []string{}
	for _, r := range rows {
		if r == "|" {
			slices = append(slices, cur)
			cur = []string{}
			continue
		}
		cur = append(cur, r)
	}
	slices = append(slices, cur)
	g := grid{dim: [3]int{len(slices[0][0]), len(slices[0]), len(slices)}, sp: [3]float64{1, 1, 1}}
	m := make([]bool, g.len())
	for k, sl := range slices {
		for j, row := range sl {
			for i, ch := range row {
				m[i+g.dim[0]*(j+g.dim[1]*k)] = ch == '#'
			}
		}
	}
	return g, m
}

func TestComponents(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		rows  []string
		sizes []int // sorted descending
	}{
		"empty":     {[]string{"....", "...."}, nil},
		"u-shape":   {[]string{"#..#", "#..#", "####"}, []int{8}},
		"diagonal":  {[]string{"#...", ".#..", "..#."}, []int{1, 1, 1}},
		"two":       {[]string{"##.#", "##.#", "...."}, []int{4, 2}},
		"z-linked":  {[]string{"#...", "|", "#..#", "|", "...#"}, []int{2, 2}},
		"z-bridged": {[]string{"##..", "|", ".##.", "|", "..##"}, []int{6}},
	} {
		g, m := maskOf(tc.rows...)
		c := components(g, m)
		var got []int
		for _, s := range c.size {
			if s > 0 {
				got = append(got, s)
			}
		}
		sortDesc(got)
		if d := cmp.Diff(tc.sizes, got, cmpopts.EquateEmpty()); d != "" {
			t.Errorf("%s: component sizes (-want +got):\n%s", name, d)
		}
	}
}

func sortDesc(x []int) {
	for i := range x {
		for j := i + 1; j < len(x); j++ {
			if x[j] > x[i] {
				x[i], x[j] = x[j], x[i]
			}
		}
	}
}

func TestFillSlices(t *testing.T) {
	t.Parallel()
	g, m := maskOf(
		"######.",
		"#....#.",
		"#.##.#.",
		"######.",
		"#.....#", // open at the border: not a hole
	)
	_, want := maskOf(
		"######.",
		"######.",
		"######.",
		"######.",
		"#.....#",
	)
	if d := cmp.Diff(want, fillSlices(g, m)); d != "" {
		t.Errorf("fillSlices (-want +got):\n%s", d)
	}
}

// TestFillHolesBounded: holes up to maxArea pixels are filled, larger
// ones (a skull's ring around the brain) stay open.
func TestFillHolesBounded(t *testing.T) {
	t.Parallel()
	g, m := maskOf(
		"#######...",
		"#.....#.#.",
		"#.....####",
		"#######.##",
		".......##.",
	)
	_, want := maskOf(
		"#######...",
		"#.....#.#.",
		"#.....####",
		"##########",
		".......##.",
	)
	// The 10-pixel hole stays open, the 1-pixel one is filled.
	if d := cmp.Diff(want, fillHoles(g, m, 9)); d != "" {
		t.Errorf("fillHoles(9) (-want +got):\n%s", d)
	}
	if d := cmp.Diff(fillSlices(g, m), fillHoles(g, m, 10)); d != "" {
		t.Errorf("fillHoles(10) differs from fillSlices (-fill +bounded):\n%s", d)
	}
}

// TestFillHolesRandom checks the run-based hole filling against a plain
// flood fill from the border, pixel by pixel, on random multi-slice masks
// of several densities and hole bounds.
func TestFillHolesRandom(t *testing.T) {
	t.Parallel()
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 2))
		g := grid{dim: [3]int{1 + r.IntN(23), 1 + r.IntN(19), 1 + r.IntN(4)}, sp: [3]float64{1, 1, 1}}
		density := 0.3 + 0.5*r.Float64()
		m := make([]bool, g.len())
		for v := range m {
			m[v] = r.Float64() < density
		}
		for _, maxArea := range []int{0, 1, 3, 12} {
			if d := cmp.Diff(floodFillHoles(g, m, maxArea), fillHoles(g, m, maxArea)); d != "" {
				t.Fatalf("seed %d, %v, maxArea %d (-flood +runs):\n%s", seed, g.dim, maxArea, d)
			}
		}
	}
}

// floodFillHoles is the reference: per slice, flood the background from
// the border (4-connected), then let every other background region of
// more than maxArea pixels join the outside.
func floodFillHoles(g grid, mask []bool, maxArea int) []bool {
	nx, ny, nz := g.dim[0], g.dim[1], g.dim[2]
	out := make([]bool, len(mask))
	for k := range nz {
		at := func(i, j int) int { return (k*ny+j)*nx + i }
		region := make([]int, nx*ny) // 0: unvisited; else region number
		var sizes []int
		var border []bool
		for j := range ny {
			for i := range nx {
				if mask[at(i, j)] || region[j*nx+i] != 0 {
					continue
				}
				sizes, border = append(sizes, 0), append(border, false)
				id := len(sizes)
				stack := [][2]int{{i, j}}
				region[j*nx+i] = id
				for len(stack) > 0 {
					p := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					sizes[id-1]++
					if p[0] == 0 || p[1] == 0 || p[0] == nx-1 || p[1] == ny-1 {
						border[id-1] = true
					}
					for _, q := range [][2]int{{p[0] - 1, p[1]}, {p[0] + 1, p[1]}, {p[0], p[1] - 1}, {p[0], p[1] + 1}} {
						if q[0] >= 0 && q[1] >= 0 && q[0] < nx && q[1] < ny && !mask[at(q[0], q[1])] && region[q[1]*nx+q[0]] == 0 {
							region[q[1]*nx+q[0]] = id
							stack = append(stack, q)
						}
					}
				}
			}
		}
		for j := range ny {
			for i := range nx {
				id := region[j*nx+i]
				out[at(i, j)] = mask[at(i, j)] || !border[id-1] && (maxArea <= 0 || sizes[id-1] <= maxArea)
			}
		}
	}
	return out
}

func TestTanh32(t *testing.T) {
	t.Parallel()
	for x := -8.0; x <= 8; x += 0.001 {
		if d := math.Abs(float64(tanh32(float32(x))) - math.Tanh(x)); d > 2e-4 {
			t.Fatalf("tanh32(%g) off by %g", x, d)
		}
	}
}

func TestGradient(t *testing.T) {
	t.Parallel()
	g, in := randomGrid(3, [3]int{6, 5, 4})
	got := filters{g: g}.gradient(in)
	at := func(i, j, k int) float64 { return float64(in[i+g.dim[0]*(j+g.dim[1]*k)]) }
	for k := range g.dim[2] {
		for j := range g.dim[1] {
			for i := range g.dim[0] {
				p := [3]int{i, j, k}
				var s float64
				for a := range 3 {
					lo, hi := p, p
					lo[a], hi[a] = max(p[a]-1, 0), min(p[a]+1, g.dim[a]-1)
					d := (at(hi[0], hi[1], hi[2]) - at(lo[0], lo[1], lo[2])) / (float64(hi[a]-lo[a]) * g.sp[a])
					s += d * d
				}
				want := math.Sqrt(s)
				if d := math.Abs(float64(got[i+g.dim[0]*(j+g.dim[1]*k)]) - want); d > 1e-3*max(1, want) {
					t.Fatalf("gradient at %v: %g, want %g", p, got[i+g.dim[0]*(j+g.dim[1]*k)], want)
				}
			}
		}
	}
}

// TestOutward: at a bone surface the outward sample lands in the tissue
// beyond it (fat or muscle), whichever way the surface faces, and
// interpolates between voxel centres.
func TestOutward(t *testing.T) {
	t.Parallel()
	g := grid{dim: [3]int{20, 20, 3}, sp: [3]float64{0.5, 0.5, 2}}
	for _, soft := range []float32{-100, 50} {
		for _, axis := range []int{0, 1} {
			hu := make([]float32, g.len())
			for v := range hu {
				i, j := v%20, (v/20)%20
				hu[v] = soft
				if (axis == 0 && i < 10) || (axis == 1 && j >= 10) {
					hu[v] = 1000
				}
			}
			// a surface voxel on the bone side, one deep in the bone, and
			// one in the soft tissue
			at := func(i, j int) int32 { return int32((1*20+j)*20 + i) }
			var local []int32
			if axis == 0 {
				local = []int32{at(9, 5), at(3, 5), at(15, 5)}
			} else {
				local = []int32{at(5, 10), at(5, 16), at(5, 4)}
			}
			out := make([]float32, 2*len(local))
			outward(g, hu, hu, local, 1, out, 2)
			want := []float32{soft, 1000, soft}
			for r, w := range want {
				if out[2*r] != w {
					t.Errorf("soft %v, axis %d, voxel %d: outward %v, want %v", soft, axis, r, out[2*r], w)
				}
			}
			// 0.25 mm down the gradient from the surface voxel is half-way
			// to the next voxel centre.
			outward(g, hu, hu, local[:1], 0.25, out, 2)
			if w := (1000 + soft) / 2; math.Abs(float64(out[0]-w)) > 1e-3 {
				t.Errorf("soft %v, axis %d: outward 0.25 mm %v, want %v", soft, axis, out[0], w)
			}
		}
	}
}
