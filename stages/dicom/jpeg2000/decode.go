// Package jpeg2000 decodes grayscale JPEG 2000 Part 1 images (ITU-T T.800),
// as DICOM carries them in transfer syntaxes 1.2.840.10008.1.2.4.90
// (lossless) and .91 (lossy): a raw code stream or a JP2 file, tiles and
// tile-parts, all five progression orders and POC, precincts, PPM/PPT
// packet headers, SOP/EPH markers, every code-block style but predictable
// termination, the MQ decoder and EBCOT tier-1, tier-2 packet headers,
// scalar dequantisation, the 5/3 and 9/7 inverse wavelets, ROI (max
// shift), signed samples and bit depths up to 16.
//
// Written by hand: no Go module that decodes JPEG 2000 is reachable from
// this project (OpenJPEG is C; github.com/mrjoshuak/go-jpeg2000,
// github.com/ajroetker/go-jpeg2000 and github.com/cocosip/go-dicom-codec
// are not served by its module proxy). Colour and other multi-component
// images are refused. Every allocation is bounded by the image size the
// SIZ marker declares, which Decode compares with the caller's size
// first; malformed input returns an error.
package jpeg2000

import (
	"errors"
	"fmt"
	"math"
)

// ErrUnsupported marks valid code streams this decoder does not handle.
var ErrUnsupported = errors.New("unsupported JPEG 2000 feature")

