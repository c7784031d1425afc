package cas

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseID(t *testing.T) {
	good := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		in string
		ok bool
	}{
		{good, true},
		{strings.ToUpper(good), false},
		{"sha256:" + strings.Repeat("AB", 32), false},
		{"sha1:" + strings.Repeat("ab", 32), false},
		{good[:len(good)-1], false},
		{good + "0", false},
		{"sha256:" + strings.Repeat("zz", 32), false},
		{"", false},
	}
	for _, tt := range tests {
		id, err := ParseID(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseID(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadID) {
			t.Errorf("ParseID(%q) error %v does not wrap ErrBadID", tt.in, err)
		}
		if tt.ok && id.String() != tt.in {
			t.Errorf("round trip %q -> %q", tt.in, id)
		}
	}
	if Sum(nil).String() != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("Sum(nil) = %s", Sum(nil))
	}
}

func TestCheckPath(t *testing.T) {
	tests := []struct {
		p  string
		ok bool
	}{
		{"a", true},
		{"case-1/slice 001.dcm", true},
		{"ünïcode/ファイル", true},
		{"../../etc/passwd", false},
		{"a/../../b", false},
		{"/etc/passwd", false},
		{"a//b", false},
		{"a/./b", false},
		{"./a", false},
		{"a/", false},
		{"", false},
		{".", false},
		{"..", false},
		{"a\\b", false},
		{"C:/x", false},
		{"a\nb", false},
		{"a\x00b", false},
		{".git/config", false},
		{"x/.GIT/hooks/pre-commit", false},
		{".medcad/index", false},
		{strings.Repeat("a", MaxPathLen+1), false},
		{strings.Repeat("a/", 70) + "a", false},
		{"bad\xffutf8", false},
	}
	for _, tt := range tests {
		err := CheckPath(tt.p)
		if (err == nil) != tt.ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", tt.p, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrUnsafePath) {
			t.Errorf("CheckPath(%q) error does not wrap ErrUnsafePath", tt.p)
		}
	}
}

func entry(p string, size int64, content string) Entry {
	return Entry{Path: p, Size: size, Mode: 0o644, ID: Sum([]byte(content))}
}

func TestManifestRoundTrip(t *testing.T) {
	m := &Manifest{Entries: []Entry{
		entry("b/c.dcm", 3, "abc"),
		entry("a.nii.gz", 1, "x"),
		{Path: "run.sh", Size: 0, Mode: 0o755, ID: Sum(nil)},
		entry("a-b", 2, "ab"),
	}}
	m.Sort()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	enc := m.Encode()
	want := "medcad-manifest 1\n" +
		"644 2 " + Sum([]byte("ab")).Hex() + " a-b\n" +
		"644 1 " + Sum([]byte("x")).Hex() + " a.nii.gz\n" +
		"644 3 " + Sum([]byte("abc")).Hex() + " b/c.dcm\n" +
		"755 0 " + Sum(nil).Hex() + " run.sh\n"
	if diff := cmp.Diff(want, string(enc)); diff != "" {
		t.Errorf("Encode (-want +got):\n%s", diff)
	}
	got, err := ParseManifest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if m.Bytes() != 6 || m.ID() != Sum(enc) {
		t.Errorf("Bytes = %d, ID = %s", m.Bytes(), m.ID())
	}
}

func TestParseManifestErrors(t *testing.T) {
	h := Sum([]byte("x")).Hex()
	tests := []struct {
		name, doc, want string
	}{
		{"no header", "644 1 " + h + " a\n", "missing header"},
		{"traversal", manifestHeader + "644 1 " + h + " ../../etc/passwd\n", "unsafe path"},
		{"absolute", manifestHeader + "644 1 " + h + " /etc/passwd\n", "absolute"},
		{"git dir", manifestHeader + "644 1 " + h + " .git/hooks/post-checkout\n", "reserved name"},
		{"10 GB claimed", manifestHeader + "644 10000000000 " + h + " big.nii\n", "size 10000000000 out of range"},
		{"negative", manifestHeader + "644 -1 " + h + " a\n", "not a canonical number"},
		{"leading zero", manifestHeader + "644 01 " + h + " a\n", "not a canonical number"},
		{"mode", manifestHeader + "777 1 " + h + " a\n", "mode"},
		{"unsorted", manifestHeader + "644 1 " + h + " b\n644 1 " + h + " a\n", "not sorted"},
		{"duplicate", manifestHeader + "644 1 " + h + " a\n644 1 " + h + " a\n", "not sorted or duplicated"},
		{"file and folder", manifestHeader + "644 1 " + h + " a\n644 1 " + h + " a-b\n644 1 " + h + " a/b\n", "both a file and a folder"},
		{"bad hex", manifestHeader + "644 1 " + strings.ToUpper(h) + " a\n", "not an object ID"},
		{"no newline", manifestHeader + "644 1 " + h + " a", "no final newline"},
		{"fields", manifestHeader + "644 1\n", "want: MODE SIZE HEX PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if !errors.Is(err, ErrBadManifest) {
				t.Errorf("error %v does not wrap ErrBadManifest", err)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	h := Sum([]byte("x")).Hex()
	f.Add([]byte(manifestHeader + "644 1 " + h + " a\n755 0 " + h + " b/c d\n"))
	f.Add([]byte(manifestHeader))
	f.Add([]byte(manifestHeader + "644 1 " + h + " ../x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		// Strict: only the canonical encoding is accepted.
		if enc := m.Encode(); !bytes.Equal(enc, data) {
			t.Fatalf("accepted a non-canonical manifest:\n%q\nre-encodes to\n%q", data, enc)
		}
		for _, e := range m.Entries {
			if err := CheckPath(e.Path); err != nil {
				t.Fatalf("accepted unsafe path: %v", err)
			}
		}
	})
}
