package nnunet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestHoldoutIsStableAndNonEmpty(t *testing.T) {
	var ids []string
	for i := range 200 {
		ids = append(ids, fmt.Sprintf("c-%04x", i*7919))
	}
	sp := holdout(ids, 0.25)
	if n := len(sp.Test); n < 30 || n > 70 {
		t.Errorf("%d of 200 held out at 25%%", n)
	}
	// Adding cases never moves an existing case to the other side.
	more := holdout(append(slices.Clone(ids), "c-new1", "c-new2", "c-new3"), 0.25)
	for _, id := range sp.Test {
		if !slices.Contains(more.Test, id) {
			t.Errorf("%s moved from test to train", id)
		}
	}
	// Small sets keep at least one case on each side.
	for n := 2; n <= 5; n++ {
		for off := range 50 {
			var small []string
			for i := range n {
				small = append(small, fmt.Sprintf("k%d-%d", off, i))
			}
			sp := holdout(small, 0.25)
			if len(sp.Test) == 0 || len(sp.Train) == 0 || len(sp.Test)+len(sp.Train) != n {
				t.Fatalf("%v → train %v test %v", small, sp.Train, sp.Test)
			}
		}
	}
	if sp := holdout([]string{"only"}, 0.25); len(sp.Train) != 1 || len(sp.Test) != 0 {
		t.Errorf("one case: %+v", sp)
	}
	if sp := holdout(ids, 0); len(sp.Test) != 0 {
		t.Errorf("no holdout: %d test", len(sp.Test))
	}
}

// TestAssembleHonoursRecordedSides: a case goes to the side its
// split/<case>.txt records, whatever its hash says; cases with no record
// are split by the hash rule; a bad record is refused.
func TestAssembleHonoursRecordedSides(t *testing.T) {
	cases := t.TempDir()
	put := func(p string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	recorded := map[string]string{"c-a": SideTest, "c-b": SideTest, "c-c": SideTest, "c-d": SideTrain, "c-e": SideTrain}
	for id, side := range recorded {
		put(ImagePath(cases, id))
		put(LabelPath(cases, id))
		if err := WriteSplit(cases, id, side); err != nil {
			t.Fatal(err)
		}
	}
	put(ImagePath(cases, "c-unlabelled"))
	for _, id := range []string{"c-old1", "c-old2"} { // ingested without a side
		put(ImagePath(cases, id))
		put(LabelPath(cases, id))
	}
	out := t.TempDir()
	sp, err := Assemble(cases, out, AssembleOptions{Name: "t", Holdout: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	old := holdout([]string{"c-old1", "c-old2"}, 0.25)
	wantTest := slices.Sorted(slices.Values(append([]string{"c-a", "c-b", "c-c"}, old.Test...)))
	wantTrain := slices.Sorted(slices.Values(append([]string{"c-d", "c-e"}, old.Train...)))
	if !slices.Equal(sp.Test, wantTest) || !slices.Equal(sp.Train, wantTrain) {
		t.Errorf("split train %v test %v, want train %v test %v", sp.Train, sp.Test, wantTrain, wantTest)
	}
	for _, id := range []string{"c-a", "c-b", "c-c"} {
		if _, err := os.Stat(filepath.Join(out, "labelsTs", id+".nii.gz")); err != nil {
			t.Errorf("held-out %s: %v", id, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "imagesTr", "c-unlabelled_0000.nii.gz")); err != nil {
		t.Errorf("unlabelled case: %v", err)
	}
	if err := WriteSplit(cases, "c-a", "validation"); err == nil {
		t.Error("WriteSplit accepted a bad side")
	}
	put(SplitPath(cases, "c-a")) // garbage
	if _, err := Assemble(cases, t.TempDir(), AssembleOptions{}); !errors.Is(err, ErrCase) {
		t.Errorf("a bad split record: %v, want ErrCase", err)
	}
}
