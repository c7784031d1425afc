package reports

import (
	"bytes"
	"context"
	"image/png"
	"testing"

	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/stages/volume"
)

// putVolume stores v as NIfTI and returns its manifest entry at p.
func putVolume(t *testing.T, s *cas.Store, p string, v *volume.Volume) cas.Entry {
	t.Helper()
	var b bytes.Buffer
	if err := volume.Encode(&b, v); err != nil {
		t.Fatal(err)
	}
	id, err := s.PutBytes(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return cas.Entry{Path: p, Size: int64(b.Len()), Mode: 0o644, ID: id}
}

func putManifest(t *testing.T, s *cas.Store, entries ...cas.Entry) string {
	t.Helper()
	m := &cas.Manifest{Entries: entries}
	m.Sort()
	id, err := s.PutBytes(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// box returns a label map with a box of 1s.
func box(dim [3]int, lo, hi [3]int) *volume.Volume {
	v := volume.New(volume.Uint8, dim, volume.Identity([3]float64{1, 1, 1}))
	for k := lo[2]; k < hi[2]; k++ {
		for j := lo[1]; j < hi[1]; j++ {
			for i := lo[0]; i < hi[0]; i++ {
				v.U8[v.Index(i, j, k)] = 1
			}
		}
	}
	return v
}

// TestCaseSlices: the slice of a case is found through the pipeline lock
// (nnU-Net layout), is the one where prediction and truth disagree most,
// and shows the truth, candidate and baseline contours in their colours.
func TestCaseSlices(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := cas.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	dim := [3]int{32, 32, 8}
	ct := volume.New(volume.Int16, dim, volume.Identity([3]float64{1, 1, 1}))
	for n := range ct.I16 {
		ct.I16[n] = int16(-1000 + 20*(n%100))
	}
	truth := box(dim, [3]int{8, 8, 0}, [3]int{24, 24, 8})
	cand := box(dim, [3]int{8, 8, 0}, [3]int{24, 24, 8})
	for j := 8; j < 24; j++ { // slice 5 loses half the bone
		for i := 16; i < 24; i++ {
			cand.U8[cand.Index(i, j, 5)] = 0
		}
	}
	base := box(dim, [3]int{6, 6, 0}, [3]int{26, 26, 8})
	id := "c-abc123"
	dataset := putManifest(t, s, putVolume(t, s, "build/nnunet/imagesTs/"+id+"_0000.nii.gz", ct),
		putVolume(t, s, "build/nnunet/labelsTs/"+id+".nii.gz", truth))
	lockWith := func(pred *volume.Volume) *gitops.Lock {
		return &gitops.Lock{Schema: 1, Stages: map[string]*gitops.StageLock{
			"dataset": {Out: dataset},
			"predict": {Out: putManifest(t, s, putVolume(t, s, "build/predictions/"+id+".nii.gz", pred))},
		}}
	}
	vals := caseVals{"dice": 0.9, "iou": 0.8, "hd_mm": 1, "hd95_mm": 1, "assd_mm": 1, "masd_mm": 1, "nsd@1": 0.9}
	worse := caseVals{"dice": 0.7, "iou": 0.6, "hd_mm": 3, "hd95_mm": 3, "assd_mm": 2, "masd_mm": 2, "nsd@1": 0.7}
	bs := sideSpec{ref: "main", commit: "1", cases: map[string]caseVals{id: vals}, params: map[string]string{}}.side()
	cs := sideSpec{ref: WorkTree, commit: "2", cases: map[string]caseVals{id: worse}, params: map[string]string{}}.side()
	bs.Lock, cs.Lock = lockWith(base), lockWith(cand)
	in := Input{Base: bs, Candidate: cs}
	c, err := Compare(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	l := &Loader{Dir: dir, Store: s}
	plots, err := l.CaseSlices(context.Background(), in, c, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(plots) != 1 || plots[0].Name != "case-c-abc123.png" {
		t.Fatalf("plots %v, want one for %s", plots, id)
	}
	if want := "Case c-abc123, slice 5: truth and prediction contours"; plots[0].Title != want {
		t.Errorf("title %q, want %q (the slice of the largest disagreement)", plots[0].Title, want)
	}
	img, err := png.Decode(bytes.NewReader(plots[0].PNG))
	if err != nil {
		t.Fatal(err)
	}
	for name, col := range map[string]interface{ RGBA() (r, g, b, a uint32) }{
		"truth": colourTruth, "candidate": colourCandidate, "baseline": colourBaseline} {
		if !hasColour(img, col) {
			t.Errorf("the %s contour is not drawn", name)
		}
	}

	// Without the files in the lock the case is skipped, not an error.
	cs.Lock = &gitops.Lock{Schema: 1, Stages: map[string]*gitops.StageLock{}}
	if plots, err := l.CaseSlices(context.Background(), in, c, 3); err != nil || len(plots) != 0 {
		t.Errorf("no files: plots %d, err %v; want none and no error", len(plots), err)
	}
}
