package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFixtures(t *testing.T) {
	t.Parallel()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
	tests := []struct {
		rel     string
		want    []string // files copied, slash paths
		wantErr bool
	}{
		{"projects/ci-pipeline", []string{"eval.sh", "medcad.toml", "train.sh"}, false},
		{"scans/batch1", []string{"s1.dcm", "s2.dcm", "s3.dcm"}, false},
		{"events/push_main.json", []string{"push_main.json"}, false},
		{"projects/no-such-fixture", nil, true},
		{"../go.mod", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.rel, func(t *testing.T) {
			t.Parallel()
			dst := filepath.Join(t.TempDir(), "copy")
			err := CopyFixtureTo(tc.rel, dst)
			if (err != nil) != tc.wantErr {
				t.Fatalf("CopyFixtureTo(%q) = %v, wantErr %v", tc.rel, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var got []string
			filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(dst, p)
					got = append(got, filepath.ToSlash(rel))
					src, _ := os.ReadFile(filepath.Join(Fixture(t, tc.rel), rel))
					if info, _ := os.Stat(Fixture(t, tc.rel)); !info.IsDir() {
						src = ReadFixture(t, tc.rel)
					}
					if copied, _ := os.ReadFile(p); string(copied) != string(src) {
						t.Errorf("%s: copy differs from the fixture", rel)
					}
				}
				return nil
			})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}
