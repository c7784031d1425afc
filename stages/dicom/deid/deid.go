// Package deid de-identifies DICOM datasets with the Basic Application Level
// Confidentiality Profile of DICOM PS3.15 Annex E, and scans datasets for
// attributes the profile would still remove or replace.
//
// What is written by hand, and why: table E.1-1 as Go data (table.go; no Go
// library carries it), the walk that applies it at every nesting level, the
// keyed UID and case-id mapping, date shifting, and the scan. Parsing and
// writing DICOM is suyashkumar/dicom's; pixel data passes through as the
// raw bytes the library read, untouched.
//
// Decisions the profile leaves open (docs/deid.md explains each):
//
//   - Compound actions (X/Z, X/D, Z/D, X/Z/D) take their first, most
//     removing action, except for the few attributes the CT and Enhanced CT
//     IODs require (requiredType1); X/Z/U* keeps the sequence and replaces
//     the UIDs inside it, so references keep pointing at the right objects.
//   - Every private attribute is removed, private creators included; every
//     curve group (50xx) and every overlay group (60xx) is removed whole.
//   - Any UI value outside the table that is not a standard UID
//     (1.2.840.10008.…) is replaced like a U attribute.
//   - With dates removed (the default), DA and DT values outside the table
//     get the dummy date too (some, such as FrameAcquisitionDateTime, are
//     type 1); with --shift-dates they are shifted.
//   - Group length elements (gggg,0000), retired, are dropped: removing
//     attributes would make them wrong.
//   - A file that declares burned-in annotation is refused.
//
// Nothing here prints, logs or returns a tag value: errors name the file,
// the tag and the problem only.
package deid

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Profile is the name recorded in dataset pointers (deid_profile).
const Profile = "ps3.15-basic"

// action is a Basic Profile action code of table E.1-1.
type action uint8

const (
	actK   action = iota // keep
	actX                 // remove
	actZ                 // replace with a zero-length value
	actD                 // replace with a dummy value valid for the VR
	actU                 // replace UIDs consistently
	actXZ                // X unless Z is required by the IOD
	actXD                // X unless D is required
	actZD                // Z unless D is required
	actXZD               // X unless Z or D is required
	actXZU               // X unless Z or U* (replace contained UIDs) is required
	actC                 // clean: here, shift the dates (Modified Dates option)
)

