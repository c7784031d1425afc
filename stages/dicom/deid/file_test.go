package deid

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/internal/dicomtest"
	"github.com/medcad/medcad/internal/testenv"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// runTree de-identifies in into out and returns the results.
func runTree(t *testing.T, d *Deidentifier, in []string, out string) []Result {
	t.Helper()
	var rs []Result
	if err := d.Tree(context.Background(), in, out, func(r Result) { rs = append(rs, r) }); err != nil {
		t.Fatalf("Tree: %v", err)
	}
	return rs
}

// outputs lists every file under dir.
func outputs(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	slices.Sort(files)
	return files
}

func pixelBytes(t *testing.T, ds *dicom.Dataset) []byte {
	t.Helper()
	e, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		t.Fatal("no pixel data")
	}
	return dicom.MustGetPixelDataInfo(e.Value).UnprocessedValueData
}

func TestSeriesDeidentified(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ts   string
	}{
		{"explicit little endian", explicitVRLittleEndian},
		{"implicit little endian", implicitVRLittleEndian},
		{"explicit big endian", "1.2.840.10008.1.2.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			f := fixture{slices: 4, rows: 8, cols: 6, transferSyntax: tc.ts}
			in := f.write(t, filepath.Join(dir, "in", "case1"))
			d := New(testKey, Options{})
			rs := runTree(t, d, []string{filepath.Join(dir, "in")}, filepath.Join(dir, "out"))
			if len(rs) != 4 {
				t.Fatalf("%d results, want 4", len(rs))
			}
			files := outputs(t, filepath.Join(dir, "out"))
			if len(files) != 4 {
				t.Fatalf("output files %q, want 4 (no temporary files)", files)
			}
			sop0 := d.UID(fixtureSOPUID(0))
			for _, r := range rs {
				if r.Err != nil {
					t.Fatalf("%s: %v", r.In, r.Err)
				}
				rel, _ := filepath.Rel(filepath.Join(dir, "in"), r.In)
				if want := filepath.Join(dir, "out", rel); r.Out != want {
					t.Errorf("output %s, want %s (same layout)", r.Out, want)
				}
				if r.Info.CaseID != d.CaseID(fixtureStudyUID) {
					t.Errorf("case id %s, want %s", r.Info.CaseID, d.CaseID(fixtureStudyUID))
				}
				b, err := os.ReadFile(r.Out)
				if err != nil {
					t.Fatal(err)
				}
				assertNoPHI(t, r.Out, b)
				ds, err := Read(r.Out)
				if err != nil {
					t.Fatalf("output does not re-parse: %v", err)
				}
				if found := Scan(&ds); len(found) > 0 {
					t.Errorf("%s: Scan = %q", r.Out, found)
				}
				v := values(&ds)
				if diff := cmp.Diff(map[string][]string{
					"study":  {r.Info.StudyUID},
					"series": {r.Info.SeriesUID},
					"frame":  {d.UID(fixtureFrameUID)},
					"ref":    {sop0},
					"media":  {r.Info.SOPInstanceUID},
					"ts":     {tc.ts},
				}, map[string][]string{
					"study":  v["StudyInstanceUID (0020,000D)"],
					"series": v["SeriesInstanceUID (0020,000E)"],
					"frame":  v["FrameOfReferenceUID (0020,0052)"],
					"ref":    v["ReferencedImageSequence (0008,1140) > ReferencedSOPInstanceUID (0008,1155)"],
					"media":  v["MediaStorageSOPInstanceUID (0002,0003)"],
					"ts":     v["TransferSyntaxUID (0002,0010)"],
				}); diff != "" {
					t.Errorf("%s UIDs (-want +got):\n%s", r.Out, diff)
				}
				i := slices.Index(in, r.In)
				if !bytes.Equal(pixelBytes(t, &ds), f.pixels(i, byteOrder(tc.ts))) {
					t.Errorf("%s: pixel data changed", r.Out)
				}
			}
			if rs[0].Info.SeriesUID != d.UID(fixtureSeriesUID) || rs[0].Info.StudyUID != d.UID(fixtureStudyUID) {
				t.Error("series or study UID not the keyed mapping")
			}
		})
	}
}

func TestStableAcrossRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fixture{slices: 2, rows: 4, cols: 4}.write(t, filepath.Join(dir, "in"))
	read := func(out string) [][]byte {
		var bs [][]byte
		for _, p := range outputs(t, out) {
			b, _ := os.ReadFile(p)
			bs = append(bs, b)
		}
		return bs
	}
	runTree(t, New(testKey, Options{}), []string{filepath.Join(dir, "in")}, filepath.Join(dir, "a"))
	runTree(t, New(testKey, Options{}), []string{filepath.Join(dir, "in")}, filepath.Join(dir, "b"))
	other := New(bytes.Repeat([]byte{7}, KeySize), Options{})
	rs := runTree(t, other, []string{filepath.Join(dir, "in")}, filepath.Join(dir, "c"))
	a, b, c := read(filepath.Join(dir, "a")), read(filepath.Join(dir, "b")), read(filepath.Join(dir, "c"))
	if len(a) != 2 || !slices.EqualFunc(a, b, bytes.Equal) {
		t.Error("two runs with the same key differ")
	}
	if slices.EqualFunc(a, c, bytes.Equal) {
		t.Error("a different key gives the same output")
	}
	if rs[0].Info.SeriesUID == New(testKey, Options{}).UID(fixtureSeriesUID) {
		t.Error("a different key gives the same series UID")
	}
}

func TestBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	f := fixture{slices: 2, rows: 8, cols: 8}
	f.write(t, in)
	whole := f.bytes(t, 0)
	os.WriteFile(filepath.Join(in, "truncated.dcm"), whole[:len(whole)/2], 0o644)
	os.WriteFile(filepath.Join(in, "header-only.dcm"), whole[:700], 0o644)
	os.WriteFile(filepath.Join(in, "notes.txt"), []byte("not dicom, mentions Doe^John^PHI? no."), 0o644)
	os.WriteFile(filepath.Join(in, "empty"), nil, 0o644)
	huge := slices.Clone(whole[:400])
	os.WriteFile(filepath.Join(in, "huge-claim.dcm"), append(huge, claim4GB()...), 0o644)
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "truncated.dcm"), []byte("previous"), 0o644)

	rs := runTree(t, New(testKey, Options{}), []string{in}, out)
	status := map[string]string{}
	for _, r := range rs {
		base := filepath.Base(r.In)
		switch {
		case r.Skipped:
			status[base] = "skipped"
		case r.Err != nil:
			status[base] = "error"
			if !strings.Contains(r.Err.Error(), r.In) || strings.Contains(r.Err.Error(), "\n") {
				t.Errorf("error %q: want one line naming the file", r.Err)
			}
			assertNoPHI(t, "error "+r.Err.Error(), []byte(r.Err.Error()))
		default:
			status[base] = "ok"
		}
	}
	want := map[string]string{
		"IM0000": "ok", "IM0919": "ok",
		"truncated.dcm": "error", "header-only.dcm": "error", "huge-claim.dcm": "error",
		"notes.txt": "skipped", "empty": "skipped",
	}
	if diff := cmp.Diff(want, status); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "truncated.dcm")); string(b) != "previous" {
		t.Error("a failed file overwrote an existing output")
	}
	if files := outputs(t, out); len(files) != 3 {
		t.Errorf("outputs %q, want the two slices and the untouched old file", files)
	}
	// A file named on the command line that is not DICOM is an error.
	var r Result
	New(testKey, Options{}).Tree(context.Background(), []string{filepath.Join(in, "notes.txt")}, out, func(x Result) { r = x })
	if r.Skipped || !errors.Is(r.Err, ErrNotDICOM) {
		t.Errorf("explicit non-DICOM file: %+v, want an ErrNotDICOM error", r)
	}
}

// claim4GB is an explicit VR element whose header claims 4 GB of value.
func claim4GB() []byte {
	return []byte{0x09, 0x00, 0x10, 0x10, 'O', 'B', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4}
}

