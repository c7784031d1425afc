package stages

import (
	"path"
	"strings"
	"sync"

	"github.com/medcad/medcad/gitops/cas"
)

// meterMinBytes is the least work a step announces before its bar is
// shown: the many small outputs of a per-case stage are stored and
// restored in a blink, and a bar for each would bury the stage lines.
const meterMinBytes = 32 << 20

// bigMeter passes a step's progress to the display opened by open once
// the work announced reaches min bytes, and drops it before that.
type bigMeter struct {
	open func() (cas.Progress, func())
	min  int64

	mu               sync.Mutex
	files, doneFiles int
	bytes, doneBytes int64
	opened           bool
	display          cas.Progress // nil until opened, or when the display is off
	finishDisplay    func()
}

func (m *bigMeter) Total(files int, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files, m.bytes = m.files+files, m.bytes+bytes
	switch {
	case m.display != nil:
		m.display.Total(files, bytes)
	case !m.opened && m.bytes >= m.min:
		m.opened = true
		m.display, m.finishDisplay = m.open()
		if m.display != nil {
			m.display.Total(m.files, m.bytes)
			m.display.Done(m.doneFiles, m.doneBytes)
		}
	}
}

func (m *bigMeter) Done(files int, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.doneFiles, m.doneBytes = m.doneFiles+files, m.doneBytes+bytes
	if m.display != nil {
		m.display.Done(files, bytes)
	}
}

// finish ends the display, when one was opened.
func (m *bigMeter) finish() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finishDisplay != nil {
		m.finishDisplay()
	}
}

// meter starts the progress of one step of storing, restoring or
// pushing outputs; finish ends it. Without a Meter both are no-ops.
func (c *CAS) meter(step string) (cas.Progress, func()) {
	if c.Meter == nil {
		return nil, func() {}
	}
	m := &bigMeter{open: func() (cas.Progress, func()) { return c.Meter(step) }, min: meterMinBytes}
	return m, m.finish
}

// outsOf names a manifest's outputs for a progress line: the folder all
// its files share ("outputs" when they share none).
func outsOf(m *cas.Manifest) string {
	common := ""
	for i, e := range m.Entries {
		dir := path.Dir(e.Path)
		if i == 0 {
			common = dir
			continue
		}
		for common != "." && dir != common && !strings.HasPrefix(dir, common+"/") {
			common = path.Dir(common)
		}
	}
	if common == "" || common == "." {
		return "outputs"
	}
	return common
}