// String returns the action as table E.1-1 writes it.
func (a action) String() string {
	return [...]string{"K", "X", "Z", "D", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*", "C"}[a]
}

// DateMode says what happens to dates and times.
type DateMode int

const (
	// DatesRemove applies the Basic Profile: dates are removed or emptied.
	DatesRemove DateMode = iota
	// DatesKeep is the Retain Longitudinal Temporal Information with Full
	// Dates option (code 113106).
	DatesKeep
	// DatesShift is the Retain Longitudinal Temporal Information with
	// Modified Dates option (code 113107): every date moves by ShiftDays.
	DatesShift
)

// Options select the profile options.
type Options struct {
	Dates     DateMode
	ShiftDays int // for DatesShift; may be negative
	Jobs      int // files Tree processes at a time; 0: 4 × GOMAXPROCS
	// Progress, when set, is told the files (and bytes) a Tree reads once
	// it has walked its inputs, and each file as it is reported.
	Progress interface {
		Total(files int, bytes int64)
		Done(files int, bytes int64)
	}
}

// Errors callers test.
var (
	// ErrBurnedIn means the file declares burned-in annotation: its pixels
	// may show identity, which this profile does not clean.
	ErrBurnedIn = errors.New("burned-in annotation (BurnedInAnnotation = YES): pixel data may show identity")
	// ErrNoStudyUID means the dataset has no StudyInstanceUID to derive a
	// case id from.
	ErrNoStudyUID = errors.New("no StudyInstanceUID")
	// ErrKey means a key file is unusable.
	ErrKey = errors.New("unusable key file")
)

// KeySize is the project key's length in bytes.
const KeySize = 32

// CaseIDHexDigits is the number of hex digits in a case id: 48 bits, so
// that among 10,000 cases the chance of any collision is about 2e-7
// (n²/2^49); six digits would collide with probability above 95 %.
const CaseIDHexDigits = 12

// Deidentifier applies the profile with one project key.
type Deidentifier struct {
	key  []byte
	opts Options
	rows map[uint32]profileRow
}

// New returns a Deidentifier keyed with key (see LoadKey).
func New(key []byte, opts Options) *Deidentifier {
	rows := profileRows()
	m := make(map[uint32]profileRow, len(rows))
	for _, r := range rows {
		m[r.tag] = r
	}
	return &Deidentifier{key: slices.Clone(key), opts: opts, rows: m}
}

// mac returns HMAC-SHA-256 of domain and s under the project key.
func (d *Deidentifier) mac(domain, s string) []byte {
	h := hmac.New(sha256.New, d.key)
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write([]byte(s))
	return h.Sum(nil)
}

// UID maps an original UID to its de-identified replacement, 2.25.<decimal>
// of the first 128 bits of a keyed hash: the same UID and key always give
// the same result, so references across files stay consistent. Standard
// UIDs (1.2.840.10008.…: SOP classes, transfer syntaxes) and empty values
// are returned unchanged.
func (d *Deidentifier) UID(orig string) string {
	orig = trimValue(orig)
	if orig == "" || isStandardUID(orig) {
		return orig
	}
	n := new(big.Int).SetBytes(d.mac("uid", orig)[:16])
	return "2.25." + n.String()
}

// CaseID returns the pseudonymous, stable case id of a study:
// "c-" + CaseIDHexDigits hex digits of a keyed hash of its StudyInstanceUID.
func (d *Deidentifier) CaseID(studyUID string) string {
	sum := d.mac("case", trimValue(studyUID))
	return "c-" + hex.EncodeToString(sum)[:CaseIDHexDigits]
}

// StudyCaseID returns the case id of a (not yet de-identified) dataset.
func (d *Deidentifier) StudyCaseID(ds *dicom.Dataset) (string, error) {
	e, err := ds.FindElementByTag(tag.StudyInstanceUID)
	if err != nil {
		return "", ErrNoStudyUID
	}
	s, ok := e.Value.GetValue().([]string)
	if !ok || len(s) == 0 || trimValue(s[0]) == "" {
		return "", ErrNoStudyUID
	}
	return d.CaseID(s[0]), nil
}

func isStandardUID(u string) bool { return strings.HasPrefix(u, "1.2.840.10008.") }

// isDeidUID reports whether u has the form this package writes.
func isDeidUID(u string) bool {
	rest, ok := strings.CutPrefix(u, "2.25.")
	if !ok || rest == "" || len(u) > 64 || (len(rest) > 1 && rest[0] == '0') {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func trimValue(s string) string { return strings.TrimRight(s, " \x00") }

// Dataset de-identifies ds in place: table E.1-1 at every nesting level,
// private, curve and overlay groups removed, UIDs replaced, the file meta
// rebuilt and the method recorded. On error ds may be partly changed and
// must not be written.
func (d *Deidentifier) Dataset(ds *dicom.Dataset) error {
	if burnedIn(ds) {
		return ErrBurnedIn
	}
	w := walker{d: d, type1: requiredType1(ds)}
	var meta, body []*dicom.Element
	for _, e := range ds.Elements {
		if e.Tag.Group == 0x0002 {
			meta = append(meta, e)
		} else {
			body = append(body, e)
		}
	}
	out, err := w.elements(body, 0)
	if err != nil {
		return err
	}
	out, err = d.record(out)
	if err != nil {
		return err
	}
	m, err := d.meta(meta, out)
	if err != nil {
		return err
	}
	sortElements(out)
	ds.Elements = append(m, out...)
	return nil
}

func sortElements(es []*dicom.Element) {
	slices.SortStableFunc(es, func(a, b *dicom.Element) int { return a.Tag.Compare(b.Tag) })
}

// burnedIn reports whether ds declares burned-in annotation anywhere: a
// BurnedInAnnotation whose values include YES, whatever its VR (a UN
// value is read as text) and multiplicity (NO\YES is YES), at any level.
func burnedIn(ds *dicom.Dataset) bool { return burnedInAt(ds.Elements, 0) }

func burnedInAt(es []*dicom.Element, depth int) bool {
	if depth > maxDepth {
		return true // deeper than anything is checked: assume the worst
	}
	for _, e := range es {
		if e.Value == nil {
			continue
		}
		if e.Tag.Uint32() == tagBurnedInAnnotation {
			var vals []string
			switch v := e.Value.GetValue().(type) {
			case []string:
				vals = v
			case []byte:
				vals = []string{string(v)}
			}
			for _, s := range vals {
				for _, part := range strings.Split(s, "\\") {
					if strings.EqualFold(strings.Trim(part, " \x00"), "YES") {
						return true
					}
				}
			}
		}
		if items, ok := e.Value.GetValue().([]*dicom.SequenceItemValue); ok {
			for _, it := range items {
				if sub, _ := it.GetValue().([]*dicom.Element); burnedInAt(sub, depth+1) {
					return true
				}
			}
		}
	}
	return false
}

// unknownPublic reports whether t is in a standard (even) group but not in
// the DICOM dictionary: a non-standard use of a public group, which could
// hold anything, so it is removed (and Scan flags it).
func unknownPublic(t tag.Tag) bool {
	if t.Group%2 == 1 || t.Group == 0x0002 || t.Group == 0xFFFE || t.Element == 0x0000 {
		return false
	}
	_, err := tag.Find(t)
	return err != nil
}

// Enhanced CT Image Storage: its IOD makes some compound-action attributes
// type 1, so they get a dummy value instead of being removed.
const enhancedCTSOPClass = "1.2.840.10008.5.1.4.1.1.2.1"

// requiredType1 returns the compound-action attributes that ds's IOD makes
// type 1 at the top level (they must then get a D dummy value).
func requiredType1(ds *dicom.Dataset) map[uint32]bool {
	e, err := ds.FindElementByTag(tag.SOPClassUID)
	if err != nil {
		return nil
	}
	s, ok := e.Value.GetValue().([]string)
	if !ok || len(s) == 0 || trimValue(s[0]) != enhancedCTSOPClass {
		return nil
	}
	return map[uint32]bool{
		0x0008002A: true, // Acquisition DateTime (Enhanced CT Image module)
		0x00080023: true, // Content Date (Multi-frame Functional Groups)
		0x00080033: true, // Content Time
		0x00181000: true, // Device Serial Number (Enhanced General Equipment)
	}
}

// walker applies the profile to a tree of elements.
type walker struct {
	d     *Deidentifier
	type1 map[uint32]bool // top-level attributes the IOD requires (type 1)
}

// maxDepth bounds sequence nesting, against hostile files.
const maxDepth = 64

// elements returns the de-identified copy of es.
func (w *walker) elements(es []*dicom.Element, depth int) ([]*dicom.Element, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("sequences nested deeper than %d", maxDepth)
	}
	out := make([]*dicom.Element, 0, len(es))
	for _, e := range es {
		ne, err := w.element(e, depth)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tagName(e.Tag), err)
		}
		if ne != nil {
			out = append(out, ne)
		}
	}
	sortElements(out) // DICOM wants ascending tags; some inputs break that
	return out, nil
}

