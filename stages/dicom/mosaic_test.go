package dicom

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medcad/medcad/internal/dicomtest"
	"github.com/medcad/medcad/internal/testenv"
)

// mosaicSpec describes a hand-built Siemens MOSAIC file.
type mosaicSpec struct {
	rows, cols int       // of the whole frame
	n          int       // NumberOfImagesInMosaic
	normal     []float64 // CSA SliceNormalVector; nil: none in the CSA header
	csa        []byte    // the CSA header as written; nil: built from n and normal
	noCSA      bool      // no CSA header, only (0019,xx0A)
	no0019     bool      // no (0019,xx0A)
	vendor     string    // Manufacturer; "" for SIEMENS
}

// mosaicOrientation is an oblique plane (rotated about x and z).
var mosaicOrientation = [6]float64{0.9961947, 0.0871557, 0, -0.0868241, 0.9924039, -0.0871557}

// mosaicFile writes spec as an explicit VR little endian MR image whose
// pixel at (row, column) of the frame holds row·columns + column + 1.
func mosaicFile(t *testing.T, dir, name string, spec mosaicSpec) string {
	t.Helper()
	ds := func(xs ...float64) []byte {
		var s []string
		for _, x := range xs {
			s = append(s, fmt.Sprintf("%.7g", x))
		}
		return []byte(strings.Join(s, `\`))
	}
	us := func(x int) []byte { return binary.LittleEndian.AppendUint16(nil, uint16(x)) }
	b := dicomtest.Part10(tsExplicitLE)
	add := func(g, e uint16, vr string, v []byte) {
		if len(v)%2 == 1 {
			pad := byte(' ')
			if vr == "UI" || vr == "OB" {
				pad = 0
			}
			v = append(v, pad)
		}
		b = append(b, dicomtest.Element(g, e, vr, uint32(len(v)), v)...)
	}
	csa := spec.csa
	if csa == nil {
		tags := []csaTag{{name: "NumberOfImagesInMosaic", vm: 1, values: []string{fmt.Sprint(spec.n)}, nItems: 6}}
		if spec.normal != nil {
			var v []string
			for _, x := range spec.normal {
				v = append(v, fmt.Sprintf("%.8f", x))
			}
			tags = append(tags, csaTag{name: "SliceNormalVector", vm: 3, values: v, nItems: 6})
		}
		csa = csaBytes(false, tags...)
	}
	add(0x0008, 0x0008, "CS", []byte(`ORIGINAL\PRIMARY\M\ND\MOSAIC`))
	add(0x0008, 0x0016, "UI", []byte("1.2.840.10008.5.1.4.1.1.4"))
	add(0x0008, 0x0060, "CS", []byte("MR"))
	vendor := spec.vendor
	if vendor == "" {
		vendor = "SIEMENS"
	}
	add(0x0008, 0x0070, "LO", []byte(vendor))
	add(0x0018, 0x0050, "DS", ds(2.5))
	add(0x0018, 0x0088, "DS", ds(3))
	if !spec.no0019 {
		add(0x0019, 0x0010, "LO", []byte("SIEMENS MR HEADER"))
		add(0x0019, 0x100A, "US", us(spec.n))
	}
	add(0x0020, 0x000D, "UI", []byte("1.2.826.0.1.3680043.10.1"))
	add(0x0020, 0x000E, "UI", []byte("1.2.826.0.1.3680043.10.2"))
	add(0x0020, 0x0011, "IS", []byte("7"))
	add(0x0020, 0x0032, "DS", ds(-180.5, -170.25, 40))
	add(0x0020, 0x0037, "DS", ds(mosaicOrientation[:]...))
	add(0x0028, 0x0002, "US", us(1))
	add(0x0028, 0x0004, "CS", []byte("MONOCHROME2"))
	add(0x0028, 0x0010, "US", us(spec.rows))
	add(0x0028, 0x0011, "US", us(spec.cols))
	add(0x0028, 0x0030, "DS", ds(2.5, 2))
	add(0x0028, 0x0100, "US", us(16))
	add(0x0028, 0x0101, "US", us(16))
	add(0x0028, 0x0102, "US", us(15))
	add(0x0028, 0x0103, "US", us(0))
	if !spec.noCSA {
		add(0x0029, 0x0010, "LO", []byte("SIEMENS CSA HEADER"))
		add(0x0029, 0x1010, "OB", csa)
	}
	var px []byte
	for i := range spec.rows * spec.cols {
		px = binary.LittleEndian.AppendUint16(px, uint16(i+1))
	}
	add(0x7FE0, 0x0010, "OW", px)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// mosaicNormal is the normal of mosaicOrientation (row × column).
func mosaicNormal() []float64 {
	o := mosaicOrientation
	n := cross([3]float64(o[:3]), [3]float64(o[3:]))
	return n[:]
}

// TestMosaic splits hand-built mosaics: 8 tiles of 5×6 in a 3×3 grid,
// slice k holding tile k when the CSA normal is row × column, tile 7-k
// when it points the other way (the volume runs along row × column), and
// the slices 3 mm apart (SpacingBetweenSlices).
func TestMosaic(t *testing.T) {
	t.Parallel()
	reversed := mosaicNormal()
	for i := range reversed {
		reversed[i] = -reversed[i]
	}
	for name, c := range map[string]struct {
		spec    mosaicSpec
		reverse bool
	}{
		"csa normal":         {spec: mosaicSpec{rows: 15, cols: 18, n: 8, normal: mosaicNormal()}},
		"reversed normal":    {spec: mosaicSpec{rows: 15, cols: 18, n: 8, normal: reversed}, reverse: true},
		"no csa":             {spec: mosaicSpec{rows: 15, cols: 18, n: 8, noCSA: true}},
		"csa without normal": {spec: mosaicSpec{rows: 15, cols: 18, n: 8, no0019: true}},
	} {
		dir := t.TempDir()
		mosaicFile(t, dir, "m.dcm", c.spec)
		v, s, err := medcadVolume(dir)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if v.Dim != [3]int{6, 5, 8} {
			t.Fatalf("%s: %v voxels, want 6×5×8", name, v.Dim)
		}
		if d := s.Spacing[2]; math.Abs(d-3) > 1e-6 {
			t.Errorf("%s: slice spacing %g mm, want 3", name, d)
		}
		for k := range 8 {
			tile := k
			if c.reverse {
				tile = 7 - k
			}
			for j := range 5 {
				for i := range 6 {
					row, col := tile/3*5+(4-j), tile%3*6+i // rows stored bottom-up
					want := float64(row*18 + col + 1)
					if got := v.At(k*30 + j*6 + i); got != want {
						t.Fatalf("%s: voxel (%d,%d,%d) = %g, want %g (tile %d)", name, i, j, k, got, want, tile)
					}
				}
			}
		}
	}
}

// TestMosaicDcm2niix converts hand-built mosaics with dcm2niix: the same
// voxels and affine, whichever way the CSA normal points, without a CSA
// header, and when the grid does not divide the frame.
func TestMosaicDcm2niix(t *testing.T) {
	t.Parallel()
	bin := testenv.LookPath(t, "dcm2niix")
	reversed := mosaicNormal()
	for i := range reversed {
		reversed[i] = -reversed[i]
	}
	for name, spec := range map[string]mosaicSpec{
		"csa normal":      {rows: 15, cols: 18, n: 8, normal: mosaicNormal()},
		"reversed normal": {rows: 15, cols: 18, n: 8, normal: reversed},
		"no csa":          {rows: 15, cols: 18, n: 8, noCSA: true},
		"remainder":       {rows: 17, cols: 20, n: 7, normal: mosaicNormal()},
		"one tile":        {rows: 9, cols: 7, n: 1, normal: mosaicNormal()},
	} {
		dir := t.TempDir()
		mosaicFile(t, dir, "m.dcm", spec)
		v, _, err := medcadVolume(dir)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if msg := compareToDcm2niix(v, dcm2niixVolumes(t, bin, dir), 0); msg != "" {
			t.Errorf("%s: %s", name, msg)
		}
	}
}

// TestMosaicSeries: two mosaics of one series (a time series) are two
// volumes, one per file.
func TestMosaicSeries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mosaicFile(t, dir, "a.dcm", mosaicSpec{rows: 15, cols: 18, n: 8, normal: mosaicNormal()})
	mosaicFile(t, dir, "b.dcm", mosaicSpec{rows: 15, cols: 18, n: 8, normal: mosaicNormal()})
	scan, err := Discover(context.Background(), []string{dir}, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(scan.Series) != 2 {
		t.Fatalf("%d series, want one per mosaic file", len(scan.Series))
	}
	for i, s := range scan.Series {
		if s.Err != nil || s.Dim != [3]int{6, 5, 8} || len(s.Files) != 1 {
			t.Errorf("series %d: %v voxels from %v, err %v", i+1, s.Dim, s.Files, s.Err)
		}
		if want := "one of 2 mosaics of a time series, each converted as its own volume"; !slices.Contains(s.Warnings, want) {
			t.Errorf("series %d: warnings %q, want %q", i+1, s.Warnings, want)
		}
	}
}

// TestMosaicBroken: a broken CSA header, a count of 0, more tiles than
// the frame holds and no count at all are skipped with a one-line reason.
func TestMosaicBroken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := csaBytes(false, csaTag{name: "NumberOfImagesInMosaic", vm: 1, values: []string{"8"}, nItems: 6})
	want := map[string]string{
		"truncated-csa.dcm": "Siemens CSA header: tag 1 claims 6 items, more than its 90 bytes can hold",
		"zero.dcm":          "NumberOfImagesInMosaic 0",
		"too-many.dcm":      "400 tiles do not fit in 18×15 pixels",
		"no-count.dcm":      "without NumberOfImagesInMosaic",
		"fraction.dcm":      "NumberOfImagesInMosaic is not a count",
		"other-vendor.dcm":  "a MOSAIC image not from Siemens",
	}
	mosaicFile(t, dir, "other-vendor.dcm", mosaicSpec{rows: 15, cols: 18, n: 8, noCSA: true, no0019: true, vendor: "ACME"})
	mosaicFile(t, dir, "truncated-csa.dcm", mosaicSpec{rows: 15, cols: 18, n: 8, csa: good[:len(good)-10]})
	mosaicFile(t, dir, "zero.dcm", mosaicSpec{rows: 15, cols: 18, n: 0})
	mosaicFile(t, dir, "too-many.dcm", mosaicSpec{rows: 15, cols: 18, n: 400})
	mosaicFile(t, dir, "no-count.dcm", mosaicSpec{rows: 15, cols: 18, n: 8, noCSA: true, no0019: true})
	mosaicFile(t, dir, "fraction.dcm", mosaicSpec{rows: 15, cols: 18, n: 8, no0019: true,
		csa: csaBytes(false, csaTag{name: "NumberOfImagesInMosaic", vm: 1, values: []string{"7.5"}})})
	scan, err := Discover(context.Background(), []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, n := range scan.Skipped {
		got[filepath.Base(n.Path)] = n.Reason
	}
	for file, why := range want {
		r, ok := got[file]
		switch {
		case !ok:
			t.Errorf("%s: not skipped", file)
		case !strings.Contains(r, why) || strings.Contains(r, "\n"):
			t.Errorf("%s: reason %q, want one line with %q", file, r, why)
		}
	}
	if len(scan.Series) != 0 {
		t.Errorf("%d series from broken mosaics", len(scan.Series))
	}
}

// TestWriteMosaicSeed writes FuzzParse's seed of a small mosaic (4 tiles
// of 3×4); run with -update-seeds.
func TestWriteMosaicSeed(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite the corpus")
	}
	b, err := os.ReadFile(mosaicFile(t, t.TempDir(), "m.dcm", mosaicSpec{rows: 6, cols: 8, n: 4, normal: mosaicNormal()}))
	if err != nil {
		t.Fatal(err)
	}
	writeSeed(t, filepath.Join("testdata", "fuzz", "FuzzParse", "mosaic"), b)
}
