package deid

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/medcad/medcad/stages/volume"
	"github.com/suyashkumar/dicom"
)

// Scan lists the attributes of ds that the Basic Profile would still
// remove or replace, by name and tag path (never by value), sorted:
//
//   - private attributes, curve (50xx) and overlay (60xx) groups;
//   - an X attribute that is present, a Z attribute that is not empty, a D
//     attribute that holds something other than a dummy or empty value;
//   - a UID (U, or any UI value outside the table) that is neither a
//     standard UID nor of the 2.25.<decimal> form Deidentifier writes;
//   - a date (DA, DT, or a table date attribute) that is neither empty nor
//     the dummy date, unless
//     ds declares a Retain Longitudinal Temporal Information option (codes
//     113106 or 113107 in DeidentificationMethodCodeSequence);
//   - an attribute of a standard (even) group that the dictionary does
//     not know;
//   - BurnedInAnnotation = YES (in any VR, UN included, and among
//     several values).
//
// Scan cannot tell an original UID that already has the 2.25 form from a
// replaced one, nor a shifted date from an original one under 113107.
func Scan(ds *dicom.Dataset) []string {
	rows := profileRows()
	s := scanner{rows: make(map[uint32]profileRow, len(rows)), datesAllowed: datesDeclared(ds), found: map[string]bool{}}
	for _, r := range rows {
		s.rows[r.tag] = r
	}
	if burnedIn(ds) {
		s.found["BurnedInAnnotation (0028,0301) = YES"] = true
	}
	s.elements(ds.Elements, "", 0)
	out := make([]string, 0, len(s.found))
	for k := range s.found {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ScanFile reads the DICOM file at path and scans it. A DICOMDIR is
// scanned too: its directory records hold patient names and IDs. A NIfTI
// file (named .nii or .nii.gz: a label map) is scanned for its header's
// free-text fields and extensions and its gzip wrapper's file name,
// comment and extra field (volume.Header.Text), which a file medcad
// writes leaves empty.
func ScanFile(path string) ([]string, error) {
	if IsNIfTIName(path) {
		h, err := volume.ReadHeader(path)
		if err != nil {
			return nil, err
		}
		found := make([]string, 0, len(h.Text))
		for _, f := range h.Text {
			if !strings.HasPrefix(f, "gzip") {
				f = "NIfTI " + f
			}
			found = append(found, f)
		}
		slices.Sort(found)
		return found, nil
	}
	ds, err := read(path, true)
	if err != nil {
		return nil, err
	}
	return Scan(&ds), nil
}

// IsNIfTIName reports whether path is named as a NIfTI-1 file.
func IsNIfTIName(path string) bool {
	p := strings.ToLower(path)
	return strings.HasSuffix(p, ".nii") || strings.HasSuffix(p, ".nii.gz")
}

type scanner struct {
	rows         map[uint32]profileRow
	datesAllowed bool
	found        map[string]bool
}

// datesDeclared reports whether ds declares that dates were kept or shifted.
func datesDeclared(ds *dicom.Dataset) bool {
	e, err := ds.FindElementByTag(tg(tagDeidentificationMethodCode))
	if err != nil || e.Value == nil {
		return false
	}
	items, _ := e.Value.GetValue().([]*dicom.SequenceItemValue)
	for _, it := range items {
		es, _ := it.GetValue().([]*dicom.Element)
		for _, c := range es {
			if c.Tag.Uint32() != tagCodeValue {
				continue
			}
			if v, ok := c.Value.GetValue().([]string); ok && len(v) > 0 {
				if code := trimValue(v[0]); code == "113106" || code == "113107" {
					return true
				}
			}
		}
	}
	return false
}

func (s *scanner) elements(es []*dicom.Element, path string, depth int) {
	if depth > maxDepth {
		s.found[path+"(nested too deep to check)"] = true
		return
	}
	for _, e := range es {
		s.element(e, path, depth)
	}
}

func (s *scanner) element(e *dicom.Element, path string, depth int) {
	name := path + tagName(e.Tag)
	switch g := e.Tag.Group; {
	case g%2 == 1:
		s.found[path+"private group "+strings.ToUpper(hex4(g))] = true
		return
	case g&0xFF00 == 0x5000:
		s.found[path+"curve group "+strings.ToUpper(hex4(g))] = true
		return
	case g&0xFF00 == 0x6000:
		s.found[path+"overlay group "+strings.ToUpper(hex4(g))] = true
		return
	}
	vr := vrOf(e)
	r, inTable := s.rows[e.Tag.Uint32()]
	if inTable && r.dates && s.datesAllowed {
		return
	}
	if !inTable && unknownPublic(e.Tag) {
		s.found[path+"unknown attribute "+tagName(e.Tag)+" in a standard group"] = true
		return
	}
	if !inTable {
		switch {
		case e.Tag.Group == 0x0002:
			// File meta: implementation and transfer syntax UIDs name
			// software, not patients; only the media SOP instance UID
			// (in the table) is checked.
		case vr == "SQ":
			s.sequence(e, name, depth)
		case vr == "UI":
			if !uidsClean(e) {
				s.found[name] = true
			}
		case (vr == "DA" || vr == "DT") && !s.datesAllowed:
			if !dummyOrEmpty(e, vr) {
				s.found[name] = true
			}
		}
		return
	}
	switch r.action {
	case actX:
		s.found[name] = true
	case actZ, actXZ:
		if !empty(e) {
			s.found[name] = true
		}
	case actD, actXD, actZD, actXZD:
		switch {
		case vr == "SQ":
			s.sequence(e, name, depth)
		case vr == "UI":
			if !uidsClean(e) {
				s.found[name] = true
			}
		case !dummyOrEmpty(e, vr):
			s.found[name] = true
		}
	case actU, actXZU:
		if vr == "SQ" {
			s.sequence(e, name, depth)
		} else if !uidsClean(e) {
			s.found[name] = true
		}
	}
}

func (s *scanner) sequence(e *dicom.Element, name string, depth int) {
	items, _ := e.Value.GetValue().([]*dicom.SequenceItemValue)
	for _, it := range items {
		es, _ := it.GetValue().([]*dicom.Element)
		s.elements(es, name+" / ", depth+1)
	}
}

func hex4(g uint16) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[g>>12], digits[g>>8&15], digits[g>>4&15], digits[g&15]})
}

