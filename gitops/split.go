package gitops

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"slices"
)

// Sides of the held-out split ([[case]] split in a dataset pointer).
const (
	SplitTrain = "train" // trained on (nnU-Net imagesTr/, labelsTr/)
	SplitTest  = "test"  // held out for evaluation (imagesTs/, labelsTs/)
)

// splitHash is the first 8 bytes of SHA-256 of a case id, big-endian.
func splitHash(id string) uint64 {
	sum := sha256.Sum256([]byte(id))
	return binary.BigEndian.Uint64(sum[:8])
}

// HashSide is the side a case id alone gives: held out when the first 8
// bytes of SHA-256 of the id, as a big-endian integer, fall below
// fraction × 2⁶⁴. It is the first choice for a new case, and the rule for
// cases of pointers written before sides were recorded.
func HashSide(id string, fraction float64) string {
	if float64(splitHash(id)) < fraction*math.MaxUint64 {
		return SplitTest
	}
	return SplitTrain
}

// Side is the side of the held-out split a case is on: its recorded
// split, or for a pointer written before sides were recorded, HashSide
// with the project's fraction; "" for an unlabelled case (it cannot be
// evaluated, so it is never held out).
func (c DatasetCase) Side(fraction float64) string {
	switch {
	case c.Label.IsZero():
		return ""
	case c.Split != "":
		return c.Split
	}
	return HashSide(c.ID, fraction)
}

// HoldoutMinimum is the fewest held-out cases among n labelled cases:
// max(⌊fraction·n⌋, min(holdoutMin, ⌊n/2⌋)). With the defaults (0.2, 3):
// 1 of 2 or 3 cases, 2 of 4 or 5, 3 from 6 cases on, 20% from 15 on.
func HoldoutMinimum(n int, fraction float64, holdoutMin int) int {
	return max(int(math.Floor(fraction*float64(n))), min(holdoutMin, n/2))
}

// AssignSplit records the side of every labelled case in cases that has
// none yet. others are the cases of the project's other datasets, whose
// sides count but never change. A new case first takes HashSide; when the
// project's held-out count is then below HoldoutMinimum of its labelled
// cases, new training cases are held out in hash order (smallest hash
// first) until it is not; and if no labelled case would be left to train
// on, the new held-out case with the largest hash trains instead. Cases
// that already have a side keep it, so a case never changes side when
// later batches arrive.
func AssignSplit(cases, others []DatasetCase, d Data) {
	labelled, test := 0, 0
	for _, c := range others {
		switch c.Side(d.Holdout) {
		case SplitTest:
			labelled++
			test++
		case SplitTrain:
			labelled++
		}
	}
	var fresh []int
	for i := range cases {
		c := &cases[i]
		if c.Label.IsZero() {
			c.Split = ""
			continue
		}
		labelled++
		if c.Split == "" {
			c.Split = HashSide(c.ID, d.Holdout)
			fresh = append(fresh, i)
		}
		if c.Split == SplitTest {
			test++
		}
	}
	slices.SortFunc(fresh, func(a, b int) int {
		return cmp.Or(cmp.Compare(splitHash(cases[a].ID), splitHash(cases[b].ID)), cmp.Compare(cases[a].ID, cases[b].ID))
	})
	want := HoldoutMinimum(labelled, d.Holdout, d.HoldoutMin)
	for _, i := range fresh {
		if test >= want {
			break
		}
		if cases[i].Split == SplitTrain {
			cases[i].Split = SplitTest
			test++
		}
	}
	if labelled >= 2 && test == labelled {
		for _, i := range slices.Backward(fresh) {
			cases[i].Split = SplitTrain
			break
		}
	}
}
