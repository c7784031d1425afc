package surface

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/medcad/medcad/internal/atomicfile"
)

// ErrSTL means the input is not an STL file this package can read.
var ErrSTL = errors.New("not a valid STL file")

// maxSTLTriangles bounds what a binary header may claim (2.5 GB of file),
// so a corrupt count cannot ask for an absurd buffer.
const maxSTLTriangles = 50_000_000

// EncodeSTL writes m as binary STL (80-byte header, little-endian count,
// 50 bytes per triangle: unit normal, three vertices, zero attribute), or
// as ASCII STL when ascii is set. Coordinates are the mesh's RAS+ mm.
func EncodeSTL(w io.Writer, m *Mesh, ascii bool) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if ascii {
		fmt.Fprintf(bw, "solid medcad\n")
		for _, t := range m.Triangles {
			n := normal(m, t)
			fmt.Fprintf(bw, "  facet normal %s %s %s\n    outer loop\n", f32(n[0]), f32(n[1]), f32(n[2]))
			for _, i := range t {
				p := m.Vertices[i]
				fmt.Fprintf(bw, "      vertex %s %s %s\n", f32(p[0]), f32(p[1]), f32(p[2]))
			}
			fmt.Fprintf(bw, "    endloop\n  endfacet\n")
		}
		fmt.Fprintf(bw, "endsolid medcad\n")
		return bw.Flush()
	}
	if len(m.Triangles) > math.MaxUint32 {
		return fmt.Errorf("%d triangles: binary STL holds at most %d", len(m.Triangles), uint32(math.MaxUint32))
	}
	var head [84]byte
	copy(head[:], "medcad binary STL; RAS+ mm; outward normals")
	binary.LittleEndian.PutUint32(head[80:], uint32(len(m.Triangles)))
	bw.Write(head[:])
	var rec [50]byte
	for _, t := range m.Triangles {
		n := normal(m, t)
		for c := range 3 {
			binary.LittleEndian.PutUint32(rec[4*c:], math.Float32bits(n[c]))
		}
		for v, i := range t {
			p := m.Vertices[i]
			for c := range 3 {
				binary.LittleEndian.PutUint32(rec[12+12*v+4*c:], math.Float32bits(p[c]))
			}
		}
		bw.Write(rec[:])
	}
	return bw.Flush()
}

func f32(x float32) string { return strconv.FormatFloat(float64(x), 'g', -1, 32) }

// normal returns the unit normal of triangle t (zero for a degenerate one).
func normal(m *Mesh, t [3]uint32) [3]float32 {
	a, b, c := m.Vertices[t[0]], m.Vertices[t[1]], m.Vertices[t[2]]
	u := [3]float64{float64(b[0] - a[0]), float64(b[1] - a[1]), float64(b[2] - a[2])}
	w := [3]float64{float64(c[0] - a[0]), float64(c[1] - a[1]), float64(c[2] - a[2])}
	n := cross(u, w)
	l := math.Sqrt(n[0]*n[0] + n[1]*n[1] + n[2]*n[2])
	if l == 0 {
		return [3]float32{}
	}
	return [3]float32{float32(n[0] / l), float32(n[1] / l), float32(n[2] / l)}
}

// WriteSTL writes m to path (see EncodeSTL). The file appears complete or
// not at all: it is written to a temporary file in the same folder, synced
// and renamed.
func WriteSTL(path string, m *Mesh, ascii bool) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return EncodeSTL(w, m, ascii) })
}

// DecodeSTL reads a binary or ASCII STL file. Vertices with identical
// coordinates are merged, so the mesh's connectivity can be checked.
// Errors wrap ErrSTL.
func DecodeSTL(r io.Reader) (*Mesh, error) {
	b, err := io.ReadAll(io.LimitReader(r, 84+50*maxSTLTriangles+1))
	if err != nil {
		return nil, err
	}
	// "solid" starts ASCII files, but also the header of some binary
	// ones: those are told by their size matching their triangle count.
	head := b[:min(len(b), 84)]
	if bytes.HasPrefix(bytes.TrimLeft(head, " \t\r\n"), []byte("solid")) && isText(head) {
		m, err := decodeASCII(bytes.NewReader(b))
		if err == nil || len(b) < 84 || len(b) != 84+50*int(binary.LittleEndian.Uint32(b[80:84])) {
			return m, err
		}
	}
	if len(b) < 84 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a binary header", ErrSTL, len(b))
	}
	return decodeBinary(bytes.NewReader(b))
}