// removedGroup reports whether a whole group is removed: private (odd)
// groups, curves (50xx) and overlays (60xx).
func removedGroup(g uint16) bool {
	return g%2 == 1 || g&0xFF00 == 0x5000 || g&0xFF00 == 0x6000
}

// resolve turns a compound action into the one applied to an attribute.
func (w *walker) resolve(r profileRow, depth int) action {
	if r.dates {
		switch w.d.opts.Dates {
		case DatesKeep:
			return actK
		case DatesShift:
			return actC
		}
	}
	req := depth == 0 && w.type1[r.tag]
	switch r.action {
	case actXZ:
		return actX
	case actXD:
		if req {
			return actD
		}
		return actX
	case actZD:
		if req {
			return actD
		}
		return actZ
	case actXZD:
		if req {
			return actD
		}
		return actX
	case actXZU:
		return actU
	}
	return r.action
}

// element returns the de-identified e, or nil to remove it.
func (w *walker) element(e *dicom.Element, depth int) (*dicom.Element, error) {
	if removedGroup(e.Tag.Group) {
		return nil, nil
	}
	if e.Tag.Element == 0x0000 {
		return nil, nil // group lengths (retired) would be wrong once elements go
	}
	vr := vrOf(e)
	e = withVR(e, vr)
	act := actK
	if r, ok := w.d.rows[e.Tag.Uint32()]; ok {
		act = w.resolve(r, depth)
	} else if unknownPublic(e.Tag) {
		return nil, nil
	} else {
		switch {
		case vr == "UI":
			act = actU
		case vr == "DA" || vr == "DT":
			switch w.d.opts.Dates {
			case DatesRemove:
				act = actD // a dummy, not empty: some are type 1 (FrameAcquisitionDateTime)
			case DatesShift:
				act = actC
			}
		}
	}
	switch act {
	case actX:
		return nil, nil
	case actZ:
		return emptied(e, vr)
	case actD:
		if vr == "SQ" {
			return w.sequence(e, depth)
		}
		return dummy(e, vr, w.d)
	case actU:
		if vr == "SQ" {
			return w.sequence(e, depth)
		}
		return w.uids(e, vr)
	case actC:
		return w.d.shifted(e, vr)
	}
	if vr == "SQ" {
		return w.sequence(e, depth)
	}
	return e, nil
}

