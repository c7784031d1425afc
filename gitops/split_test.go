package gitops

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHoldoutMinimum(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n, want int
	}{{0, 0}, {1, 0}, {2, 1}, {3, 1}, {4, 2}, {5, 2}, {6, 3}, {9, 3}, {14, 3}, {15, 3}, {20, 4}, {100, 20}}
	for _, tt := range tests {
		if got := HoldoutMinimum(tt.n, 0.2, 3); got != tt.want {
			t.Errorf("HoldoutMinimum(%d, 0.2, 3) = %d, want %d", tt.n, got, tt.want)
		}
	}
	if got := HoldoutMinimum(10, 0, 0); got != 0 {
		t.Errorf("holdout 0, holdout_min 0: %d held out", got)
	}
}

// labelledCases returns n labelled cases with ids like data add makes.
func labelledCases(prefix string, n int) []DatasetCase {
	var cs []DatasetCase
	for i := range n {
		id := fmt.Sprintf("c-%s%04x", prefix, i*7919)
		cs = append(cs, DatasetCase{ID: id, Label: digestOf(id)})
	}
	return cs
}

func digestOf(s string) (id [32]byte) {
	copy(id[:], s)
	id[31] = 1
	return id
}

func sides(cs []DatasetCase) (train, test []string) {
	for _, c := range cs {
		switch c.Split {
		case SplitTrain:
			train = append(train, c.ID)
		case SplitTest:
			test = append(test, c.ID)
		}
	}
	return train, test
}

// TestAssignSplitMinimum: whatever the hashes say, a batch of 6 labelled
// cases gets at least 3 held out, and cases that have a side keep it.
func TestAssignSplitMinimum(t *testing.T) {
	t.Parallel()
	d := Default().Data
	for off := range 40 {
		cs := labelledCases(fmt.Sprintf("%02x", off), 6)
		AssignSplit(cs, nil, d)
		train, test := sides(cs)
		if len(test) < 3 || len(train) == 0 || len(train)+len(test) != 6 {
			t.Fatalf("6 cases: train %v test %v", train, test)
		}
		for _, c := range cs {
			if HashSide(c.ID, d.Holdout) == SplitTest && c.Split != SplitTest {
				t.Errorf("%s: the hash holds it out, the minimum moved it to training", c.ID)
			}
		}
	}
	// Recorded sides win, even against the minimum.
	cs := labelledCases("aa", 6)
	for i := range cs {
		cs[i].Split = SplitTrain
	}
	AssignSplit(cs, nil, d)
	if _, test := sides(cs); len(test) != 0 {
		t.Errorf("recorded sides moved: %v held out", test)
	}
	// An unlabelled case is never split.
	u := []DatasetCase{{ID: "c-unlabelled", Split: SplitTest}}
	AssignSplit(u, labelledCases("bb", 6), d)
	if u[0].Split != "" {
		t.Errorf("unlabelled case got side %q", u[0].Split)
	}
	// Two cases: one on each side, whatever the hashes.
	for off := range 40 {
		cs := labelledCases(fmt.Sprintf("t%02x", off), 2)
		AssignSplit(cs, nil, Data{Holdout: 0.9, HoldoutMin: 3})
		if train, test := sides(cs); len(train) != 1 || len(test) != 1 {
			t.Fatalf("2 cases at 0.9: train %v test %v", train, test)
		}
	}
}

