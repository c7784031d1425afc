// Package volume holds medcad's 3-D image type, a voxel grid with its
// voxel-to-patient geometry, and its NIfTI-1 encoding.
//
// Geometry convention (as dcm2niix and nibabel): Affine maps a voxel index
// (i, j, k, 1) to RAS+ millimetres: +x toward the patient's right, +y
// toward anterior, +z toward superior (DICOM's LPS with x and y negated).
// Voxel data are stored with i fastest, then j, then k.
package volume

import (
	"errors"
	"fmt"
	"math"
)

// DType is the voxel data type.
type DType int

// Supported voxel types: CT in Hounsfield units is Int16, label maps are
// Uint8, derived maps (probabilities, distances) are Float32.
const (
	Int16 DType = iota + 1
	Uint8
	Float32
)

func (d DType) String() string {
	switch d {
	case Int16:
		return "int16"
	case Uint8:
		return "uint8"
	case Float32:
		return "float32"
	}
	return fmt.Sprintf("dtype(%d)", int(d))
}

// Affine maps voxel indices to RAS+ mm: p = A · (i, j, k, 1).
type Affine [4][4]float64

// Apply maps a (possibly fractional) voxel index to RAS+ mm.
func (a Affine) Apply(i, j, k float64) [3]float64 {
	var p [3]float64
	for r := range 3 {
		p[r] = a[r][0]*i + a[r][1]*j + a[r][2]*k + a[r][3]
	}
	return p
}

// Spacing returns the voxel size in mm along i, j and k (the column norms).
func (a Affine) Spacing() [3]float64 {
	var s [3]float64
	for c := range 3 {
		s[c] = math.Sqrt(a[0][c]*a[0][c] + a[1][c]*a[1][c] + a[2][c]*a[2][c])
	}
	return s
}

// MaxDiff returns the largest absolute element difference of two affines.
func (a Affine) MaxDiff(b Affine) float64 {
	d := 0.0
	for r := range 4 {
		for c := range 4 {
			d = max(d, math.Abs(a[r][c]-b[r][c]))
		}
	}
	return d
}

// Identity returns an affine with the given spacing and origin and axes
// aligned with RAS+.
func Identity(spacing [3]float64) Affine {
	return Affine{
		{spacing[0], 0, 0, 0},
		{0, spacing[1], 0, 0},
		{0, 0, spacing[2], 0},
		{0, 0, 0, 1},
	}
}

// Volume is a 3-D voxel grid. Exactly one of I16, U8 and F32 holds data,
// as DType says, with len = Dim[0]*Dim[1]*Dim[2].
type Volume struct {
	Dim    [3]int
	Affine Affine
	DType  DType
	I16    []int16
	U8     []uint8
	F32    []float32
}

// ErrShape means two volumes, or a volume and its data, disagree in shape.
var ErrShape = errors.New("shape mismatch")

// New allocates a zero volume.
func New(dt DType, dim [3]int, aff Affine) *Volume {
	v := &Volume{Dim: dim, Affine: aff, DType: dt}
	n := dim[0] * dim[1] * dim[2]
	switch dt {
	case Int16:
		v.I16 = make([]int16, n)
	case Uint8:
		v.U8 = make([]uint8, n)
	case Float32:
		v.F32 = make([]float32, n)
	}
	return v
}

// Len is the number of voxels.
func (v *Volume) Len() int { return v.Dim[0] * v.Dim[1] * v.Dim[2] }

// Index returns the linear index of voxel (i, j, k).
func (v *Volume) Index(i, j, k int) int { return i + v.Dim[0]*(j+v.Dim[1]*k) }

// Spacing is the voxel size in mm along i, j and k.
func (v *Volume) Spacing() [3]float64 { return v.Affine.Spacing() }

// At returns voxel n as float64 whatever the type.
func (v *Volume) At(n int) float64 {
	switch v.DType {
	case Int16:
		return float64(v.I16[n])
	case Uint8:
		return float64(v.U8[n])
	default:
		return float64(v.F32[n])
	}
}

// Check verifies that the data slice matches DType and Dim.
func (v *Volume) Check() error {
	for _, d := range v.Dim {
		if d < 1 {
			return fmt.Errorf("dimension %v: %w", v.Dim, ErrShape)
		}
	}
	var n int
	switch v.DType {
	case Int16:
		n = len(v.I16)
	case Uint8:
		n = len(v.U8)
	case Float32:
		n = len(v.F32)
	default:
		return fmt.Errorf("unknown voxel type %v", v.DType)
	}
	if n != v.Len() {
		return fmt.Errorf("%d voxels for dimension %v: %w", n, v.Dim, ErrShape)
	}
	return nil
}

// SameGrid reports an error unless a and b share dimension and affine
// (within tol mm).
func SameGrid(a, b *Volume, tol float64) error {
	if a.Dim != b.Dim {
		return fmt.Errorf("shape %v vs %v: %w", a.Dim, b.Dim, ErrShape)
	}
	if d := a.Affine.MaxDiff(b.Affine); d > tol {
		return fmt.Errorf("affines differ by %.3g mm (tolerance %g): %w", d, tol, ErrShape)
	}
	return nil
}
