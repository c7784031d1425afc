package dicom

// JPEG-LS (ITU-T T.87), lossless and near-lossless, is decoded by hand:
// no Go module that decodes it is reachable from this project (CharLS and
// the other implementations are C or C++), and it is a common compression
// of MR and CT in PACS exports. Only what grayscale DICOM uses is
// supported: one component (SOF55), 2 to 16 bits, any NEAR, preset
// parameters from an LSE segment or the defaults. Colour, mapping tables
// and restart intervals are refused with a clear error. Memory is bounded
// by the declared image: two line buffers beside the caller's frame.

import (
	"fmt"
	mbits "math/bits"
)

func errJLS(format string, args ...any) error {
	return fmt.Errorf("%w: JPEG-LS: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// jlsJ is the run-length order table J of T.87 A.7.1.1.
var jlsJ = [32]int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// jlsParams are a scan's coding parameters.
type jlsParams struct {
	precision          int
	maxval, t1, t2, t3 int
	reset, near        int
	rangeN, qbpp       int
	limit              int
}

// jlsHeader is what the markers before the scan declare.
type jlsHeader struct {
	rows, cols, precision int
	maxval, t1, t2, t3    int
	reset                 int
	near, ilv             int
	scanAt                int // offset of the entropy-coded data
}

// parseJLSHeader reads the markers up to the first scan.
func parseJLSHeader(b []byte) (jlsHeader, error) {
	var h jlsHeader
	st, err := newJPEGStream(b, errJLS)
	if err != nil {
		return h, err
	}
	sof := false
	for {
		m, seg, err := st.next()
		if err != nil {
			return h, err
		}
		if m == 0xd9 {
			return h, errJLS("EOI before any scan")
		}
		switch {
		case m == 0xf7: // SOF55
			if len(seg) < 6 {
				return h, errJLS("short SOF55")
			}
			h.precision = int(seg[0])
			h.rows, h.cols = int(seg[1])<<8|int(seg[2]), int(seg[3])<<8|int(seg[4])
			if nf := int(seg[5]); nf != 1 {
				return h, fmt.Errorf("%w: JPEG-LS image with %d components (colour); only grayscale is supported", ErrUnsupported, nf)
			}
			if len(seg) < 9 {
				return h, errJLS("short SOF55")
			}
			if h.precision < 2 || h.precision > 16 {
				return h, errJLS("precision %d", h.precision)
			}
			sof = true
		case isSOF(m):
			return h, fmt.Errorf("%w: JPEG frame type SOF%d in a JPEG-LS transfer syntax", ErrCorrupt, m-0xc0)
		case m == 0xf8: // LSE
			if len(seg) < 1 {
				return h, errJLS("short LSE")
			}
			if seg[0] != 1 {
				return h, fmt.Errorf("%w: JPEG-LS LSE segment type %d (mapping tables) is not supported", ErrUnsupported, seg[0])
			}
			if len(seg) < 11 {
				return h, errJLS("short LSE")
			}
			u := func(i int) int { return int(seg[i])<<8 | int(seg[i+1]) }
			h.maxval, h.t1, h.t2, h.t3, h.reset = u(1), u(3), u(5), u(7), u(9)
		case m == 0xdd: // DRI
			if len(seg) >= 2 && (seg[0] != 0 || seg[1] != 0) {
				return h, fmt.Errorf("%w: JPEG-LS restart intervals are not supported", ErrUnsupported)
			}
		case m == 0xda: // SOS
			if !sof {
				return h, errJLS("scan before SOF55")
			}
			if len(seg) < 1 || seg[0] != 1 || len(seg) < 6 {
				return h, errJLS("scan must have one component")
			}
			h.near, h.ilv = int(seg[3]), int(seg[4])
			if seg[5] != 0 {
				return h, fmt.Errorf("%w: JPEG-LS point transform %d", ErrUnsupported, seg[5]&15)
			}
			if seg[2] != 0 {
				return h, fmt.Errorf("%w: JPEG-LS mapping table %d", ErrUnsupported, seg[2])
			}
			h.scanAt = st.p
			return h, nil
		}
	}
}

// params derives the coding parameters (T.87 A.2, C.2.4.1.1).
func (h jlsHeader) params() (jlsParams, error) {
	sp := jlsParams{precision: h.precision, near: h.near}
	full := 1<<h.precision - 1
	sp.maxval = full
	if h.maxval != 0 {
		sp.maxval = h.maxval
	}
	if sp.maxval < 1 || sp.maxval > full {
		return sp, errJLS("MAXVAL %d for %d bits", sp.maxval, h.precision)
	}
	if sp.near < 0 || sp.near > min(255, sp.maxval/2) {
		return sp, errJLS("NEAR %d for MAXVAL %d", sp.near, sp.maxval)
	}
	clamp := func(i, j int) int {
		if i > sp.maxval || i < j {
			return j
		}
		return i
	}
	var t1, t2, t3 int
	if sp.maxval >= 128 {
		f := (min(sp.maxval, 4095) + 128) / 256
		t1 = clamp(f*(3-2)+2+3*sp.near, sp.near+1)
		t2 = clamp(f*(7-3)+3+5*sp.near, t1)
		t3 = clamp(f*(21-4)+4+7*sp.near, t2)
	} else {
		f := 256 / (sp.maxval + 1)
		t1 = clamp(max(2, 3/f+3*sp.near), sp.near+1)
		t2 = clamp(max(3, 7/f+5*sp.near), t1)
		t3 = clamp(max(4, 21/f+7*sp.near), t2)
	}
	sp.t1, sp.t2, sp.t3 = t1, t2, t3
	if h.t1 != 0 {
		sp.t1 = h.t1
	}
	if h.t2 != 0 {
		sp.t2 = h.t2
	}
	if h.t3 != 0 {
		sp.t3 = h.t3
	}
	if sp.t1 < sp.near+1 || sp.t2 < sp.t1 || sp.t3 < sp.t2 || sp.t3 > sp.maxval {
		return sp, errJLS("thresholds %d/%d/%d for MAXVAL %d NEAR %d", sp.t1, sp.t2, sp.t3, sp.maxval, sp.near)
	}
	sp.reset = 64
	if h.reset != 0 {
		sp.reset = h.reset
	}
	if sp.reset < 3 || sp.reset > max(255, sp.maxval) {
		return sp, errJLS("RESET %d", sp.reset)
	}
	sp.rangeN = (sp.maxval+2*sp.near)/(2*sp.near+1) + 1
	for 1<<sp.qbpp < sp.rangeN {
		sp.qbpp++
	}
	bpp := 2
	for 1<<bpp < sp.maxval+1 {
		bpp++
	}
	sp.limit = 2 * (bpp + max(8, bpp))
	return sp, nil
}

// jlsBits reads JPEG-LS entropy-coded data: after a 0xFF byte the next
// byte carries 7 bits; a 0xFF followed by a byte ≥ 0x80 is a marker, and
// reading stops there (zeros are supplied beyond it).
type jlsBits struct {
	b      []byte
	pos    int
	acc    uint64
	n      uint
	lastFF bool
	end    bool
	padded int
}

func (r *jlsBits) fill() {
	for r.n <= 56 {
		if r.end || r.pos >= len(r.b) {
			r.end = true
			r.acc <<= 8
			r.n += 8
			r.padded++
			continue
		}
		c := r.b[r.pos]
		if r.lastFF {
			if c&0x80 != 0 { // a marker
				r.end = true
				continue
			}
			r.pos++
			r.acc = r.acc<<7 | uint64(c)
			r.n += 7
		} else {
			r.pos++
			r.acc = r.acc<<8 | uint64(c)
			r.n += 8
		}
		r.lastFF = c == 0xff
	}
}

func (r *jlsBits) get(k int) int {
	if k == 0 {
		return 0
	}
	if r.n < uint(k) {
		r.fill()
	}
	r.n -= uint(k)
	return int(r.acc>>r.n) & (1<<k - 1)
}

func (r *jlsBits) bit() int { return r.get(1) }

// zeros counts the 0 bits before the next 1, up to max (then fails).
func (r *jlsBits) zeros(max int) (int, bool) {
	q := 0
	for {
		if r.n == 0 {
			r.fill()
		}
		// The buffered bits are the low r.n bits of acc.
		if v := r.acc << (64 - r.n); v != 0 {
			lz := mbits.LeadingZeros64(v)
			q += lz
			if q >= max {
				return q, false
			}
			r.n -= uint(lz) + 1
			return q, true
		}
		q += int(r.n)
		r.n = 0
		if q >= max {
			return q, false
		}
	}
}

// decodeValue reads a limited-length Golomb code (T.87 A.5.3).
func (r *jlsBits) decodeValue(k, limit, qbpp int) (int, error) {
	// Fast path: the unary prefix and the k low bits are all buffered.
	if r.n < 32 {
		r.fill()
	}
	if lz := mbits.LeadingZeros64(r.acc << (64 - r.n)); lz < limit-qbpp-1 && lz+1+k <= int(r.n) {
		r.n -= uint(lz + 1 + k)
		return lz<<k | int(r.acc>>r.n)&(1<<k-1), nil
	}
	q, ok := r.zeros(limit)
	if !ok {
		return 0, errJLS("invalid Golomb code")
	}
	if q >= limit-qbpp-1 {
		return r.get(qbpp) + 1, nil
	}
	return q<<k + r.get(k), nil
}

type jlsContext struct{ a, b, c, n int }

type jlsRunContext struct{ a, n, nn, riType int }

// decodeJPEGLS decodes one single-component JPEG-LS image of rows×cols
// samples into dst.
func decodeJPEGLS(b []byte, rows, cols int, dst []uint16) error {
	h, err := parseJLSHeader(b)
	if err != nil {
		return err
	}
	if h.rows != rows || h.cols != cols {
		return errJLS("image is %d×%d, DICOM header says %d×%d", h.cols, h.rows, cols, rows)
	}
	sp, err := h.params()
	if err != nil {
		return err
	}
	return decodeJLSScan(&jlsBits{b: b[h.scanAt:]}, sp, rows, cols, dst)
}

// decodeJLSScan decodes the regular and run modes (T.87 A.3 to A.7).
func decodeJLSScan(r *jlsBits, sp jlsParams, rows, cols int, dst []uint16) error {
	near, maxval := sp.near, sp.maxval
	step := 2*near + 1
	ainit := max(2, (sp.rangeN+32)>>6)
	var ctx [365]jlsContext
	for i := range ctx {
		ctx[i] = jlsContext{a: ainit, n: 1}
	}
	run := [2]jlsRunContext{{a: ainit, n: 1}, {a: ainit, n: 1, riType: 1}}
	runIndex := 0

	// region maps a local gradient d to its region −4 to 4 (T.87 A.3.3).
	region := func(d int) int {
		switch {
		case d <= -sp.t3:
			return -4
		case d <= -sp.t2:
			return -3
		case d <= -sp.t1:
			return -2
		case d < -near:
			return -1
		case d <= near:
			return 0
		case d < sp.t1:
			return 1
		case d < sp.t2:
			return 2
		case d < sp.t3:
			return 3
		}
		return 4
	}
	// quant is region through a table over −T3 to T3 (beyond, ±4), unless
	// custom thresholds make T3 so large that the table would outweigh a
	// small image.
	t3 := sp.t3
	var qtab []int8
	if t3 <= 4095 {
		qtab = make([]int8, 2*t3+1)
		for i := range qtab {
			qtab[i] = int8(region(i - t3))
		}
	}
	quant := func(d int) int {
		if qtab == nil {
			return region(d)
		}
		return int(qtab[min(max(d, -t3), t3)+t3])
	}
	// fix reduces a reconstructed value modulo the range and clamps it
	// (T.87 A.4.5).
	fix := func(v int) int {
		if v < -near {
			v += sp.rangeN * step
		} else if v > maxval+near {
			v -= sp.rangeN * step
		}
		return min(max(v, 0), maxval)
	}

	// Line buffers with one sample of padding each side: index x+1.
	prev := make([]int, cols+2)
	cur := make([]int, cols+2)
	for y := range rows {
		cur[0] = prev[1]
		prev[cols+1] = prev[cols]
		for x := 1; x <= cols; {
			ra, rb, rc, rd := cur[x-1], prev[x], prev[x-1], prev[x+1]
			q1, q2, q3 := quant(rd-rb), quant(rb-rc), quant(rc-ra)
			if q1 == 0 && q2 == 0 && q3 == 0 {
				// Run mode (A.7).
				remaining := cols - x + 1
				n := 0
				for r.bit() == 1 {
					cnt := min(1<<jlsJ[runIndex], remaining-n)
					n += cnt
					if cnt == 1<<jlsJ[runIndex] && runIndex < 31 {
						runIndex++
					}
					if n == remaining {
						break
					}
					if r.padded > 8 {
						return errJLS("entropy-coded data truncated")
					}
				}
				if n != remaining {
					n += r.get(jlsJ[runIndex])
				}
				if n > remaining {
					return errJLS("run of %d samples overflows the line", n)
				}
				for i := range n {
					cur[x+i] = ra
				}
				x += n
				if x > cols {
					break
				}
				// Run interruption sample (A.7.2).
				rb = prev[x]
				ri := 0
				if abs(ra-rb) <= near {
					ri = 1
				}
				c := &run[ri]
				temp := c.a + (c.n>>1)*ri
				k := 0
				for c.n<<k < temp {
					k++
				}
				em, err := r.decodeValue(k, sp.limit-jlsJ[runIndex]-1, sp.qbpp)
				if err != nil {
					return err
				}
				t := em + ri
				m := t & 1
				e := (t + m) / 2
				if (k != 0 || 2*c.nn >= c.n) == (m == 1) {
					e = -e
				}
				if e < 0 {
					c.nn++
				}
				c.a += (em + 1 - ri) >> 1
				if c.n == sp.reset {
					c.a >>= 1
					c.n >>= 1
					c.nn >>= 1
				}
				c.n++
				if ri == 1 {
					cur[x] = fix(ra + e*step)
				} else {
					if rb < ra {
						e = -e
					}
					cur[x] = fix(rb + e*step)
				}
				if runIndex > 0 {
					runIndex--
				}
				x++
				continue
			}
			// Regular mode (A.4 to A.6).
			qs := (q1*9+q2)*9 + q3
			sign := 1
			if qs < 0 {
				sign, qs = -1, -qs
			}
			c := &ctx[qs]
			var px int
			switch mx, mn := max(ra, rb), min(ra, rb); {
			case rc >= mx:
				px = mn
			case rc <= mn:
				px = mx
			default:
				px = ra + rb - rc
			}
			px = min(max(px+sign*c.c, 0), maxval)
			k := 0
			for c.n<<k < c.a {
				k++
			}
			em, err := r.decodeValue(k, sp.limit, sp.qbpp)
			if err != nil {
				return err
			}
			var e int
			if em&1 == 0 {
				e = em >> 1
			} else {
				e = -(em + 1) >> 1
			}
			if near == 0 && k == 0 && 2*c.b <= -c.n {
				e = -e - 1
			}
			// Update (A.6.1, A.6.2).
			c.b += e * step
			c.a += abs(e)
			if c.n == sp.reset {
				c.a >>= 1
				c.b >>= 1
				c.n >>= 1
			}
			c.n++
			if c.b <= -c.n {
				c.b += c.n
				if c.c > -128 {
					c.c--
				}
				if c.b <= -c.n {
					c.b = -c.n + 1
				}
			} else if c.b > 0 {
				c.b -= c.n
				if c.c < 127 {
					c.c++
				}
				if c.b > 0 {
					c.b = 0
				}
			}
			cur[x] = fix(px + sign*e*step)
			x++
		}
		row := dst[y*cols : (y+1)*cols]
		for i := range row {
			row[i] = uint16(cur[i+1])
		}
		if r.padded > 8 {
			return errJLS("entropy-coded data truncated")
		}
		prev, cur = cur, prev
	}
	return nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
