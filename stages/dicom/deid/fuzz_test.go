package deid

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/medcad/medcad/internal/dicomtest"
)

// FuzzDeid feeds arbitrary bytes through the de-identification path as
// File runs it (bounds, parse, profile, encode, read back and scan): it
// must never panic nor allocate in proportion to a length a file claims
// rather than to the bytes it holds (or inflates to); a file it accepts
// must come out as bytes that parse again and that Scan finds clean — a
// de-identification gap shows as ErrStillIdentifying and fails; a file it
// refuses gets a one-line error.
func FuzzDeid(f *testing.F) {
	for _, fx := range []fixture{
		{slices: 1, rows: 2, cols: 2},
		{slices: 1, rows: 2, cols: 2, transferSyntax: implicitVRLittleEndian},
		{slices: 1, rows: 2, cols: 2, transferSyntax: "1.2.840.10008.1.2.2"},
	} {
		b := fx.bytes(&testing.T{}, 0)
		f.Add(b)
		f.Add(b[:len(b)*2/3])
	}
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, flate.BestCompression)
	zw.Write(dicomtest.Element(0x0009, 0x1001, "OB", 1<<16, make([]byte, 1<<16)))
	zw.Close()
	f.Add(cat(preambleMeta(deflatedExplicitVRLE), z.Bytes()))
	f.Add(cat(preambleMeta("1.2.840.10008.1.2.1"), bytes.Repeat(dicomtest.Element(0x0008, 0x1140, "SQ", 0xFFFFFFFF, dicomtest.Element(0xFFFE, 0xE000, "", 0xFFFFFFFF, nil)), 80)))
	f.Add(cat(preambleMeta("1.2.840.10008.1.2.1"), dicomtest.Element(0x0028, 0x0301, "UN", 4, []byte("YES "))))
	d := New(testKey, Options{Dates: DatesShift, ShiftDays: 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		budget := allocBudget(data)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ds, err := Parse("fuzz.dcm", data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "fuzz.dcm: ") {
				t.Fatalf("error %q: want one line naming the file", err)
			}
			return
		}
		Scan(&ds) // must not panic on anything that parses
		if err := d.Dataset(&ds); err != nil {
			if !errors.Is(err, ErrBurnedIn) && strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		_, err = d.verified("fuzz.dcm", ds)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > budget {
			t.Fatalf("allocated %d bytes for a %d-byte input (budget %d)", n, len(data), budget)
		}
		if errors.Is(err, ErrStillIdentifying) {
			t.Fatalf("de-identified output: %v", err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error %q", err)
		}
	})
}

// allocBudget is what de-identifying data may allocate: a fixed overhead
// and a multiple of what the file holds, inflated when it is deflated (at
// most the walk's budget), never what its length fields claim.
func allocBudget(data []byte) uint64 {
	n := int64(len(data))
	if i := bytes.Index(data, []byte(deflatedExplicitVRLE)); i >= 0 {
		r := flate.NewReader(bytes.NewReader(data[i:]))
		m, _ := io.Copy(io.Discard, io.LimitReader(r, maxInflated))
		n += m
	}
	return uint64(32<<20 + 200*n)
}

// FuzzShiftDate: shifting a date (or DT, or DA range) by n days and back
// by -n gives the value back; a value that cannot be shifted gives "".
func FuzzShiftDate(f *testing.F) {
	f.Add("20190314", "DA", 10)
	f.Add("20190314-20200101", "DA", -400)
	f.Add("20200229101530.123456+0100", "DT", 365)
	f.Add("2019", "DT", 1)
	f.Fuzz(func(t *testing.T, v, vr string, days int) {
		if vr != "DA" {
			vr = "DT"
		}
		days %= 3650000
		got := shiftValue(v, vr, days)
		if got == "" {
			return
		}
		if back := shiftValue(got, vr, -days); back != v {
			t.Fatalf("shift %q by %d gives %q, back gives %q", v, days, got, back)
		}
	})
}