// empty reports whether e holds no value.
func empty(e *dicom.Element) bool {
	if e.Value == nil {
		return true
	}
	switch v := e.Value.GetValue().(type) {
	case []string:
		for _, s := range v {
			if trimValue(s) != "" {
				return false
			}
		}
		return true
	case []int:
		return len(v) == 0
	case []float64:
		return len(v) == 0
	case []byte:
		return len(v) == 0
	case []*dicom.SequenceItemValue:
		return len(v) == 0
	}
	return false
}

// dummyOrEmpty reports whether e holds nothing but a dummy value.
func dummyOrEmpty(e *dicom.Element, vr string) bool {
	if e.Value == nil {
		return true
	}
	switch v := e.Value.GetValue().(type) {
	case []string:
		return isDummy(v, vr)
	case []int:
		return len(v) == 0 || (len(v) == 1 && v[0] == 0)
	case []float64:
		return len(v) == 0 || (len(v) == 1 && v[0] == 0)
	}
	return empty(e)
}

// uidsClean reports whether every UID of e is standard or replaced.
func uidsClean(e *dicom.Element) bool {
	if e.Value == nil {
		return true
	}
	vals, ok := e.Value.GetValue().([]string)
	if !ok {
		return empty(e)
	}
	for _, v := range vals {
		v = trimValue(v)
		if v != "" && !isStandardUID(v) && !isDeidUID(v) {
			return false
		}
	}
	return true
}

// ScanResult is the outcome of scanning one file.
type ScanResult struct {
	Path    string
	Found   []string // what Scan lists; empty when clean
	Skipped bool     // not DICOM, found inside a folder
	Err     error    // names the file, never a value
}

// ScanTree scans every file named by paths, walking folders; each is
// called once per file. Files in folders that are not DICOM are skipped.
// It returns an error only when it cannot go on (ctx cancelled).
func ScanTree(ctx context.Context, paths []string, each func(ScanResult)) error {
	walk := fileWalk{fail: func(path string, err error) { each(ScanResult{Path: path, Err: err}) }}
	walk.file = func(path, _ string, inFolder bool) {
		found, err := ScanFile(path)
		switch {
		case err != nil && inFolder && errors.Is(err, ErrNotDICOM):
			each(ScanResult{Path: path, Skipped: true, Err: err})
		case err != nil:
			each(ScanResult{Path: path, Err: err})
		default:
			each(ScanResult{Path: path, Found: found})
		}
	}
	return walk.run(ctx, paths)
}