// vrOf returns e's VR: the file's when it is a valid VR, else the
// dictionary's, else UN.
func vrOf(e *dicom.Element) string {
	if e.Value != nil && e.Value.ValueType() == dicom.Sequences {
		return "SQ"
	}
	vr := e.RawValueRepresentation
	if validVR(vr) && vr != "UN" {
		return vr
	}
	if info, err := tag.Find(e.Tag); err == nil && len(info.VRs) > 0 && validVR(info.VRs[0]) {
		return info.VRs[0]
	}
	return "UN"
}

// withVR returns e written with VR vr where that is safe: a UN value of a
// text attribute becomes text (so that a UN-coded UID or name is handled
// like any other), an invalid VR becomes the dictionary's. Other UN values
// stay UN bytes.
func withVR(e *dicom.Element, vr string) *dicom.Element {
	raw := e.RawValueRepresentation
	if vr == raw || e.Tag == tag.PixelData || e.Value == nil {
		return e
	}
	if raw == "UN" {
		b, ok := e.Value.GetValue().([]byte)
		if !ok || !textVR(vr) {
			return e
		}
		ne, err := withValue(e, strings.Split(trimValue(strings.TrimLeft(string(b), " ")), "\\"))
		if err != nil {
			return e
		}
		ne.RawValueRepresentation = vr
		return ne
	}
	if validVR(raw) {
		return e
	}
	ne := *e
	ne.RawValueRepresentation = vr
	return &ne
}

// textVR reports whether values of vr are text.
func textVR(vr string) bool {
	switch vr {
	case "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT":
		return true
	}
	return false
}

// validVR reports whether vr is one of the VRs of PS3.5.
func validVR(vr string) bool {
	switch vr {
	case "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL",
		"OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV":
		return true
	}
	return false
}

// withValue returns a copy of e holding data.
func withValue(e *dicom.Element, data any) (*dicom.Element, error) {
	v, err := dicom.NewValue(data)
	if err != nil {
		return nil, err
	}
	ne := *e
	ne.Value = v
	ne.ValueLength = 0 // recomputed by the writer
	return &ne, nil
}

// emptied returns e with a zero-length value of its type.
func emptied(e *dicom.Element, vr string) (*dicom.Element, error) {
	if e.Value == nil {
		return e, nil
	}
	switch e.Value.ValueType() {
	case dicom.Strings:
		return withValue(e, []string{})
	case dicom.Ints:
		return withValue(e, []int{})
	case dicom.Floats:
		return withValue(e, []float64{})
	case dicom.Bytes:
		return withValue(e, []byte{})
	case dicom.Sequences:
		ne, err := withValue(e, [][]*dicom.Element{})
		if ne != nil {
			ne.ValueLength = tag.VLUndefinedLength
		}
		return ne, err
	}
	return nil, nil // anything else (pixel data in a table row) is removed
}

