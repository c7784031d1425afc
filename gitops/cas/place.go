package cas

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"
)

// PullTarget asks Pull to write the files of a manifest into a folder as
// their objects arrive, instead of reading them back from the cache
// afterwards: a pull then reads every object once. Only files that do not
// exist yet are written this way, only where a checkout would copy (not
// link or clone), and only the first file of each object; a Checkout of
// the same manifest after Pull does the rest, and finds the files written
// here in place (recorded in Options.Index).
type PullTarget struct {
	Manifest ID
	Dir      string
	Options  CheckoutOptions
}

// placer writes the workspace files of one PullTarget.
type placer struct {
	c     *checkout
	mu    sync.Mutex
	todo  map[ID]Entry        // the first entry of each object not yet placed
	dirs  map[string]*os.File // open folders, by path in the manifest
	count atomic.Int64        // files placed
}

// maxOpenDirs bounds the folders a placer keeps open; past it each
// file opens its folder.
const maxOpenDirs = 256

// newPlacer prepares target t; it returns nil when its files are better
// made by Checkout (hard links, or clones the file system supports).
func (s *Store) newPlacer(m *Manifest, t PullTarget) (*placer, error) {
	if t.Options.Link == LinkHardlink || t.Options.Link == LinkReflink {
		return nil, nil
	}
	if err := os.MkdirAll(t.Dir, 0o755); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(t.Dir)
	if err != nil {
		return nil, err
	}
	s.probeOnce.Do(s.probe)
	c := &checkout{s: s, root: root, dir: t.Dir, opts: t.Options, dirs: map[string]error{}}
	if t.Options.Link == LinkAuto && s.clones(root) {
		root.Close()
		return nil, nil
	}
	p := &placer{c: c, todo: make(map[ID]Entry, len(m.Entries)), dirs: map[string]*os.File{}}
	for _, e := range m.Entries {
		if _, ok := p.todo[e.ID]; !ok {
			p.todo[e.ID] = e
		}
	}
	return p, nil
}

// clones reports whether files can be cloned from the cache into root's
// folder (a reflink between two scratch files).
func (s *Store) clones(root *os.Root) bool {
	src, err := os.CreateTemp(s.tmp, "clone-probe-*")
	if err != nil {
		return false
	}
	defer os.Remove(src.Name())
	defer src.Close()
	if _, err := src.Write(make([]byte, 4096)); err != nil {
		return false
	}
	name := fmt.Sprintf("%sclone-probe-%d", checkoutTemp, time.Now().UnixNano())
	dst, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false
	}
	defer root.Remove(name)
	defer dst.Close()
	return reflink(dst, src) == nil
}

// close closes the placer's folders.
func (p *placer) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.dirs {
		f.Close()
	}
	p.dirs = nil
	p.c.root.Close()
}

// take returns the entry to place for object id, once.
func (p *placer) take(id ID) (Entry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.todo[id]
	delete(p.todo, id)
	return e, ok
}

// folder returns the open folder of e, made if need be, and whether the
// caller must close it.
func (p *placer) folder(e Entry) (*os.File, bool, error) {
	if err := p.c.mkdirs(e.Path); err != nil {
		return nil, false, err
	}
	d := path.Dir(e.Path)
	p.mu.Lock()
	f, ok := p.dirs[d]
	p.mu.Unlock()
	if ok {
		return f, false, nil
	}
	// Through the root: no symbolic link on the way.
	f, err := p.c.root.Open(d)
	if err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.dirs[d]; ok {
		f.Close()
		return old, false, nil
	}
	if p.dirs == nil || len(p.dirs) >= maxOpenDirs {
		return f, true, nil
	}
	p.dirs[d] = f
	return f, false, nil
}

// placement is one workspace file being written from an arriving object.
// Its Write never fails: a file that cannot be written is dropped, and
// the Checkout after the pull makes it (or reports why it cannot).
type placement struct {
	p        *placer
	e        Entry
	dir      *os.File // its folder
	closeDir bool
	dirf     folder // dir, for names relative to it
	f        *os.File
	named    bool
	tmp      string
	bw       *blockWriter
	err      error
}

// begin starts the workspace file of entry e (from take).
func (p *placer) begin(e Entry) *placement {
	pl := &placement{p: p, e: e}
	pl.tmp = tempName(e)
	pl.dir, pl.closeDir, pl.err = p.folder(e)
	if pl.err == nil {
		pl.dirf = folderOf(p.c.root, path.Dir(e.Path), pl.dir)
		pl.f, pl.named, pl.err = p.c.create(pl.dirf, pl.tmp, e.Mode)
	}
	if pl.err == nil {
		pl.bw = p.c.newWriter(pl.f)
	}
	return pl
}

func (pl *placement) Write(b []byte) (int, error) {
	if pl.err == nil {
		_, pl.err = pl.bw.Write(b)
	}
	return len(b), nil
}

// finish names the file when the object arrived whole and verified
// (ok); otherwise, or when the name is taken, it leaves nothing behind,
// and the Checkout after the pull deals with the file.
func (pl *placement) finish(ok bool) {
	if pl.bw != nil {
		if err := pl.bw.Close(); pl.err == nil {
			pl.err = err
		}
	}
	if !ok && pl.err == nil {
		pl.err = errors.New("object not received")
	}
	if pl.err == nil {
		pl.err = pl.name()
	}
	if pl.f != nil {
		pl.f.Close() // (a named file is closed already when it was named)
		if pl.err != nil && pl.named {
			removeAt(pl.dirf, pl.tmp)
		}
	}
	if pl.closeDir {
		pl.dir.Close()
	}
}

// name gives the finished file its mode, time and name (never replacing
// a file), and records it in the index.
func (pl *placement) name() error {
	c, e := pl.p.c, pl.e
	if err := pl.f.Chmod(e.Mode); err != nil {
		return err
	}
	base := path.Base(e.Path)
	var err error
	if pl.named {
		// A named temporary is linked, not renamed: a link never
		// replaces. It is closed first: Windows removes no open file.
		if err = pl.f.Close(); err == nil {
			err = linkAt(pl.dirf, pl.tmp, pl.dirf, base)
		}
		if err == nil {
			removeAt(pl.dirf, pl.tmp)
			pl.named = false
		}
	} else {
		err = c.s.linkFile(pl.f, pl.dirf, base)
	}
	if err != nil {
		return err
	}
	if err := settleAt(pl.dirf, base, settled()); err != nil {
		return err
	}
	c.record(pl.dirf, e)
	pl.p.count.Add(1)
	return nil
}
