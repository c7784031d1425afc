package stages

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/gitops"
)

// TestLazyChecksOutOnlyWhatRunningStagesRead is a fresh clone (the
// workspace outs gone, the results in the store) that gets a new case: a
// lazy repro runs the case and the stage that reads the per-case union,
// checks that union out for it, and leaves an up-to-date stage that feeds
// nothing that runs in the store. An eager repro afterwards finds the
// same lock: the union laid out from manifests is the one it would have
// built.
func TestLazyChecksOutOnlyWhatRunningStagesRead(t *testing.T) {
	p := newProject(t, `
[[stage]]
name = "ingest"
run = "cat {case.image}/img/a.dcm > {out}/{case}.txt"
deps = ["b1"]
outs = ["build/ingest"]
foreach = "case"

[[stage]]
name = "count"
run = "ls {ingest.out} | wc -l > {out}"
deps = ["ingest"]
outs = ["build/count.txt"]

[[stage]]
name = "side"
run = "cat input.txt > {out}/side.txt"
deps = ["input.txt"]
outs = ["build/side"]
`)
	write(t, p.dir, "input.txt", "side\n")
	mkCase := func(id string) CaseRef {
		d := t.TempDir()
		write(t, d, "img/a.dcm", id)
		digest, err := p.store.Snapshot(context.Background(), d, []string{"img"})
		if err != nil {
			t.Fatal(err)
		}
		return CaseRef{ID: id, Image: digest}
	}
	p.data.cases = []CaseRef{mkCase("c-1"), mkCase("c-2")}
	p.data.digest = "sha256:1"
	p.repro(Options{})
	fresh := func() {
		t.Helper()
		for _, d := range []string{"build", ".medcad/work"} {
			if err := os.RemoveAll(filepath.Join(p.dir, d)); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Nothing changed: nothing runs, nothing is checked out.
	fresh()
	res, err := p.try(Options{Lazy: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ran() {
		t.Errorf("no-op lazy repro ran: %+v", res.Events)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "build")); !os.IsNotExist(err) {
		t.Errorf("no-op lazy repro checked out build/ (%v)", err)
	}
	if got := slices.Sorted(maps.Keys(res.Pending)); !slices.Equal(got, []string{"count", "ingest", "side"}) {
		t.Errorf("pending %v, want count, ingest, side", got)
	}

	// A new case.
	fresh()
	p.data.cases = append(p.data.cases, mkCase("c-3"))
	p.data.digest = "sha256:2"
	res, err = p.try(Options{Lazy: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Status{}
	for _, e := range res.Events {
		got[strings.TrimSuffix(e.Stage+"/"+e.Case, "/")] = e.Status
	}
	want := map[string]Status{"ingest": Ran, "ingest/c-1": UpToDate, "ingest/c-2": UpToDate, "ingest/c-3": Ran, "count": Ran, "side": UpToDate}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lazy repro after a new case (-want +got):\n%s", diff)
	}
	if strings.TrimSpace(p.read("build/count.txt")) != "3" {
		t.Errorf("count read %q of the union, want 3 cases", p.read("build/count.txt"))
	}
	if p.read("build/ingest/c-1.txt") != "c-1" {
		t.Errorf("the union count read lacks c-1")
	}
	if _, err := os.Stat(filepath.Join(p.dir, "build", "side")); !os.IsNotExist(err) {
		t.Errorf("up-to-date side, read by nothing that ran, is checked out (%v)", err)
	}
	if _, ok := res.Pending["side"]; !ok || len(res.Pending) != 1 {
		t.Errorf("pending %v, want side alone", res.Pending)
	}
	lazyLock := p.read(gitops.LockFile)

	// An eager repro checks side out and changes nothing else.
	res, err = p.try(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ran() {
		t.Errorf("eager repro after the lazy one ran: %+v", res.Events)
	}
	if p.read("build/side/side.txt") != "side\n" {
		t.Errorf("side not restored by the eager repro")
	}
	if diff := cmp.Diff(lazyLock, p.read(gitops.LockFile)); diff != "" {
		t.Errorf("eager repro changed the lazy repro's lock (-lazy +eager):\n%s", diff)
	}
}
