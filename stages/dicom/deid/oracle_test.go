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
	"github.com/medcad/medcad/internal/testenv"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// frames returns the pixel data of a parsed file: the raw native bytes, or
// the encapsulated fragments joined.
func frames(t *testing.T, path string) []byte {
	t.Helper()
	ds, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		t.Fatalf("%s: no pixel data", path)
	}
	info := dicom.MustGetPixelDataInfo(e.Value)
	if !info.IsEncapsulated {
		return info.UnprocessedValueData
	}
	var b []byte
	for _, f := range info.Frames {
		b = append(b, f.EncapsulatedData.Data...)
	}
	return b
}

// TestDcmtkTransferSyntaxes converts the fixture with dcmtk to RLE
// Lossless, JPEG Lossless and deflated explicit VR little endian, then
// de-identifies: pixel data passes through byte for byte (RLE and JPEG keep
// their transfer syntax; deflated becomes explicit VR little endian), and
// dcmdump and dcm2niix read every output.
func TestDcmtkTransferSyntaxes(t *testing.T) {
	t.Parallel()
	dcmdump := testenv.LookPath(t, "dcmdump")
	dcm2niix := testenv.LookPath(t, "dcm2niix")
	tools := map[string]string{}
	for _, name := range []string{"dcmcrle", "dcmcjpeg", "dcmconv"} {
		tools[name] = testenv.LookPath(t, name)
	}
	dir := t.TempDir()
	orig := fixture{slices: 3, rows: 16, cols: 16}.write(t, filepath.Join(dir, "orig"))
	for _, tc := range []struct {
		name, tool string
		args       []string
		wantTS     string
	}{
		{"rle", "dcmcrle", nil, "1.2.840.10008.1.2.5"},
		{"jpeg-lossless", "dcmcjpeg", []string{"+e1"}, "1.2.840.10008.1.2.4.70"},
		{"deflated", "dcmconv", []string{"+td"}, explicitVRLittleEndian},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := filepath.Join(dir, tc.name, "in")
			os.MkdirAll(in, 0o755)
			for _, p := range orig {
				args := append(append([]string{}, tc.args...), p, filepath.Join(in, filepath.Base(p)))
				if b, err := exec.Command(tools[tc.tool], args...).CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", tc.tool, err, b)
				}
			}
			out := filepath.Join(dir, tc.name, "out")
			for _, r := range runTree(t, New(testKey, Options{}), []string{in}, out) {
				if r.Err != nil {
					t.Fatalf("%v", r.Err)
				}
				ds, err := Read(r.Out)
				if err != nil {
					t.Fatal(err)
				}
				if got := str(&ds, tag.TransferSyntaxUID); got != tc.wantTS {
					t.Errorf("transfer syntax %s, want %s", got, tc.wantTS)
				}
				// Compressed pixel data is compared with the compressed input;
				// deflated files hold the original native pixels.
				want := frames(t, r.In)
				if tc.name == "deflated" {
					want = frames(t, filepath.Join(dir, "orig", filepath.Base(r.In)))
				}
				if !bytes.Equal(frames(t, r.Out), want) {
					t.Errorf("%s: pixel data changed", r.Out)
				}
				if found := Scan(&ds); len(found) > 0 {
					t.Errorf("Scan = %q", found)
				}
				b, _ := os.ReadFile(r.Out)
				assertNoPHI(t, r.Out, b)
				cmd := exec.Command(dcmdump, "+E", r.Out)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if _, err := cmd.Output(); err != nil || stderr.Len() > 0 {
					t.Errorf("dcmdump %s: %v\n%s", r.Out, err, stderr.String())
				}
			}
			nii := filepath.Join(dir, tc.name, "nii")
			os.MkdirAll(nii, 0o755)
			if b, err := exec.Command(dcm2niix, "-z", "n", "-b", "n", "-f", "vol", "-o", nii, out).CombinedOutput(); err != nil {
				t.Fatalf("dcm2niix: %v\n%s", err, b)
			}
			if _, err := os.Stat(filepath.Join(nii, "vol.nii")); err != nil {
				t.Errorf("dcm2niix wrote no volume: %v", err)
			}
		})
	}
}

// TestDcm2niixSameVolume: dcm2niix makes the same voxels and the same
// affine from the de-identified series as from the original.
func TestDcm2niixSameVolume(t *testing.T) {
	t.Parallel()
	dcm2niix := testenv.LookPath(t, "dcm2niix")
	dir := t.TempDir()
	fixture{slices: 6, rows: 12, cols: 10}.write(t, filepath.Join(dir, "orig"))
	runTree(t, New(testKey, Options{}), []string{filepath.Join(dir, "orig")}, filepath.Join(dir, "deid"))
	vol := map[string][]byte{}
	for _, name := range []string{"orig", "deid"} {
		nii := filepath.Join(dir, name+"-nii")
		os.MkdirAll(nii, 0o755)
		if b, err := exec.Command(dcm2niix, "-z", "n", "-b", "n", "-f", "vol", "-o", nii, filepath.Join(dir, name)).CombinedOutput(); err != nil {
			t.Fatalf("dcm2niix %s: %v\n%s", name, err, b)
		}
		b, err := os.ReadFile(filepath.Join(nii, "vol.nii"))
		if err != nil {
			t.Fatal(err)
		}
		vol[name] = b
	}
	o, d := vol["orig"], vol["deid"]
	if len(o) != len(d) || len(o) < 352 {
		t.Fatalf("volumes of %d and %d bytes", len(o), len(d))
	}
	if !bytes.Equal(o[280:328], d[280:328]) {
		t.Error("sform rows differ")
	}
	if !bytes.Equal(o[352:], d[352:]) {
		t.Error("voxels differ")
	}
}

