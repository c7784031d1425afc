package jpeg2000

import (
	"encoding/binary"
	"errors"
)

// Marker codes of ITU-T T.800 Annex A.
const (
	mSOC = 0xff4f
	mSIZ = 0xff51
	mCOD = 0xff52
	mCOC = 0xff53
	mTLM = 0xff55
	mPLM = 0xff57
	mPLT = 0xff58
	mQCD = 0xff5c
	mQCC = 0xff5d
	mRGN = 0xff5e
	mPOC = 0xff5f
	mPPM = 0xff60
	mPPT = 0xff61
	mCRG = 0xff63
	mCOM = 0xff64
	mSOT = 0xff90
	mSOP = 0xff91
	mEPH = 0xff92
	mSOD = 0xff93
	mEOC = 0xffd9
)

// Progression orders (COD SGcod, POC Ppoc).
const (
	orderLRCP = iota
	orderRLCP
	orderRPCL
	orderPCRL
	orderCPRL
)

// Code-block style bits (COD SPcod).
const (
	styleBypass  = 1
	styleReset   = 2
	styleTermAll = 4
	styleVCausal = 8
	stylePredict = 16
	styleSegSym  = 32
)

// coding is one component's COD/COC parameters.
type coding struct {
	levels     int // decomposition levels NL
	cbw, cbh   int // code-block size exponents
	style      int
	reversible bool
	ppx, ppy   [33]int // precinct size exponents per resolution
}

// quant is one component's QCD/QCC parameters.
type quant struct {
	style int // 0 none, 1 scalar derived, 2 scalar expounded
	guard int
	exp   [97]int
	mant  [97]int
	n     int // entries given
}

// pocEntry is one progression order change.
type pocEntry struct {
	rs, cs, lye, re, ce, order int
}

// params are the coding parameters in force for a tile.
type params struct {
	order, layers, mct int
	sop, eph           bool
	cod                coding
	qcd                quant
	roiShift           int
	pocs               []pocEntry
}

// header is the main header: image and tile geometry and the defaults.
type header struct {
	x1, y1, x0, y0   int // reference grid
	tw, th, tx0, ty0 int // tile size and origin
	comps            int
	depth            int
	signed           bool
	xr, yr           int
	ntx, nty         int
	def              params
	ppm              [][]byte // PPM packet headers, one per tile-part in order
}

// tilePart is where one tile-part's data lies.
type tilePart struct {
	tile   int
	header []byte // marker segments after SOT
	body   []byte
}

type reader struct {
	b   []byte
	pos int
}

var errTruncated = errors.New("code stream truncated")

func (r *reader) u8() (int, error) {
	if r.pos+1 > len(r.b) {
		return 0, errTruncated
	}
	r.pos++
	return int(r.b[r.pos-1]), nil
}

func (r *reader) u16() (int, error) {
	if r.pos+2 > len(r.b) {
		return 0, errTruncated
	}
	r.pos += 2
	return int(binary.BigEndian.Uint16(r.b[r.pos-2:])), nil
}

func (r *reader) u32() (int64, error) {
	if r.pos+4 > len(r.b) {
		return 0, errTruncated
	}
	r.pos += 4
	return int64(binary.BigEndian.Uint32(r.b[r.pos-4:])), nil
}

// segment reads a marker segment's length and returns its body.
func (r *reader) segment() ([]byte, error) {
	l, err := r.u16()
	if err != nil {
		return nil, err
	}
	if l < 2 || r.pos+l-2 > len(r.b) {
		return nil, errf("marker segment length %d out of range", l)
	}
	s := r.b[r.pos : r.pos+l-2]
	r.pos += l - 2
	return s, nil
}