func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' || c > 0x7e {
			return false
		}
	}
	return true
}

type meshBuilder struct {
	m   Mesh
	ids map[[3]float32]uint32
}

func (b *meshBuilder) vertex(p [3]float32) uint32 {
	if id, ok := b.ids[p]; ok {
		return id
	}
	id := uint32(len(b.m.Vertices))
	b.m.Vertices = append(b.m.Vertices, p)
	b.ids[p] = id
	return id
}

func decodeBinary(r io.Reader) (*Mesh, error) {
	var head [84]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrSTL, err)
	}
	n := binary.LittleEndian.Uint32(head[80:])
	if n > maxSTLTriangles {
		return nil, fmt.Errorf("%w: %d triangles is more than the supported %d", ErrSTL, n, maxSTLTriangles)
	}
	b := meshBuilder{ids: map[[3]float32]uint32{}}
	var rec [50]byte
	for t := range n {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return nil, fmt.Errorf("%w: triangle %d of %d: %v", ErrSTL, t, n, errShort(err))
		}
		var tri [3]uint32
		for v := range 3 {
			var p [3]float32
			for c := range 3 {
				p[c] = math.Float32frombits(binary.LittleEndian.Uint32(rec[12+12*v+4*c:]))
				if p[c] != p[c] || math.IsInf(float64(p[c]), 0) {
					return nil, fmt.Errorf("%w: triangle %d: non-finite coordinate", ErrSTL, t)
				}
			}
			tri[v] = b.vertex(p)
		}
		b.m.Triangles = append(b.m.Triangles, tri)
	}
	if extra, _ := io.Copy(io.Discard, io.LimitReader(r, 1)); extra > 0 {
		return nil, fmt.Errorf("%w: data after the %d triangles the header counts", ErrSTL, n)
	}
	return &b.m, nil
}

func errShort(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("file ends early")
	}
	return err
}

func decodeASCII(r io.Reader) (*Mesh, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<16)
	b := meshBuilder{ids: map[[3]float32]uint32{}}
	line := 0
	var verts [][3]float32
	inFacet, ended := false, false
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		bad := func(msg string) error { return fmt.Errorf("%w: line %d: %s", ErrSTL, line, msg) }
		if ended {
			return nil, bad("text after endsolid")
		}
		switch f[0] {
		case "solid":
			if line != 1 {
				return nil, bad("solid inside a solid")
			}
		case "facet":
			if inFacet || len(f) != 5 || f[1] != "normal" {
				return nil, bad("want 'facet normal nx ny nz'")
			}
			inFacet, verts = true, verts[:0]
		case "outer", "endloop":
			if !inFacet {
				return nil, bad(f[0] + " outside a facet")
			}
		case "vertex":
			if !inFacet || len(f) != 4 || len(verts) == 3 {
				return nil, bad("want three 'vertex x y z' lines per facet")
			}
			var p [3]float32
			for c := range 3 {
				x, err := strconv.ParseFloat(f[1+c], 32)
				if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
					return nil, bad("coordinate " + strconv.Quote(f[1+c]) + " is not a finite number")
				}
				p[c] = float32(x)
			}
			verts = append(verts, p)
		case "endfacet":
			if !inFacet || len(verts) != 3 {
				return nil, bad("facet without three vertices")
			}
			if len(b.m.Triangles) >= maxSTLTriangles {
				return nil, bad("too many triangles")
			}
			b.m.Triangles = append(b.m.Triangles, [3]uint32{b.vertex(verts[0]), b.vertex(verts[1]), b.vertex(verts[2])})
			inFacet = false
		case "endsolid":
			if inFacet {
				return nil, bad("endsolid inside a facet")
			}
			ended = true
		default:
			return nil, bad("unknown keyword " + strconv.Quote(f[0]))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrSTL, line+1, err)
	}
	if !ended {
		return nil, fmt.Errorf("%w: no endsolid", ErrSTL)
	}
	return &b.m, nil
}