// TestDICOMDIR: a DICOMDIR written by dcmtk is left out of deid (it indexes
// patient data) but scanned by Scan, which finds the names in its records.
func TestDICOMDIR(t *testing.T) {
	t.Parallel()
	dcmmkdir := testenv.LookPath(t, "dcmmkdir")
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	fixture{slices: 2, rows: 4, cols: 4}.write(t, in)
	cmd := exec.Command(dcmmkdir, "+I", "+r", "IM0000", "IM0919")
	cmd.Dir = in
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dcmmkdir: %v\n%s", err, b)
	}
	found, err := ScanFile(filepath.Join(in, "DICOMDIR"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(found, "DirectoryRecordSequence (0004,1220) / PatientName (0010,0010)") {
		t.Errorf("Scan(DICOMDIR) = %q, want the patient name in its records", found)
	}
	status := map[string]bool{}
	for _, r := range runTree(t, New(testKey, Options{}), []string{in}, filepath.Join(dir, "out")) {
		status[filepath.Base(r.In)] = r.Skipped && errors.Is(r.Err, ErrDirectory)
	}
	if diff := cmp.Diff(map[string]bool{"DICOMDIR": true, "IM0000": false, "IM0919": false}, status); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "DICOMDIR")); !errors.Is(err, os.ErrNotExist) {
		t.Error("DICOMDIR copied to the output")
	}
}

// TestLibraryTestdata runs the real files shipped in suyashkumar/dicom's
// testdata (TCIA PET, MR, CR, CT, a two-frame CT, a deflated file) through
// de-identification: each is written, scans clean, reads back with dcmdump
// without a warning, holds none of its original identifying values, and
// gives dcm2niix the same voxels as the original.
func TestLibraryTestdata(t *testing.T) {
	t.Parallel()
	dcmdump := testenv.LookPath(t, "dcmdump")
	dcm2niix := testenv.LookPath(t, "dcm2niix")
	dirb, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/suyashkumar/dicom").Output()
	if err != nil {
		t.Fatalf("locating suyashkumar/dicom: %v", err)
	}
	src := filepath.Join(strings.TrimSpace(string(dirb)), "testdata")
	files, _ := filepath.Glob(filepath.Join(src, "*.dcm"))
	if len(files) < 6 {
		t.Fatalf("found %d test files in %s", len(files), src)
	}
	dir := t.TempDir()
	d := New(testKey, Options{})
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			orig, err := Read(in)
			if err != nil {
				t.Fatal(err)
			}
			var phi []string
			for _, tg := range []tag.Tag{tag.PatientName, tag.PatientID, tag.PatientBirthDate, tag.StudyInstanceUID, tag.SeriesInstanceUID, tag.SOPInstanceUID, tag.InstitutionName, tag.AccessionNumber, tag.StudyDate} {
				// Shorter values turn up by chance (PatientID "0010" is
				// inside the dummy date 19000101).
				if v := str(&orig, tg); len(v) >= 6 {
					phi = append(phi, v)
				}
			}
			base := strings.TrimSuffix(filepath.Base(in), ".dcm")
			out := filepath.Join(dir, base, "deid", base+".dcm")
			if _, err := d.File(context.Background(), in, out); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(out)
			for _, v := range phi {
				if bytes.Contains(b, []byte(v)) {
					t.Errorf("output holds an original identifying value (%d bytes)", len(v))
				}
			}
			ds, err := Read(out)
			if err != nil {
				t.Fatal(err)
			}
			if found := Scan(&ds); len(found) > 0 {
				t.Errorf("Scan = %q", found)
			}
			cmd := exec.Command(dcmdump, "+E", out)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if _, err := cmd.Output(); err != nil || stderr.Len() > 0 {
				t.Errorf("dcmdump: %v\n%s", err, stderr.String())
			}
			// dcm2niix: same voxels from the original and the output.
			origDir := filepath.Join(dir, base, "orig")
			os.MkdirAll(origDir, 0o755)
			os.WriteFile(filepath.Join(origDir, base+".dcm"), mustRead(t, in), 0o644)
			vols := map[string][]byte{}
			for _, name := range []string{"orig", "deid"} {
				nii := filepath.Join(dir, base, name+"-nii")
				os.MkdirAll(nii, 0o755)
				exec.Command(dcm2niix, "-z", "n", "-b", "n", "-f", "vol", "-o", nii, filepath.Join(dir, base, name)).Run()
				vols[name], _ = os.ReadFile(filepath.Join(nii, "vol.nii"))
			}
			if len(vols["orig"]) > 352 && (len(vols["deid"]) != len(vols["orig"]) || !bytes.Equal(vols["orig"][352:], vols["deid"][352:])) {
				t.Errorf("dcm2niix gives different voxels (%d and %d bytes)", len(vols["orig"]), len(vols["deid"]))
			}
			if len(vols["orig"]) > 352 {
				t.Logf("dcm2niix converted both (%d bytes)", len(vols["orig"]))
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