// dummyString returns the dummy value for a string VR.
func dummyString(vr string) string {
	switch vr {
	case "DA":
		return "19000101"
	case "DT":
		return "19000101000000"
	case "TM":
		return "000000"
	case "AS":
		return "000Y"
	case "DS", "IS":
		return "0"
	default: // AE, CS, LO, LT, PN, SH, ST, UC, UR, UT: fits 16 characters
		return "ANONYMIZED"
	}
}

// dummy returns e with a dummy value valid for its VR.
func dummy(e *dicom.Element, vr string, d *Deidentifier) (*dicom.Element, error) {
	if e.Value == nil {
		return e, nil
	}
	switch e.Value.ValueType() {
	case dicom.Strings:
		if vr == "UI" {
			return (&walker{d: d}).uids(e, vr)
		}
		return withValue(e, []string{dummyString(vr)})
	case dicom.Ints:
		return withValue(e, []int{0})
	case dicom.Floats:
		return withValue(e, []float64{0})
	}
	return emptied(e, vr)
}

// isDummy reports whether the strings are the dummy or an empty value.
func isDummy(vals []string, vr string) bool {
	for _, v := range vals {
		v = trimValue(v)
		if v != "" && v != dummyString(vr) {
			return false
		}
	}
	return true
}

// uids returns e with every UID replaced.
func (w *walker) uids(e *dicom.Element, vr string) (*dicom.Element, error) {
	vals, ok := e.Value.GetValue().([]string)
	if !ok {
		return nil, nil // a UID attribute that is not text: remove it
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = w.d.UID(v)
	}
	return withValue(e, out)
}

// sequence returns e with every item de-identified.
func (w *walker) sequence(e *dicom.Element, depth int) (*dicom.Element, error) {
	items, ok := e.Value.GetValue().([]*dicom.SequenceItemValue)
	if !ok {
		return nil, nil
	}
	out := make([][]*dicom.Element, 0, len(items))
	for _, it := range items {
		es, _ := it.GetValue().([]*dicom.Element)
		clean, err := w.elements(es, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, clean)
	}
	ne, err := withValue(e, out)
	if ne != nil {
		ne.ValueLength = tag.VLUndefinedLength
		ne.RawValueRepresentation = "SQ"
	}
	return ne, err
}

// tagName names a tag for messages and reports: keyword and (gggg,eeee).
func tagName(t tag.Tag) string {
	num := fmt.Sprintf("(%04X,%04X)", t.Group, t.Element)
	if t.Group%2 == 1 {
		return "private " + num
	}
	if info, err := tag.Find(t); err == nil && info.Keyword != "" {
		return info.Keyword + " " + num
	}
	return num
}

// Deidentification codes of CID 7050.
type code struct{ value, meaning string }

// Tags this package writes or reads by number.
const (
	tagPatientIdentityRemoved     uint32 = 0x00120062
	tagDeidentificationMethod     uint32 = 0x00120063
	tagDeidentificationMethodCode uint32 = 0x00120064
	tagLongitudinalModified       uint32 = 0x00280303
	tagBurnedInAnnotation         uint32 = 0x00280301
	tagCodeValue                  uint32 = 0x00080100
	tagCodingSchemeDesignator     uint32 = 0x00080102
	tagCodeMeaning                uint32 = 0x00080104
)

// tg converts a tag number.
func tg(n uint32) tag.Tag { return tag.Tag{Group: uint16(n >> 16), Element: uint16(n)} }

// method returns the DeidentificationMethod text and codes for the options.
func (d *Deidentifier) method() (string, []code, string) {
	basic := code{"113100", "Basic Application Confidentiality Profile"}
	switch d.opts.Dates {
	case DatesKeep:
		return "medcad PS3.15 E.1 Basic Profile, dates kept",
			[]code{basic, {"113106", "Retain Longitudinal Temporal Information Full Dates Option"}}, "UNMODIFIED"
	case DatesShift:
		return "medcad PS3.15 E.1 Basic Profile, dates shifted",
			[]code{basic, {"113107", "Retain Longitudinal Temporal Information Modified Dates Option"}}, "MODIFIED"
	}
	return "medcad PS3.15 E.1 Basic Profile", []code{basic}, "REMOVED"
}

