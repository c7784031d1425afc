package deid

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

var testKey = bytes.Repeat([]byte{0x42}, KeySize)

func TestProfileTable(t *testing.T) {
	t.Parallel()
	rows := profileRows()
	if len(rows) != 456 {
		t.Errorf("table E.1-1 has %d tag rows, want 456 (plus 4 pattern rows in code)", len(rows))
	}
	for i := 1; i < len(rows); i++ {
		if rows[i-1].tag >= rows[i].tag {
			t.Errorf("rows %q and %q out of order or duplicated", rows[i-1].name, rows[i].name)
		}
	}
	// Every row's tag must be the attribute its name says (suyashkumar's
	// dictionary lacks only the command group 0000): a check of the
	// transcription.
	norm := strings.NewReplacer(" ", "", "'", "", "-", "", "(", "", ")", "", "/", "", "_", "")
	byTag := map[uint32]profileRow{}
	for _, r := range rows {
		byTag[r.tag] = r
		info, err := tag.Find(tg(r.tag))
		if err != nil {
			if r.tag>>16 != 0 {
				t.Errorf("%08X %q: not in the dictionary", r.tag, r.name)
			}
			continue
		}
		if a, b := norm.Replace(strings.ToLower(info.Name)), norm.Replace(strings.ToLower(r.name)); a != b {
			t.Errorf("%08X: table says %q, dictionary %q", r.tag, r.name, info.Name)
		}
	}
	for _, tc := range []struct {
		tag    uint32
		action string
		dates  bool
	}{
		{0x00100010, "Z", false},      // Patient's Name
		{0x00100020, "Z", false},      // Patient ID
		{0x00100030, "Z", false},      // Patient's Birth Date
		{0x0020000D, "U", false},      // Study Instance UID
		{0x00080018, "U", false},      // SOP Instance UID
		{0x00081140, "X/Z/U*", false}, // Referenced Image Sequence
		{0x00080020, "Z", true},       // Study Date
		{0x0008002A, "X/Z/D", true},   // Acquisition DateTime
		{0x00081070, "X/Z/D", false},  // Operators' Name
		{0x00101010, "X", false},      // Patient's Age
		{0x0040A730, "D", false},      // Content Sequence
		{0x00181030, "X/D", false},    // Protocol Name
		{0x00080023, "Z/D", true},     // Content Date
		{0xFFFAFFFA, "X", false},      // Digital Signatures Sequence
	} {
		r, ok := byTag[tc.tag]
		if !ok {
			t.Errorf("%08X missing from the table", tc.tag)
			continue
		}
		if r.action.String() != tc.action || r.dates != tc.dates {
			t.Errorf("%s: action %s dates %v, want %s %v", r.name, r.action, r.dates, tc.action, tc.dates)
		}
	}
}

func TestUID(t *testing.T) {
	t.Parallel()
	d := New(testKey, Options{})
	other := New(bytes.Repeat([]byte{1}, KeySize), Options{})
	u := d.UID(fixtureStudyUID)
	if !isDeidUID(u) || len(u) > 64 {
		t.Errorf("UID = %q, want 2.25.<decimal> of at most 64 characters", u)
	}
	if d.UID(fixtureStudyUID+" ") != u || d.UID(fixtureStudyUID+"\x00") != u {
		t.Error("padding changes the mapping")
	}
	if New(testKey, Options{}).UID(fixtureStudyUID) != u {
		t.Error("same key, different UID")
	}
	if other.UID(fixtureStudyUID) == u {
		t.Error("different keys give the same UID")
	}
	if d.UID(fixtureSeriesUID) == u {
		t.Error("different UIDs map to the same UID")
	}
	for _, std := range []string{ctImageStorage, "1.2.840.10008.1.2.1", ""} {
		if got := d.UID(std); got != std {
			t.Errorf("UID(%q) = %q, want it unchanged", std, got)
		}
	}
}

