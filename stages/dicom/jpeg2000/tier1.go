package jpeg2000

// Tier-1: the MQ arithmetic decoder (T.800 Annex C) and the EBCOT
// bit-plane passes of a code-block (Annex D).

import "math/bits"

// qe is the probability estimation table C.2: Qe, next MPS, next LPS,
// switch.
var qe = [47]struct {
	qe         uint32
	nmps, nlps uint8
	sw         bool
}{
	{0x5601, 1, 1, true}, {0x3401, 2, 6, false}, {0x1801, 3, 9, false}, {0x0ac1, 4, 12, false},
	{0x0521, 5, 29, false}, {0x0221, 38, 33, false}, {0x5601, 7, 6, true}, {0x5401, 8, 14, false},
	{0x4801, 9, 14, false}, {0x3801, 10, 14, false}, {0x3001, 11, 17, false}, {0x2401, 12, 18, false},
	{0x1c01, 13, 20, false}, {0x1601, 29, 21, false}, {0x5601, 15, 14, true}, {0x5401, 16, 14, false},
	{0x5101, 17, 15, false}, {0x4801, 18, 16, false}, {0x3801, 19, 17, false}, {0x3401, 20, 18, false},
	{0x3001, 21, 19, false}, {0x2801, 22, 19, false}, {0x2401, 23, 20, false}, {0x2201, 24, 21, false},
	{0x1c01, 25, 22, false}, {0x1801, 26, 23, false}, {0x1601, 27, 24, false}, {0x1401, 28, 25, false},
	{0x1201, 29, 26, false}, {0x1101, 30, 27, false}, {0x0ac1, 31, 28, false}, {0x09c1, 32, 29, false},
	{0x08a1, 33, 30, false}, {0x0521, 34, 31, false}, {0x0441, 35, 32, false}, {0x02a1, 36, 33, false},
	{0x0221, 37, 34, false}, {0x0141, 38, 35, false}, {0x0111, 39, 36, false}, {0x0085, 40, 37, false},
	{0x0049, 41, 38, false}, {0x0025, 42, 39, false}, {0x0015, 43, 40, false}, {0x0009, 44, 41, false},
	{0x0005, 45, 42, false}, {0x0001, 45, 43, false}, {0x5601, 46, 46, false},
}

// Contexts: 0–8 significance, 9–13 sign, 14–16 refinement, 17 run
// length, 18 uniform.
const (
	ctxSign    = 9
	ctxRefine  = 14
	ctxRun     = 17
	ctxUniform = 18
)

// mqState is one entry of the decoder's table: a context's state index
// and MPS combined (2·index + MPS), with the next entries after an MPS
// and an LPS (the switch folded in), as in C.2.
type mqState struct {
	qe         uint32
	mps        uint8
	nmps, nlps uint8
}

var mqStates = func() (t [94]mqState) {
	for i, e := range qe {
		for mps := range 2 {
			lps := mps
			if e.sw {
				lps = 1 - mps
			}
			t[2*i+mps] = mqState{qe: e.qe, mps: uint8(mps), nmps: 2*e.nmps + uint8(mps), nlps: 2*e.nlps + uint8(lps)}
		}
	}
	return t
}()

// mq is the MQ decoder; cx holds each context's mqStates entry.
type mq struct {
	data []byte
	pos  int
	a, c uint32
	ct   int
	cx   [19]uint8
}

func (m *mq) resetContexts() {
	m.cx = [19]uint8{}
	m.cx[0], m.cx[ctxRun], m.cx[ctxUniform] = 2*4, 2*3, 2*46
}

func (m *mq) at(i int) uint32 {
	if i < len(m.data) {
		return uint32(m.data[i])
	}
	return 0xff
}

func (m *mq) init(data []byte) {
	m.data, m.pos = data, 0
	m.c = m.at(0) << 16
	m.bytein()
	m.c <<= 7
	m.ct -= 7
	m.a = 0x8000
}

func (m *mq) bytein() {
	if m.at(m.pos) == 0xff {
		if m.at(m.pos+1) > 0x8f {
			m.c += 0xff00
			m.ct = 8
		} else {
			m.pos++
			m.c += m.at(m.pos) << 9
			m.ct = 7
		}
	} else {
		m.pos++
		m.c += m.at(m.pos) << 8
		m.ct = 8
	}
}

// decode decodes one decision in context cx (C.3.2, with the LPS
// sub-interval at the bottom as the encoder of C.2 places it). The usual
// case, an MPS without renormalisation, is small enough to be inlined.
func (m *mq) decode(cx uint8) int {
	if d, ok := m.fast(cx); ok {
		return d
	}
	return m.decodeSlow(cx % 19)
}

