package intake

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/stages/dicom"
	"github.com/medcad/medcad/stages/dicom/deid"
	"github.com/medcad/medcad/stages/phantom"
	"github.com/medcad/medcad/stages/volume"
)

func writeBatch(t *testing.T, cases int, seed uint64) (string, []phantom.Patient) {
	t.Helper()
	dir := t.TempDir()
	opts := phantom.Options{Seed: seed, Size: phantom.Small, LabelRules: phantom.RulesV2}
	if _, err := phantom.WriteDataset(context.Background(), phantom.DatasetOptions{Options: opts, Dir: dir, Cases: cases, Format: phantom.FormatDICOM}); err != nil {
		t.Fatal(err)
	}
	var pats []phantom.Patient
	for i := range cases {
		c, err := phantom.Generate(context.Background(), opts, i)
		if err != nil {
			t.Fatal(err)
		}
		pats = append(pats, c.Facts.Patient)
	}
	return dir, pats
}

func newDeid() *deid.Deidentifier {
	return deid.New(bytes.Repeat([]byte{7}, deid.KeySize), deid.Options{})
}

func TestPrepareDeidentifiesAndChecks(t *testing.T) {
	in, patients := writeBatch(t, 2, 11)
	if !IsDICOMBatch(in) {
		t.Fatal("phantom batch not recognised as DICOM")
	}
	staging := filepath.Join(t.TempDir(), "staging")
	res, err := Prepare(context.Background(), in, staging, Options{Deid: newDeid()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cases) != 2 || len(res.Refused) != 0 {
		t.Fatalf("cases %d refused %v", len(res.Cases), res.Refused)
	}
	for _, c := range res.Cases {
		if !strings.HasPrefix(c.ID, "c-") || c.Modality != "CT" || c.Slices < 10 || len(c.Shape) != 3 {
			t.Errorf("case %+v", c)
		}
		if _, err := os.Stat(LabelPath(staging, c.ID)); err != nil {
			t.Errorf("case %s: label not staged: %v", c.ID, err)
		}
	}
	// No PHI: the profile scan is clean and no identity string is in any byte.
	err = filepath.WalkDir(staging, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, pt := range patients {
			for _, phi := range []string{pt.Name, pt.ID, pt.BirthDate, pt.Institution, pt.Accession} {
				if phi != "" && bytes.Contains(data, []byte(phi)) {
					t.Errorf("%s holds PHI", filepath.Base(p))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The staged series converts and matches its label's grid.
	c := res.Cases[0]
	scan, err := dicom.Discover(context.Background(), []string{filepath.Join(staging, c.ID)}, dicom.Options{})
	if err != nil || len(scan.Series) != 1 {
		t.Fatalf("staged case: %v, %d series", err, len(scan.Series))
	}
	// Re-ingest with the same key maps to the same ids.
	res2, err := Prepare(context.Background(), in, filepath.Join(t.TempDir(), "s2"), Options{Deid: newDeid()})
	if err != nil || res2.Cases[0].ID != c.ID {
		t.Errorf("re-ingest ids differ: %v", err)
	}

}

func TestPrepareRefusesBadCases(t *testing.T) {
	in, _ := writeBatch(t, 3, 5)
	cases, _ := os.ReadDir(in)
	// Case 0: a label of the wrong shape. Case 1: no DICOM at all.
	bad := volume.New(volume.Uint8, [3]int{4, 4, 4}, volume.Identity([3]float64{1, 1, 1}))
	if err := volume.Write(filepath.Join(in, cases[0].Name(), LabelFile), bad); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(in, cases[1].Name())
	os.RemoveAll(empty)
	os.MkdirAll(empty, 0o755)
	os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("hello"), 0o644)

	res, err := Prepare(context.Background(), in, filepath.Join(t.TempDir(), "st"), Options{Deid: newDeid()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cases) != 1 || len(res.Refused) != 2 {
		t.Fatalf("cases %d refused %v", len(res.Cases), res.Refused)
	}
	if !strings.Contains(res.Refused[0].Reason, "label does not match the image") {
		t.Errorf("refusal: %s", res.Refused[0])
	}
	if !strings.Contains(res.Refused[1].Reason, "no DICOM files") {
		t.Errorf("refusal: %s", res.Refused[1])
	}
	for _, r := range res.Refused {
		if strings.Contains(r.String(), "\n") {
			t.Errorf("refusal not one line: %q", r)
		}
	}
}

func TestIsDICOMBatchRefusesOtherData(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/x.bin", "a/y.bin", "b/c/z.txt", "top.dcm"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), append([]byte("DICM"), bytes.Repeat([]byte("x"), 200)...), 0o644) // "DICM" in the wrong place
	}
	if IsDICOMBatch(dir) {
		t.Error("files without the preamble taken for DICOM")
	}
	if IsDICOMBatch(filepath.Join(dir, "missing")) {
		t.Error("a missing folder taken for DICOM")
	}
}

// TestPrepareNamesFromDeidentifiedFacts: whatever the delivery's folder
// and file names, a case is staged as <case>/CT/<series number>/IM<nnnnn>.dcm
// in slice order, its label rewritten with a clean header, and the only
// trace of the delivery folder is Result.Origins (the re-identification
// key).
func TestPrepareNamesFromDeidentifiedFacts(t *testing.T) {
	in, _ := writeBatch(t, 1, 3)
	cases, _ := os.ReadDir(in)
	folder := filepath.Join(in, "DOE_JOHN_MRN4711")
	if err := os.Rename(filepath.Join(in, cases[0].Name()), folder); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(folder, "CT", "*.dcm"))
	for i, f := range files {
		os.Rename(f, filepath.Join(folder, "CT", "1.2.826.0.1.3680043.99."+string(rune('a'+i%26))+strings.Repeat("x", i)+".dcm"))
	}
	staging := filepath.Join(t.TempDir(), "st")
	res, err := Prepare(context.Background(), in, staging, Options{Deid: newDeid()})
	if err != nil || len(res.Cases) != 1 {
		t.Fatalf("prepare: %v %+v", err, res)
	}
	c := res.Cases[0]
	if res.Origins[c.ID] != folder {
		t.Errorf("origins %v, want %s → %s", res.Origins, c.ID, folder)
	}
	var got []string
	filepath.WalkDir(filepath.Join(staging, c.ID), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(filepath.Join(staging, c.ID), p)
			got = append(got, filepath.ToSlash(rel))
		}
		return err
	})
	scan, err := dicom.Discover(context.Background(), []string{filepath.Join(staging, c.ID)}, dicom.Options{})
	if err != nil || len(scan.Series) != 1 {
		t.Fatalf("staged case: %v", err)
	}
	s := scan.Series[0]
	if len(got) != len(files) || len(s.Files) != len(files) {
		t.Fatalf("staged %d files, series %d, delivered %d", len(got), len(s.Files), len(files))
	}
	for i, f := range s.Files {
		want := filepath.Join(staging, c.ID, filepath.FromSlash(CaseImagePath("CT", s.SeriesNumber, i+1)))
		if f != want {
			t.Errorf("slice %d is %s, want %s", i+1, f, want)
		}
	}
	h, err := volume.ReadHeader(LabelPath(staging, c.ID))
	if err != nil || len(h.Text) != 0 {
		t.Errorf("staged label header: %v, text fields %v", err, h)
	}
}

func TestKeyFileRoundTrip(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := WriteKey(root, "b1", map[string]string{"c-000000000001": "/in/DOE JOHN", "c-000000000002": "/in/tab\there"}); err != nil {
		t.Fatal(err)
	}
	if err := WriteKey(root, "b2", map[string]string{"c-000000000002": "/in2/again"}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadKey(root)
	want := []KeyEntry{{"c-000000000001", "b1", "/in/DOE JOHN"}, {"c-000000000002", "b2", "/in2/again"}}
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("key %v %v, want %v", got, err, want)
	}
	st, err := os.Stat(filepath.Join(root, KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", st, err)
	}
	if ig, err := os.ReadFile(filepath.Join(root, ".medcad", ".gitignore")); err != nil || string(ig) != "*\n" {
		t.Errorf(".medcad/.gitignore: %q %v", ig, err)
	}
}
