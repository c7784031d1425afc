package dicom

// JPEG Extended (ITU-T T.81 process 2/4: sequential DCT, Huffman coded,
// 12-bit samples) is decoded by hand: the standard library's image/jpeg
// reads 8-bit samples only. One component, sequential (SOF0/SOF1), 8 or
// 12 bits, restart intervals. The inverse DCT is libjpeg's integer
// "islow" (jidctint.c), the one dcmtk's dcmdjpeg uses, so that the output
// matches it.

import "fmt"

func errDCT(format string, args ...any) error {
	return fmt.Errorf("%w: JPEG Extended: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// zigzag maps the coded order of coefficients to their natural position.
var zigzag = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

// decodeHuff decodes one symbol of table h.
func (r *bits) decodeHuff(h *huffman) (int, error) {
	code := h.lut[r.peek16()]
	l := uint(code >> 8)
	if l == 0 {
		return 0, errDCT("invalid Huffman code")
	}
	r.n -= l
	return int(code & 0xff), nil
}

// extend turns s extra bits into a signed value (T.81 F.2.2.1).
func extend(v, s int) int {
	if s == 0 {
		return 0
	}
	if v < 1<<(s-1) {
		return v - 1<<s + 1
	}
	return v
}

// decodeJPEGDCT decodes one single-component sequential DCT image
// (8 or 12 bits) of rows×cols samples into dst.
func decodeJPEGDCT(b []byte, rows, cols int, dst []uint16) error {
	st, err := newJPEGStream(b, errDCT)
	if err != nil {
		return err
	}
	var tables huffmanTables
	var quant [4][64]int32
	var haveQ [4]bool
	precision, restart, qsel := 0, 0, -1
	compID := -1
	for {
		m, seg, err := st.next()
		if err != nil {
			return err
		}
		if m == 0xd9 {
			return errDCT("EOI before any scan")
		}
		switch {
		case m == 0xc0 || m == 0xc1:
			if len(seg) < 9 {
				return errDCT("short SOF")
			}
			precision = int(seg[0])
			y, x, nf := int(seg[1])<<8|int(seg[2]), int(seg[3])<<8|int(seg[4]), int(seg[5])
			if nf != 1 {
				return fmt.Errorf("%w: JPEG image with %d components (colour); only grayscale is supported", ErrUnsupported, nf)
			}
			if precision != 8 && precision != 12 {
				return errDCT("precision %d", precision)
			}
			if y != rows || x != cols {
				return errDCT("image is %d×%d, DICOM header says %d×%d", x, y, cols, rows)
			}
			compID, qsel = int(seg[6]), int(seg[8])
			if qsel > 3 {
				return errDCT("quantisation table %d", qsel)
			}
		case isSOF(m):
			return fmt.Errorf("%w: JPEG frame type SOF%d (progressive, lossless or arithmetic) in a JPEG Extended transfer syntax; decompress with `dcmdjpeg IN OUT`", ErrUnsupported, m-0xc0)
		case m == 0xdb: // DQT
			for len(seg) > 0 {
				pq, tq := int(seg[0]>>4), int(seg[0]&15)
				n := 64 << pq
				if pq > 1 || tq > 3 || len(seg) < 1+n {
					return errDCT("bad DQT")
				}
				for k := range 64 {
					if pq == 0 {
						quant[tq][k] = int32(seg[1+k])
					} else {
						quant[tq][k] = int32(seg[1+2*k])<<8 | int32(seg[2+2*k])
					}
				}
				haveQ[tq] = true
				seg = seg[1+n:]
			}
		case m == 0xc4: // DHT
			if err := tables.define(seg, 1, 255, errDCT); err != nil {
				return err
			}
		case m == 0xdd: // DRI
			if len(seg) < 2 {
				return errDCT("short DRI")
			}
			restart = int(seg[0])<<8 | int(seg[1])
		case m == 0xda: // SOS
			if compID < 0 {
				return errDCT("scan before SOF")
			}
			if len(seg) < 6 || seg[0] != 1 || int(seg[1]) != compID {
				return errDCT("scan must have the one component")
			}
			hd, ha := tables[0][seg[2]>>4&3], tables[1][seg[2]&3]
			if hd == nil || ha == nil || !haveQ[qsel] {
				return errDCT("scan uses an undefined table")
			}
			// A sequential frame's scan always codes all 64 coefficients:
			// its spectral selection and successive approximation
			// (Ss, Se, Ah/Al) must be 0, 63, 0, and are ignored otherwise, as
			// libjpeg does with a warning (pydicom's JPEG-lossy.dcm, from
			// NEMA's WG04 set, has Se = 0).
			return decodeDCTScan(&bits{b: st.scan()}, hd, ha, &quant[qsel], precision, restart, rows, cols, dst)
		}
	}
}

func decodeDCTScan(r *bits, hd, ha *huffman, q *[64]int32, precision, restart, rows, cols int, dst []uint16) error {
	bw, bh := (cols+7)/8, (rows+7)/8
	pred := 0
	var blk [64]int32
	var out [64]int
	for by := range bh {
		for bx := range bw {
			if i := by*bw + bx; restart > 0 && i > 0 && i%restart == 0 {
				if err := r.restart(); err != nil {
					return err
				}
				pred = 0
			}
			blk = [64]int32{}
			s, err := r.decodeHuff(hd)
			if err != nil {
				return err
			}
			if s > 16 {
				return errDCT("DC category %d", s)
			}
			pred += extend(int(r.get(uint(s))), s)
			blk[0] = int32(int16(pred)) * q[0]
			for k := 1; k < 64; {
				rs, err := r.decodeHuff(ha)
				if err != nil {
					return err
				}
				run, s := rs>>4, rs&15
				if s == 0 {
					if run != 15 {
						break
					}
					k += 16
					continue
				}
				k += run
				if k > 63 {
					return errDCT("AC coefficient index %d", k)
				}
				blk[zigzag[k]] = int32(int16(extend(int(r.get(uint(s))), s))) * q[k]
				k++
			}
			idctIslow(&blk, precision, &out)
			for y := range 8 {
				yy := by*8 + y
				if yy >= rows {
					break
				}
				for x := range 8 {
					xx := bx*8 + x
					if xx >= cols {
						break
					}
					dst[yy*cols+xx] = uint16(out[y*8+x])
				}
			}
			if r.padded > 8 {
				return errDCT("entropy-coded data truncated")
			}
		}
	}
	return nil
}

// idctIslow is libjpeg 6b's jpeg_idct_islow on dequantised coefficients,
// with its range limiting.
func idctIslow(in *[64]int32, precision int, out *[64]int) {
	const constBits = 13
	pass1 := int64(2)
	if precision == 12 {
		pass1 = 1
	}
	const (
		f0298 = 2446
		f0390 = 3196
		f0541 = 4433
		f0765 = 6270
		f0899 = 7373
		f1175 = 9633
		f1501 = 12299
		f1847 = 15137
		f1961 = 16069
		f2053 = 16819
		f2562 = 20995
		f3072 = 25172
	)
	descale := func(x, n int64) int64 { return (x + 1<<(n-1)) >> n }
	maxj := int64(1)<<precision - 1
	center := int64(1) << (precision - 1)
	mask := 4*(maxj+1) - 1
	limit := func(v int64) int {
		v &= mask
		if v >= 2*(maxj+1) {
			v -= 4 * (maxj + 1)
		}
		return int(min(max(v+center, 0), maxj))
	}
	var ws [64]int64
	for c := range 8 {
		var v [8]int64
		zero := true
		for k := range 8 {
			v[k] = int64(in[8*k+c])
			if k > 0 && v[k] != 0 {
				zero = false
			}
		}
		if zero {
			dcval := v[0] << pass1
			for k := range 8 {
				ws[8*k+c] = dcval
			}
			continue
		}
		o := idct1(v, f0298, f0390, f0541, f0765, f0899, f1175, f1501, f1847, f1961, f2053, f2562, f3072, constBits)
		for k := range 8 {
			ws[8*k+c] = descale(o[k], constBits-pass1)
		}
	}
	for r := range 8 {
		var v [8]int64
		copy(v[:], ws[8*r:8*r+8])
		if v[1]|v[2]|v[3]|v[4]|v[5]|v[6]|v[7] == 0 {
			o := limit(descale(v[0], pass1+3))
			for k := range 8 {
				out[8*r+k] = o
			}
			continue
		}
		o := idct1(v, f0298, f0390, f0541, f0765, f0899, f1175, f1501, f1847, f1961, f2053, f2562, f3072, constBits)
		for k := range 8 {
			out[8*r+k] = limit(descale(o[k], constBits+pass1+3))
		}
	}
}

// idct1 is one 8-point pass of jpeg_idct_islow, before descaling.
func idct1(v [8]int64, f0298, f0390, f0541, f0765, f0899, f1175, f1501, f1847, f1961, f2053, f2562, f3072 int64, constBits uint) [8]int64 {
	z2, z3 := v[2], v[6]
	z1 := (z2 + z3) * f0541
	tmp2 := z1 + z3*(-f1847)
	tmp3 := z1 + z2*f0765
	tmp0 := (v[0] + v[4]) << constBits
	tmp1 := (v[0] - v[4]) << constBits
	tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
	tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2

	tmp0, tmp1, tmp2, tmp3 = v[7], v[5], v[3], v[1]
	z1 = tmp0 + tmp3
	z2 = tmp1 + tmp2
	z3 = tmp0 + tmp2
	z4 := tmp1 + tmp3
	z5 := (z3 + z4) * f1175
	tmp0 *= f0298
	tmp1 *= f2053
	tmp2 *= f3072
	tmp3 *= f1501
	z1 *= -f0899
	z2 *= -f2562
	z3 *= -f1961
	z4 *= -f0390
	z3 += z5
	z4 += z5
	tmp0 += z1 + z3
	tmp1 += z2 + z4
	tmp2 += z2 + z3
	tmp3 += z1 + z4
	return [8]int64{tmp10 + tmp3, tmp11 + tmp2, tmp12 + tmp1, tmp13 + tmp0, tmp13 - tmp0, tmp12 - tmp1, tmp11 - tmp2, tmp10 - tmp3}
}
