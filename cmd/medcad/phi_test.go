package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/stages/intake"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// TestNoPHIReachesStoreOrRemote hides identity where a careless export
// puts it — folder and file names, a BurnedInAnnotation flag coded as UN
// or as NO\YES, a label's NIfTI header (descrip, aux_file, intent_name, an
// extension) and its gzip name and comment — then runs data add and data
// push and searches every byte (contents and names) of the project, its
// cache and the remote: none of it may be found, except in the local
// re-identification key, which must hold the folder and be ignored by git.
func TestNoPHIReachesStoreOrRemote(t *testing.T) {
	t.Parallel()
	bin := medcadBinary(t)
	in, cases := phantomBatch(t, 3, 31)

	// Case 0: names that identify, files named by an original UID, and a
	// label whose header and gzip wrapper carry text.
	named := filepath.Join(in, "DOE_JOHN_MRN4711")
	series := filepath.Join(named, "Study_DOE^JOHN_19700101", "CT_DOE")
	if err := os.MkdirAll(series, 0o755); err != nil {
		t.Fatal(err)
	}
	slices, _ := filepath.Glob(filepath.Join(in, cases[0], "CT", "*.dcm"))
	for i, s := range slices {
		if err := os.Rename(s, filepath.Join(series, fmt.Sprintf("1.2.826.0.1.3680043.99.4711.%d.dcm", 47+i))); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(named, "label.nii.gz"), labelWithText(t, filepath.Join(in, cases[0], "label.nii.gz")))
	if err := os.RemoveAll(filepath.Join(in, cases[0])); err != nil {
		t.Fatal(err)
	}
	// Cases 1 and 2: burned-in annotation declared in ways the old check
	// missed; the cases must be refused whole.
	burnedUN := filepath.Join(in, "BURNED_UN_SMITH_MRN0815")
	burnedMulti := filepath.Join(in, "BURNED_MULTI_ROE_MRN0042")
	for _, c := range []struct {
		from, to string
		value    func() (*dicom.Element, error)
	}{
		{cases[1], burnedUN, func() (*dicom.Element, error) {
			v, err := dicom.NewValue([]byte("YES "))
			return &dicom.Element{Tag: tag.BurnedInAnnotation, ValueRepresentation: tag.VRBytes, RawValueRepresentation: "UN", Value: v}, err
		}},
		{cases[2], burnedMulti, func() (*dicom.Element, error) { return dicom.NewElement(tag.BurnedInAnnotation, []string{"NO", "YES"}) }},
	} {
		if err := os.Rename(filepath.Join(in, c.from), c.to); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(c.to, "CT", "*.dcm"))
		e, err := c.value()
		if err != nil {
			t.Fatal(err)
		}
		setElement(t, files[len(files)/2], e)
	}
	markers := []string{
		"DOE_JOHN", "MRN4711", "19700101", "CT_DOE", "3680043.99.4711", // names
		"SMITH", "MRN0815", "ROE_MRN", "MRN0042", // refused cases
		"LBLDESCRIP-PHI", "LBLAUX-PHI", "LBLINTENT-PHI", "LBLEXT-PHI", "GZNAME-PHI", "GZCOMMENT-PHI", // label
	}

	remote := filepath.Join(t.TempDir(), "remote")
	proj := project(t, bin, fmt.Sprintf("url = \"file://%s\"", remote))
	out, err := medcadErr(bin, proj, nil, "data", "add", in, "--name", "b1")
	if err == nil {
		t.Errorf("data add succeeded with two burned-in cases:\n%s", out)
	}
	for _, f := range []string{burnedUN, burnedMulti} {
		if l := lineWith(out, f); !strings.Contains(l, "burned-in annotation") {
			t.Errorf("no refusal of %s for burned-in annotation:\n%s", f, out)
		}
	}
	d, err := gitops.ReadDataset(proj, "b1")
	if err != nil {
		t.Fatalf("nothing stored: %v\n%s", err, out)
	}
	if len(d.Cases) != 1 || d.Cases[0].Label.IsZero() {
		t.Fatalf("pointer: %+v, want the named case with its label", d.Cases)
	}
	medcad(t, bin, proj, nil, "data", "push")

	// The stored layout: <case>/CT/<series number>/IM<nnnnn>.dcm.
	caseDir := filepath.Join(proj, "data", "b1", d.Cases[0].ID)
	got, _ := filepath.Glob(filepath.Join(caseDir, "CT", "*", "IM*.dcm"))
	if len(got) != len(slices) {
		t.Errorf("%s holds %d IM*.dcm files under CT/<series>/, want %d", caseDir, len(got), len(slices))
	}

	key := filepath.Join(proj, filepath.FromSlash(intake.KeyFile))
	for _, root := range []string{proj, remote} {
		searchTree(t, root, key, markers)
	}
	// The re-identification key holds the folder, for the data manager
	// only: mode 0600 and ignored by git.
	kb, err := os.ReadFile(key)
	if err != nil || !bytes.Contains(kb, []byte(named)) || !bytes.Contains(kb, []byte(d.Cases[0].ID)) {
		t.Errorf("re-identification key %s does not map %s to %s (%v)", intake.KeyFile, d.Cases[0].ID, named, err)
	}
	if st, err := os.Stat(key); err == nil && st.Mode().Perm() != 0o600 {
		t.Errorf("re-identification key mode %v, want 0600", st.Mode().Perm())
	}
	if out, err := exec.Command("git", "-C", proj, "check-ignore", "-q", intake.KeyFile).CombinedOutput(); err != nil {
		t.Errorf("git does not ignore %s: %v %s", intake.KeyFile, err, out)
	}
	// scan-phi finds nothing in what was stored, and does find the label's
	// text in the delivery.
	if out, err := medcadErr(bin, proj, nil, "dicom", "scan-phi", filepath.Join(proj, "data", "b1")); err != nil {
		t.Errorf("scan-phi on the stored dataset: %v\n%s", err, out)
	}
	out, _ = medcadErr(bin, proj, nil, "dicom", "scan-phi", filepath.Join(named, "label.nii.gz"))
	for _, f := range []string{"NIfTI descrip", "NIfTI aux_file", "NIfTI intent_name", "NIfTI header extensions", "gzip file name", "gzip comment"} {
		if !strings.Contains(out, f) {
			t.Errorf("scan-phi on the delivered label does not flag %s:\n%s", f, out)
		}
	}
}

