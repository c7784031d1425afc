package ci_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medcad/medcad/action/githubtest"
	"github.com/medcad/medcad/action/promote"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/reports"
	"github.com/medcad/medcad/stages/dicom"
	"github.com/medcad/medcad/stages/dicom/deid"
	"github.com/medcad/medcad/stages/intake"
	"github.com/medcad/medcad/stages/phantom"
)

// dicomBranch starts branch from main on the developer's clone, adds n
// phantom CT cases (DICOM with fake patient identities, seed seed) as
// dataset name through the DICOM ingest 'medcad data add' uses (PS3.15
// de-identification, one validated series per case), pushes it and
// opens a pull request. It returns the fake identities.
func (s *story) dicomBranch(name string, n int, seed uint64) (pr int, phi []string) {
	t := s.t
	t.Helper()
	ctx := context.Background()
	gitCmd(t, s.dev, "fetch", "-q", s.f.pushURL, "main")
	gitCmd(t, s.dev, "checkout", "-qB", name, "FETCH_HEAD")
	in := filepath.Join(s.root, "incoming", name)
	opts := phantom.Options{Seed: seed}
	if _, err := phantom.WriteDataset(ctx, phantom.DatasetOptions{Options: opts, Dir: in, Cases: n, Format: phantom.FormatDICOM}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		c, err := phantom.Generate(ctx, opts, i)
		if err != nil {
			t.Fatal(err)
		}
		pt := c.Facts.Patient
		phi = append(phi, pt.Name, pt.ID, pt.BirthDate, pt.Accession, pt.Institution)
	}
	p := s.open(s.dev)
	ingest := func(ctx context.Context, src, out string) ([]gitops.DatasetCase, []string, error) {
		key, err := deid.LoadKey(p.Config.KeyPath(p.Root))
		if err != nil {
			return nil, nil, err
		}
		res, err := intake.Prepare(ctx, src, out, intake.Options{Deid: deid.New(key, deid.Options{}), Series: dicom.Options{Strict: p.Config.Data.Strict}})
		if err != nil {
			return nil, nil, err
		}
		return res.Cases, nil, nil
	}
	if _, err := p.AddData(ctx, gitops.AddOptions{Path: in, Name: name, Ingest: ingest, Deid: p.Config.Data.DeidProfile}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PushData(ctx, gitops.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, s.dev, "add", "-A")
	gitCmd(t, s.dev, "commit", "-qm", "data: "+name)
	gitCmd(t, s.dev, "push", "-q", s.f.pushURL, name)
	return s.f.openPR(t, name), phi
}

// auditOf renders the audit document of version ref as an auditor gets
// it: in a fresh clone of the origin, with the store but no signing key.
func (s *story) auditOf(ref string) (*reports.Audit, string) {
	t := s.t
	t.Helper()
	s.runs++
	dir := filepath.Join(s.root, fmt.Sprintf("auditor%d", s.runs))
	gitCmd(t, s.root, "clone", "-q", s.f.cloneURL, dir)
	ctx := context.Background()
	p := s.open(dir)
	c, err := promote.ReadChain(ctx, p, "", "origin")
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve(ref)
	if err != nil {
		t.Fatal(err)
	}
	in, err := promote.AuditInput(ctx, p, c, r)
	if err != nil {
		t.Fatal(err)
	}
	in.Generated = time.Now()
	doc, err := reports.NewAudit(in)
	if err != nil {
		t.Fatal(err)
	}
	return doc, reports.AuditMarkdown(doc)
}

// TestAuditStory: a pull request adding batch1 is approved, merged and
// promoted as v1; one adding batch2 becomes v2, gated against v1; v1 is
// rolled back to as v3. The audit of each version, read in a fresh clone,
// holds the lineage the promotion recorded. With -v the audit of v1 is
// printed; MEDCAD_AUDIT_OUT=FILE also writes it there.
func TestAuditStory(t *testing.T) {
	t.Parallel()
	f, gh := fakeForge(t, githubtest.Options{})
	// Merges record who merged and who approved, as GitHub's API says.
	f.merge = func(t *testing.T, n int, head, _ string) string {
		work := t.TempDir()
		gitCmd(t, ".", "clone", "-q", f.pushURL, work)
		gitCmd(t, work, "merge", "-q", "--no-ff", "origin/"+head, "-m", fmt.Sprintf("Merge pull request #%d", n))
		gitCmd(t, work, "push", "-q", "origin", "main")
		sha := gitCmd(t, work, "rev-parse", "HEAD")
		gh.AddMerged(githubtest.PullRequest{Number: n, MergeCommitSHA: sha, HeadSHA: gitCmd(t, work, "rev-parse", "origin/"+head),
			MergedBy: "lead-ml", Approvers: []string{"qa-lead", "reviewer-b"}})
		return sha
	}
	s := newStory(t, f, "", "")
	// The toy trainer learns from the label maps (one per case), not
	// from every DICOM slice.
	train := filepath.Join(s.dev, "train.sh")
	sh, err := os.ReadFile(train)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(train, []byte(strings.Replace(string(sh), `find "$d" -type f`, `find "$d" -type f -name '*.nii.gz'`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, s.dev, "commit", "-qam", "train on label maps")
	gitCmd(t, s.dev, "push", "-q", f.pushURL, "main")
	var phi []string
	promoteBranch := func(branch string, cases int, seed uint64) int {
		n, ids := s.dicomBranch(branch, cases, seed)
		phi = append(phi, ids...)
		if j, res, err := s.pr("pull_request.json", n, branch, true); err != nil || res.Verdict != "pass" {
			t.Fatalf("%s: %v %+v\n%s", branch, err, res, j.log)
		}
		s.f.merge(t, n, branch, "merge")
		if jm, err := s.main(); err != nil || jm.res == nil || !jm.res.Promoted {
			t.Fatalf("main after %s: %v\n%s", branch, err, jm.log)
		}
		return n
	}
	n1 := promoteBranch("batch1", 3, 101)

	doc, md := s.auditOf("v1")
	if testing.Verbose() {
		t.Logf("audit v1 (Markdown):\n%s", md)
	}
	if out := os.Getenv("MEDCAD_AUDIT_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pointer, err := os.ReadFile(filepath.Join(s.dev, gitops.DatasetPath("batch1")))
	if err != nil {
		t.Fatal(err)
	}
	ptr, err := gitops.ParseDataset("batch1", pointer)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Audit record: bone v1", "| version | v1 (production) |", "| kind | promotion |",
		fmt.Sprintf("| pull request | #%d |", n1), "| merged by | lead-ml |", "| approved by | qa-lead, reviewer-b |",
		"Promotion job's verdict: **pass** against no baseline \\(the first version\\: absolute gates only\\)",
		"| batch1 | 3 | 3 |", "| ps3\\.15-basic |",
		"`" + ptr.Manifest.String() + "`",
		"`sha256:" + fmt.Sprintf("%x", sha256Sum(pointer)) + "`", // the committed pointer's digest
		"| train\\.quality | `90` |",
		"4 cases evaluated", "| c-000001 |", "| v1 | this document, production |",
		"/actions/runs/",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("audit v1 lacks %q", want)
		}
	}
	if doc.Code.CodeCommit == "" || !strings.Contains(md, "| code commit | `"+doc.Code.CodeCommit+"` |") {
		t.Errorf("audit v1: code commit %q not shown", doc.Code.CodeCommit)
	}
	if doc.Gates.Baseline != 0 || doc.Rollback != nil || doc.Datasets[0].Pointer == "" {
		t.Errorf("audit v1: gates %+v rollback %+v datasets %+v", doc.Gates, doc.Rollback, doc.Datasets)
	}
	if len(ptr.Cases) != 3 {
		t.Errorf("batch1's pointer lists %d cases, want 3", len(ptr.Cases))
	}
	noPHI(t, "audit v1", md, phi)

	// v2 adds batch2 and is gated against v1.
	n2 := promoteBranch("batch2", 2, 202)
	doc, md = s.auditOf("production")
	for _, want := range []string{"# Audit record: bone v2", fmt.Sprintf("| pull request | #%d |", n2), "against baseline v1 \\(models/bone/v1",
		"| batch1 |", "| batch2 |", "| v1 |  |", "| v2 | this document, production |"} {
		if !strings.Contains(md, want) {
			t.Errorf("audit v2 lacks %q", want)
		}
	}
	if doc.Gates.Baseline != 1 || len(doc.Datasets) != 2 {
		t.Errorf("audit v2: gates %+v, %d datasets", doc.Gates, len(doc.Datasets))
	}
	if _, md := s.auditOf("v1"); !strings.Contains(md, "| version | v1 (superseded by v2) |") {
		t.Error("audit v1 does not say v2 superseded it")
	}

	// Roll back to v1, as 'medcad promote --rollback v1' in the promotion job.
	j := s.job("main", "workflow_dispatch", nil, false)
	var log bytes.Buffer
	res, err := promote.Run(context.Background(), j.p, promote.RunOptions{Key: signingKey, Rollback: 1, Reason: "dice drops on scanner B", By: "qa-lead", Log: &log})
	if err != nil || !res.Promoted || res.Record.Version != 3 {
		t.Fatalf("rollback: %v %+v\n%s", err, res, log.String())
	}
	doc, md = s.auditOf("v3")
	for _, want := range []string{"**This version is a rollback to v1** (`models/bone/v1`)", "Rolled back by qa-lead", "Reason: dice drops on scanner B",
		"| kind | rollback |", "**skipped \\(rollback\\)**", "| v3 | this document, production, rollback to v1 |",
		"| batch1 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("audit v3 lacks %q", want)
		}
	}
	noPHI(t, "audit v3", md, phi)
	if strings.Contains(md, "| batch2 |") {
		t.Error("audit v3 shows batch2, which v1 (restored) was not trained on")
	}
	if doc.Rollback == nil || doc.Rollback.Of != 1 || doc.Record.Artifact != doc.History[0].Artifact {
		t.Errorf("audit v3: rollback %+v, artifact %s, v1's %s", doc.Rollback, doc.Record.Artifact, doc.History[0].Artifact)
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// noPHI fails t when doc holds one of the phantoms' fake identities
// (names, ids, birth dates, accession numbers, institutions) or a DICOM
// UID (the audit names files by digest only).
func noPHI(t *testing.T, what, doc string, phi []string) {
	t.Helper()
	for _, v := range phi {
		for _, part := range strings.Split(v, "^") {
			if len(part) >= 4 && strings.Contains(doc, part) {
				t.Errorf("%s holds %q, from a phantom's patient identity", what, part)
			}
		}
	}
	if m := regexp.MustCompile(`\b2\.25\.[0-9]{6,}`).FindString(doc); m != "" {
		t.Errorf("%s holds the UID %q", what, m)
	}
}
