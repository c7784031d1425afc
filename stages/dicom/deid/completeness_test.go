package deid

import (
	"bytes"
	"compress/flate"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/medcad/medcad/internal/dicomtest"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// withElement returns the fixture slice's dataset with e in place of its
// element of the same tag (or added).
func withElement(t *testing.T, e *dicom.Element) dicom.Dataset {
	t.Helper()
	ds := fixture{slices: 1, rows: 2, cols: 2}.dataset(t, 0)
	ds.Elements = slices.DeleteFunc(ds.Elements, func(x *dicom.Element) bool { return x.Tag == e.Tag })
	ds.Elements = append(ds.Elements, e)
	sortElements(ds.Elements)
	return ds
}

// encoded writes ds and parses it back, as a file would arrive.
func encoded(t *testing.T, ds dicom.Dataset) dicom.Dataset {
	t.Helper()
	var buf bytes.Buffer
	if err := dicom.Write(&buf, ds, dicom.SkipVRVerification()); err != nil {
		t.Fatal(err)
	}
	back, err := Parse("in.dcm", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// TestBurnedInAnyVROrValue: BurnedInAnnotation is YES when any of its
// values is, whatever the VR it was coded with.
func TestBurnedInAnyVROrValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		e    *dicom.Element
		want bool
	}{
		{"CS YES", el(t, tag.BurnedInAnnotation, []string{"YES"}), true},
		{"CS NO", el(t, tag.BurnedInAnnotation, []string{"NO"}), false},
		{`CS NO\YES`, el(t, tag.BurnedInAnnotation, []string{"NO", "YES"}), true},
		{"UN YES", raw(t, 0x0028, 0x0301, "UN", []byte("YES ")), true},
		{`UN NO\yes`, raw(t, 0x0028, 0x0301, "UN", []byte(`NO\yes`)), true},
		{"UN NO", raw(t, 0x0028, 0x0301, "UN", []byte("NO")), false},
	} {
		ds := encoded(t, withElement(t, tc.e))
		scanned := slices.Contains(Scan(&ds), "BurnedInAnnotation (0028,0301) = YES")
		err := New(testKey, Options{}).Dataset(&ds)
		if got := errors.Is(err, ErrBurnedIn); got != tc.want || scanned != tc.want {
			t.Errorf("%s: refused %v, scan flags %v; want %v", tc.name, got, scanned, tc.want)
		}
	}
}

// TestUnknownPublicElementRemoved: an element of a standard group that
// the dictionary does not know, (0008,9999), is flagged and removed.
func TestUnknownPublicElementRemoved(t *testing.T) {
	t.Parallel()
	ds := encoded(t, withElement(t, raw(t, 0x0008, 0x9999, "LO", []string{"DOE^JOHN"})))
	if found := Scan(&ds); !slices.Contains(found, "unknown attribute (0008,9999) in a standard group") {
		t.Errorf("scan: %q", found)
	}
	d := New(testKey, Options{})
	if err := d.Dataset(&ds); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.FindElementByTag(tag.Tag{Group: 0x0008, Element: 0x9999}); err == nil {
		t.Error("(0008,9999) kept")
	}
	if _, err := d.verified("in.dcm", ds); err != nil {
		t.Errorf("verified: %v", err)
	}
}

// TestVerifiedFailsClosed: an output that still holds what the profile
// removes is never returned for writing.
func TestVerifiedFailsClosed(t *testing.T) {
	t.Parallel()
	ds := fixture{slices: 1, rows: 2, cols: 2}.dataset(t, 0) // not de-identified
	_, err := New(testKey, Options{}).verified("in.dcm", ds)
	if !errors.Is(err, ErrStillIdentifying) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line with ErrStillIdentifying", err)
	}
	assertNoPHI(t, "error", []byte(err.Error()))
}

// TestBoundsDepthAndDeflate: nesting beyond maxDepth, defined or undefined
// length, and a deflated data set that inflates beyond its declared
// pixels are refused before the parser runs.
func TestBoundsDepthAndDeflate(t *testing.T) {
	t.Parallel()
	const u = 0xFFFFFFFF
	nest := func(levels int, defined bool) []byte {
		body := dicomtest.Element(0x0010, 0x0010, "PN", 4, []byte("A^B "))
		for range levels {
			if defined {
				item := cat(dicomtest.Element(0xFFFE, 0xE000, "", uint32(len(body)), nil), body)
				body = cat(dicomtest.Element(0x0008, 0x1140, "SQ", uint32(len(item)), nil), item)
			} else {
				body = cat(dicomtest.Element(0x0008, 0x1140, "SQ", u, nil), dicomtest.Element(0xFFFE, 0xE000, "", u, nil), body,
					dicomtest.Element(0xFFFE, 0xE00D, "", 0, nil), dicomtest.Element(0xFFFE, 0xE0DD, "", 0, nil))
			}
		}
		return cat(preambleMeta("1.2.840.10008.1.2.1"), body)
	}
	deflated := func(body []byte) []byte {
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestCompression)
		w.Write(body)
		w.Close()
		return cat(preambleMeta(deflatedExplicitVRLE), z.Bytes())
	}
	us := func(elem uint16, v uint16) []byte {
		return dicomtest.Element(0x0028, elem, "US", 2, []byte{byte(v), byte(v >> 8)})
	}
	image := cat(us(0x0002, 1), us(0x0010, 4096), us(0x0011, 4096), us(0x0100, 16)) // declares 32 MiB of pixels
	big := func(n int) []byte { return dicomtest.Element(0x7FE0, 0x0010, "OW", uint32(n), make([]byte, n)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"64 levels, undefined", nest(maxDepth, false), nil},
		{"65 levels, undefined", nest(maxDepth+1, false), errDepth},
		{"64 levels, defined", nest(maxDepth, true), nil},
		{"65 levels, defined", nest(maxDepth+1, true), errDepth},
		{"deflated, within the allowance", deflated(cat(dicomtest.Element(0x0009, 0x1001, "OB", 1<<20, make([]byte, 1<<20)))), nil},
		{"deflated bomb", deflated(dicomtest.Element(0x0009, 0x1001, "OB", deflateAllowance+2, make([]byte, deflateAllowance+2))), errBomb},
		{"deflated, declared pixels", deflated(cat(image, big(deflateAllowance+1<<20))), nil},
		{"deflated, pixels beyond declared", deflated(cat(image, big(deflateAllowance+33<<20))), errBomb},
		{"item longer than its sequence", cat(preambleMeta("1.2.840.10008.1.2.1"), dicomtest.Element(0x0008, 0x1140, "SQ", 8, nil), dicomtest.Element(0xFFFE, 0xE000, "", 16, nil), make([]byte, 16)), errLength},
	} {
		if got := checkBounds(tc.b); !errors.Is(got, tc.want) {
			t.Errorf("%s: checkBounds = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// preambleMeta is a preamble and a file meta naming ts.
func preambleMeta(ts string) []byte {
	v := []byte(ts)
	if len(v)%2 == 1 {
		v = append(v, 0)
	}
	return cat(append(make([]byte, 128), "DICM"...), dicomtest.Element(0x0002, 0x0010, "UI", uint32(len(v)), v))
}
