package stages

import (
	"testing"

	"github.com/medcad/medcad/gitops/cas"
)

func TestOutsOf(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{[]string{"build/model/model.toml"}, "build/model"},
		{[]string{"build/cases/imagesTr/a.nii.gz", "build/cases/labelsTr/a.nii.gz"}, "build/cases"},
		{[]string{"build/a/x", "build/ab/y"}, "build"},
		{[]string{"build/a/x", "out/y"}, "outputs"},
		{[]string{"top.txt"}, "outputs"},
		{nil, "outputs"},
	} {
		m := &cas.Manifest{}
		for _, p := range tc.paths {
			m.Entries = append(m.Entries, cas.Entry{Path: p})
		}
		if got := outsOf(m); got != tc.want {
			t.Errorf("outsOf(%q) = %q, want %q", tc.paths, got, tc.want)
		}
	}
}

// TestBigMeter: a step's progress reaches the display only once its
// announced work reaches the threshold, and then all of it does.
func TestBigMeter(t *testing.T) {
	var got tally
	opened := 0
	m := &bigMeter{min: 100, open: func() (cas.Progress, func()) { opened++; return &got, func() {} }}
	m.Total(1, 60)
	m.Done(1, 60)
	if opened != 0 {
		t.Fatalf("opened below the threshold")
	}
	m.Total(2, 60)
	m.Done(2, 60)
	m.Total(1, 500)
	m.Done(1, 500)
	m.finish()
	if opened != 1 || got != (tally{4, 4, 620, 620}) {
		t.Errorf("opened %d times, display saw %+v", opened, got)
	}
}

type tally struct {
	files, doneFiles int
	bytes, doneBytes int64
}

func (t *tally) Total(files int, bytes int64) { t.files += files; t.bytes += bytes }
func (t *tally) Done(files int, bytes int64)  { t.doneFiles += files; t.doneBytes += bytes }
