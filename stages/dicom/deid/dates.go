package deid

import (
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
)

// shifted returns e with its dates moved by ShiftDays (the Modified Dates
// option). DA values, DA ranges and the date part of DT values move; the
// time of day, fractions and UTC offsets stay. TM values stay: a whole-day
// shift keeps the time of day. A value that cannot be shifted exactly (not
// a full YYYYMMDD date) is emptied rather than kept.
func (d *Deidentifier) shifted(e *dicom.Element, vr string) (*dicom.Element, error) {
	if vr != "DA" && vr != "DT" {
		return e, nil // times and time zone offsets are kept
	}
	vals, ok := e.Value.GetValue().([]string)
	if !ok {
		return nil, nil
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = shiftValue(trimValue(v), vr, d.opts.ShiftDays)
	}
	return withValue(e, out)
}

// shiftValue shifts one DA (or DA range) or DT value by days; "" when it
// cannot be shifted exactly.
func shiftValue(v, vr string, days int) string {
	if v == "" {
		return ""
	}
	if vr == "DA" {
		if lo, hi, isRange := strings.Cut(v, "-"); isRange {
			a, b := shiftDate(lo, days), shiftDate(hi, days)
			if (lo != "" && a == "") || (hi != "" && b == "") {
				return ""
			}
			return a + "-" + b
		}
		return shiftDate(v, days)
	}
	if len(v) < 8 || strings.Trim(v[8:], "0123456789.+-") != "" {
		return "" // not a DT: nothing of it is carried over
	}
	day := shiftDate(v[:8], days)
	if day == "" {
		return ""
	}
	return day + v[8:]
}

// shiftDate shifts a YYYYMMDD date by days; "" when it is not one.
func shiftDate(s string, days int) string {
	if s == "" {
		return ""
	}
	if len(s) != 8 {
		return ""
	}
	t, err := time.Parse("20060102", s)
	if err != nil {
		return ""
	}
	r := t.AddDate(0, 0, days)
	if r.Year() < 1 || r.Year() > 9999 {
		return ""
	}
	return r.Format("20060102")
}