func TestCaseID(t *testing.T) {
	t.Parallel()
	d := New(testKey, Options{})
	id := d.CaseID(fixtureStudyUID)
	if !regexp.MustCompile(`^c-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("CaseID = %q, want c- and 12 hex digits", id)
	}
	if d.CaseID(fixtureStudyUID) != id {
		t.Error("CaseID not stable")
	}
	if New(bytes.Repeat([]byte{1}, KeySize), Options{}).CaseID(fixtureStudyUID) == id {
		t.Error("CaseID does not depend on the key")
	}
	if strings.Contains(d.UID(fixtureStudyUID), strings.TrimPrefix(id, "c-")) {
		t.Error("case id is derivable from the study's replacement UID")
	}
}

func TestShiftValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v, vr string
		days  int
		want  string
	}{
		{"20190314", "DA", 10, "20190324"},
		{"20190314", "DA", -14, "20190228"},
		{"20200228", "DA", 1, "20200229"},
		{"20190314-20190320", "DA", 1, "20190315-20190321"},
		{"-20190320", "DA", 1, "-20190321"},
		{"20190314101530.5+0100", "DT", 30, "20190413101530.5+0100"},
		{"20191231", "DT", 1, "20200101"},
		{"2019", "DT", 1, ""},
		{"20190314 John", "DT", 1, ""},
		{"2019031", "DA", 1, ""},
		{"20191341", "DA", 1, ""},
		{"", "DA", 5, ""},
	} {
		if got := shiftValue(tc.v, tc.vr, tc.days); got != tc.want {
			t.Errorf("shiftValue(%q, %s, %d) = %q, want %q", tc.v, tc.vr, tc.days, got, tc.want)
		}
	}
}

// values returns the top-level string values of ds by keyword, and the
// nested ones as "Seq > Keyword".
func values(ds *dicom.Dataset) map[string][]string {
	out := map[string][]string{}
	var walk func(es []*dicom.Element, prefix string)
	walk = func(es []*dicom.Element, prefix string) {
		for _, e := range es {
			name := prefix + tagName(e.Tag)
			switch v := e.Value.GetValue().(type) {
			case []string:
				out[name] = v
			case []*dicom.SequenceItemValue:
				out[name] = []string{"items:" + string(rune('0'+len(v)))}
				for _, it := range v {
					walk(it.GetValue().([]*dicom.Element), name+" > ")
				}
			}
		}
	}
	walk(ds.Elements, "")
	return out
}

func TestDatasetActions(t *testing.T) {
	t.Parallel()
	f := fixture{slices: 1, rows: 4, cols: 4}
	d := New(testKey, Options{})
	ds := f.dataset(t, 0)
	if err := d.Dataset(&ds); err != nil {
		t.Fatal(err)
	}
	got := values(&ds)
	want := map[string][]string{
		"PatientName (0010,0010)":                             {},                        // Z
		"PatientID (0010,0010)":                               nil,                       // placeholder, replaced below
		"PatientBirthDate (0010,0030)":                        {},                        // Z
		"PatientSex (0010,0040)":                              {},                        // Z
		"StudyDate (0008,0020)":                               {},                        // Z
		"ContentDate (0008,0023)":                             {},                        // Z/D -> Z
		"InstanceCreationDate (0008,0012)":                    {"19000101"},              // date outside the table
		"AccessionNumber (0008,0050)":                         {},                        // Z
		"ReferringPhysicianName (0008,0090)":                  {},                        // Z
		"StudyID (0020,0010)":                                 {},                        // Z
		"StudyTime (0008,0030)":                               {},                        // Z
		"Modality (0008,0060)":                                {"CT"},                    // kept
		"Manufacturer (0008,0070)":                            {"ACME"},                  // kept
		"SOPClassUID (0008,0016)":                             {ctImageStorage},          // standard UID kept
		"SOPInstanceUID (0008,0018)":                          {d.UID(fixtureSOPUID(0))}, // U
		"StudyInstanceUID (0020,000D)":                        {d.UID(fixtureStudyUID)},  // U
		"SeriesInstanceUID (0020,000E)":                       {d.UID(fixtureSeriesUID)}, // U
		"FrameOfReferenceUID (0020,0052)":                     {d.UID(fixtureFrameUID)},  // U
		"SynchronizationFrameOfReferenceUID (0020,0200)":      {d.UID(fixtureSyncUID)},   // U, sent as UN
		"MediaStorageSOPInstanceUID (0002,0003)":              {d.UID(fixtureSOPUID(0))},
		"PatientIdentityRemoved (0012,0062)":                  {"YES"},
		"LongitudinalTemporalInformationModified (0028,0303)": {"REMOVED"},
		"ReferencedImageSequence (0008,1140) > ReferencedSOPInstanceUID (0008,1155)": {d.UID(fixtureSOPUID(0))},
		"ReferencedImageSequence (0008,1140) > ReferencedSOPClassUID (0008,1150)":    {ctImageStorage},
		"AnatomicRegionSequence (0008,2218) > PatientName (0010,0010)":               {},
		"AnatomicRegionSequence (0008,2218) > CodeValue (0008,0100)":                 {"T-D3000"},
		"DeidentificationMethodCodeSequence (0012,0064) > CodeValue (0008,0100)":     {"113100"},
	}
	delete(want, "PatientID (0010,0010)")
	want["PatientID (0010,0020)"] = []string{}
	for k, w := range want {
		if diff := cmp.Diff(w, got[k]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", k, diff)
		}
	}
	for _, gone := range []string{
		"PatientAge (0010,1010)", "InstitutionName (0008,0080)", "InstitutionAddress (0008,0081)",
		"StationName (0008,1010)", "StudyDescription (0008,1030)", "OperatorsName (0008,1070)",
		"OtherPatientIDsSequence (0010,1002)", "RequestAttributesSequence (0040,0275)",
		"SeriesDate (0008,0021)", "AcquisitionDate (0008,0022)", "AcquisitionDateTime (0008,002A)",
		"DeviceSerialNumber (0018,1000)", "ProtocolName (0018,1030)", "SourceApplicationEntityTitle (0002,0016)",
		"PatientAddress (0010,1040)",
		"AnatomicRegionSequence (0008,2218) > AnatomicRegionModifierSequence (0008,2220) > InstitutionName (0008,0080)",
	} {
		if v, ok := got[gone]; ok {
			t.Errorf("%s still present (%d values)", gone, len(v))
		}
	}
	for _, e := range ds.Elements {
		if removedGroup(e.Tag.Group) {
			t.Errorf("%s: private, curve or overlay element left", e.Tag)
		}
		if e.Tag.Element == 0 && e.Tag.Group != 2 {
			t.Errorf("%s: group length left", e.Tag)
		}
	}
	if found := Scan(&ds); len(found) > 0 {
		t.Errorf("Scan after Dataset = %q, want nothing", found)
	}
	if orig := f.dataset(t, 0); len(Scan(&orig)) < 20 {
		t.Errorf("Scan of the original finds only %q", Scan(&orig))
	}
}

func TestDateOptions(t *testing.T) {
	t.Parallel()
	f := fixture{slices: 1, rows: 4, cols: 4}
	for _, tc := range []struct {
		name string
		opts Options
		want map[string][]string
		code string
	}{
		{"keep", Options{Dates: DatesKeep}, map[string][]string{
			"StudyDate (0008,0020)":                               {"20190314"},
			"SeriesDate (0008,0021)":                              {"20190314"},
			"AcquisitionDateTime (0008,002A)":                     {"20190314101530.5+0100"},
			"StudyTime (0008,0030)":                               {"101530"},
			"InstanceCreationDate (0008,0012)":                    {"20190314"},
			"PatientBirthDate (0010,0030)":                        {},
			"LongitudinalTemporalInformationModified (0028,0303)": {"UNMODIFIED"},
		}, "113106"},
		{"shift", Options{Dates: DatesShift, ShiftDays: -100}, map[string][]string{
			"StudyDate (0008,0020)":                               {"20181204"},
			"ContentDate (0008,0023)":                             {"20181204"},
			"AcquisitionDateTime (0008,002A)":                     {"20181204101530.5+0100"},
			"StudyTime (0008,0030)":                               {"101530"},
			"InstanceCreationDate (0008,0012)":                    {"20181204"},
			"PatientBirthDate (0010,0030)":                        {},
			"LongitudinalTemporalInformationModified (0028,0303)": {"MODIFIED"},
		}, "113107"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := f.dataset(t, 0)
			if err := New(testKey, tc.opts).Dataset(&ds); err != nil {
				t.Fatal(err)
			}
			got := values(&ds)
			for k, w := range tc.want {
				if diff := cmp.Diff(w, got[k]); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
			codes := got["DeidentificationMethodCodeSequence (0012,0064)"]
			if diff := cmp.Diff([]string{"items:2"}, codes); diff != "" {
				t.Errorf("code sequence (-want +got):\n%s", diff)
			}
			if !datesDeclared(&ds) {
				t.Errorf("code %s not recorded", tc.code)
			}
			if found := Scan(&ds); len(found) > 0 {
				t.Errorf("Scan = %q, want nothing", found)
			}
		})
	}
}

func TestEnhancedCTType1(t *testing.T) {
	t.Parallel()
	ds := fixture{slices: 1, rows: 4, cols: 4, enhanced: true}.dataset(t, 0)
	if err := New(testKey, Options{}).Dataset(&ds); err != nil {
		t.Fatal(err)
	}
	got := values(&ds)
	for k, w := range map[string][]string{
		"AcquisitionDateTime (0008,002A)": {"19000101000000"},
		"ContentDate (0008,0023)":         {"19000101"},
		"ContentTime (0008,0033)":         {"000000"},
		"DeviceSerialNumber (0018,1000)":  {"ANONYMIZED"},
	} {
		if diff := cmp.Diff(w, got[k]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", k, diff)
		}
	}
	if found := Scan(&ds); len(found) > 0 {
		t.Errorf("Scan = %q, want nothing", found)
	}
}

func TestBurnedInRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	paths := fixture{slices: 1, rows: 4, cols: 4, burnedIn: true}.write(t, filepath.Join(dir, "in"))
	out := filepath.Join(dir, "out", "x.dcm")
	_, err := New(testKey, Options{}).File(context.Background(), paths[0], out)
	if !errors.Is(err, ErrBurnedIn) {
		t.Fatalf("err = %v, want ErrBurnedIn", err)
	}
	assertNoPHI(t, "error", []byte(err.Error()))
	if !strings.Contains(err.Error(), paths[0]) {
		t.Errorf("error %q does not name the file", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output left behind: %v", err)
	}
}

func assertNoPHI(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, s := range phiStrings {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%s holds PHI string %q", what, s)
		}
	}
}

func TestLoadKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, ".medcad", "project.key")
	k1, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != KeySize || len(k1) != KeySize {
		t.Errorf("key file mode %v size %d, key %d bytes; want 0600, %d", st.Mode().Perm(), st.Size(), len(k1), KeySize)
	}
	k2, err := LoadKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("reloading the key: %v, same=%v", err, bytes.Equal(k1, k2))
	}
	bad := filepath.Join(dir, "short.key")
	os.WriteFile(bad, []byte("secret-short-key"), 0o600)
	_, err = LoadKey(bad)
	if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), "secret") {
		t.Errorf("short key: err = %v, want ErrKey naming the file and not its content", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("key folder holds %d entries, want only the key", len(entries))
	}
}

func TestTagName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tag  tag.Tag
		want string
	}{
		{tag.PatientName, "PatientName (0010,0010)"},
		{tag.Tag{Group: 0x0009, Element: 0x1001}, "private (0009,1001)"},
	} {
		if got := tagName(tc.tag); got != tc.want {
			t.Errorf("tagName(%v) = %q, want %q", tc.tag, got, tc.want)
		}
	}
}

// TestDummyValidForVR: every dummy value fits its VR's length and
// character rules (PS3.5 table 6.2-1).
func TestDummyValidForVR(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		vr   string
		max  int
		form string
	}{
		{"AE", 16, `^[ -~]*$`},
		{"AS", 4, `^[0-9]{3}[DWMY]$`},
		{"CS", 16, `^[A-Z0-9 _]*$`},
		{"DA", 8, `^[0-9]{8}$`},
		{"DS", 16, `^[0-9+\-.Ee ]*$`},
		{"DT", 26, `^[0-9]{4,14}(\.[0-9]{1,6})?$`},
		{"IS", 12, `^[0-9+\- ]*$`},
		{"LO", 64, `^[^\\]*$`},
		{"LT", 10240, ``},
		{"PN", 64, `^[^\\]*$`},
		{"SH", 16, `^[^\\]*$`},
		{"ST", 1024, ``},
		{"TM", 14, `^[0-9]{2,6}(\.[0-9]{1,6})?$`},
		{"UC", 1 << 20, ``},
		{"UT", 1 << 20, ``},
	} {
		d := dummyString(tc.vr)
		if len(d) > tc.max || !regexp.MustCompile(tc.form).MatchString(d) {
			t.Errorf("%s dummy %q: want at most %d characters matching %s", tc.vr, d, tc.max, tc.form)
		}
		if !isDummy([]string{d}, tc.vr) {
			t.Errorf("%s dummy %q not recognised by Scan", tc.vr, d)
		}
	}
}
