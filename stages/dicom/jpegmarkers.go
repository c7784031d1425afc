package dicom

// The marker syntax that JPEG (ITU-T T.81 Annex B) and JPEG-LS (T.87
// Annex D) code streams share, and the Huffman tables of the two Huffman
// coded JPEG processes medcad decodes by hand (Lossless, Extended).

// jpegStream walks the marker segments of a code stream after its SOI.
// errf makes the errors of the decoder that reads it (each names its
// syntax).
type jpegStream struct {
	b    []byte
	p    int // after the last marker segment read
	errf func(format string, args ...any) error
}

func newJPEGStream(b []byte, errf func(format string, args ...any) error) (*jpegStream, error) {
	if len(b) < 4 || b[0] != 0xff || b[1] != 0xd8 {
		return nil, errf("no SOI marker")
	}
	return &jpegStream{b: b, p: 2, errf: errf}, nil
}

// next returns the next marker and its segment's payload. The standalone
// markers RSTn and TEM are skipped; EOI comes without a payload. After an
// SOS segment, scan returns the entropy-coded data that follows it.
func (s *jpegStream) next() (byte, []byte, error) {
	for {
		m, q, err := nextMarker(s.b, s.p)
		if err != nil {
			return 0, nil, s.errf("no EOI marker")
		}
		s.p = q
		switch {
		case m == 0xd9:
			return m, nil, nil
		case m == 0x01, m >= 0xd0 && m <= 0xd7:
			continue
		}
		if s.p+2 > len(s.b) {
			return 0, nil, s.errf("segment length truncated")
		}
		l := int(s.b[s.p])<<8 | int(s.b[s.p+1])
		if l < 2 || s.p+l > len(s.b) {
			return 0, nil, s.errf("segment length %d out of range", l)
		}
		seg := s.b[s.p+2 : s.p+l]
		s.p += l
		return m, seg, nil
	}
}

// scan returns the rest of the stream: after SOS, its entropy-coded data.
func (s *jpegStream) scan() []byte { return s.b[s.p:] }

// skipScan moves past the entropy-coded data after SOS to the next marker
// that is not a restart marker. In JPEG-LS (ls) data, 0xFF followed by a
// byte below 0x80 is data, not a marker.
func (s *jpegStream) skipScan(ls bool) {
	b, p := s.b, s.p
	for p+1 < len(b) && !(b[p] == 0xff && b[p+1] != 0 && (b[p+1] < 0xd0 || b[p+1] > 0xd7) && b[p+1] != 0xff && (!ls || b[p+1] >= 0x80)) {
		p++
	}
	s.p = p
}

// isSOF reports whether m starts a frame header: SOF0–SOF15 (not DHT,
// JPG or DAC, which share the range) or JPEG-LS's SOF55.
func isSOF(m byte) bool {
	return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc || m == 0xf7
}

// nextMarker finds the marker at or after p (skipping fill bytes) and
// returns its code and the offset after it.
func nextMarker(b []byte, p int) (byte, int, error) {
	for p < len(b) && b[p] != 0xff {
		p++
	}
	for p < len(b) && b[p] == 0xff {
		p++
	}
	if p >= len(b) {
		return 0, 0, errJPEG("missing EOI marker")
	}
	return b[p], p + 1, nil
}

// huffman is a decoding table indexed by the next 16 bits: length << 8 |
// symbol, 0 for an invalid code.
type huffman struct{ lut []uint16 }

// huffmanTables are the DC (class 0) and AC (class 1) tables of a stream.
type huffmanTables [2][4]*huffman

// define reads a DHT segment (T.81 B.2.4.2) into t. Classes above
// maxClass are errors (Lossless has DC tables only), and so are symbols
// above maxSymbol (a Lossless table codes difference categories 0–16).
// A table redefined reuses its look-up, so that a stream of DHT segments
// cannot make the decoder allocate more than the eight tables.
func (t *huffmanTables) define(seg []byte, maxClass, maxSymbol byte, errf func(format string, args ...any) error) error {
	for len(seg) > 0 {
		if len(seg) < 17 {
			return errf("short DHT")
		}
		tc, th := seg[0]>>4, seg[0]&15
		if tc > maxClass || th > 3 {
			return errf("Huffman table class %d id %d", tc, th)
		}
		var counts [16]byte
		copy(counts[:], seg[1:17])
		total := 0
		for _, c := range counts {
			total += int(c)
		}
		if len(seg) < 17+total {
			return errf("short DHT")
		}
		tab := &t[tc][th]
		if *tab == nil {
			*tab = &huffman{lut: make([]uint16, 1<<16)}
		}
		if err := (*tab).build(counts, seg[17:17+total], maxSymbol, errf); err != nil {
			*tab = nil
			return err
		}
		seg = seg[17+total:]
	}
	return nil
}

// build fills h from a table's code counts per length and its symbols.
func (h *huffman) build(counts [16]byte, symbols []byte, maxSymbol byte, errf func(format string, args ...any) error) error {
	clear(h.lut)
	code, k := 0, 0
	for l := 1; l <= 16; l++ {
		for range int(counts[l-1]) {
			if code >= 1<<l {
				return errf("Huffman table overflows")
			}
			s := symbols[k]
			if s > maxSymbol {
				return errf("Huffman symbol %d is not a lossless difference category", s)
			}
			lo := code << (16 - l)
			for i := lo; i < lo+1<<(16-l); i++ {
				h.lut[i] = uint16(l)<<8 | uint16(s)
			}
			code++
			k++
		}
		code <<= 1
	}
	return nil
}
