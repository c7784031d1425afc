package deid

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkFile de-identifies one 512×512 CT slice file per iteration
// (read, parse, apply the profile, write, sync, rename).
func BenchmarkFile(b *testing.B) {
	dir := b.TempDir()
	in := filepath.Join(dir, "in.dcm")
	if err := os.WriteFile(in, fixture{slices: 1, rows: 512, cols: 512}.bytes(&testing.T{}, 0), 0o644); err != nil {
		b.Fatal(err)
	}
	d := New(testKey, Options{})
	out := filepath.Join(dir, "out.dcm")
	b.SetBytes(512 * 512 * 2)
	for b.Loop() {
		if _, err := d.File(context.Background(), in, out); err != nil {
			b.Fatal(err)
		}
	}
}
