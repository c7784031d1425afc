package surface

import "fmt"

// The marching-cubes case table is derived here from one rule instead of
// being copied from the classic 256-entry tables, whose ambiguous faces
// can leave cracks between cubes.
//
// Corner b of a cube sits at (b&1, b>>1&1, b>>2&1). On each cube face the
// iso-contour is a set of segments between crossing edges; on an ambiguous
// face (inside corners on a diagonal) the rule "inside corners are
// separated" decides, and since it depends only on the face's four corners,
// the two cubes sharing a face always agree: the surface has no cracks.
// The segments of all faces chain into closed loops, each triangulated
// without a chord across an ambiguous face (such a chord could be chosen by
// the neighbouring cube too, and an edge would then border four
// triangles).

// cubeEdges returns the 12 edges as corner pairs, in the order the
// extractor numbers them: x edges, y edges, z edges.
func cubeEdges() [12][2]int {
	return [12][2]int{
		{0, 1}, {2, 3}, {4, 5}, {6, 7}, // along x
		{0, 2}, {1, 3}, {4, 6}, {5, 7}, // along y
		{0, 4}, {1, 5}, {2, 6}, {3, 7}, // along z
	}
}

// caseTable holds, per cube case (bit b set when corner b is inside), the
// triangles as triples of cube edge numbers, wound counter-clockwise seen
// from outside (normals point from inside to outside).
type caseTable [256][]uint8

// edgeOf returns the edge number joining corners a and b.
func edgeOf(a, b int) int {
	for e, c := range cubeEdges() {
		if (c[0] == a && c[1] == b) || (c[0] == b && c[1] == a) {
			return e
		}
	}
	return -1
}

// faces returns the six faces, each as its four corners in
// counter-clockwise order seen from outside the cube.
func faces() [6][4]int {
	var out [6][4]int
	corner := func(a int, s, u, v int) int {
		var p [3]int
		p[a], p[(a+1)%3], p[(a+2)%3] = s, u, v
		return p[0] | p[1]<<1 | p[2]<<2
	}
	n := 0
	for a := range 3 {
		for s := range 2 {
			// (u, v) = the next two axes cyclically; u × v = +a.
			c := [4]int{corner(a, s, 0, 0), corner(a, s, 1, 0), corner(a, s, 1, 1), corner(a, s, 0, 1)}
			if s == 0 { // outward normal is −a: reverse
				c = [4]int{c[0], c[3], c[2], c[1]}
			}
			out[n] = c
			n++
		}
	}
	return out
}

// newCaseTable derives the table. It fails only if the rule could not be
// applied (a bug), which the package tests check.
func newCaseTable() (*caseTable, error) {
	var t caseTable
	fs := faces()
	for c := range 256 {
		in := func(b int) bool { return c>>b&1 == 1 }
		// next[e] = the edge the contour goes to after edge e.
		next := [12]int{}
		for e := range next {
			next[e] = -1
		}
		// ambiguous faces' crossing edges, for the chord rule.
		var ambiguous [][4]int
		for _, f := range fs {
			var entries []int
			for s := range 4 {
				if !in(f[s]) && in(f[(s+1)%4]) {
					entries = append(entries, s)
				}
			}
			// Each inside run on the cycle starts after an entry edge
			// and ends at the next exit edge: segment entry → exit.
			for _, s := range entries {
				x := s
				for {
					x = (x + 1) % 4
					if in(f[x]) && !in(f[(x+1)%4]) {
						break
					}
				}
				from := edgeOf(f[s], f[(s+1)%4])
				to := edgeOf(f[x], f[(x+1)%4])
				if next[from] != -1 {
					return nil, fmt.Errorf("case %d: edge %d starts two segments", c, from)
				}
				next[from] = to
			}
			if len(entries) == 2 {
				var q [4]int
				for s := range 4 {
					q[s] = edgeOf(f[s], f[(s+1)%4])
				}
				ambiguous = append(ambiguous, q)
			}
		}
		// Chain segments into loops.
		seen := [12]bool{}
		for e0 := range 12 {
			if next[e0] == -1 || seen[e0] {
				continue
			}
			var loop []int
			for e := e0; !seen[e]; e = next[e] {
				if next[e] == -1 {
					return nil, fmt.Errorf("case %d: open contour at edge %d", c, e)
				}
				seen[e] = true
				loop = append(loop, e)
			}
			tris, ok := triangulate(loop, func(a, b int) bool { return chordAllowed(a, b, ambiguous) })
			if !ok {
				return nil, fmt.Errorf("case %d: loop %v has no triangulation without a chord across an ambiguous face", c, loop)
			}
			for _, tr := range tris {
				t[c] = append(t[c], uint8(tr[0]), uint8(tr[1]), uint8(tr[2]))
			}
		}
	}
	return &t, nil
}

// chordAllowed reports whether edges a and b may be joined by a chord:
// not both crossing edges of the same ambiguous face.
func chordAllowed(a, b int, ambiguous [][4]int) bool {
	for _, q := range ambiguous {
		ha, hb := false, false
		for _, e := range q {
			ha = ha || e == a
			hb = hb || e == b
		}
		if ha && hb {
			return false
		}
	}
	return true
}

// triangulate splits the polygon loop into triangles keeping its
// orientation, using only chords that allowed accepts (ear clipping with
// backtracking; loops have at most 12 vertices).
func triangulate(loop []int, allowed func(a, b int) bool) ([][3]int, bool) {
	n := len(loop)
	if n < 3 {
		return nil, false
	}
	if n == 3 {
		return [][3]int{{loop[0], loop[1], loop[2]}}, true
	}
	for i := range n {
		prev, cur, nxt := loop[(i+n-1)%n], loop[i], loop[(i+1)%n]
		if !allowed(prev, nxt) {
			continue
		}
		rest := make([]int, 0, n-1)
		for j := range n {
			if j != i {
				rest = append(rest, loop[j])
			}
		}
		if tris, ok := triangulate(rest, allowed); ok {
			return append([][3]int{{prev, cur, nxt}}, tris...), true
		}
	}
	return nil, false
}
