package realct

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medcad/medcad/stages/volume"
)

const mainPlist = `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0">
<dict>
	<key>matrix</key>
	<dict>
		<key>dtype</key><string>int16</string>
		<key>filename</key><string>matrix.dat</string>
		<key>shape</key><array><integer>%d</integer><integer>%d</integer><integer>%d</integer></array>
	</dict>
	<key>modality</key><string>CT</string>
	<key>spacing</key><array><real>0.5</real><real>0.75</real><real>2.0</real></array>
</dict>
</plist>`

// project builds an .inv3 file: main.plist for shape (slices, rows,
// columns) and matrix.dat holding values.
func project(t testing.TB, shape [3]int, plist string, values []int16) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	raw := make([]byte, 2*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"p/main.plist", []byte(fmt.Sprintf(plist, shape[0], shape[1], shape[2]))}, {"p/matrix.dat", raw}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadInv3(t *testing.T) {
	t.Parallel()
	// 2 slices × 3 rows × 4 columns, value = 100·k + 10·j + i.
	var vals []int16
	for k := range 2 {
		for j := range 3 {
			for i := range 4 {
				vals = append(vals, int16(100*k+10*j+i-1000))
			}
		}
	}
	file := filepath.Join(t.TempDir(), "x.inv3")
	if err := os.WriteFile(file, project(t, [3]int{2, 3, 4}, mainPlist, vals), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := ReadInv3(file)
	if err != nil {
		t.Fatal(err)
	}
	if v.Dim != [3]int{4, 3, 2} || v.Spacing() != [3]float64{0.5, 0.75, 2} {
		t.Fatalf("dim %v spacing %v", v.Dim, v.Spacing())
	}
	if got := v.I16[v.Index(3, 2, 1)]; got != 123-1000 {
		t.Fatalf("voxel (3,2,1) = %d, want %d", got, 123-1000)
	}
}

func TestReadInv3Errors(t *testing.T) {
	t.Parallel()
	ok := []int16{0, 0, 0, 0, 0, 0}
	for _, tc := range []struct {
		name, plist string
		shape       [3]int
		vals        []int16
		want        string
	}{
		{"short matrix", mainPlist, [3]int{1, 2, 3}, ok[:5], "matrix.dat is 10 bytes, the shape needs 12"},
		{"dtype", strings.Replace(mainPlist, "int16", "float32", 1), [3]int{1, 2, 3}, ok, `dtype "float32"`},
		{"modality", strings.Replace(mainPlist, ">CT<", ">MR<", 1), [3]int{1, 2, 3}, ok, `modality "MR"`},
		{"zero shape", mainPlist, [3]int{0, 2, 3}, nil, `shape "0"`},
		{"huge shape", mainPlist, [3]int{4000, 4000, 4000}, nil, "voxels"},
		{"path in filename", strings.Replace(mainPlist, "matrix.dat", "../matrix.dat", 1), [3]int{1, 2, 3}, ok, "filename"},
	} {
		file := filepath.Join(t.TempDir(), "bad.inv3")
		if err := os.WriteFile(file, project(t, tc.shape, tc.plist, tc.vals), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ReadInv3(file)
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), file+": ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line naming the file and %q", tc.name, err, tc.want)
		}
	}
	file := filepath.Join(t.TempDir(), "plain.inv3")
	if err := os.WriteFile(file, []byte("not gzip"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInv3(file); !errors.Is(err, ErrFormat) {
		t.Errorf("plain file: %v", err)
	}
}

// TestBonePreset: the window is inclusive at 226 and 3071 HU, and
// components with less than a tenth of the largest's voxels are dropped.
func TestBonePreset(t *testing.T) {
	t.Parallel()
	ct := volume.New(volume.Int16, [3]int{30, 3, 1}, volume.Identity([3]float64{1, 1, 1}))
	for i := range 20 { // a 20-voxel bar at the window's edges
		ct.I16[ct.Index(i, 1, 0)] = []int16{226, 3071}[i%2]
	}
	ct.I16[ct.Index(25, 1, 0)] = 1000 // 1 voxel < 2 = a tenth of 20: dropped
	ct.I16[ct.Index(28, 0, 0)] = 225  // below the window
	for i := 22; i < 24; i++ {        // 2 voxels, kept
		ct.I16[ct.Index(i, 0, 0)] = 500
	}
	m := BonePreset(ct)
	n := 0
	for _, x := range m.U8 {
		n += int(x)
	}
	if n != 22 || m.U8[ct.Index(25, 1, 0)] != 0 || m.U8[ct.Index(22, 0, 0)] != 1 {
		t.Fatalf("bone preset has %d voxels, want the bar (20) and the pair (2)", n)
	}
	if d := Dice(m, m); d != 1 {
		t.Fatalf("Dice(m, m) = %v", d)
	}
}

// FuzzReadInv3: arbitrary bytes never panic, and what reads is bounded by
// the declared shape (no huge allocation from a small file).
func FuzzReadInv3(f *testing.F) {
	f.Add(project(f, [3]int{1, 2, 3}, mainPlist, make([]int16, 6)))
	f.Add(project(f, [3]int{2, 2, 2}, mainPlist, make([]int16, 3)))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := readInv3(bytes.NewReader(data))
		if err != nil {
			return
		}
		// The volume's voxels came from the (decompressed) file: at most
		// gzip's 1032:1 ratio times its size.
		if v.Len()*2 > 1100*len(data)+1<<16 {
			t.Fatalf("%d-byte file gave %d voxels", len(data), v.Len())
		}
	})
}
