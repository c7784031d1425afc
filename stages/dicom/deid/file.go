package deid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/medcad/medcad/internal/atomicfile"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"golang.org/x/sync/semaphore"
)

// Errors callers test.
var (
	// ErrNotDICOM means a file has no DICM preamble and does not parse as
	// a DICOM data set: not a DICOM file at all.
	ErrNotDICOM = errors.New("not a DICOM file")
	// ErrMalformed means a file looks like DICOM but cannot be read.
	ErrMalformed = errors.New("malformed DICOM")
	// ErrDirectory means a file is a DICOMDIR: an index of the other
	// files, full of patient data and not an image; it is never copied.
	ErrDirectory = errors.New("a DICOMDIR (media directory), not an image: left out")
)

// mediaStorageDirectory is the SOP class of a DICOMDIR.
const mediaStorageDirectory = "1.2.840.10008.1.3.10"

// maxFileBytes bounds the size of one input file (2 GiB).
const maxFileBytes = 2 << 30

// Info describes one de-identified file by its pseudonyms only.
type Info struct {
	CaseID         string // pseudonymous case id of its study
	StudyUID       string // de-identified StudyInstanceUID
	SeriesUID      string // de-identified SeriesInstanceUID
	SOPInstanceUID string // de-identified SOPInstanceUID
}

// Read parses a DICOM file for de-identification: pixel data is kept as the
// raw bytes of the file, unprocessed. Errors name the file, never a value;
// a malformed file that makes the parser panic is an error too.
func Read(path string) (dicom.Dataset, error) { return read(path, false) }

// read is Read; with dirOK a DICOMDIR is returned too (to be scanned).
func read(path string, dirOK bool) (dicom.Dataset, error) {
	st, err := os.Stat(path)
	if err != nil {
		return dicom.Dataset{}, err
	}
	if st.Size() > maxFileBytes {
		return dicom.Dataset{}, fmt.Errorf("%s: larger than %d bytes", path, maxFileBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return dicom.Dataset{}, err
	}
	return parse(path, data, dirOK)
}

// Parse parses the DICOM file held in data (named path in errors), as Read.
func Parse(path string, data []byte) (dicom.Dataset, error) { return parse(path, data, false) }

func parse(path string, data []byte, dirOK bool) (ds dicom.Dataset, err error) {
	if len(data) < 8 {
		return dicom.Dataset{}, fmt.Errorf("%s: %w (%d bytes)", path, ErrNotDICOM, len(data))
	}
	bad := ErrNotDICOM
	if len(data) >= 132 && string(data[128:132]) == "DICM" {
		bad = ErrMalformed
	}
	if err := checkBounds(data); err != nil {
		if bad == ErrNotDICOM {
			return dicom.Dataset{}, fmt.Errorf("%s: %w", path, bad) // the details would only confuse
		}
		return dicom.Dataset{}, fmt.Errorf("%s: %w: %s", path, bad, err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %w (the parser failed)", path, bad)
		}
	}()
	ds, err = dicom.Parse(bytes.NewReader(data), int64(len(data)), nil, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		if bad == ErrNotDICOM {
			return dicom.Dataset{}, fmt.Errorf("%s: %w", path, bad)
		}
		return dicom.Dataset{}, fmt.Errorf("%s: %w: %s", path, bad, oneLine(err))
	}
	if str(&ds, tag.MediaStorageSOPClassUID) == mediaStorageDirectory {
		if dirOK {
			return ds, nil
		}
		return dicom.Dataset{}, fmt.Errorf("%s: %w", path, ErrDirectory)
	}
	if str(&ds, tag.SOPClassUID) == "" || str(&ds, tag.SOPInstanceUID) == "" {
		return dicom.Dataset{}, fmt.Errorf("%s: %w (no SOPClassUID or SOPInstanceUID)", path, bad)
	}
	return ds, nil
}

// oneLine flattens a library error to one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// str returns the first string value of a top-level attribute.
func str(ds *dicom.Dataset, t tag.Tag) string {
	e, err := ds.FindElementByTag(t)
	if err != nil || e.Value == nil {
		return ""
	}
	s, ok := e.Value.GetValue().([]string)
	if !ok || len(s) == 0 {
		return ""
	}
	return trimValue(s[0])
}

// File de-identifies the DICOM file in and writes the result to out
// (through a temporary file, synced and renamed: out is either the complete
// new file or untouched). It returns the file's pseudonyms.
func (d *Deidentifier) File(ctx context.Context, in, out string) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	ds, err := Read(in)
	if err != nil {
		return Info{}, err
	}
	caseID, err := d.StudyCaseID(&ds)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", in, err)
	}
	if err := d.Dataset(&ds); err != nil {
		return Info{}, fmt.Errorf("%s: %w", in, err)
	}
	encoded, err := d.verified(in, ds)
	if err != nil {
		return Info{}, err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return Info{}, err
	}
	if err := atomicfile.WriteFile(out, encoded, 0o644); err != nil {
		return Info{}, err
	}
	return Info{
		CaseID:         caseID,
		StudyUID:       str(&ds, tag.StudyInstanceUID),
		SeriesUID:      str(&ds, tag.SeriesInstanceUID),
		SOPInstanceUID: str(&ds, tag.SOPInstanceUID),
	}, nil
}

