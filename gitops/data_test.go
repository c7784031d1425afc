package gitops

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/medcad/medcad/gitops/cas"
)

// newProject writes a medcad.toml with the given remote into a fresh
// folder and opens it.
func newProject(t *testing.T, remote string) *Project {
	t.Helper()
	dir := t.TempDir()
	cfg := "[project]\nname = \"t\"\n\n[remote]\nurl = \"" + remote + "\"\n"
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Open(context.Background(), dir, OpenOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeIngest writes two cases, each with two files and a label, as DICOM
// ingest lays them out.
func fakeIngest(_ context.Context, _, out string) ([]DatasetCase, error) {
	var cases []DatasetCase
	for _, id := range []string{"c-000001", "c-000002"} {
		for _, f := range []string{id + "/CT/IM00001.dcm", id + "/CT/IM00002.dcm", "labels/" + id + ".nii.gz"} {
			p := filepath.Join(out, filepath.FromSlash(f))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
				return nil, err
			}
		}
		cases = append(cases, DatasetCase{ID: id, Modality: "CT", Slices: 2, Shape: []int{1, 1, 2}, SpacingMM: []float64{1, 1, 1}})
	}
	return cases, nil
}

// TestPushClosure: a dataset on the remote is its whole closure. A second
// project that shares only the pointer and the remote gets every case's
// sub-manifest; status --remote and verify --remote judge the closure,
// not only the manifest.
func TestPushClosure(t *testing.T) {
	ctx := context.Background()
	remote := "file://" + t.TempDir()
	a := newProject(t, remote)
	src := filepath.Join(a.Root, "incoming")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddData(ctx, AddOptions{Path: src, Name: "b1", Ingest: fakeIngest}); err != nil {
		t.Fatal(err)
	}
	d, err := ReadDataset(a.Root, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Roots()) != 3 {
		t.Fatalf("roots = %v, want 2 sub-manifests and the manifest", d.Roots())
	}
	st, err := a.DataStatus(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if *st[0].Pushed {
		t.Fatal("pushed before any push")
	}
	if _, err := a.PushData(ctx, TransferOptions{}); err != nil {
		t.Fatal(err)
	}

	// A fresh project with the pointer only: pull brings the closure.
	b := newProject(t, remote)
	if err := os.MkdirAll(b.Path(DatasetDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.Write(b.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PullData(ctx, TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Cases {
		id, _ := cas.ParseID(c.Image)
		m, err := b.Store.ReadManifest(id)
		if err != nil {
			t.Fatalf("case %s: sub-manifest not pulled: %v", c.ID, err)
		}
		if got := len(m.Entries); got != 2 {
			t.Errorf("case %s: %d files in its sub-manifest, want 2", c.ID, got)
		}
	}
	st, err = b.DataStatus(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if !st[0].Clean || !*st[0].Pushed {
		t.Fatalf("fresh project: status %+v", st[0])
	}

	// A remote that lost one sub-manifest is not complete for verify.
	rb, err := a.Remote(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lost := d.Roots()[0]
	hex := lost.String()[len("sha256:"):]
	if err := os.Remove(filepath.Join(remote[len("file://"):], "objects", hex[:2], hex[2:])); err != nil {
		t.Fatalf("remove %s from the remote (%s): %v", lost.Short(), rb, err)
	}
	rep, err := a.VerifyData(ctx, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed() || !slices.Contains(rep.MissingRemote, "b1 "+lost.String()) {
		t.Errorf("verify --remote after losing a sub-manifest: %+v", rep)
	}
}

// TestStatusOldMarker: a remote where only the manifest was marked
// complete (as pushes before closures did) is not counted as pushed.
func TestStatusOldMarker(t *testing.T) {
	ctx := context.Background()
	a := newProject(t, "file://"+t.TempDir())
	src := filepath.Join(a.Root, "incoming")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddData(ctx, AddOptions{Path: src, Name: "b1", Ingest: fakeIngest}); err != nil {
		t.Fatal(err)
	}
	d, err := ReadDataset(a.Root, "b1")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := a.Remote(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cas.Push(ctx, a.Store, rb, []cas.ID{d.ManifestID()}, cas.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := a.DataStatus(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if *st[0].Pushed {
		t.Error("a manifest pushed without its case sub-manifests counts as pushed")
	}
}