// codestream returns the raw codestream: b itself, or the contiguous
// codestream box of a JP2 file.
func codestream(b []byte) ([]byte, error) {
	if len(b) >= 2 && b[0] == 0xff && b[1] == 0x4f {
		return b, nil
	}
	if len(b) < 12 || binary.BigEndian.Uint32(b[4:]) != 0x6a502020 {
		return nil, errf("neither a JPEG 2000 code stream (no SOC marker) nor a JP2 file")
	}
	for p := 0; p+8 <= len(b); {
		l := int64(binary.BigEndian.Uint32(b[p:]))
		typ := binary.BigEndian.Uint32(b[p+4:])
		hdr := int64(8)
		switch l {
		case 0:
			l = int64(len(b) - p)
		case 1:
			if p+16 > len(b) {
				return nil, errf("JP2 box truncated")
			}
			l = int64(binary.BigEndian.Uint64(b[p+8:]))
			hdr = 16
		}
		if l < hdr || l > int64(len(b)-p) {
			return nil, errf("JP2 box length %d out of range", l)
		}
		if typ == 0x6a703263 { // 'jp2c'
			return b[p+int(hdr) : p+int(l)], nil
		}
		p += int(l)
	}
	return nil, errf("JP2 file without a code stream box")
}

// parseMain reads the main header up to the first SOT and returns the
// tile-parts.
func parseMain(b []byte) (*header, []tilePart, error) {
	r := &reader{b: b}
	if m, err := r.u16(); err != nil || m != mSOC {
		return nil, nil, errf("no SOC marker")
	}
	h := &header{}
	m, err := r.u16()
	if err != nil || m != mSIZ {
		return nil, nil, errf("no SIZ marker after SOC")
	}
	seg, err := r.segment()
	if err != nil {
		return nil, nil, err
	}
	if err := h.parseSIZ(seg); err != nil {
		return nil, nil, err
	}
	h.def.cod.levels = -1
	var ppm [][]byte // Zppm order
	var main segs
	for {
		m, err := r.u16()
		if err != nil {
			return nil, nil, errf("main header truncated")
		}
		if m == mSOT {
			r.pos -= 2
			break
		}
		if m>>8 != 0xff {
			return nil, nil, errf("marker expected in the main header, found %#04x", m)
		}
		seg, err := r.segment()
		if err != nil {
			return nil, nil, err
		}
		if m == mPPM {
			if len(seg) < 1 {
				return nil, nil, errf("short PPM segment")
			}
			ppm = append(ppm, seg[1:])
			continue
		}
		main = append(main, struct {
			m int
			b []byte
		}{m, seg})
	}
	if err := h.def.apply(main, h.comps); err != nil {
		return nil, nil, err
	}
	if h.def.cod.levels < 0 {
		return nil, nil, errf("no COD marker in the main header")
	}
	if h.def.qcd.n == 0 {
		return nil, nil, errf("no QCD marker in the main header")
	}
	if len(ppm) > 0 {
		all := concat(ppm)
		for len(all) > 0 {
			if len(all) < 4 {
				return nil, nil, errf("PPM packet headers truncated")
			}
			n := int64(binary.BigEndian.Uint32(all))
			if n > int64(len(all)-4) {
				return nil, nil, errf("PPM length %d out of range", n)
			}
			h.ppm = append(h.ppm, all[4:4+n])
			all = all[4+n:]
		}
	}
	var parts []tilePart
	for r.pos < len(b) {
		m, err := r.u16()
		if err != nil {
			break
		}
		if m == mEOC {
			break
		}
		if m != mSOT {
			return nil, nil, errf("SOT marker expected, found %#04x", m)
		}
		start := r.pos - 2
		seg, err := r.segment()
		if err != nil {
			return nil, nil, err
		}
		if len(seg) != 8 {
			return nil, nil, errf("SOT segment of %d bytes", len(seg))
		}
		tile := int(binary.BigEndian.Uint16(seg))
		psot := int64(binary.BigEndian.Uint32(seg[2:]))
		if tile >= h.ntx*h.nty {
			return nil, nil, errf("tile %d of %d", tile, h.ntx*h.nty)
		}
		end := int64(len(b))
		if psot != 0 {
			end = int64(start) + psot
			if end > int64(len(b)) {
				end = int64(len(b)) // truncated stream: decode what is there
			}
			if end < int64(r.pos) {
				return nil, nil, errf("tile-part length %d out of range", psot)
			}
		}
		hs := r.pos
		for {
			m, err := r.u16()
			if err != nil || int64(r.pos) > end {
				return nil, nil, errf("tile-part header truncated")
			}
			if m == mSOD {
				break
			}
			if _, err := r.segment(); err != nil {
				return nil, nil, err
			}
		}
		parts = append(parts, tilePart{tile: tile, header: b[hs : r.pos-2], body: b[r.pos:end]})
		r.pos = int(end)
		if psot == 0 {
			break
		}
	}
	if h.ppm != nil && len(h.ppm) < len(parts) {
		return nil, nil, errf("PPM holds headers for %d tile-parts, the stream has %d", len(h.ppm), len(parts))
	}
	return h, parts, nil
}

