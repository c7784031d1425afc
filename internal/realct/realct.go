// Package realct loads the real CT scans that medcad's models are checked
// against and computes their reference bone masks.
//
// The one scan today is the head CT of Debian's invesalius-examples
// package (Cranium, 108 × 256 × 256, 0.957 × 0.957 × 1.5 mm). Debian ships
// it as an InVesalius project (.inv3: a gzipped tar holding main.plist and
// the HU volume as raw little-endian int16, slices × rows × columns), not
// as DICOM, so this package reads that file; the reader is written by hand
// (no Go library reads .inv3) and is bounded by the declared shape.
//
// The reference is InVesalius's bone preset: voxels with 226 ≤ HU ≤ 3071,
// keeping the 6-connected components with at least a tenth of the largest
// one's voxels (the largest components; the same rule as
// `medcad segment baseline`, written here independently so that the
// reference does not depend on the code it scores).
package realct

import (
	"archive/tar"
	"compress/gzip"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/medcad/medcad/stages/volume"
)

// CraniumPath is where Debian's invesalius-examples package installs the
// Cranium head CT.
const CraniumPath = "/usr/share/doc/invesalius-examples/examples/Cranium.inv3"

// Bone preset of InVesalius (its "Bone" threshold preset for CT).
const (
	BoneMinHU = 226
	BoneMaxHU = 3071
	// KeepFraction keeps components with at least this fraction of the
	// largest component's voxels.
	KeepFraction = 0.1
)

// Limits on what ReadInv3 accepts.
const (
	maxPlist = 1 << 20
	maxDim   = 4096
	maxVoxel = 1 << 28
)

// ReadInv3 reads the CT volume of an InVesalius project file: int16 HU,
// dimensions (columns, rows, slices), an axis-aligned affine with the
// project's spacing. Errors name the file and the problem.
func ReadInv3(file string) (*volume.Volume, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := readInv3(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// ErrFormat means the file is not an InVesalius project medcad can read.
var ErrFormat = errors.New("not a readable InVesalius project")

func readInv3(r io.Reader) (*volume.Volume, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not gzip-compressed: %w", ErrFormat)
	}
	tr := tar.NewReader(zr)
	var info *matrixInfo
	var raw []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("tar: %v: %w", err, ErrFormat)
		}
		switch name := path.Base(h.Name); {
		case name == "main.plist":
			if h.Size > maxPlist {
				return nil, fmt.Errorf("main.plist is %d bytes: %w", h.Size, ErrFormat)
			}
			data, err := io.ReadAll(io.LimitReader(tr, maxPlist))
			if err != nil {
				return nil, fmt.Errorf("main.plist: %v: %w", err, ErrFormat)
			}
			if info, err = parseMain(data); err != nil {
				return nil, fmt.Errorf("main.plist: %w", err)
			}
		case info != nil && name == info.file:
			want := int64(info.dim[0]*info.dim[1]*info.dim[2]) * 2
			if h.Size != want {
				return nil, fmt.Errorf("%s is %d bytes, the shape needs %d: %w", name, h.Size, want, ErrFormat)
			}
			// Read as the data comes (not make(want)): a header cannot make
			// a small file allocate much.
			if raw, err = io.ReadAll(io.LimitReader(tr, want)); err != nil || int64(len(raw)) != want {
				return nil, fmt.Errorf("%s: truncated (%d of %d bytes): %w", name, len(raw), want, ErrFormat)
			}
		}
	}
	switch {
	case info == nil:
		return nil, fmt.Errorf("no main.plist: %w", ErrFormat)
	case raw == nil:
		return nil, fmt.Errorf("no %s (it must follow main.plist): %w", info.file, ErrFormat)
	}
	v := volume.New(volume.Int16, info.dim, volume.Identity(info.spacing))
	for i := range v.I16 {
		v.I16[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return v, nil
}

// matrixInfo is what main.plist says about the volume.
type matrixInfo struct {
	file    string
	dim     [3]int // columns, rows, slices
	spacing [3]float64
}

// plistNode is an element of an Apple XML property list.
type plistNode struct {
	XMLName xml.Name
	Text    string      `xml:",chardata"`
	Nodes   []plistNode `xml:",any"`
}

// get returns the value after <key>name</key> in a <dict>.
func (n plistNode) get(name string) (plistNode, bool) {
	for i := 0; i+1 < len(n.Nodes); i += 2 {
		if n.Nodes[i].XMLName.Local == "key" && n.Nodes[i].Text == name {
			return n.Nodes[i+1], true
		}
	}
	return plistNode{}, false
}

func parseMain(data []byte) (*matrixInfo, error) {
	var root plistNode
	if err := xml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrFormat)
	}
	if len(root.Nodes) != 1 || root.Nodes[0].XMLName.Local != "dict" {
		return nil, fmt.Errorf("no top-level dict: %w", ErrFormat)
	}
	top := root.Nodes[0]
	if m, ok := top.get("modality"); ok && strings.TrimSpace(m.Text) != "CT" {
		return nil, fmt.Errorf("modality %q, want CT: %w", m.Text, ErrFormat)
	}
	mat, ok := top.get("matrix")
	if !ok {
		return nil, fmt.Errorf("no matrix: %w", ErrFormat)
	}
	if dt, _ := mat.get("dtype"); strings.TrimSpace(dt.Text) != "int16" {
		return nil, fmt.Errorf("matrix dtype %q, want int16: %w", dt.Text, ErrFormat)
	}
	fn, _ := mat.get("filename")
	info := &matrixInfo{file: strings.TrimSpace(fn.Text)}
	if info.file == "" || path.Base(info.file) != info.file {
		return nil, fmt.Errorf("matrix filename %q: %w", fn.Text, ErrFormat)
	}
	shape, _ := mat.get("shape")
	sp, _ := top.get("spacing")
	if len(shape.Nodes) != 3 || len(sp.Nodes) != 3 {
		return nil, fmt.Errorf("want a 3-D shape and spacing: %w", ErrFormat)
	}
	n := 1
	for a := range 3 {
		// shape is (slices, rows, columns); spacing is (x, y, z).
		d, err := strconv.Atoi(strings.TrimSpace(shape.Nodes[2-a].Text))
		if err != nil || d < 1 || d > maxDim {
			return nil, fmt.Errorf("shape %q: %w", shape.Nodes[2-a].Text, ErrFormat)
		}
		s, err := strconv.ParseFloat(strings.TrimSpace(sp.Nodes[a].Text), 64)
		if err != nil || !(s > 0 && s < 100) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("spacing %q: %w", sp.Nodes[a].Text, ErrFormat)
		}
		info.dim[a], info.spacing[a] = d, s
		n *= d
	}
	if n > maxVoxel {
		return nil, fmt.Errorf("%d voxels: %w", n, ErrFormat)
	}
	return info, nil
}

