package gitops

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/gitops/cas"
)

const goodPointer = `schema = 1
name = "2025-10-batch3"
manifest = "sha256:5f2a91c0aa8b1f3e9d41c7a0e2b6d8f4a3c5e7b9d1f3a5c7e9b1d3f5a7c9e1b3"
files = 3
bytes = 4096
label_rules = "v2"
deid_profile = "ps3.15-basic"

[[case]]
id = "c-1a2b3c"
modality = "CT"
slices = 412
shape = [512, 512, 412]
spacing_mm = [0.78, 0.78, 1.0]
image = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
label = "sha256:0000000000000000000000000000000000000000000000000000000000000002"
warnings = ["missing slice near z = 12.5 mm", "uneven slice spacing: max deviation 0.40 mm"]

[[case]]
id = "c-5f2a91"
modality = "CT"
slices = 2
shape = [4, 4, 2]
spacing_mm = [1.5, 1.5, 2.5]
image = "sha256:0000000000000000000000000000000000000000000000000000000000000003"
`

func TestDatasetRoundTrip(t *testing.T) {
	d, err := ParseDataset("p.toml", []byte(goodPointer))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Encode(); !bytes.Equal(got, []byte(goodPointer)) {
		t.Errorf("canonical pointer does not re-encode byte for byte:\n%s", cmp.Diff(goodPointer, string(got)))
	}
	if d.Cases[0].SpacingMM[2] != 1.0 || d.Cases[0].Shape[2] != 412 || !d.Cases[1].Label.IsZero() {
		t.Errorf("decoded wrong values: %+v", d.Cases)
	}
	// Encode sorts cases and warnings.
	d.Cases[0], d.Cases[1] = d.Cases[1], d.Cases[0]
	d.Cases[1].Warnings[0], d.Cases[1].Warnings[1] = d.Cases[1].Warnings[1], d.Cases[1].Warnings[0]
	if got := d.Encode(); !bytes.Equal(got, []byte(goodPointer)) {
		t.Errorf("Encode is not canonical for reordered cases:\n%s", cmp.Diff(goodPointer, string(got)))
	}
}