func (h *header) parseSIZ(s []byte) error {
	r := &reader{b: s}
	var v [9]int64
	if _, err := r.u16(); err != nil {
		return errf("short SIZ segment")
	}
	for i := range v[:8] {
		x, err := r.u32()
		if err != nil {
			return errf("short SIZ segment")
		}
		v[i] = x
	}
	c, err := r.u16()
	if err != nil {
		return errf("short SIZ segment")
	}
	h.x1, h.y1, h.x0, h.y0 = int(v[0]), int(v[1]), int(v[2]), int(v[3])
	h.tw, h.th, h.tx0, h.ty0 = int(v[4]), int(v[5]), int(v[6]), int(v[7])
	h.comps = c
	const lim = 1 << 30
	for _, x := range v[:8] {
		if x >= lim {
			return errf("SIZ value %d out of range", x)
		}
	}
	if h.x0 >= h.x1 || h.y0 >= h.y1 || h.tw == 0 || h.th == 0 || h.tx0 > h.x0 || h.ty0 > h.y0 ||
		h.tx0+h.tw <= h.x0 || h.ty0+h.th <= h.y0 {
		return errf("inconsistent SIZ geometry")
	}
	if c < 1 || len(s) < 36+3*c {
		return errf("SIZ declares %d components in %d bytes", c, len(s))
	}
	ss, xr, yr := int(s[36]), int(s[37]), int(s[38])
	h.depth, h.signed, h.xr, h.yr = ss&0x7f+1, ss&0x80 != 0, xr, yr
	if h.depth > 16 {
		return unsupported("%d-bit samples; at most 16 are supported", h.depth)
	}
	if xr == 0 || yr == 0 {
		return errf("component subsampling of 0")
	}
	h.ntx = ceilDiv(h.x1-h.tx0, h.tw)
	h.nty = ceilDiv(h.y1-h.ty0, h.th)
	return nil
}

// segs is a header's marker segments in order.
type segs []struct {
	m int
	b []byte
}