// record replaces the de-identification attributes of es.
func (d *Deidentifier) record(es []*dicom.Element) ([]*dicom.Element, error) {
	drop := []uint32{tagPatientIdentityRemoved, tagDeidentificationMethod, tagDeidentificationMethodCode, tagLongitudinalModified}
	es = slices.DeleteFunc(es, func(e *dicom.Element) bool { return slices.Contains(drop, e.Tag.Uint32()) })
	text, codes, longitudinal := d.method()
	items := make([][]*dicom.Element, 0, len(codes))
	for _, c := range codes {
		item, err := elems(
			tagCodeValue, []string{c.value},
			tagCodingSchemeDesignator, []string{"DCM"},
			tagCodeMeaning, []string{c.meaning},
		)
		if err != nil {
			return nil, err
		}
		items = append(items, item)
	}
	add, err := elems(
		tagPatientIdentityRemoved, []string{"YES"},
		tagDeidentificationMethod, []string{text},
		tagDeidentificationMethodCode, items,
		tagLongitudinalModified, []string{longitudinal},
	)
	if err != nil {
		return nil, err
	}
	for _, e := range add {
		if e.Value.ValueType() == dicom.Sequences {
			e.ValueLength = tag.VLUndefinedLength
		}
	}
	return append(es, add...), nil
}

// elems builds elements from tag, value pairs.
func elems(pairs ...any) ([]*dicom.Element, error) {
	var out []*dicom.Element
	for i := 0; i+1 < len(pairs); i += 2 {
		t, ok := pairs[i].(tag.Tag)
		if !ok {
			t = tg(pairs[i].(uint32))
		}
		e, err := dicom.NewElement(t, pairs[i+1])
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Transfer syntaxes the output may need.
const (
	explicitVRLittleEndian = "1.2.840.10008.1.2.1"
	implicitVRLittleEndian = "1.2.840.10008.1.2"
	deflatedExplicitVRLE   = "1.2.840.10008.1.2.1.99"
)

// meta rebuilds the file meta information: the original transfer syntax
// (deflated becomes explicit VR little endian, which the writer supports;
// none becomes implicit VR little endian), the SOP class and the new SOP
// instance UID; nothing else of the original meta survives (source AE
// titles and private meta information may identify the sender).
func (d *Deidentifier) meta(orig, body []*dicom.Element) ([]*dicom.Element, error) {
	ts := implicitVRLittleEndian
	for _, e := range orig {
		if e.Tag == tag.TransferSyntaxUID {
			if s, ok := e.Value.GetValue().([]string); ok && len(s) > 0 && trimValue(s[0]) != "" {
				ts = trimValue(s[0])
			}
		}
	}
	if ts == deflatedExplicitVRLE {
		ts = explicitVRLittleEndian
	}
	first := func(t tag.Tag) string {
		for _, e := range body {
			if e.Tag == t {
				if s, ok := e.Value.GetValue().([]string); ok && len(s) > 0 {
					return trimValue(s[0])
				}
			}
		}
		return ""
	}
	class, inst := first(tag.SOPClassUID), first(tag.SOPInstanceUID)
	if class == "" || inst == "" {
		// Media Storage SOP class and instance UIDs are type 1 in the meta.
		return nil, errors.New("no SOPClassUID or SOPInstanceUID: not a storable DICOM instance")
	}
	return elems(
		tag.FileMetaInformationVersion, []byte{0, 1},
		tag.MediaStorageSOPClassUID, []string{class},
		tag.MediaStorageSOPInstanceUID, []string{inst},
		tag.TransferSyntaxUID, []string{ts},
		tag.ImplementationClassUID, []string{implementationUID},
		tag.ImplementationVersionName, []string{"MEDCAD"},
	)
}

// implementationUID identifies medcad as the writer of the file meta
// (2.25 form of the first 128 bits of SHA-256("medcad")).
const implementationUID = "2.25.144899755501520300973016033536405471785"
