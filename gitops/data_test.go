package gitops

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
func fakeIngest(_ context.Context, _, out string) ([]DatasetCase, []string, error) {
	var cases []DatasetCase
	for _, id := range []string{"c-000001", "c-000002"} {
		for _, f := range []string{id + "/CT/IM00001.dcm", id + "/CT/IM00002.dcm", "labels/" + id + ".nii.gz"} {
			p := filepath.Join(out, filepath.FromSlash(f))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, nil, err
			}
			if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
				return nil, nil, err
			}
		}
		cases = append(cases, DatasetCase{ID: id, Modality: "CT", Slices: 2, Shape: []int{1, 1, 2}, SpacingMM: []float64{1, 1, 1}})
	}
	return cases, nil, nil
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
		m, err := b.Store.ReadManifest(c.Image)
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
	if _, err := cas.Push(ctx, a.Store, rb, []cas.ID{d.Manifest}, cas.TransferOptions{}); err != nil {
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

// ingestOf is an ingest that writes the given cases, each with one image
// file and a label whose content is label.
func ingestOf(label string, ids ...string) IngestFunc {
	return func(_ context.Context, _, out string) ([]DatasetCase, []string, error) {
		var cases []DatasetCase
		for _, id := range ids {
			for f, body := range map[string]string{id + "/CT/IM00001.dcm": id, "labels/" + id + ".nii.gz": label} {
				p := filepath.Join(out, filepath.FromSlash(f))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return nil, nil, err
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					return nil, nil, err
				}
			}
			cases = append(cases, DatasetCase{ID: id, Modality: "CT", Slices: 1, Shape: []int{1, 1, 1}, SpacingMM: []float64{1, 1, 1}})
		}
		return cases, []string{"bad-folder: no DICOM files"}, nil
	}
}

// TestAddRefusesStudyInAnotherBatch: the same study in a second batch is
// refused, naming both batches and the case id; the other cases are
// stored and every refusal is reported.
func TestAddRefusesStudyInAnotherBatch(t *testing.T) {
	ctx := context.Background()
	p := newProject(t, "file://"+t.TempDir())
	src := t.TempDir()
	if _, err := p.AddData(ctx, AddOptions{Path: src, Name: "b1", Ingest: ingestOf("l", "c-000001", "c-000002")}); err != nil {
		t.Fatal(err)
	}
	res, err := p.AddData(ctx, AddOptions{Path: src, Name: "b2", Ingest: ingestOf("l", "c-000002", "c-000003")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bad-folder: no DICOM files", "case c-000002 is already in dataset b1: the same study cannot be in two batches (b1 and b2)"}
	if !slices.Equal(res.Refused, want) || res.Cases != 1 {
		t.Errorf("refused %q, cases %d", res.Refused, res.Cases)
	}
	d, err := ReadDataset(p.Root, "b2")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Cases) != 1 || d.Cases[0].ID != "c-000003" || d.Files != 2 {
		t.Errorf("b2 holds %+v (%d files)", d.Cases, d.Files)
	}
	if _, err := os.Stat(p.Path("data/b2/c-000002")); !os.IsNotExist(err) {
		t.Errorf("the refused case was checked out: %v", err)
	}
}

// TestReAddReplacesUnchangedCheckout: adding a batch again from its
// delivery folder (a corrected label) replaces data/NAME when it is an
// unchanged checkout of the old pointer, in copy and hard-link modes.
func TestReAddReplacesUnchangedCheckout(t *testing.T) {
	for _, link := range []string{LinkCopy, LinkHardlink} {
		t.Run(link, func(t *testing.T) {
			ctx := context.Background()
			p := newProject(t, "file://"+t.TempDir())
			src := t.TempDir()
			if _, err := p.AddData(ctx, AddOptions{Path: src, Name: "b1", Link: link, Ingest: ingestOf("old label", "c-000001")}); err != nil {
				t.Fatal(err)
			}
			res, err := p.AddData(ctx, AddOptions{Path: src, Name: "b1", Link: link, Ingest: ingestOf("new label", "c-000001")})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Replaced {
				t.Error("not reported as replaced")
			}
			if b, err := os.ReadFile(p.Path("data/b1/labels/c-000001.nii.gz")); err != nil || string(b) != "new label" {
				t.Errorf("label after the re-add: %q, %v", b, err)
			}
			st, err := p.DataStatus(ctx, []string{"b1"}, false)
			if err != nil || !st[0].Clean {
				t.Errorf("status after the re-add: %+v, %v", st, err)
			}
		})
	}
}

// TestSwappedManifestRefused: a pointer whose manifest digest was swapped
// for another dataset's is refused by status and checkout, naming the
// pointer; nothing is checked out.
func TestSwappedManifestRefused(t *testing.T) {
	ctx := context.Background()
	p := newProject(t, "file://"+t.TempDir())
	src := t.TempDir()
	if _, err := p.AddData(ctx, AddOptions{Path: src, Name: "b1", Ingest: ingestOf("l", "c-000001")}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddData(ctx, AddOptions{Path: src, Name: "b2", Ingest: ingestOf("l", "c-000002", "c-000003")}); err != nil {
		t.Fatal(err)
	}
	b1, _ := ReadDataset(p.Root, "b1")
	b2, _ := ReadDataset(p.Root, "b2")
	b1.Manifest = b2.Manifest
	if err := b1.Write(p.Root); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(p.Path("data/b1")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DataStatus(ctx, []string{"b1"}, false); !errors.Is(err, ErrPointerMismatch) {
		t.Errorf("status: %v", err)
	}
	_, _, err := p.CheckoutData(ctx, CheckoutOptions{Names: []string{"b1"}})
	if !errors.Is(err, ErrPointerMismatch) || !strings.Contains(err.Error(), "data/b1.dataset.toml") {
		t.Errorf("checkout: %v", err)
	}
	if _, err := os.Stat(p.Path("data/b1")); !os.IsNotExist(err) {
		t.Errorf("checked out anyway: %v", err)
	}
}