func TestDcmtkAndDcm2niixReadOutputs(t *testing.T) {
	t.Parallel()
	dcmdump := testenv.LookPath(t, "dcmdump")
	dcm2niix := testenv.LookPath(t, "dcm2niix")
	dir := t.TempDir()
	fixture{slices: 5, rows: 16, cols: 16}.write(t, filepath.Join(dir, "in"))
	out := filepath.Join(dir, "out")
	runTree(t, New(testKey, Options{}), []string{filepath.Join(dir, "in")}, out)
	files := outputs(t, out)
	for _, p := range files {
		cmd := exec.Command(dcmdump, "+E", p)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("dcmdump %s: %v\n%s", p, err, stderr.String())
		}
		assertNoPHI(t, "dcmdump output", stdout)
		if !bytes.Contains(stdout, []byte("(0012,0062) CS [YES]")) {
			t.Errorf("dcmdump does not show PatientIdentityRemoved YES")
		}
	}
	nii := filepath.Join(dir, "nii")
	os.MkdirAll(nii, 0o755)
	cmd := exec.Command(dcm2niix, "-z", "n", "-b", "n", "-f", "vol", "-o", nii, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dcm2niix: %v\n%s", err, b)
	}
	st, err := os.Stat(filepath.Join(nii, "vol.nii"))
	if err != nil {
		t.Fatalf("dcm2niix wrote no volume: %v", err)
	}
	if want := int64(352 + 16*16*5*2); st.Size() != want {
		t.Errorf("vol.nii is %d bytes, want %d (16x16x5 int16)", st.Size(), want)
	}
}

func TestTreeNeverReplacesInputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	paths := fixture{slices: 1, rows: 4, cols: 4}.write(t, in)
	before, _ := os.ReadFile(paths[0])
	for _, tc := range []struct {
		name string
		args []string
		out  string
		want string
	}{
		{"file into its own folder", []string{paths[0]}, in, "the output would replace the input"},
		{"folder into itself", []string{in}, in, "is the output folder itself"},
	} {
		rs := runTree(t, New(testKey, Options{}), tc.args, tc.out)
		if len(rs) != 1 || rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), tc.want) || !strings.HasPrefix(rs[0].Err.Error(), tc.args[0]+": ") {
			t.Errorf("%s: results %+v, want one error %q naming the input", tc.name, rs, tc.want)
		}
	}
	if after, _ := os.ReadFile(paths[0]); !bytes.Equal(before, after) {
		t.Error("the input was changed")
	}
	// An output folder inside the input folder is left out of the walk.
	rs := runTree(t, New(testKey, Options{}), []string{in}, filepath.Join(in, "deid"))
	rs = append(rs, runTree(t, New(testKey, Options{}), []string{in}, filepath.Join(in, "deid"))...)
	if len(rs) != 2 || rs[0].Err != nil || rs[1].Err != nil {
		t.Errorf("output inside the input: %+v", rs)
	}
}

// TestEncodeFailureLeavesNothing: a file that parses but cannot be encoded
// (a value whose VR, once corrected, does not fit it) fails with one line
// and leaves neither a temporary file nor a changed output behind.
func TestEncodeFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := append(fixture{slices: 1, rows: 4, cols: 4}.bytes(t, 0), dicomtest.Element(0x0028, 0x0010, "ZZ", 2, []byte("12"))...)
	in := filepath.Join(dir, "bad.dcm")
	os.WriteFile(in, bad, 0o644)
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "bad.dcm"), []byte("previous"), 0o644)
	rs := runTree(t, New(testKey, Options{}), []string{in}, out)
	if len(rs) != 1 || rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), in+": writing de-identified DICOM") {
		t.Fatalf("results %+v, want an encoding error naming the file", rs)
	}
	assertNoPHI(t, "error", []byte(rs[0].Err.Error()))
	if files := outputs(t, out); len(files) != 1 {
		t.Errorf("output folder holds %q, want only the previous file", files)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "bad.dcm")); string(b) != "previous" {
		t.Error("the previous output was replaced")
	}
}