// ErrStillIdentifying means a de-identified output, read back, still holds
// what the profile removes or replaces: it is not written (fail closed).
var ErrStillIdentifying = errors.New("the de-identified output still holds identifying attributes")

// verified encodes the de-identified ds (from the file in, named in errors)
// and checks the encoding as scan-phi would, reading it back: only bytes
// that parse again and that Scan finds clean are returned.
func (d *Deidentifier) verified(in string, ds dicom.Dataset) ([]byte, error) {
	var buf bytes.Buffer
	if err := write(&buf, ds); err != nil {
		return nil, fmt.Errorf("%s: writing de-identified DICOM: %s", in, oneLine(err))
	}
	again, err := parse(in, buf.Bytes(), false)
	if err != nil {
		return nil, fmt.Errorf("%s: the de-identified output does not read back: %w", in, err)
	}
	if found := Scan(&again); len(found) > 0 {
		return nil, fmt.Errorf("%s: %w (%s): not written", in, ErrStillIdentifying, strings.Join(found, ", "))
	}
	return buf.Bytes(), nil
}

// write encodes ds, turning a writer panic into an error.
func write(w io.Writer, ds dicom.Dataset) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("the DICOM writer failed")
		}
	}()
	return dicom.Write(w, ds, dicom.SkipVRVerification())
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// Result is the outcome for one input file of Tree.
type Result struct {
	In      string // input path
	Out     string // output path; empty when skipped or failed
	Info    Info   // pseudonyms, when written
	Skipped bool   // not DICOM (found inside a folder) or a DICOMDIR: left out
	Err     error  // why it failed or was skipped: names the file, never a value
}

// Tree de-identifies every DICOM file named by paths into outDir, keeping
// the layout: a file argument lands at outDir/<its name>, a file found in a
// folder argument at outDir/<its path inside that folder>. Files in folders
// that are not DICOM, and DICOMDIRs, are skipped; every other failure is
// one Result with an Err and the rest goes on. Files are processed
// Options.Jobs at a time; each is called once per file, in walk order,
// from the calling goroutine. Tree returns an error only when it cannot go
// on (ctx cancelled, a folder that cannot be walked).
func (d *Deidentifier) Tree(ctx context.Context, paths []string, outDir string, each func(Result)) error {
	return d.tree(ctx, paths, outDir, nil, each)
}

// TreeNumbered is Tree with every output named by its place in the walk,
// outDir/000001.dcm, 000002.dcm, …: nothing of an input's folder or file
// name reaches its output (files named by their original SOPInstanceUID,
// folders named after the patient).
func (d *Deidentifier) TreeNumbered(ctx context.Context, paths []string, outDir string, each func(Result)) error {
	n := 0
	return d.tree(ctx, paths, outDir, func(string) string { n++; return fmt.Sprintf("%06d.dcm", n) }, each)
}

