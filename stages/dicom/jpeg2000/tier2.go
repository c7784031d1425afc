package jpeg2000

import (
	"cmp"
	"errors"
	"slices"
)

// Tier-2: a tile-component's resolutions, bands, precincts and
// code-blocks (T.800 B.5–B.7), packet headers (B.10) and progression
// orders (B.12).

type resolution struct {
	x0, y0, x1, y1 int
	ppx, ppy       int
	pw, ph         int
	bands          []*band
	precincts      []precinct
}

type band struct {
	orient         int // 0 LL, 1 HL, 2 LH, 3 HH
	x0, y0, x1, y1 int
	mb             int     // magnitude bit planes Mb
	step           float32 // Δb / 2 (the decoded values carry one extra bit)
	cbw, cbh       int     // code-block size exponents in this band
}

type precinct struct {
	bands []precBand
}

type precBand struct {
	nw, nh    int
	blocks    []codeblock
	incl, zbp *tagTree
}

type codeblock struct {
	x0, y0, x1, y1 int
	included       bool
	numbps         int
	lblock         int
	passes         int
	segs           []segment
}

// tile is one tile-component being decoded.
type tile struct {
	p              *params
	x0, y0, x1, y1 int // tile-component bounds
	tx0, ty0       int // tile bounds on the reference grid
	xr, yr         int
	res            []resolution
	ppt            []byte // packet headers when PPM or PPT carry them
	body           []byte
}

var errStop = errors.New("end of packet data")

// build lays out resolutions, bands, precincts and code-blocks.
func (t *tile) build(depth int) error {
	c := &t.p.cod
	nl := c.levels
	t.res = make([]resolution, nl+1)
	for r := range t.res {
		rs := &t.res[r]
		rs.x0, rs.y0 = ceilDivPow2(t.x0, nl-r), ceilDivPow2(t.y0, nl-r)
		rs.x1, rs.y1 = ceilDivPow2(t.x1, nl-r), ceilDivPow2(t.y1, nl-r)
		rs.ppx, rs.ppy = c.ppx[r], c.ppy[r]
		if rs.x1 > rs.x0 && rs.y1 > rs.y0 {
			rs.pw = ceilDivPow2(rs.x1, rs.ppx) - rs.x0>>rs.ppx
			rs.ph = ceilDivPow2(rs.y1, rs.ppy) - rs.y0>>rs.ppy
		}
		orients := []int{0}
		if r > 0 {
			orients = []int{1, 2, 3}
		}
		pbx, pby := rs.ppx, rs.ppy // precinct exponents in band coordinates
		if r > 0 {
			pbx, pby = pbx-1, pby-1
		}
		for _, o := range orients {
			b := &band{orient: o, cbw: min(c.cbw, pbx), cbh: min(c.cbh, pby)}
			if r == 0 {
				b.x0, b.y0, b.x1, b.y1 = rs.x0, rs.y0, rs.x1, rs.y1
			} else {
				nb := nl - r + 1
				xo, yo := o&1, o>>1
				b.x0, b.y0 = bandCoord(t.x0, xo, nb), bandCoord(t.y0, yo, nb)
				b.x1, b.y1 = bandCoord(t.x1, xo, nb), bandCoord(t.y1, yo, nb)
			}
			qi, nb := 0, nl
			if r > 0 {
				qi, nb = 3*(r-1)+o, nl-r+1
			}
			exp, mant, err := t.p.qcd.band(qi, nl, nb)
			if err != nil {
				return err
			}
			b.mb = t.p.qcd.guard + exp - 1
			if b.mb+t.p.roiShift > 29 || b.mb < 0 {
				return errf("%d magnitude bit planes in a band", b.mb+t.p.roiShift)
			}
			gain := [4]int{0, 1, 1, 2}[o]
			step := float64(1+float64(mant)/2048) * pow2(depth+gain-exp)
			b.step = float32(step / 2)
			rs.bands = append(rs.bands, b)
		}
		rs.precincts = make([]precinct, rs.pw*rs.ph)
		for i := range rs.precincts {
			px, py := rs.x0>>rs.ppx+i%rs.pw, rs.y0>>rs.ppy+i/rs.pw
			pr := &rs.precincts[i]
			pr.bands = make([]precBand, len(rs.bands))
			for bi, b := range rs.bands {
				bx0, by0 := px<<pbx, py<<pby
				bx1, by1 := max(b.x0, min(b.x1, bx0+1<<pbx)), max(b.y0, min(b.y1, by0+1<<pby))
				bx0, by0 = max(bx0, b.x0), max(by0, b.y0)
				bx0, by0 = min(bx0, bx1), min(by0, by1)
				pb := &pr.bands[bi]
				if bx1 <= bx0 || by1 <= by0 {
					continue
				}
				cx0, cy0 := bx0>>b.cbw, by0>>b.cbh
				pb.nw, pb.nh = ceilDivPow2(bx1, b.cbw)-cx0, ceilDivPow2(by1, b.cbh)-cy0
				pb.blocks = make([]codeblock, pb.nw*pb.nh)
				for k := range pb.blocks {
					cx, cy := cx0+k%pb.nw, cy0+k/pb.nw
					pb.blocks[k] = codeblock{
						x0: max(bx0, cx<<b.cbw), y0: max(by0, cy<<b.cbh),
						x1: min(bx1, (cx+1)<<b.cbw), y1: min(by1, (cy+1)<<b.cbh),
						lblock: 3,
					}
				}
				pb.incl, pb.zbp = newTagTree(pb.nw, pb.nh), newTagTree(pb.nw, pb.nh)
			}
		}
	}
	return nil
}

