package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
)

// DefaultJobs is the default number of parallel transfers; medical
// datasets are many small files, so requests are kept in flight.
const DefaultJobs = 32

// statAbove: objects larger than this are looked up before uploading, so
// a rerun does not send them again.
const statAbove = 1 << 20

// TransferOptions tune Push and Pull.
type TransferOptions struct {
	Jobs     int      // parallel transfers (default DefaultJobs)
	Progress Progress // may be nil
	Retry    RetryPolicy
	// Targets (Pull only) are folders to write files into as their
	// objects arrive.
	Targets []PullTarget

	placers []*placer // of Targets, while Pull fetches
}

func (o TransferOptions) jobs() int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return DefaultJobs
}

// TransferResult counts what a transfer did.
type TransferResult struct {
	Objects  int   `json:"objects"`  // objects sent or received
	Bytes    int64 `json:"bytes"`    // their bytes
	Skipped  int   `json:"skipped"`  // already there
	Complete int   `json:"complete"` // manifests already marked complete on the remote (push)
	Placed   int   `json:"placed"`   // files of Targets written as their objects arrived (pull)
}

// marker is the content of a manifest's complete marker.
func marker(manifest ID) []byte { return []byte(manifest.String() + " complete\n") }

// IsComplete reports whether the remote holds every object of manifest
// (its complete marker exists): one request.
func IsComplete(ctx context.Context, b Backend, manifest ID) (bool, error) {
	_, err := b.Stat(ctx, markerKey(manifest))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// objectsOf lists the objects a manifest needs: itself and its files.
func objectsOf(id ID, m *Manifest) []Entry {
	seen := make(map[ID]bool, len(m.Entries)+1)
	out := make([]Entry, 0, len(m.Entries)+1)
	out = append(out, Entry{ID: id, Size: int64(len(m.Encode()))})
	seen[id] = true
	for _, e := range m.Entries {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out
}

// Push sends the objects of the given manifests (and the manifests) from
// the cache to b, then writes each manifest's complete marker. Manifests
// already marked complete cost one request. A cache object that no longer
// matches its digest is an error wrapping ErrCorrupt and is not sent.
func Push(ctx context.Context, s *Store, b Backend, manifests []ID, opts TransferOptions) (*TransferResult, error) {
	res := &TransferResult{}
	var todo []Entry
	var pending []ID
	seen := map[ID]bool{}
	for _, mid := range manifests {
		ok, err := IsComplete(ctx, b, mid)
		if err != nil {
			return res, err
		}
		if ok {
			res.Complete++
			continue
		}
		m, err := s.ReadManifest(mid)
		if err != nil {
			return res, err
		}
		pending = append(pending, mid)
		for _, e := range objectsOf(mid, m) {
			if !seen[e.ID] {
				seen[e.ID] = true
				todo = append(todo, e)
			}
		}
	}
	var bytesTotal int64
	for _, e := range todo {
		bytesTotal += e.Size
	}
	total(opts.Progress, len(todo), bytesTotal)
	var sent, skipped atomic.Int64
	var sentBytes atomic.Int64
	err := forEach(ctx, opts.jobs(), todo, func(ctx context.Context, _ int, e Entry) error {
		key := objectKey(e.ID)
		if e.Size > statAbove {
			if _, err := b.Stat(ctx, key); err == nil {
				skipped.Add(1)
				done(opts.Progress, 1, e.Size)
				return nil
			}
		}
		f, err := s.Open(e.ID)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		err = b.Put(ctx, key, f, fi.Size(), e.ID)
		switch {
		case errors.Is(err, ErrExists):
			skipped.Add(1)
		case errors.Is(err, ErrCorrupt):
			return fmt.Errorf("cache object %s: %w (run 'medcad data verify')", e.ID.Short(), ErrCorrupt)
		case err != nil:
			return fmt.Errorf("push %s: %w", e.ID.Short(), err)
		default:
			sent.Add(1)
			sentBytes.Add(fi.Size())
		}
		done(opts.Progress, 1, e.Size)
		return nil
	})
	res.Objects, res.Bytes, res.Skipped = int(sent.Load()), sentBytes.Load(), int(skipped.Load())
	if err != nil {
		return res, err
	}
	for _, mid := range pending {
		if err := MarkComplete(ctx, b, mid); err != nil {
			return res, err
		}
	}
	return res, nil
}

// MarkComplete writes the complete marker of id on b: the caller has made
// sure that everything id stands for is there.
func MarkComplete(ctx context.Context, b Backend, id ID) error {
	body := marker(id)
	err := b.Put(ctx, markerKey(id), bytes.NewReader(body), int64(len(body)), Sum(body))
	if err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("mark %s complete: %w", id.Short(), err)
	}
	return nil
}

// Fetch copies objects from b into the cache, verifying each; objects
// already cached are skipped. A transfer that fails or arrives corrupt is
// tried again under opts.Retry, except a failure a retrying backend
// (WithRetry) has already tried as often as its policy allows.
func Fetch(ctx context.Context, s *Store, b Backend, objects []Entry, opts TransferOptions) (*TransferResult, error) {
	res := &TransferResult{}
	var todo []Entry
	var bytesTotal int64
	seen := map[ID]bool{}
	for _, e := range objects {
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		if s.Has(e.ID) {
			res.Skipped++
			continue
		}
		todo = append(todo, e)
		bytesTotal += max(e.Size, 0)
	}
	total(opts.Progress, len(todo), bytesTotal)
	w := s.NewWriter()
	var got, gotBytes atomic.Int64
	err := forEach(ctx, opts.jobs(), todo, func(ctx context.Context, _ int, e Entry) error {
		err := fetchOne(ctx, w, b, e, opts)
		if err != nil {
			return err
		}
		got.Add(1)
		gotBytes.Add(max(e.Size, 0))
		done(opts.Progress, 1, max(e.Size, 0))
		return nil
	})
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	res.Objects, res.Bytes = int(got.Load()), gotBytes.Load()
	return res, err
}

func fetchOne(ctx context.Context, w *Writer, b Backend, e Entry, opts TransferOptions) error {
	// The workspace files this object is to become as it arrives.
	type file struct {
		p *placer
		e Entry
	}
	var files []file
	for _, p := range opts.placers {
		if pe, ok := p.take(e.ID); ok {
			files = append(files, file{p, pe})
		}
	}
	attempt := func() error {
		rc, err := b.Get(ctx, objectKey(e.ID))
		if err != nil {
			return err
		}
		defer rc.Close()
		var tee io.Writer
		placing := make([]*placement, len(files))
		ws := make([]io.Writer, len(files))
		for i, f := range files {
			placing[i] = f.p.begin(f.e)
			ws[i] = placing[i]
		}
		if len(ws) > 0 {
			tee = io.MultiWriter(ws...)
		}
		want := e.ID
		_, _, err = w.putStream(ctx, rc, &want, e.Size, tee) // Size < 0: unknown
		for _, pl := range placing {
			pl.finish(err == nil)
		}
		if errors.Is(err, ErrCorrupt) {
			// A damaged transfer may succeed next time.
			return transient{err}
		}
		return err
	}
	err := opts.Retry.Do(ctx, attempt)
	var t transient
	if errors.As(err, &t) {
		err = t.err
	}
	if err != nil {
		return fmt.Errorf("pull %s: %w", e.ID.Short(), err) // the caller names the remote
	}
	return nil
}

// transient hides ErrCorrupt from the retry policy for one fetch.
type transient struct{ err error }

func (t transient) Error() string { return t.err.Error() }

// Pull fetches the given manifests and all their objects into the cache.
func Pull(ctx context.Context, s *Store, b Backend, manifests []ID, opts TransferOptions) (*TransferResult, error) {
	var heads []Entry
	for _, mid := range manifests {
		heads = append(heads, Entry{ID: mid, Size: -1})
	}
	mopts := opts
	mopts.Progress = nil
	res, err := Fetch(ctx, s, b, heads, mopts)
	if err != nil {
		return res, err
	}
	var objects []Entry
	seen := map[ID]bool{}
	for _, mid := range manifests {
		m, err := s.ReadManifest(mid)
		if err != nil {
			return res, err
		}
		for _, e := range m.Entries {
			if !seen[e.ID] {
				seen[e.ID] = true
				objects = append(objects, e)
			}
		}
	}
	for _, t := range opts.Targets {
		m, err := s.ReadManifest(t.Manifest)
		if err != nil {
			return res, err
		}
		p, err := s.newPlacer(m, t)
		if err != nil {
			return res, fmt.Errorf("%s: %w", t.Dir, err)
		}
		if p != nil {
			defer p.close()
			opts.placers = append(opts.placers, p)
		}
	}
	r2, err := Fetch(ctx, s, b, objects, opts)
	if r2 != nil {
		res.Objects += r2.Objects
		res.Bytes += r2.Bytes
		res.Skipped += r2.Skipped
	}
	for _, p := range opts.placers {
		res.Placed += int(p.count.Load())
	}
	return res, err
}

// Repair replaces corrupt cache object id with a good copy from b.
func Repair(ctx context.Context, s *Store, b Backend, id ID, opts TransferOptions) error {
	if err := s.VerifyObject(id); err == nil {
		return nil
	} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound) {
		return err
	}
	// Fetch into the cache under the same name: the writer renames a
	// verified temp file over the damaged one.
	if err := os.Remove(s.Path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	_, err := Fetch(ctx, s, b, []Entry{{ID: id, Size: -1}}, opts)
	return err
}

// VerifyAll re-hashes the given cache objects (ID and size) with jobs
// workers (0: one per CPU), counting them on p (may be nil), and returns
// those whose content no longer matches their name.
func VerifyAll(ctx context.Context, s *Store, objs []Entry, jobs int, p Progress) ([]ID, error) {
	var mu sync.Mutex
	var bad []ID
	var bytesTotal int64
	for _, e := range objs {
		bytesTotal += e.Size
	}
	total(p, len(objs), bytesTotal)
	err := forEach(ctx, TreeOptions{Jobs: jobs}.jobs(1), objs, func(_ context.Context, _ int, e Entry) error {
		id := e.ID
		defer done(p, 1, e.Size)
		err := s.VerifyObject(id)
		switch {
		case errors.Is(err, ErrCorrupt):
			mu.Lock()
			bad = append(bad, id)
			mu.Unlock()
		case errors.Is(err, ErrNotFound): // removed meanwhile
		case err != nil:
			return err
		}
		return nil
	})
	slices.SortFunc(bad, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	return bad, err
}

// MissingOnRemote lists the objects of the given manifests (read from the
// cache) and the manifests themselves that b does not hold; one Stat per
// distinct object.
func MissingOnRemote(ctx context.Context, s *Store, b Backend, manifests []ID, jobs int) ([]ID, error) {
	var objs []Entry
	seen := map[ID]bool{}
	for _, mid := range manifests {
		m, err := s.ReadManifest(mid)
		if err != nil {
			return nil, err
		}
		for _, e := range objectsOf(mid, m) {
			if !seen[e.ID] {
				seen[e.ID] = true
				objs = append(objs, e)
			}
		}
	}
	var mu sync.Mutex
	var missing []ID
	err := forEach(ctx, jobs, objs, func(ctx context.Context, _ int, e Entry) error {
		_, err := b.Stat(ctx, objectKey(e.ID))
		if errors.Is(err, ErrNotFound) {
			mu.Lock()
			missing = append(missing, e.ID)
			mu.Unlock()
			return nil
		}
		return err
	})
	slices.SortFunc(missing, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	return missing, err
}