func errf(format string, args ...any) error {
	return fmt.Errorf("JPEG 2000: "+format, args...)
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// Info is what a code stream's SIZ marker declares.
type Info struct {
	Width, Height int
	Components    int
	Depth         int // bits per sample
	Signed        bool
	Reversible    bool // 5/3 wavelet (lossless when all passes are kept)
}

// ReadInfo reads the main header of a code stream or JP2 file.
func ReadInfo(b []byte) (Info, error) {
	cs, err := codestream(b)
	if err != nil {
		return Info{}, err
	}
	h, _, err := parseMain(cs)
	if err != nil {
		return Info{}, err
	}
	return h.info(), nil
}

func (h *header) info() Info {
	return Info{
		Width: ceilDiv(h.x1, h.xr) - ceilDiv(h.x0, h.xr), Height: ceilDiv(h.y1, h.yr) - ceilDiv(h.y0, h.yr),
		Components: h.comps, Depth: h.depth, Signed: h.signed, Reversible: h.def.cod.reversible,
	}
}

// Decode decodes a one-component image of width×height samples into dst
// (row-major, len width×height): unsigned samples as they are, signed
// ones in two's complement.
func Decode(b []byte, width, height int, dst []uint16) error {
	cs, err := codestream(b)
	if err != nil {
		return err
	}
	h, parts, err := parseMain(cs)
	if err != nil {
		return err
	}
	in := h.info()
	if in.Components != 1 {
		return unsupported("%d components (colour); only grayscale is supported", in.Components)
	}
	if in.Width != width || in.Height != height {
		return errf("image is %d×%d, expected %d×%d", in.Width, in.Height, width, height)
	}
	if len(dst) < width*height {
		return errf("destination of %d samples for %d×%d", len(dst), width, height)
	}
	byTile := make([][]int, h.ntx*h.nty) // tile-part indices per tile
	for i, p := range parts {
		byTile[p.tile] = append(byTile[p.tile], i)
	}
	var t1 t1
	for ti, ps := range byTile {
		if err := h.decodeTile(ti, ps, parts, dst, width, &t1); err != nil {
			return err
		}
	}
	return nil
}

func (h *header) decodeTile(ti int, ps []int, parts []tilePart, dst []uint16, width int, dec *t1) error {
	p := h.def
	p.pocs = append([]pocEntry(nil), p.pocs...)
	t := &tile{p: &p, xr: h.xr, yr: h.yr}
	tx, ty := ti%h.ntx, ti/h.ntx
	t.tx0, t.ty0 = max(h.tx0+tx*h.tw, h.x0), max(h.ty0+ty*h.th, h.y0)
	tx1, ty1 := min(h.tx0+(tx+1)*h.tw, h.x1), min(h.ty0+(ty+1)*h.th, h.y1)
	t.x0, t.y0, t.x1, t.y1 = ceilDiv(t.tx0, h.xr), ceilDiv(t.ty0, h.yr), ceilDiv(tx1, h.xr), ceilDiv(ty1, h.yr)
	var ss segs
	var ppt [][]byte
	var bodies [][]byte
	for _, i := range ps {
		r := &reader{b: parts[i].header}
		for r.pos < len(r.b) {
			m, err := r.u16()
			if err != nil {
				return errf("tile-part header truncated")
			}
			seg, err := r.segment()
			if err != nil {
				return err
			}
			switch {
			case m == mPPT:
				if len(seg) < 1 {
					return errf("short PPT segment")
				}
				ppt = append(ppt, seg[1:])
			default:
				ss = append(ss, struct {
					m int
					b []byte
				}{m, seg})
			}
		}
		bodies = append(bodies, parts[i].body)
		if h.ppm != nil {
			ppt = append(ppt, h.ppm[i])
		}
	}
	if hasPOC(ss) {
		p.pocs = nil // the tile's POC replaces the main header's
	}
	if err := p.apply(ss, h.comps); err != nil {
		return err
	}
	if ppt != nil {
		t.ppt = concat(ppt)
	}
	t.body = concat(bodies)
	if err := t.build(h.depth); err != nil {
		return err
	}
	if err := t.packets(); err != nil {
		return err
	}
	return t.reconstruct(h, dec, dst, width)
}

func hasPOC(ss segs) bool {
	for _, s := range ss {
		if s.m == mPOC {
			return true
		}
	}
	return false
}

// reconstruct decodes the code-blocks, dequantises, inverts the wavelet
// transform and writes the tile's samples with the DC level shift.
func (t *tile) reconstruct(h *header, dec *t1, dst []uint16, width int) error {
	w, hh := t.x1-t.x0, t.y1-t.y0
	if w <= 0 || hh <= 0 {
		return nil
	}
	rev := t.p.cod.reversible
	var ai []int32
	var af []float32
	if rev {
		ai = make([]int32, w*hh)
	} else {
		af = make([]float32, w*hh)
	}
	for r := range t.res {
		rs := &t.res[r]
		var ox, oy int // band offsets in the deinterleaved layout
		if r > 0 {
			ox, oy = t.res[r-1].x1-t.res[r-1].x0, t.res[r-1].y1-t.res[r-1].y0
		}
		for pi := range rs.precincts {
			for bi, b := range rs.bands {
				pb := &rs.precincts[pi].bands[bi]
				bx, by := 0, 0
				if b.orient&1 != 0 {
					bx = ox
				}
				if b.orient&2 != 0 {
					by = oy
				}
				orient := [4]int{0, 1, 0, 2}[b.orient]
				for k := range pb.blocks {
					cb := &pb.blocks[k]
					if cb.passes == 0 {
						continue
					}
					cw, ch := cb.x1-cb.x0, cb.y1-cb.y0
					dec.decodeBlock(cw, ch, orient, t.p.cod.style, cb.numbps, cb.segs)
					if s := t.p.roiShift; s > 0 {
						th := int32(1) << s
						for i, v := range dec.data {
							if v >= th {
								dec.data[i] = v >> s
							} else if -v >= th {
								dec.data[i] = -(-v >> s)
							}
						}
					}
					x0, y0 := bx+cb.x0-b.x0, by+cb.y0-b.y0
					for y := range ch {
						src := dec.data[y*cw : (y+1)*cw]
						if rev {
							out := ai[(y0+y)*w+x0:][:cw]
							for i, v := range src {
								out[i] = v / 2
							}
						} else {
							out := af[(y0+y)*w+x0:][:cw]
							for i, v := range src {
								out[i] = float32(v) * b.step
							}
						}
					}
					cb.segs = nil
				}
			}
		}
	}
	shift := 0
	lo, hi := 0, 1<<h.depth-1
	if h.signed {
		lo, hi = -(1 << (h.depth - 1)), 1<<(h.depth-1)-1
	} else {
		shift = 1 << (h.depth - 1)
	}
	ix0, iy0 := ceilDiv(h.x0, h.xr), ceilDiv(h.y0, h.yr)
	if rev {
		t.idwt53(ai, w)
	} else {
		t.idwt97(af, w)
	}
	for y := range hh {
		out := dst[(t.y0-iy0+y)*width+t.x0-ix0:][:w]
		for x := range out {
			var v int
			if rev {
				v = int(ai[y*w+x]) + shift
			} else {
				v = int(math.RoundToEven(float64(af[y*w+x]))) + shift
			}
			out[x] = uint16(max(lo, min(hi, v)))
		}
	}
	return nil
}