func bandCoord(x, off, nb int) int {
	v := x - off<<(nb-1)
	if v <= 0 {
		return 0
	}
	return ceilDivPow2(v, nb)
}

func pow2(e int) float64 {
	v := 1.0
	for ; e > 0; e-- {
		v *= 2
	}
	for ; e < 0; e++ {
		v /= 2
	}
	return v
}

// tagTree is a tag tree (B.10.2) over a w×h array of leaves.
type tagTree struct {
	nodes []ttNode
	w     int
}

type ttNode struct {
	parent     int32
	value, low int32
}

func newTagTree(w, h int) *tagTree {
	t := &tagTree{w: w}
	type lvl struct{ w, h, at int }
	var lv []lvl
	n := 0
	for {
		lv = append(lv, lvl{w, h, n})
		n += w * h
		if w*h <= 1 {
			break
		}
		w, h = (w+1)/2, (h+1)/2
	}
	t.nodes = make([]ttNode, n)
	for i, l := range lv {
		for y := range l.h {
			for x := range l.w {
				nd := &t.nodes[l.at+y*l.w+x]
				nd.value, nd.parent = 1<<30, -1
				if i+1 < len(lv) {
					p := lv[i+1]
					nd.parent = int32(p.at + y/2*p.w + x/2)
				}
			}
		}
	}
	return t
}

// decode reads bits until the leaf's value is known to be below threshold
// or not; it reports value < threshold.
func (t *tagTree) decode(br *bitReader, leaf int, threshold int32) (bool, error) {
	var path [32]int32
	n := 0
	for i := int32(leaf); i >= 0; i = t.nodes[i].parent {
		path[n] = i
		n++
	}
	low := int32(0)
	for n > 0 {
		n--
		nd := &t.nodes[path[n]]
		if low > nd.low {
			nd.low = low
		} else {
			low = nd.low
		}
		for low < threshold && low < nd.value {
			b, err := br.bit()
			if err != nil {
				return false, err
			}
			if b == 1 {
				nd.value = low
			} else {
				low++
			}
		}
		nd.low = low
	}
	return t.nodes[leaf].value < threshold, nil
}

// bitReader reads packet header bits with the bit stuffing of B.10.1.
type bitReader struct {
	b   []byte
	pos int
	buf uint32
	ct  int
}

var errHeader = errors.New("packet header truncated")

