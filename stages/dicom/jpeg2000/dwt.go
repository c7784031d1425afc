package jpeg2000

// Inverse discrete wavelet transforms (T.800 Annex F): the reversible 5/3
// filter on integers and the irreversible 9/7 filter on float32, by
// lifting on lines extended symmetrically (F.3.7).

const pad = 4 // extension on each side of a line, enough for 9/7

// idwt53 reconstructs the tile-component in a (stride w) level by level.
func (t *tile) idwt53(a []int32, w int) {
	var line, rows []int32
	for r := 1; r < len(t.res); r++ {
		rs, lo := &t.res[r], &t.res[r-1]
		rw, rh := rs.x1-rs.x0, rs.y1-rs.y0
		if rw == 0 || rh == 0 {
			continue
		}
		if n := max(rw, rh) + 2*pad; cap(line) < n {
			line = make([]int32, n)
		}
		sw, sh := lo.x1-lo.x0, lo.y1-lo.y0
		for y := range rh {
			row := a[y*w : y*w+rw]
			interleave(line, row, rw, sw, rs.x0&1, 1)
			lift53(line[:rw+2*pad], rs.x0&1)
			copy(row, line[pad:pad+rw])
		}
		rows = vertical53(a, w, rw, rh, sh, rs.y0&1, rows)
	}
}

// vertical53 inverts the vertical 5/3 lifting on whole rows at once (rows
// in cache order rather than one column at a time): the rh rows of width
// rw in a (sh low-pass rows first) are interleaved into tmp, lifted with
// symmetric extension at the top and bottom, and copied back.
func vertical53(a []int32, w, rw, rh, sh, cas int, tmp []int32) []int32 {
	if cap(tmp) < rw*rh {
		tmp = make([]int32, rw*rh)
	}
	tmp = tmp[:rw*rh]
	lo, hi := 0, sh
	for j := range rh {
		src := lo
		if (cas+j)&1 == 0 {
			lo++
		} else {
			src = hi
			hi++
		}
		copy(tmp[j*rw:(j+1)*rw], a[src*w:src*w+rw])
	}
	row := func(j int) []int32 {
		if j < 0 {
			j = -j
		} else if j >= rh {
			j = 2*(rh-1) - j
		}
		return tmp[j*rw : (j+1)*rw]
	}
	if rh == 1 {
		if cas == 1 {
			for i := range tmp {
				tmp[i] /= 2
			}
		}
	} else {
		for j := cas & 1; j < rh; j += 2 { // even absolute rows: low-pass
			x, u, d := row(j), row(j-1), row(j+1)
			for i := range x {
				x[i] -= (u[i] + d[i] + 2) >> 2
			}
		}
		for j := 1 - cas&1; j < rh; j += 2 {
			x, u, d := row(j), row(j-1), row(j+1)
			for i := range x {
				x[i] += (u[i] + d[i]) >> 1
			}
		}
	}
	for j := range rh {
		copy(a[j*w:j*w+rw], tmp[j*rw:(j+1)*rw])
	}
	return tmp
}

// idwt97 is idwt53 for the irreversible filter.
func (t *tile) idwt97(a []float32, w int) {
	var line []float32
	for r := 1; r < len(t.res); r++ {
		rs, lo := &t.res[r], &t.res[r-1]
		rw, rh := rs.x1-rs.x0, rs.y1-rs.y0
		if rw == 0 || rh == 0 {
			continue
		}
		if n := max(rw, rh) + 2*pad; cap(line) < n {
			line = make([]float32, n)
		}
		sw, sh := lo.x1-lo.x0, lo.y1-lo.y0
		for y := range rh {
			row := a[y*w : y*w+rw]
			interleave(line, row, rw, sw, rs.x0&1, 1)
			lift97(line[:rw+2*pad], rs.x0&1)
			copy(row, line[pad:pad+rw])
		}
		for x := range rw {
			col := a[x:]
			interleave(line, col, rh, sh, rs.y0&1, w)
			lift97(line[:rh+2*pad], rs.y0&1)
			for y := range rh {
				col[y*w] = line[pad+y]
			}
		}
	}
}

// interleave puts the n samples of src (step apart: sn low-pass, then
// high-pass) in their places in line[pad:pad+n] (low-pass at even
// absolute positions; cas is the parity of the first) and extends the
// line symmetrically by pad samples on each side.
func interleave[T int32 | float32](line []T, src []T, n, sn, cas, step int) {
	d := line[pad : pad+n]
	lo, hi := 0, sn
	for j := range d {
		if (cas+j)&1 == 0 {
			d[j] = src[lo*step]
			lo++
		} else {
			d[j] = src[hi*step]
			hi++
		}
	}
	if n == 1 {
		for k := 1; k <= pad; k++ {
			line[pad-k], line[pad+k] = d[0], d[0]
		}
		return
	}
	period := 2 * (n - 1)
	for k := 1; k <= pad; k++ {
		line[pad-k] = d[mirror(-k, n, period)]
		line[pad+n-1+k] = d[mirror(n-1+k, n, period)]
	}
}

func mirror(j, n, period int) int {
	j %= period
	if j < 0 {
		j += period
	}
	if j >= n {
		j = period - j
	}
	return j
}

// lift53 inverts the 5/3 lifting on an extended line (F.3.8.1); the
// first pad and last pad samples are scratch.
func lift53(x []int32, cas int) {
	n := len(x) - 2*pad
	if n == 1 {
		if cas == 1 {
			x[pad] /= 2
		}
		return
	}
	// even absolute positions: buffer index k with (cas+k-pad) even
	first := 1 + (cas+1-pad)&1
	for k := first; k+1 < len(x); k += 2 {
		x[k] -= (x[k-1] + x[k+1] + 2) >> 2
	}
	for k := first + 1; k+1 < len(x); k += 2 {
		x[k] += (x[k-1] + x[k+1]) >> 1
	}
}

// 9/7 lifting constants (Table F.4).
const (
	alpha97 = -1.586134342059924
	beta97  = -0.052980118572961
	gamma97 = 0.882911075530934
	delta97 = 0.443506852043971
	k97     = 1.230174104914001
	// invK97 is OpenJPEG's high-pass gain (its 2/K constant, 1.625732422,
	// halved) rather than 1/K = 0.8128930…: 3·10⁻⁵ apart, and with it
	// lossy images decode sample for sample like opj_decompress, the
	// decoder most archives were checked with.
	invK97 = 1.625732422 / 2
)

// lift97 inverts the 9/7 lifting on an extended line (F.3.8.2).
func lift97(x []float32, cas int) {
	n := len(x) - 2*pad
	if n == 1 {
		if cas == 1 {
			x[pad] /= 2
		}
		return
	}
	lowFirst := cas & 1 // index k is low-pass when (k+cas) is even (pad is even)
	for k := range x {
		if (k+lowFirst)&1 == 0 {
			x[k] *= k97
		} else {
			x[k] *= invK97
		}
	}
	step := func(first int, c float32) {
		for k := first; k+1 < len(x); k += 2 {
			x[k] -= c * (x[k-1] + x[k+1])
		}
	}
	lo := lowFirst
	if lo == 0 {
		lo = 2
	}
	hi := 1 - lowFirst
	if hi == 0 {
		hi = 2
	}
	step(lo, delta97)
	step(hi, gamma97)
	step(lo, beta97)
	step(hi, alpha97)
}