// BonePreset is the reference bone mask of ct (uint8, 1 = bone, ct's
// grid): BoneMinHU ≤ HU ≤ BoneMaxHU, keeping the 6-connected components
// with at least KeepFraction of the largest one's voxels.
func BonePreset(ct *volume.Volume) *volume.Volume {
	out := volume.New(volume.Uint8, ct.Dim, ct.Affine)
	n := ct.Len()
	label := make([]int32, n) // component number + 1; 0 = not bone
	for v := range n {
		if h := ct.At(v); h >= BoneMinHU && h <= BoneMaxHU {
			label[v] = -1
		}
	}
	var sizes []int
	var stack []int
	d := ct.Dim
	for s := range n {
		if label[s] != -1 {
			continue
		}
		id := int32(len(sizes) + 1)
		size := 0
		label[s] = id
		stack = append(stack[:0], s)
		for len(stack) > 0 {
			v := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			size++
			i, j, k := v%d[0], v/d[0]%d[1], v/(d[0]*d[1])
			for _, nb := range [6]struct {
				ok bool
				u  int
			}{
				{i > 0, v - 1}, {i < d[0]-1, v + 1},
				{j > 0, v - d[0]}, {j < d[1]-1, v + d[0]},
				{k > 0, v - d[0]*d[1]}, {k < d[2]-1, v + d[0]*d[1]},
			} {
				if nb.ok && label[nb.u] == -1 {
					label[nb.u] = id
					stack = append(stack, nb.u)
				}
			}
		}
		sizes = append(sizes, size)
	}
	largest := 0
	for _, s := range sizes {
		largest = max(largest, s)
	}
	keep := int(math.Ceil(KeepFraction * float64(largest)))
	for v, l := range label {
		if l > 0 && sizes[l-1] >= keep {
			out.U8[v] = 1
		}
	}
	return out
}

// Dice is the Dice coefficient of two masks on the same grid (1 when both
// are empty).
func Dice(truth, pred *volume.Volume) float64 {
	inter, a, b := 0, 0, 0
	for v, t := range truth.U8 {
		p := pred.U8[v] != 0
		if t != 0 {
			a++
		}
		if p {
			b++
		}
		if t != 0 && p {
			inter++
		}
	}
	if a+b == 0 {
		return 1
	}
	return 2 * float64(inter) / float64(a+b)
}