// fast decodes the usual case, an MPS without renormalisation; it is
// inlined in the passes' loops (decode, which calls decodeSlow, is too
// big for the inliner). ok is false when decodeSlow must decode.
func (m *mq) fast(cx uint8) (int, bool) {
	s := &mqStates[m.cx[cx%19]]
	a := m.a - s.qe
	if a < 0x8000 || m.c < s.qe<<16 {
		return 0, false
	}
	m.a = a
	m.c -= s.qe << 16
	return int(s.mps), true
}

func (m *mq) decodeSlow(cx uint8) int {
	s := &mqStates[m.cx[cx]]
	d := s.mps
	a := m.a - s.qe
	if m.c>>16 < s.qe {
		if a < s.qe {
			m.cx[cx] = s.nmps
		} else {
			d ^= 1
			m.cx[cx] = s.nlps
		}
		a = s.qe
	} else {
		m.c -= s.qe << 16
		if a&0x8000 != 0 {
			m.a = a
			return int(d)
		}
		if a < s.qe {
			d ^= 1
			m.cx[cx] = s.nlps
		} else {
			m.cx[cx] = s.nmps
		}
	}
	// renormalise: shift until A ≥ 0x8000, reading a byte whenever CT runs out
	n := bits.LeadingZeros32(a) - 16
	for {
		if m.ct == 0 {
			m.bytein()
		}
		k := min(n, m.ct)
		a <<= k
		m.c <<= k
		m.ct -= k
		if n -= k; n == 0 {
			break
		}
	}
	m.a = a
	return int(d)
}

// raw reads the bits of a bypass (lazy) segment, skipping stuffed bits.
type raw struct {
	data []byte
	pos  int
	c    uint32
	ct   int
}

func (r *raw) init(data []byte) { *r = raw{data: data} }

func (r *raw) at(i int) uint32 {
	if i < len(r.data) {
		return uint32(r.data[i])
	}
	return 0xff
}

func (r *raw) bit() int {
	if r.ct == 0 {
		if r.c == 0xff {
			if r.at(r.pos) > 0x8f {
				r.ct = 8
			} else {
				r.c = r.at(r.pos)
				r.pos++
				r.ct = 7
			}
		} else {
			r.c = r.at(r.pos)
			r.pos++
			r.ct = 8
		}
	}
	r.ct--
	return int(r.c>>r.ct) & 1
}

// Flag bits per coefficient: significance of the eight neighbours, sign
// of the four direct ones, and the coefficient's own state.
const (
	fN, fS, fW, fE     = 1 << 0, 1 << 1, 1 << 2, 1 << 3
	fNW, fNE, fSW, fSE = 1 << 4, 1 << 5, 1 << 6, 1 << 7
	fNneg, fSneg       = 1 << 8, 1 << 9
	fWneg, fEneg       = 1 << 10, 1 << 11
	fSig, fVisit, fRef = 1 << 12, 1 << 13, 1 << 14
	fNeighbours        = 0xff
	fSouth             = fS | fSW | fSE | fSneg
)

// zcLUT gives the significance context per band orientation (0 LL/LH,
// 1 HL, 2 HH) and neighbour bits (Table D.1); scLUT the sign context and
// XOR bit per direct-neighbour significance and sign bits (Table D.3).
var zcLUT [3][256]uint8
var scLUT [256]uint8 // ctx | xor<<7

func init() {
	for n := range 256 {
		h := n>>2&1 + n>>3&1
		v := n&1 + n>>1&1
		d := n>>4&1 + n>>5&1 + n>>6&1 + n>>7&1
		zcLUT[0][n] = zc(h, v, d)
		zcLUT[1][n] = zc(v, h, d)
		var c uint8
		hv := h + v
		switch {
		case d >= 3:
			c = 8
		case d == 2:
			c = 6 + b2u(hv >= 1)
		case d == 1:
			c = 3 + min(uint8(hv), 2)
		default:
			c = min(uint8(hv), 2)
		}
		zcLUT[2][n] = c
	}
	// index bits: 0 N sig, 1 S sig, 2 W sig, 3 E sig, 4 N neg, 5 S neg, 6 W neg, 7 E neg
	for n := range 256 {
		contrib := func(sig, neg int) int {
			if n>>sig&1 == 0 {
				return 0
			}
			if n>>neg&1 != 0 {
				return -1
			}
			return 1
		}
		h := max(-1, min(1, contrib(2, 6)+contrib(3, 7)))
		v := max(-1, min(1, contrib(0, 4)+contrib(1, 5)))
		var ctx, x int
		switch {
		case h == 1:
			ctx = 12 + v
		case h == 0 && v == 0:
			ctx = 9
		case h == 0:
			ctx, x = 10, b2i(v < 0)
		default:
			ctx, x = 12-v, 1
		}
		scLUT[n] = uint8(ctx) | uint8(x)<<7
	}
}

