package cas

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// TestBlockWriter writes files of awkward sizes through every path of
// blockWriter (direct, buffered, direct refused) and reads them back.
func TestBlockWriter(t *testing.T) {
	dir := t.TempDir()
	probe, err := os.Create(filepath.Join(dir, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	align := directAlign(int(probe.Fd()))
	probe.Close()
	if align == 0 {
		t.Logf("no direct I/O in %s: only the buffered path is tested", dir)
	}
	var pool blockPool
	sizes := []int{0, 1, 511, 4096, 4097, blockSize - 1, blockSize, blockSize + 1, 2*blockSize + 4095}
	aligns := map[string]int{
		"buffered": 0,
		"direct":   align,
		// Whole "blocks" of one byte: the file system refuses the
		// unaligned end, which must then be written buffered.
		"refused": min(align, 1),
	}
	feeds := map[string]func(w *blockWriter, data []byte) error{
		"Write in odd pieces": func(w *blockWriter, data []byte) error {
			for len(data) > 0 {
				n := min(len(data), 1+rand.IntN(300_000))
				if _, err := w.Write(data[:n]); err != nil {
					return err
				}
				data = data[n:]
			}
			return nil
		},
		"ReadFrom short reads": func(w *blockWriter, data []byte) error {
			_, err := w.ReadFrom(iotest.HalfReader(bytes.NewReader(data)))
			return err
		},
		"ReadFrom a file read direct": func(w *blockWriter, data []byte) error {
			src := filepath.Join(dir, "src")
			if err := os.WriteFile(src, data, 0o644); err != nil {
				return err
			}
			f, err := os.Open(src)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = w.ReadFrom(newDirectReader(f, int64(len(data)), align))
			return err
		},
	}
	for an, a := range aligns {
		for fn, feed := range feeds {
			for _, size := range sizes {
				data := make([]byte, size)
				for i := range data {
					data[i] = byte(i*7 + i/4096)
				}
				name := filepath.Join(dir, "out")
				f, err := os.Create(name)
				if err != nil {
					t.Fatal(err)
				}
				w := newBlockWriter(f, a, &pool)
				err = feed(w, data)
				if cerr := w.Close(); err == nil {
					err = cerr
				}
				f.Close()
				if err != nil {
					t.Fatalf("%s, %s, %d bytes: %v", an, fn, size, err)
				}
				got, err := os.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("%s, %s, %d bytes: read back %d bytes that differ", an, fn, size, len(got))
				}
			}
		}
	}
}

// TestDirectReaderRefused: a direct read the file system refuses (here an
// unaligned buffer) is done through the page cache instead.
func TestDirectReaderRefused(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	data := bytes.Repeat([]byte("medcad"), 3000)
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pool blockPool
	buf := pool.get()
	defer pool.put(buf)
	r := newDirectReader(f, int64(len(data)), directAlign(int(f.Fd())))
	var got []byte
	for {
		n, err := r.Read(buf[1:4097]) // never aligned
		got = append(got, buf[1:1+n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes that differ", len(got))
	}
}
