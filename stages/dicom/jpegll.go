package dicom

// JPEG Lossless (ITU-T T.81 Annex H, process 14, Huffman coded) is decoded
// by hand: no reachable Go library decodes it, and it is the usual lossless
// compression of CT in PACS exports. Only what DICOM uses is supported: one
// component, 2 to 16 bits, predictors 1 to 7, point transform, restart
// intervals at row boundaries.

import (
	"errors"
	"fmt"
)

// errJPEG wraps every malformed-stream error of this decoder.
func errJPEG(format string, args ...any) error {
	return fmt.Errorf("%w: JPEG Lossless: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// splitJPEG returns one code stream per frame: each fragment when there is
// one per frame, otherwise the concatenated fragments cut at the end of
// each image (EOI), which needs neither the Basic nor the Extended Offset
// Table (both are optional, and a frame always starts a fragment). ls says
// the streams are JPEG-LS, whose entropy-coded data may hold 0xFF followed
// by a byte below 0x80.
func splitJPEG(fragments [][]byte, frames int, ls bool) ([][]byte, error) {
	if len(fragments) == frames {
		return fragments, nil
	}
	var all []byte
	for _, f := range fragments {
		all = append(all, f...)
	}
	out := make([][]byte, 0, frames)
	for len(out) < frames {
		// Skip padding between images up to the next SOI.
		for len(all) >= 2 && !(all[0] == 0xff && all[1] == 0xd8) {
			all = all[1:]
		}
		if len(all) < 2 {
			return nil, errJPEG("%d code streams for %d frames", len(out), frames)
		}
		n, err := jpegLength(all, ls)
		if err != nil {
			return nil, err
		}
		out = append(out, all[:n])
		all = all[n:]
	}
	return out, nil
}

// jpegLength returns the length of the JPEG image at the start of b, up to
// and including its EOI marker.
func jpegLength(b []byte, ls bool) (int, error) {
	st := &jpegStream{b: b, p: 2, errf: errJPEG} // after SOI
	for {
		m, _, err := st.next()
		if err != nil {
			return 0, err
		}
		switch m {
		case 0xd9:
			return st.p, nil
		case 0xda:
			st.skipScan(ls)
		}
	}
}

// bits reads entropy-coded data, removing stuffed zero bytes and stopping
// at markers (reading zeros beyond them).
type bits struct {
	b      []byte
	pos    int
	acc    uint64
	n      uint
	padded int // zero bytes supplied past the data
}

func (r *bits) fill() {
	for r.n <= 56 {
		var c byte
		if r.pos < len(r.b) && r.b[r.pos] != 0xff {
			c = r.b[r.pos]
			r.pos++
		} else if r.pos+1 < len(r.b) && r.b[r.pos+1] == 0x00 {
			c = 0xff
			r.pos += 2
		} else {
			r.padded++
		}
		r.acc = r.acc<<8 | uint64(c)
		r.n += 8
	}
}

func (r *bits) peek16() uint32 {
	if r.n < 16 {
		r.fill()
	}
	return uint32(r.acc>>(r.n-16)) & 0xffff
}

func (r *bits) get(k uint) uint32 {
	if k == 0 {
		return 0
	}
	if r.n < k {
		r.fill()
	}
	r.n -= k
	return uint32(r.acc>>r.n) & (1<<k - 1)
}

// restart discards buffered bits and consumes an RSTn marker.
func (r *bits) restart() error {
	r.acc, r.n = 0, 0
	for r.pos+1 < len(r.b) {
		if r.b[r.pos] == 0xff && r.b[r.pos+1] >= 0xd0 && r.b[r.pos+1] <= 0xd7 {
			r.pos += 2
			return nil
		}
		if r.b[r.pos] == 0xff && r.b[r.pos+1] != 0 && r.b[r.pos+1] != 0xff {
			break
		}
		r.pos++
	}
	return errJPEG("missing restart marker")
}

// decodeJPEGLossless decodes one single-component JPEG Lossless image of
// rows×cols samples into dst.
func decodeJPEGLossless(b []byte, rows, cols int, dst []uint16) error {
	st, err := newJPEGStream(b, errJPEG)
	if err != nil {
		return err
	}
	var tables huffmanTables
	precision, restartInterval := 0, 0
	compID := -1
	for {
		m, seg, err := st.next()
		if err != nil {
			return err
		}
		if m == 0xd9 {
			return errJPEG("EOI before any scan")
		}
		switch {
		case m == 0xc3: // SOF3: lossless, Huffman
			if len(seg) < 6 {
				return errJPEG("short SOF3")
			}
			precision = int(seg[0])
			y, x, nf := int(seg[1])<<8|int(seg[2]), int(seg[3])<<8|int(seg[4]), int(seg[5])
			if nf != 1 {
				return fmt.Errorf("%w: JPEG Lossless with %d components; only grayscale is supported", ErrUnsupported, nf)
			}
			if len(seg) < 9 {
				return errJPEG("short SOF3")
			}
			if precision < 2 || precision > 16 {
				return errJPEG("precision %d", precision)
			}
			if y != rows || x != cols {
				return errJPEG("image is %d×%d, DICOM header says %d×%d", x, y, cols, rows)
			}
			compID = int(seg[6])
		case isSOF(m):
			return fmt.Errorf("%w: JPEG frame type SOF%d is not Huffman lossless (process 14); decompress with `dcmdjpeg IN OUT` or `gdcmconv --raw IN OUT`", ErrUnsupported, m-0xc0)
		case m == 0xc4: // DHT
			if err := tables.define(seg, 0, 16, errJPEG); err != nil {
				return err
			}
		case m == 0xdd: // DRI
			if len(seg) < 2 {
				return errJPEG("short DRI")
			}
			restartInterval = int(seg[0])<<8 | int(seg[1])
		case m == 0xda: // SOS
			if compID < 0 {
				return errJPEG("scan before SOF3")
			}
			if len(seg) < 6 || seg[0] != 1 {
				return errJPEG("scan must have one component")
			}
			if int(seg[1]) != compID {
				return errJPEG("scan component %d is not frame component %d", seg[1], compID)
			}
			h := tables[0][seg[2]>>4&3]
			if h == nil {
				return errJPEG("scan uses an undefined Huffman table")
			}
			predictor, pt := int(seg[3]), uint(seg[5]&15)
			if predictor < 1 || predictor > 7 {
				return errJPEG("predictor %d", predictor)
			}
			if int(pt) >= precision {
				return errJPEG("point transform %d for precision %d", pt, precision)
			}
			if restartInterval > 0 && restartInterval%cols != 0 {
				return fmt.Errorf("%w: JPEG Lossless restart interval %d is not a whole number of rows (%d)", ErrUnsupported, restartInterval, cols)
			}
			return decodeScan(&bits{b: st.scan()}, h, scanParams{
				rows: rows, cols: cols, precision: precision, pt: pt,
				predictor: predictor, restartRows: restartInterval / cols,
			}, dst)
		}
	}
}

type scanParams struct {
	rows, cols  int
	precision   int
	pt          uint
	predictor   int
	restartRows int // 0: no restarts
}

var errTruncatedScan = errors.New("entropy-coded data truncated")

// decodeScan decodes the entropy-coded samples (T.81 H.2).
func decodeScan(r *bits, h *huffman, sp scanParams, dst []uint16) error {
	cols := sp.cols
	initial := int32(1) << (sp.precision - int(sp.pt) - 1)
	firstRow := true
	for y := range sp.rows {
		if sp.restartRows > 0 && y > 0 && y%sp.restartRows == 0 {
			if err := r.restart(); err != nil {
				return err
			}
			firstRow = true
		}
		row := dst[y*cols : (y+1)*cols]
		var above []uint16
		if !firstRow {
			above = dst[(y-1)*cols : y*cols]
		}
		for x := range cols {
			// Difference: Huffman-coded category, then its extra bits.
			code := h.lut[r.peek16()]
			l := uint(code >> 8)
			if l == 0 {
				return errJPEG("invalid Huffman code")
			}
			r.n -= l
			s := uint(code & 0xff)
			var diff int32
			switch s {
			case 0:
			case 16:
				diff = 32768
			default:
				v := int32(r.get(s))
				if v < 1<<(s-1) {
					v += -(1 << s) + 1
				}
				diff = v
			}
			var pred int32
			switch {
			case firstRow && x == 0:
				pred = initial
			case firstRow:
				pred = int32(row[x-1] >> sp.pt)
			case x == 0:
				pred = int32(above[0] >> sp.pt)
			default:
				ra, rb, rc := int32(row[x-1]>>sp.pt), int32(above[x]>>sp.pt), int32(above[x-1]>>sp.pt)
				switch sp.predictor {
				case 1:
					pred = ra
				case 2:
					pred = rb
				case 3:
					pred = rc
				case 4:
					pred = ra + rb - rc
				case 5:
					pred = ra + (rb-rc)>>1
				case 6:
					pred = rb + (ra-rc)>>1
				case 7:
					pred = (ra + rb) >> 1
				}
			}
			row[x] = uint16((pred+diff)&0xffff) << sp.pt
		}
		firstRow = false
		if r.padded > 8 {
			return fmt.Errorf("%w: JPEG Lossless: %v", ErrCorrupt, errTruncatedScan)
		}
	}
	return nil
}
