package deid

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzDeid feeds arbitrary bytes through the de-identification path: it
// must never panic; a file it accepts must come out as a file that parses
// again and that Scan finds clean; a file it refuses gets a one-line error.
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
	d := New(testKey, Options{Dates: DatesShift, ShiftDays: 3})
	f.Fuzz(func(t *testing.T, data []byte) {
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
		var buf bytes.Buffer
		if err := write(&buf, ds); err != nil {
			return // the writer refuses some values it parsed (odd-length OW, …); File reports that
		}
		again, err := Parse("out.dcm", buf.Bytes())
		if err != nil {
			t.Fatalf("de-identified output does not parse: %v", err)
		}
		if found := Scan(&again); len(found) > 0 {
			t.Fatalf("de-identified output holds %q", found)
		}
	})
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