// searchTree fails for every file under root (except skip) whose name or
// content holds a marker.
func searchTree(t *testing.T, root, skip string, markers []string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || p == skip {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, m := range markers {
			if strings.Contains(rel, m) {
				t.Errorf("%s: the path holds %q", p, m)
			}
		}
		if !e.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range markers {
			if bytes.Contains(data, []byte(m)) {
				t.Errorf("%s holds %q", p, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// setElement replaces (or adds) element e in the DICOM file at path.
func setElement(t *testing.T, path string, e *dicom.Element) {
	t.Helper()
	ds, err := dicom.ParseFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept := ds.Elements[:0]
	for _, x := range ds.Elements {
		if x.Tag != e.Tag {
			kept = append(kept, x)
		}
	}
	ds.Elements = append(kept, e)
	var buf bytes.Buffer
	if err := dicom.Write(&buf, ds, dicom.SkipVRVerification()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// labelWithText returns the label at path with text in its NIfTI header
// (descrip, aux_file, intent_name, a comment extension) and gzip wrapper
// (file name, comment); its voxels and grid are unchanged.
func labelWithText(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	hdr := bytes.Clone(raw[:352])
	copy(hdr[148:], "LBLDESCRIP-PHI")
	copy(hdr[228:], "LBLAUX-PHI")
	copy(hdr[328:], "LBLINTENT-PHI")
	hdr[348] = 1
	ext := make([]byte, 32)
	binary.LittleEndian.PutUint32(ext, 32)
	binary.LittleEndian.PutUint32(ext[4:], 6) // NIFTI_ECODE_COMMENT
	copy(ext[8:], "LBLEXT-PHI")
	binary.LittleEndian.PutUint32(hdr[108:], math.Float32bits(352+32))
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Name, zw.Comment = "GZNAME-PHI.nii", "GZCOMMENT-PHI"
	zw.Write(hdr)
	zw.Write(ext)
	zw.Write(raw[352:])
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