func zc(h, v, d int) uint8 {
	switch {
	case h == 2:
		return 8
	case h == 1 && v >= 1:
		return 7
	case h == 1 && d >= 1:
		return 6
	case h == 1:
		return 5
	case v == 2:
		return 4
	case v == 1:
		return 3
	case d >= 2:
		return 2
	}
	return uint8(d)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// t1 decodes code-blocks; its buffers are reused between blocks.
type t1 struct {
	w, h, stride int
	flags        []uint32
	data         []int32 // ± (bits + half of the lowest plane) × 2, row-major w×h
	mq           mq
	raw          raw
	orient       int
	vsc          bool
}

// segment is a codeword segment of a code-block: its bytes and passes.
type segment struct {
	data   []byte
	passes int
	max    int
}

// decodeBlock decodes a w×h code-block of numbps magnitude bit planes from
// its segments into t.data.
func (t *t1) decodeBlock(w, h, orient, style, numbps int, segs []segment) {
	t.w, t.h, t.stride, t.orient = w, h, w+2, orient
	t.vsc = style&styleVCausal != 0
	n := (w + 2) * (h + 2)
	if cap(t.flags) < n {
		t.flags = make([]uint32, n)
	}
	t.flags = t.flags[:n]
	clear(t.flags)
	if cap(t.data) < w*h {
		t.data = make([]int32, w*h)
	}
	t.data = t.data[:w*h]
	clear(t.data)
	t.mq.resetContexts()
	pass := 0
	for _, sg := range segs {
		isRaw := style&styleBypass != 0 && pass >= 10 && (pass-1)%3 != 2
		if isRaw {
			t.raw.init(sg.data)
		} else {
			t.mq.init(sg.data)
		}
		for range sg.passes {
			plane := numbps - 1
			kind := 2 // cleanup
			if pass > 0 {
				plane = numbps - 1 - (pass+2)/3
				kind = (pass - 1) % 3
			}
			if plane < 0 {
				return
			}
			switch kind {
			case 0:
				if isRaw {
					t.sigRaw(plane)
				} else {
					t.sig(plane)
				}
			case 1:
				if isRaw {
					t.refRaw(plane)
				} else {
					t.ref(plane)
				}
			default:
				t.cleanup(plane, style&styleSegSym != 0)
			}
			if style&styleReset != 0 {
				t.mq.resetContexts()
			}
			pass++
		}
	}
}

// neighbours returns the context bits of flag word f at row y.
func (t *t1) neighbours(f uint32, y int) uint32 {
	if t.vsc && y&3 == 3 {
		return f &^ fSouth
	}
	return f
}

// signCtx returns the sign context and XOR bit.
func signCtx(f uint32) (uint8, int) {
	i := f&(fN|fS|fW|fE) | (f>>8&15)<<4
	v := scLUT[i]
	return v & 0x7f, int(v >> 7)
}

// setSig marks coefficient (x, y) at flag index i significant with sign
// neg and tells its neighbours.
func (t *t1) setSig(i int, neg bool) {
	s := t.stride
	fl := t.flags
	fl[i] |= fSig
	if neg {
		fl[i-s] |= fS | fSneg
		fl[i+s] |= fN | fNneg
		fl[i-1] |= fE | fEneg
		fl[i+1] |= fW | fWneg
	} else {
		fl[i-s] |= fS
		fl[i+s] |= fN
		fl[i-1] |= fE
		fl[i+1] |= fW
	}
	fl[i-s-1] |= fSE
	fl[i-s+1] |= fSW
	fl[i+s-1] |= fNE
	fl[i+s+1] |= fNW
}

// sign decodes a newly significant coefficient's sign and value.
func (t *t1) becomeSig(fi, di, y int, plane int, f uint32) {
	ctx, x := signCtx(t.neighbours(f, y))
	neg := t.mq.decode(ctx)^x != 0
	v := int32(3) << plane
	if neg {
		v = -v
	}
	t.data[di] = v
	t.setSig(fi, neg)
}

func (t *t1) sig(plane int) {
	zc := &zcLUT[t.orient]
	s, fl := t.stride, t.flags
	for y0 := 0; y0 < t.h; y0 += 4 {
		rows := min(4, t.h-y0)
		for x := range t.w {
			fi := (y0+1)*s + x + 1
			if rows == 4 && (fl[fi]|fl[fi+s]|fl[fi+2*s]|fl[fi+3*s])&fNeighbours == 0 {
				continue // no sample of the column has a significant neighbour
			}
			for r := range rows {
				i := fi + r*s
				f := fl[i]
				if f&fSig != 0 {
					continue
				}
				nb := t.neighbours(f, y0+r) & fNeighbours
				if nb == 0 {
					continue
				}
				fl[i] |= fVisit
				d, ok := t.mq.fast(zc[nb])
				if !ok {
					d = t.mq.decodeSlow(zc[nb])
				}
				if d != 0 {
					t.becomeSig(i, (y0+r)*t.w+x, y0+r, plane, f)
				}
			}
		}
	}
}

func (t *t1) sigRaw(plane int) {
	for y0 := 0; y0 < t.h; y0 += 4 {
		for x := range t.w {
			for y := y0; y < min(y0+4, t.h); y++ {
				fi := (y+1)*t.stride + x + 1
				f := t.flags[fi]
				if f&fSig != 0 || t.neighbours(f, y)&fNeighbours == 0 {
					continue
				}
				t.flags[fi] |= fVisit
				if t.raw.bit() != 0 {
					neg := t.raw.bit() != 0
					v := int32(3) << plane
					if neg {
						v = -v
					}
					t.data[y*t.w+x] = v
					t.setSig(fi, neg)
				}
			}
		}
	}
}

func (t *t1) refine(fi, di int, plane, bit int) {
	half := int32(1) << plane
	if bit == 0 {
		half = -half
	}
	if t.data[di] < 0 {
		t.data[di] -= half
	} else {
		t.data[di] += half
	}
	t.flags[fi] |= fRef
}

func (t *t1) ref(plane int) {
	s, fl := t.stride, t.flags
	for y0 := 0; y0 < t.h; y0 += 4 {
		rows := min(4, t.h-y0)
		for x := range t.w {
			fi := (y0+1)*s + x + 1
			if rows == 4 && (fl[fi]|fl[fi+s]|fl[fi+2*s]|fl[fi+3*s])&fSig == 0 {
				continue
			}
			for r := range rows {
				i := fi + r*s
				f := fl[i]
				if f&(fSig|fVisit) != fSig {
					continue
				}
				ctx := uint8(ctxRefine + 2)
				if f&fRef == 0 {
					ctx = ctxRefine
					if t.neighbours(f, y0+r)&fNeighbours != 0 {
						ctx++
					}
				}
				d, ok := t.mq.fast(ctx)
				if !ok {
					d = t.mq.decodeSlow(ctx)
				}
				t.refine(i, (y0+r)*t.w+x, plane, d)
			}
		}
	}
}

func (t *t1) refRaw(plane int) {
	for y0 := 0; y0 < t.h; y0 += 4 {
		for x := range t.w {
			for y := y0; y < min(y0+4, t.h); y++ {
				fi := (y+1)*t.stride + x + 1
				if t.flags[fi]&(fSig|fVisit) == fSig {
					t.refine(fi, y*t.w+x, plane, t.raw.bit())
				}
			}
		}
	}
}

func (t *t1) cleanup(plane int, segsym bool) {
	zc := &zcLUT[t.orient]
	s := t.stride
	for y0 := 0; y0 < t.h; y0 += 4 {
		for x := range t.w {
			y := y0
			if y0+4 <= t.h {
				fi := (y0+1)*s + x + 1
				fl := t.flags
				if (fl[fi]|fl[fi+s]|fl[fi+2*s])&(fSig|fVisit|fNeighbours) == 0 &&
					t.neighbours(fl[fi+3*s], y0+3)&(fSig|fVisit|fNeighbours) == 0 {
					if t.mq.decode(ctxRun) == 0 {
						continue
					}
					r := t.mq.decode(ctxUniform) << 1
					r |= t.mq.decode(ctxUniform)
					y = y0 + r
					fi = (y+1)*s + x + 1
					t.becomeSig(fi, y*t.w+x, y, plane, t.flags[fi])
					y++
				}
			}
			for ; y < min(y0+4, t.h); y++ {
				fi := (y+1)*s + x + 1
				f := t.flags[fi]
				if f&(fSig|fVisit) != 0 {
					t.flags[fi] = f &^ fVisit // the plane is done with it
					continue
				}
				nb := t.neighbours(f, y) & fNeighbours
				d, ok := t.mq.fast(zc[nb])
				if !ok {
					d = t.mq.decodeSlow(zc[nb])
				}
				if d != 0 {
					t.becomeSig(fi, y*t.w+x, y, plane, f)
				}
			}
		}
	}
	// Visited samples never pass the run-length test, so the loop above
	// has cleared every visit flag.
	if segsym {
		for range 4 {
			t.mq.decode(ctxUniform)
		}
	}
}