func TestDatasetErrors(t *testing.T) {
	base := strings.SplitN(goodPointer, "\n[[case]]", 2)[0] + "\n"
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", base + "colour = \"red\"\n", `p.toml:9: unknown key "colour"`},
		{"unknown case key", base + "[[case]]\nid = \"a\"\nimage = \"sha256:" + strings.Repeat("0", 64) + "\"\npatient = \"x\"\n", `p.toml:12: unknown key "patient" in [case]`},
		{"wrong type", strings.Replace(base, "files = 3", `files = "3"`, 1), `p.toml:4: key "files": wrong type`},
		{"bad digest", strings.Replace(base, "sha256:5f", "md5:5f", 1), `p.toml:3: key "manifest": "md5:5f`},
		{"schema", strings.Replace(base, "schema = 1", "schema = 2", 1), `p.toml:1: key "schema": 2: this medcad reads schema 1`},
		{"bad name", strings.Replace(base, `"2025-10-batch3"`, `"../../etc/passwd"`, 1), `p.toml:2: key "name": "../../etc/passwd" is not a valid dataset name`},
		{"claimed 10 GB in one file", strings.Replace(strings.Replace(base, "files = 3", "files = 1", 1), "bytes = 4096", "bytes = 10000000000", 1), `p.toml:5: key "bytes": 10000000000 out of range`},
		{"negative files", strings.Replace(base, "files = 3", "files = -1", 1), `p.toml:4: key "files": -1 out of range`},
		{"syntax", base + "[[case]\n", `p.toml:10: expected end of table array`},
		{"second case bad id", goodPointer + "\n[[case]]\nid = \"../x\"\nimage = \"sha256:" + strings.Repeat("0", 64) + "\"\n", `p.toml:27: key "case.id": "../x" is not a valid case id`},
		{"duplicate case", goodPointer + "\n[[case]]\nid = \"c-5f2a91\"\nimage = \"sha256:" + strings.Repeat("0", 64) + "\"\n", `p.toml:27: key "case.id": case "c-5f2a91" listed twice`},
		{"shape", strings.Replace(goodPointer, "[4, 4, 2]", "[4, 4]", 1), `p.toml:19: key "case.shape": want 3 numbers, got 2`},
		{"spacing", strings.Replace(goodPointer, "[1.5, 1.5, 2.5]", "[1.5, -1.5, 2.5]", 1), `p.toml:19: key "case.spacing_mm": -1.5 out of range`},
		{"control char", strings.Replace(base, `"v2"`, `"v\u00012"`, 1), `p.toml:6: key "label_rules": control character`},
		{"too big", base + "# " + strings.Repeat("x", MaxDatasetBytes) + "\n", `p.toml: larger than 16777216 bytes`},
		{"not utf8", base + "# \xff\n", `p.toml: not UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDataset("p.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q\nwant prefix %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestReadDataset(t *testing.T) {
	dir := t.TempDir()
	d, err := ParseDataset("x", []byte(goodPointer))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(dir); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDataset(dir, "2025-10-batch3")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, got); diff != "" {
		t.Errorf("read back (-wrote +read):\n%s", diff)
	}
	if got.WorkDir() != "data/2025-10-batch3" {
		t.Errorf("WorkDir = %s", got.WorkDir())
	}
	if _, err := ReadDataset(dir, "other"); !errors.Is(err, ErrNoDataset) {
		t.Errorf("missing pointer: %v, want ErrNoDataset", err)
	}
	if _, err := ReadDataset(dir, "../etc"); err == nil {
		t.Error("a path-like dataset name was accepted")
	}
	// A pointer whose name does not match its file is refused.
	os.WriteFile(filepath.Join(dir, "data", "renamed.dataset.toml"), []byte(goodPointer), 0o644)
	if _, err := ReadDataset(dir, "renamed"); err == nil || !strings.Contains(err.Error(), "does not match the file name") {
		t.Errorf("renamed pointer: %v", err)
	}
	// A 50 MB pointer is refused without reading it all.
	big := filepath.Join(dir, "data", "big.dataset.toml")
	f, _ := os.Create(big)
	f.Truncate(50 << 20)
	f.Close()
	if _, err := ReadDataset(dir, "big"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("50 MB pointer: %v", err)
	}
	list, err := ListDatasets(t.TempDir())
	if err != nil || len(list) != 0 {
		t.Errorf("ListDatasets of an empty project = %v, %v", list, err)
	}
}

func FuzzParseDataset(f *testing.F) {
	f.Add([]byte(goodPointer))
	f.Add([]byte(strings.SplitN(goodPointer, "\n[[case]]", 2)[0]))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDataset("f", data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		enc := d.Encode()
		d2, err := ParseDataset("f", enc)
		if err != nil {
			t.Fatalf("canonical encoding does not parse: %v\n%s", err, enc)
		}
		if enc2 := d2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s", cmp.Diff(string(enc), string(enc2)))
		}
		if !bytes.Contains(enc, []byte("\nmanifest = \"sha256:")) {
			t.Fatalf("accepted a pointer without a manifest digest:\n%s", enc)
		}
	})
}

// TestDatasetDigestsRequired: a pointer built in memory without its
// manifest or a case image is not written; a parsed all-zero digest is
// well-formed and kept.
func TestDatasetDigestsRequired(t *testing.T) {
	d, err := ParseDataset("p.toml", []byte(goodPointer))
	if err != nil {
		t.Fatal(err)
	}
	noManifest, noImage := *d, *d
	noManifest.Manifest = cas.ID{}
	noImage.Cases = slices.Clone(d.Cases)
	noImage.Cases[0].Image = cas.ID{}
	for _, bad := range []*Dataset{&noManifest, &noImage} {
		if err := bad.Write(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not an object ID") {
			t.Errorf("wrote a pointer with a missing digest: %v", err)
		}
	}
	zero := regexp.MustCompile(`manifest = "sha256:[0-9a-f]+"`).ReplaceAllString(goodPointer, `manifest = "sha256:`+strings.Repeat("0", 64)+`"`)
	z, err := ParseDataset("p.toml", []byte(zero))
	if err != nil {
		t.Fatalf("all-zero manifest digest: %v", err)
	}
	if got := z.Encode(); !bytes.Equal(got, []byte(zero)) {
		t.Errorf("all-zero manifest digest does not re-encode:\n%s", cmp.Diff(zero, string(got)))
	}
}