// TestBatchArrivalKeepsHeldOutCases is the scenario: 6 cases,
// then a batch of 3. Every case held out before stays held out, at least
// 3 are held out, and so the gate always has cases to pair.
func TestBatchArrivalKeepsHeldOutCases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProject(t, "file://"+t.TempDir())
	src := t.TempDir()
	first := []string{"c-aae2f1", "c-01b7c3", "c-5d9e02", "c-77c0aa", "c-b3f4e5", "c-e91d08"}
	if _, err := p.AddData(ctx, AddOptions{Path: src, Name: "b1", Ingest: ingestOf("l", first...)}); err != nil {
		t.Fatal(err)
	}
	b1, err := ReadDataset(p.Root, "b1")
	if err != nil {
		t.Fatal(err)
	}
	_, test1 := sides(b1.Cases)
	if len(test1) < 3 {
		t.Fatalf("6 cases, %d held out: %v", len(test1), test1)
	}
	if !bytes.Contains(b1.Encode(), []byte(`split = "test"`)) {
		t.Errorf("the pointer does not record the sides:\n%s", b1.Encode())
	}
	if _, err := p.AddData(ctx, AddOptions{Path: src, Name: "b2", Ingest: ingestOf("l", "c-0c1d2e", "c-fa0b1c", "c-3e4f5a")}); err != nil {
		t.Fatal(err)
	}
	again, err := ReadDataset(p.Root, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b1.Cases, again.Cases); diff != "" {
		t.Errorf("adding b2 changed b1:\n%s", diff)
	}
	b2, err := ReadDataset(p.Root, "b2")
	if err != nil {
		t.Fatal(err)
	}
	_, test2 := sides(b2.Cases)
	for _, c := range b2.Cases {
		if c.Split != HashSide(c.ID, 0.2) {
			t.Errorf("%s: %s, want its hash side (the minimum was already met)", c.ID, c.Split)
		}
	}
	if n := len(test1) + len(test2); n < 3 {
		t.Errorf("9 cases, %d held out", n)
	}
	// A re-add of b1 (a corrected label) keeps every case's side.
	if _, err := p.AddData(ctx, AddOptions{Path: src, Name: "b1", Ingest: ingestOf("corrected", first...)}); err != nil {
		t.Fatal(err)
	}
	re, err := ReadDataset(p.Root, "b1")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range re.Cases {
		if c.Split != b1.Cases[i].Split {
			t.Errorf("re-add moved %s from %s to %s", c.ID, b1.Cases[i].Split, c.Split)
		}
	}
}

// TestOldPointerSides: a pointer written before sides were recorded reads
// as before; its labelled cases take the hash rule, their sides count
// towards the minimum, and data add never rewrites them.
func TestOldPointerSides(t *testing.T) {
	t.Parallel()
	d, err := ParseDataset("old.toml", []byte(goodPointer))
	if err != nil {
		t.Fatal(err)
	}
	c := d.Cases[0] // labelled, no split
	if c.Split != "" || c.Side(0.2) != HashSide(c.ID, 0.2) {
		t.Errorf("old case side %q/%q, want the hash rule %q", c.Split, c.Side(0.2), HashSide(c.ID, 0.2))
	}
	if side := d.Cases[1].Side(0.2); side != "" {
		t.Errorf("unlabelled case has side %q", side)
	}
	if !bytes.Equal(d.Encode(), []byte(goodPointer)) {
		t.Error("an old pointer no longer re-encodes byte for byte")
	}
	// 6 old cases that the hash puts in training: the minimum is met
	// from the new cases only.
	var old []DatasetCase
	for _, oc := range labelledCases("old", 40) {
		if HashSide(oc.ID, 0.2) == SplitTrain && len(old) < 6 {
			old = append(old, oc)
		}
	}
	fresh := labelledCases("new", 3)
	AssignSplit(fresh, old, Default().Data)
	if _, test := sides(fresh); len(test) != 3 {
		t.Errorf("9 cases, none held out among the 6 old: want the 3 new held out, got %v", test)
	}
	for _, oc := range old {
		if oc.Split != "" {
			t.Errorf("old case %s was assigned", oc.ID)
		}
	}
}

func TestSplitField(t *testing.T) {
	t.Parallel()
	labelled := strings.Replace(goodPointer, "label = \"sha256:0000000000000000000000000000000000000000000000000000000000000002\"\n",
		"label = \"sha256:0000000000000000000000000000000000000000000000000000000000000002\"\nsplit = \"test\"\n", 1)
	d, err := ParseDataset("p.toml", []byte(labelled))
	if err != nil {
		t.Fatal(err)
	}
	if d.Cases[0].Split != SplitTest {
		t.Errorf("split = %q", d.Cases[0].Split)
	}
	if got := d.Encode(); !bytes.Equal(got, []byte(labelled)) {
		t.Errorf("not canonical:\n%s", cmp.Diff(labelled, string(got)))
	}
	for _, tt := range []struct{ name, doc, want string }{
		{"bad side", strings.Replace(labelled, `split = "test"`, `split = "validation"`, 1), `p.toml:9: key "case.split": "validation": want "train" or "test"`},
		{"unlabelled", labelled + "split = \"train\"\n", `p.toml:20: key "case.split": an unlabelled case has no side`},
		{"wrong type", strings.Replace(labelled, `split = "test"`, `split = 1`, 1), `p.toml:17: key "case.split": wrong type`},
	} {
		_, err := ParseDataset("p.toml", []byte(tt.doc))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want prefix %q", tt.name, err, tt.want)
		}
	}
}