func (r *bitReader) bit() (int, error) {
	if r.ct == 0 {
		if r.pos >= len(r.b) {
			return 0, errHeader
		}
		r.ct = 8
		if r.buf == 0xff {
			r.ct = 7
		}
		r.buf = uint32(r.b[r.pos])
		r.pos++
	}
	r.ct--
	return int(r.buf>>r.ct) & 1, nil
}

func (r *bitReader) read(n int) (int, error) {
	v := 0
	for range n {
		b, err := r.bit()
		if err != nil {
			return 0, err
		}
		v = v<<1 | b
	}
	return v, nil
}

// align ends a packet header: after a 0xFF byte the next is stuffing.
func (r *bitReader) align() {
	if r.buf == 0xff && r.pos < len(r.b) {
		r.pos++
	}
	r.buf, r.ct = 0, 0
}

// passCount reads the number of coding passes (Table B.4).
func (r *bitReader) passCount() (int, error) {
	steps := []struct{ bits, lim, base int }{{1, 1, 1}, {1, 1, 2}, {2, 3, 3}, {5, 31, 6}, {7, 128, 37}}
	for _, s := range steps {
		v, err := r.read(s.bits)
		if err != nil {
			return 0, err
		}
		if v < s.lim {
			return s.base + v, nil
		}
	}
	return 0, errf("bad pass count")
}

// maxPasses is how many passes the segment starting at pass n may hold.
func maxPasses(style, n int) int {
	switch {
	case style&styleTermAll != 0:
		return 1
	case style&styleBypass != 0:
		if n < 10 {
			return 10 - n
		}
		if (n-1)%3 == 2 {
			return 1 // cleanup, MQ coded
		}
		return 2 // significance and refinement, raw
	}
	return 1 << 30
}

func floorLog2(v int) int {
	n := 0
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}

// packet reads the packet of layer l of precinct p at resolution r.
func (t *tile) packet(l, r, p int, hdr *bitReader, inband bool) error {
	rs := &t.res[r]
	pr := &rs.precincts[p]
	if t.p.sop && len(t.body) >= 6 && t.body[0] == 0xff && t.body[1] == 0x91 {
		t.body = t.body[6:]
	}
	if inband {
		if len(t.body) == 0 {
			return errStop
		}
		*hdr = bitReader{b: t.body}
	} else if hdr.pos >= len(hdr.b) {
		return errStop
	}
	type piece struct {
		cb  *codeblock
		seg int
		n   int
	}
	var pieces []piece
	nonEmpty, err := hdr.bit()
	if err != nil {
		return err
	}
	if nonEmpty == 1 {
		for bi := range pr.bands {
			pb := &pr.bands[bi]
			for k := range pb.blocks {
				cb := &pb.blocks[k]
				var in int
				if !cb.included {
					ok, err := pb.incl.decode(hdr, k, int32(l+1))
					if err != nil {
						return err
					}
					in = b2i(ok)
				} else if in, err = hdr.bit(); err != nil {
					return err
				}
				if in == 0 {
					continue
				}
				if !cb.included {
					var th int32 = 1
					for {
						ok, err := pb.zbp.decode(hdr, k, th)
						if err != nil {
							return err
						}
						if ok {
							break
						}
						if th++; th > 64 {
							return errf("zero bit planes out of range")
						}
					}
					cb.numbps = rs.bands[bi].mb + t.p.roiShift - int(pb.zbp.nodes[k].value)
					cb.included = true
				}
				np, err := hdr.passCount()
				if err != nil {
					return err
				}
				for {
					b, err := hdr.bit()
					if err != nil {
						return err
					}
					if b == 0 {
						break
					}
					if cb.lblock++; cb.lblock > 32 {
						return errf("code-block length indicator out of range")
					}
				}
				if cb.passes+np > 3*max(cb.numbps, 1)+2 || cb.passes+np > 200 {
					return errf("%d coding passes for %d bit planes", cb.passes+np, cb.numbps)
				}
				for np > 0 {
					if len(cb.segs) == 0 || cb.segs[len(cb.segs)-1].passes == cb.segs[len(cb.segs)-1].max {
						cb.segs = append(cb.segs, segment{max: maxPasses(t.p.cod.style, cb.passes)})
					}
					sg := &cb.segs[len(cb.segs)-1]
					k := min(np, sg.max-sg.passes)
					n, err := hdr.read(cb.lblock + floorLog2(k))
					if err != nil {
						return err
					}
					sg.passes += k
					cb.passes += k
					np -= k
					pieces = append(pieces, piece{cb, len(cb.segs) - 1, n})
				}
			}
		}
	}
	hdr.align()
	if t.p.eph && hdr.pos+2 <= len(hdr.b) && hdr.b[hdr.pos] == 0xff && hdr.b[hdr.pos+1] == 0x92 {
		hdr.pos += 2
	}
	if inband {
		t.body = t.body[hdr.pos:]
	}
	for _, pc := range pieces {
		if pc.n > len(t.body) {
			return errf("code-block data of %d bytes, %d left in the tile", pc.n, len(t.body))
		}
		sg := &pc.cb.segs[pc.seg]
		sg.data = append(sg.data, t.body[:pc.n]...)
		t.body = t.body[pc.n:]
	}
	return nil
}

