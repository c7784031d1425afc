package surface

// Smooth applies iterations of Taubin's λ|μ smoothing (λ = 0.5,
// μ = −0.53): each vertex moves toward, then away from, the mean of its
// neighbours, which removes the staircase of label-map surfaces without
// the shrinking of plain Laplacian smoothing. Connectivity is unchanged,
// so a watertight mesh stays watertight.
func (m *Mesh) Smooth(iterations int) {
	if iterations <= 0 || len(m.Vertices) == 0 {
		return
	}
	// Neighbour lists in compressed form: the neighbours of vertex v are
	// nb[start[v]:start[v+1]] (each undirected edge once per end; an edge
	// shared by two triangles is listed twice, which weights all
	// neighbours equally on a closed mesh).
	n := len(m.Vertices)
	start := make([]int, n+1)
	for _, t := range m.Triangles {
		for _, v := range t {
			start[v+1] += 2
		}
	}
	for v := range n {
		start[v+1] += start[v]
	}
	nb := make([]uint32, start[n])
	fill := make([]int, n)
	copy(fill, start[:n])
	for _, t := range m.Triangles {
		for c := range 3 {
			a, b, d := t[c], t[(c+1)%3], t[(c+2)%3]
			nb[fill[a]], nb[fill[a]+1] = b, d
			fill[a] += 2
		}
	}
	tmp := make([][3]float32, n)
	step := func(factor float64) {
		for v := range n {
			p := m.Vertices[v]
			ns := nb[start[v]:start[v+1]]
			if len(ns) == 0 {
				tmp[v] = p
				continue
			}
			var mean [3]float64
			for _, u := range ns {
				q := m.Vertices[u]
				mean[0] += float64(q[0])
				mean[1] += float64(q[1])
				mean[2] += float64(q[2])
			}
			k := float64(len(ns))
			for c := range 3 {
				tmp[v][c] = float32(float64(p[c]) + factor*(mean[c]/k-float64(p[c])))
			}
		}
		m.Vertices, tmp = tmp, m.Vertices
	}
	for range iterations {
		step(0.5)
		step(-0.53)
	}
}