// apply applies a header's segments: COD and QCD first, so that COC and
// QCC override them whatever their order.
func (p *params) apply(ss segs, comps int) error {
	for pass := range 2 {
		for _, s := range ss {
			if (s.m == mCOD || s.m == mQCD) == (pass == 0) {
				if err := p.marker(s.m, s.b, comps); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// marker applies one COD/COC/QCD/QCC/RGN/POC segment; other segments
// that need no action (TLM, PLM, PLT, CRG, COM, PPT) are skipped here.
func (p *params) marker(m int, s []byte, comps int) error {
	r := &reader{b: s}
	compIdx := func() (int, error) {
		if comps < 257 {
			return r.u8()
		}
		return r.u16()
	}
	switch m {
	case mCOD:
		scod, err := r.u8()
		if err != nil {
			return errf("short COD segment")
		}
		if len(s) < 5 {
			return errf("short COD segment")
		}
		p.order, p.layers, p.mct = int(s[1]), int(binary.BigEndian.Uint16(s[2:])), int(s[4])
		p.sop, p.eph = scod&2 != 0, scod&4 != 0
		if p.order > orderCPRL {
			return errf("progression order %d", p.order)
		}
		if p.layers == 0 {
			return errf("COD declares 0 layers")
		}
		r.pos = 5
		return p.cod.parse(r, scod&1 != 0)
	case mCOC:
		c, err := compIdx()
		if err != nil {
			return errf("short COC segment")
		}
		scoc, err := r.u8()
		if err != nil {
			return errf("short COC segment")
		}
		if c != 0 {
			return nil // only component 0 is decoded
		}
		return p.cod.parse(r, scoc&1 != 0)
	case mQCD:
		return p.qcd.parse(r)
	case mQCC:
		c, err := compIdx()
		if err != nil {
			return errf("short QCC segment")
		}
		if c != 0 {
			return nil
		}
		return p.qcd.parse(r)
	case mRGN:
		c, err := compIdx()
		if err != nil {
			return errf("short RGN segment")
		}
		srgn, err1 := r.u8()
		sp, err2 := r.u8()
		if err1 != nil || err2 != nil || srgn != 0 {
			return errf("bad RGN segment")
		}
		if c == 0 {
			p.roiShift = sp
		}
	case mPOC:
		w := 7
		if comps >= 257 {
			w = 9
		}
		if len(s)%w != 0 || len(s) == 0 {
			return errf("POC segment of %d bytes", len(s))
		}
		for len(s) >= w {
			e := pocEntry{rs: int(s[0])}
			q := s[1:]
			if comps >= 257 {
				e.cs, q = int(binary.BigEndian.Uint16(q)), q[2:]
			} else {
				e.cs, q = int(q[0]), q[1:]
			}
			e.lye, e.re, q = int(binary.BigEndian.Uint16(q)), int(q[2]), q[3:]
			if comps >= 257 {
				e.ce, q = int(binary.BigEndian.Uint16(q)), q[2:]
			} else {
				e.ce, q = int(q[0]), q[1:]
				if e.ce == 0 {
					e.ce = 256
				}
			}
			e.order = int(q[0])
			if e.order > orderCPRL {
				return errf("POC progression order %d", e.order)
			}
			p.pocs = append(p.pocs, e)
			s = s[w:]
		}
	case mTLM, mPLM, mPLT, mCRG, mCOM, mPPT, mSOP, mEPH:
	default:
		if m < 0xff30 || m > 0xff3f { // reserved markers without meaning are skipped too
			return errf("unexpected marker %#04x in a header", m)
		}
	}
	return nil
}

func (c *coding) parse(r *reader, precincts bool) error {
	var v [5]int
	for i := range v {
		x, err := r.u8()
		if err != nil {
			return errf("short COD/COC segment")
		}
		v[i] = x
	}
	c.levels, c.cbw, c.cbh, c.style, c.reversible = v[0], v[1]+2, v[2]+2, v[3], v[4] == 1
	if c.levels > 32 || c.cbw > 10 || c.cbh > 10 || c.cbw+c.cbh > 12 || v[4] > 1 {
		return errf("bad coding style (levels %d, code-block 2^%d×2^%d, transform %d)", c.levels, c.cbw, c.cbh, v[4])
	}
	if c.style&^63 != 0 { // predictable termination (16) needs nothing of a decoder

		return unsupported("code-block style %#x", c.style)
	}
	for i := 0; i <= c.levels; i++ {
		c.ppx[i], c.ppy[i] = 15, 15
		if precincts {
			x, err := r.u8()
			if err != nil {
				return errf("short COD/COC precinct sizes")
			}
			c.ppx[i], c.ppy[i] = x&15, x>>4
			if i > 0 && (c.ppx[i] == 0 || c.ppy[i] == 0) {
				return errf("precinct size 2^0 above resolution 0")
			}
		}
	}
	return nil
}

func (q *quant) parse(r *reader) error {
	s, err := r.u8()
	if err != nil {
		return errf("short QCD/QCC segment")
	}
	q.style, q.guard = s&31, s>>5
	q.n = 0
	switch q.style {
	case 0:
		for r.pos < len(r.b) && q.n < len(q.exp) {
			x, _ := r.u8()
			q.exp[q.n], q.mant[q.n] = x>>3, 0
			q.n++
		}
	case 1, 2:
		for r.pos+1 < len(r.b) && q.n < len(q.exp) {
			x, _ := r.u16()
			q.exp[q.n], q.mant[q.n] = x>>11, x&0x7ff
			q.n++
		}
	default:
		return errf("quantization style %d", q.style)
	}
	if q.n == 0 {
		return errf("QCD/QCC without step sizes")
	}
	return nil
}

// band returns the exponent and mantissa of band b (0 LL, else 3(r-1)+orient).
func (q *quant) band(i, levels, nb int) (exp, mant int, err error) {
	if q.style == 1 {
		return q.exp[0] - levels + nb, q.mant[0], nil
	}
	if i >= q.n {
		return 0, 0, errf("QCD/QCC gives %d step sizes, band %d needs one", q.n, i)
	}
	return q.exp[i], q.mant[i], nil
}

func concat(bs [][]byte) []byte {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	out := make([]byte, 0, n)
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// ceilDivPow2 is ⌈a / 2^e⌉ for a ≥ 0.
func ceilDivPow2(a, e int) int { return (a + 1<<e - 1) >> e }

// Length returns the length of the code stream (up to and including its
// EOC marker) or JP2 file (up to the end of its code stream box) at the
// start of b, so that concatenated images can be told apart. It follows
// the marker segment and tile-part lengths, since packet data may hold
// 0xFF 0x4F.
func Length(b []byte) (int, error) {
	if len(b) >= 12 && binary.BigEndian.Uint32(b[4:]) == 0x6a502020 {
		for p := 0; p+8 <= len(b); {
			l := int64(binary.BigEndian.Uint32(b[p:]))
			typ := binary.BigEndian.Uint32(b[p+4:])
			if l == 1 && p+16 <= len(b) {
				l = int64(binary.BigEndian.Uint64(b[p+8:]))
			} else if l == 0 {
				l = int64(len(b) - p)
			}
			if l < 8 || l > int64(len(b)-p) {
				return 0, errf("JP2 box length %d out of range", l)
			}
			p += int(l)
			if typ == 0x6a703263 {
				return p, nil
			}
		}
		return 0, errf("JP2 file without a code stream box")
	}
	r := &reader{b: b}
	if m, err := r.u16(); err != nil || m != mSOC {
		return 0, errf("no SOC marker")
	}
	for {
		m, err := r.u16()
		if err != nil {
			return 0, errf("no EOC marker")
		}
		switch m {
		case mEOC:
			return r.pos, nil
		case mSOT:
			start := r.pos - 2
			seg, err := r.segment()
			if err != nil {
				return 0, err
			}
			if len(seg) != 8 {
				return 0, errf("SOT segment of %d bytes", len(seg))
			}
			psot := int64(binary.BigEndian.Uint32(seg[2:]))
			if psot == 0 { // the last tile-part runs to EOC, which packet data cannot hold
				for p := r.pos; p+1 < len(b); p++ {
					if b[p] == 0xff && b[p+1] == 0xd9 {
						return p + 2, nil
					}
				}
				return 0, errf("no EOC marker")
			}
			if int64(start)+psot > int64(len(b)) || psot < 14 {
				return 0, errf("tile-part length %d out of range", psot)
			}
			r.pos = start + int(psot)
		default:
			if m>>8 != 0xff {
				return 0, errf("marker expected, found %#04x", m)
			}
			if _, err := r.segment(); err != nil {
				return 0, err
			}
		}
	}
}