// packets reads every packet of the tile in its progression orders.
func (t *tile) packets() error {
	nl := t.p.cod.levels
	progs := t.p.pocs
	if len(progs) == 0 {
		progs = []pocEntry{{rs: 0, cs: 0, lye: t.p.layers, re: nl + 1, ce: 1, order: t.p.order}}
	}
	done := make([][]int, nl+1)
	for r := range done {
		done[r] = make([]int, len(t.res[r].precincts))
	}
	var hdr bitReader
	inband := t.ppt == nil
	if !inband {
		hdr = bitReader{b: t.ppt}
	}
	budget := 1 << 24 // packet positions visited, read or not: a hostile POC cannot spin
	emit := func(l, r, p int) error {
		if budget--; budget < 0 {
			return errf("progression visits more than %d packets", 1<<24)
		}
		if done[r][p] != l {
			return nil
		}
		done[r][p]++
		return t.packet(l, r, p, &hdr, inband)
	}
	for _, pg := range progs {
		if pg.cs > 0 || pg.ce < 1 {
			continue
		}
		r0, r1, ly := pg.rs, min(pg.re, nl+1), min(pg.lye, t.p.layers)
		var err error
		switch pg.order {
		case orderLRCP:
			err = func() error {
				for l := range ly {
					for r := r0; r < r1; r++ {
						for p := range t.res[r].precincts {
							if err := emit(l, r, p); err != nil {
								return err
							}
						}
					}
				}
				return nil
			}()
		case orderRLCP:
			err = func() error {
				for r := r0; r < r1; r++ {
					for l := range ly {
						for p := range t.res[r].precincts {
							if err := emit(l, r, p); err != nil {
								return err
							}
						}
					}
				}
				return nil
			}()
		case orderRPCL:
			err = func() error {
				for r := r0; r < r1; r++ {
					for p := range t.res[r].precincts {
						for l := done[r][p]; l < ly; l++ {
							if err := emit(l, r, p); err != nil {
								return err
							}
						}
					}
				}
				return nil
			}()
		default: // PCRL, CPRL: one component, so position first
			type at struct{ y, x, r, p int }
			var all []at
			for r := r0; r < r1; r++ {
				rs := &t.res[r]
				for p := range rs.precincts {
					px, py := rs.x0>>rs.ppx+p%rs.pw, rs.y0>>rs.ppy+p/rs.pw
					x := max(t.tx0, px<<rs.ppx<<(nl-r)*t.xr)
					y := max(t.ty0, py<<rs.ppy<<(nl-r)*t.yr)
					all = append(all, at{y, x, r, p})
				}
			}
			slices.SortStableFunc(all, func(a, b at) int {
				return cmp.Or(cmp.Compare(a.y, b.y), cmp.Compare(a.x, b.x), cmp.Compare(a.r, b.r))
			})
			err = func() error {
				for _, a := range all {
					for l := done[a.r][a.p]; l < ly; l++ {
						if err := emit(l, a.r, a.p); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}
		if err == errStop {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}