// tree is Tree; name, when set, gives each output's path inside outDir
// instead of the input's.
func (d *Deidentifier) tree(ctx context.Context, paths []string, outDir string, name func(rel string) string, each func(Result)) error {
	type task struct {
		in, out  string
		inFolder bool
		size     int64 // bytes read
		weight   int64 // memory it holds while processed
		res      Result
		done     chan struct{}
	}
	finished := func(r Result) *task {
		t := &task{res: r, done: make(chan struct{})}
		close(t.done)
		return t
	}
	var tasks []*task
	written := map[string]string{} // output path -> input path
	walk := fileWalk{skipDir: outDir}
	walk.fail = func(path string, err error) { tasks = append(tasks, finished(Result{In: path, Err: err})) }
	walk.file = func(in, rel string, inFolder bool) {
		if name != nil {
			rel = name(rel)
		}
		out := filepath.Join(outDir, rel)
		if sameFile(in, out) {
			tasks = append(tasks, finished(Result{In: in, Err: fmt.Errorf("%s: the output would replace the input", in)}))
			return
		}
		if prev, dup := written[out]; dup {
			tasks = append(tasks, finished(Result{In: in, Err: fmt.Errorf("%s: output %s already written from %s", in, out, prev)}))
			return
		}
		written[out] = in
		size := fileSize(in)
		tasks = append(tasks, &task{in: in, out: out, inFolder: inFolder, size: size, weight: min(3*size+1, maxInFlightBytes), done: make(chan struct{})})
	}
	if err := walk.run(ctx, paths); err != nil {
		return err
	}
	if p := d.opts.Progress; p != nil {
		var bytes int64
		for _, t := range tasks {
			bytes += t.size
		}
		p.Total(len(tasks), bytes)
	}

	queue := make(chan *task)
	mem := semaphore.NewWeighted(maxInFlightBytes)
	var wg sync.WaitGroup
	for range d.jobs() {
		wg.Go(func() {
			for t := range queue {
				var info Info
				err := mem.Acquire(ctx, t.weight)
				if err == nil {
					info, err = d.File(ctx, t.in, t.out)
					mem.Release(t.weight)
				}
				switch {
				case err != nil && (errors.Is(err, ErrDirectory) || t.inFolder && errors.Is(err, ErrNotDICOM)):
					t.res = Result{In: t.in, Skipped: true, Err: err}
				case err != nil:
					t.res = Result{In: t.in, Err: err}
				default:
					t.res = Result{In: t.in, Out: t.out, Info: info}
				}
				close(t.done)
			}
		})
	}
	go func() {
		defer close(queue)
		for i, t := range tasks {
			if t.in == "" {
				continue // already finished
			}
			select {
			case queue <- t:
			case <-ctx.Done():
				for _, rest := range tasks[i:] {
					if rest.in != "" {
						rest.res = Result{In: rest.in, Err: ctx.Err()}
						close(rest.done)
					}
				}
				return
			}
		}
	}()
	for _, t := range tasks {
		<-t.done
		if errors.Is(t.res.Err, context.Canceled) || errors.Is(t.res.Err, context.DeadlineExceeded) {
			break
		}
		if p := d.opts.Progress; p != nil {
			p.Done(1, t.size)
		}
		each(t.res)
	}
	wg.Wait()
	return ctx.Err()
}

// jobs returns how many files Tree processes at a time.
func (d *Deidentifier) jobs() int {
	if d.opts.Jobs > 0 {
		return d.opts.Jobs
	}
	return min(4*runtime.GOMAXPROCS(0), 32) // file syncs wait on the disk, not the CPU
}

// maxInFlightBytes bounds the memory Tree's parallel files hold together:
// a file is held about three times (read, parsed, encoded).
const maxInFlightBytes = 1 << 30

// fileSize is the size of the file at path (0 when it cannot be read:
// processing it reports why). Processing a file holds about three times
// its size in memory (capped at maxInFlightBytes, so that any single file
// can run alone).
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// fileWalk visits the regular files named by paths or found in the
// folders among them.
type fileWalk struct {
	skipDir string                                // a folder never entered (the output); "" for none
	file    func(path, rel string, inFolder bool) // each file; rel: its path inside its folder argument, or its name
	fail    func(path string, err error)          // each path that cannot be read
}

// run walks paths; it stops early only when ctx is cancelled.
func (w fileWalk) run(ctx context.Context, paths []string) error {
	skipDir, file, fail := w.skipDir, w.file, w.fail
	skipAbs := ""
	if skipDir != "" {
		abs, err := filepath.Abs(skipDir)
		if err != nil {
			return err
		}
		skipAbs = abs
	}
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := os.Stat(p)
		if err != nil {
			fail(p, err)
			continue
		}
		if !st.IsDir() {
			file(p, filepath.Base(p), false)
			continue
		}
		if abs, err := filepath.Abs(p); err == nil && abs == skipAbs {
			fail(p, fmt.Errorf("%s: is the output folder itself", p))
			continue
		}
		err = filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if err != nil {
				fail(path, err)
				return nil
			}
			if e.IsDir() {
				if abs, aerr := filepath.Abs(path); aerr == nil && abs == skipAbs {
					return filepath.SkipDir // never re-read our own output
				}
				return nil
			}
			if !e.Type().IsRegular() || atomicfile.IsTemp(e.Name()) {
				return nil // not a file, or what an interrupted write left
			}
			rel, err := filepath.Rel(p, path)
			if err != nil {
				return err
			}
			file(path, rel, true)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
