package nnunet

import (
	"fmt"
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
