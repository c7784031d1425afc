package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/gitops"
	"github.com/medcad/medcad/stages/metrics"
)

// auditFixture is a chain of three versions of bone: v1 (the first, no
// baseline), v2 (gated against v1) and v3, a rollback to v1; version
// selects the one audited. The side is the improvement fixture's
// candidate, with one case that failed evaluation and one infinite
// distance; its datasets carry PHI sentinels in their case warnings.
func auditFixture(t *testing.T, version int) AuditInput { return auditFixtureF(t, version) }

func auditFixtureF(t testing.TB, version int) AuditInput {
	t.Helper()
	in := fixtures()["improvement"]
	side := *in.Candidate
	ev := *side.Eval
	ev.Cases = append([]Case(nil), ev.Cases...)
	ev.Cases[0].Error = "prediction and truth differ in shape"
	ev.Cases[0].Values = nil
	inf := ev.Cases[1]
	inf.Values = map[string]float64{}
	for k, v := range ev.Cases[1].Values {
		inf.Values[k] = v
	}
	inf.Values["hd_mm"], inf.Flags = math.Inf(1), []string{"empty prediction"}
	ev.Cases[1] = inf
	side.Eval = &ev
	side.CommitSubject = "More epochs, wider hidden layer"
	m := *side.Model
	m.Gate = gitops.Verdict{Result: "pass", Baseline: digestID("artifact v1")}
	m.Provenance.CIRunURL = "https://github.example/org/demo/actions/runs/77"
	side.Model = &m

	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	rec := func(v int) AuditRecord {
		return AuditRecord{Model: "bone", Version: v, Tag: fmt.Sprintf("models/bone/v%d", v), Digest: digest(fmt.Sprint("record ", v)),
			Artifact: digest(fmt.Sprint("artifact v", v)), Eval: digest(fmt.Sprint("eval v", v)), Manifest: digest(fmt.Sprint("manifest v", v)),
			ManifestCommit: fmt.Sprintf("%040d", v), Run: fmt.Sprintf("run-%d", v), CodeCommit: fmt.Sprintf("c0de%036d", v), Commit: fmt.Sprintf("4e4d%036d", v),
			PromotedAt: at.Add(time.Duration(v) * 24 * time.Hour), Signature: "ed25519:c2lnbmF0dXJl+/=", GateResult: "pass"}
	}
	v1, v2, v3 := rec(1), rec(2), rec(3)
	v1.PR, v1.MergedBy, v1.Approvers, v1.Gates = 1, "maintainer", []string{"reviewer-a"}, []string{"dice mean no-worse (tolerance 0.002): skipped"}
	v2.PR, v2.MergedBy, v2.Approvers, v2.GateBaseline, v2.Prev = 2, "lead-ml", []string{"reviewer-a", "qa-lead"}, 1, v1.Digest
	v2.CIRunURL, v2.Metrics = "https://github.example/org/demo/actions/runs/78", map[string]float64{"hd95_mm": 2.931, "dice": 0.9018}
	v2.Gates = []string{"dice mean no-worse (tolerance 0.002): pass", "hd95 p95 at-most 8: pass"}
	v3.Artifact, v3.ManifestCommit, v3.Prev, v3.GateResult = v1.Artifact, v1.ManifestCommit, v2.Digest, "skipped (rollback)"
	v3.Rollback = &AuditRollback{Of: 1, Reason: "dice drops on scanner B", By: "qa-lead"}
	chain := []AuditRecord{v1, v2, v3}
	// The side is the manifest the audited version promoted (one side
	// serves every version of this fixture).
	m.Artifact, _ = gitops.ParseDigest(chain[version-1].Artifact)
	m.Eval, _ = gitops.ParseDigest(chain[version-1].Eval)
	return AuditInput{Record: chain[version-1], Chain: chain, Side: &side, Source: "file:///srv/store",
		PublicKey: "ed25519:cHVibGljLWtleQ==", Generated: at.Add(10 * 24 * time.Hour)}
}

func audit(t *testing.T, version int) *Audit {
	t.Helper()
	a, err := NewAudit(auditFixture(t, version))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// phiRE matches what must never be in an audit: the fixtures' sentinel
// (placed in the datasets' case warnings) and DICOM-looking identifiers.
var phiRE = regexp.MustCompile(`PHI-SENTINEL|PatientName|PatientID|BirthDate|\b1\.2\.840\.[0-9.]+`)

func TestAuditMarkdown(t *testing.T) {
	t.Parallel()
	a := audit(t, 2)
	md := AuditMarkdown(a)
	golden(t, "audit-v2.md", []byte(md))
	for _, want := range []string{
		"# Audit record: bone v2", "## Summary", "## Approval", "## Code", "## Datasets", "## Environment", "## Params",
		"## Evaluation", "### Cases", "## Gates", "## History",
		"superseded by v3", "| pull request | #2 |", "| merged by | lead-ml |", "| approved by | reviewer-a, qa-lead |",
		"| code commit | `c0de", "More epochs, wider hidden layer",
		"| 2025-09-batch1 | 12 | 12 | 0 / 0 | 1200 |", "| 2025-10-batch2 | 12 | 12 |", "24 cases in 2 datasets.",
		"ps3\\.15-basic", "| v2 |", "| numpy | 2\\.0\\.1 |", "| train\\.epochs | `12` |",
		"Promotion job's verdict: **pass** against baseline v1 \\(models/bone/v1, artifact sha256\\:80f5f2990d11\\)",
		"| dice mean no-worse \\(tolerance 0\\.002\\) | pass |",
		"23 cases evaluated, 1 failed", "Metrics in the signed record (the training run's): dice 0.9018, hd95\\_mm 2.931.", "not evaluated\\: prediction and truth differ in shape", "empty prediction",
		"| v1 |  | 2026-12-01 09:00:00 UTC |", "| v2 | this document |", "| v3 | production, rollback to v1 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	if strings.Contains(md, "This version is a rollback") {
		t.Error("v2 is not a rollback, but the Markdown says it is")
	}
	// Every case of the evaluation has its row, by its pseudonymous id.
	for _, c := range a.Evaluation.Cases {
		if !strings.Contains(md, "| "+mdEscape(c.Case)+" | "+mdEscape(c.Dataset)+" |") {
			t.Errorf("no row for case %s", c.Case)
		}
	}
	if m := phiRE.FindString(md); m != "" {
		t.Errorf("Markdown holds %q", m)
	}
}

// TestAuditStatistics: the means and intervals are those of the
// evaluated cases, the failed one left out, the infinite one counted.
func TestAuditStatistics(t *testing.T) {
	t.Parallel()
	in := auditFixture(t, 2)
	a := audit(t, 2)
	var dice, hd []float64
	for _, c := range in.Side.Eval.Cases {
		if c.Values != nil {
			dice = append(dice, c.Values["dice"])
			hd = append(hd, c.Values["hd_mm"])
		}
	}
	for _, tc := range []struct {
		metric string
		vals   []float64
	}{{"dice", dice}, {"hd_mm", hd}} {
		want := metrics.Summarize(tc.vals)
		var got *AuditMetric
		for i := range a.Evaluation.Metrics {
			if a.Evaluation.Metrics[i].Metric == tc.metric {
				got = &a.Evaluation.Metrics[i]
			}
		}
		if got == nil {
			t.Fatalf("no %s in %+v", tc.metric, a.Evaluation.Metrics)
		}
		if got.N != want.N || got.NonFinite != want.NonFinite || float64(got.Mean) != want.Mean || float64(got.CILow) != want.CILow || float64(got.CIHigh) != want.CIHigh {
			t.Errorf("%s: %+v, want %+v", tc.metric, *got, want)
		}
		if !(got.CILow <= got.Mean && got.Mean <= got.CIHigh) || got.CILow == got.CIHigh {
			t.Errorf("%s: mean %v outside its interval [%v, %v]", tc.metric, got.Mean, got.CILow, got.CIHigh)
		}
	}
	if a.Evaluation.Metrics[2].Metric != "hd_mm" || a.Evaluation.Metrics[2].NonFinite != 1 || a.Evaluation.Metrics[2].N != 22 {
		t.Errorf("hd_mm: %+v, want 22 finite values and 1 infinite", a.Evaluation.Metrics[2])
	}
	md := AuditMarkdown(a)
	row := fmt.Sprintf("| dice | higher | 23 | %s | [%s, %s] |", fmtNum(metrics.Summarize(dice).Mean), fmtNum(metrics.Summarize(dice).CILow), fmtNum(metrics.Summarize(dice).CIHigh))
	if !strings.Contains(md, row) {
		t.Errorf("Markdown lacks the dice row %q", row)
	}
	if !strings.Contains(md, "| hd\\_mm | lower | 22 (+1 inf) |") {
		t.Error("Markdown does not show the infinite distance left out of hd_mm")
	}
}

// TestAuditRollback: the audit of a rollback says so, of which version,
// by whom and why, in every format, and that its gates were skipped.
func TestAuditRollback(t *testing.T) {
	t.Parallel()
	a := audit(t, 3)
	md := AuditMarkdown(a)
	golden(t, "audit-v3-rollback.md", []byte(md))
	for _, want := range []string{
		"**This version is a rollback to v1** (`models/bone/v1`)", "Rolled back by qa-lead", "Reason: dice drops on scanner B",
		"| kind | rollback |", "| version | v3 (production) |",
		"Promotion job's verdict: **skipped \\(rollback\\)** against no baseline \\(a rollback is not gated\\)",
		"| rolled back by | qa-lead |", "| reason | dice drops on scanner B |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	page, err := AuditHTML(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<div class="rollback">This version is a rollback to v1`, "Rolled back by qa-lead", "Reason: dice drops on scanner B"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if a.Rollback == nil || a.Rollback.Of != 1 || a.Rollback.By != "qa-lead" || a.Rollback.Original.Version != 1 || a.Rollback.Original.PR != 1 {
		t.Errorf("rollback: %+v", a.Rollback)
	}
	if v1 := AuditMarkdown(audit(t, 1)); !strings.Contains(v1, "against no baseline \\(the first version\\: absolute gates only\\)") {
		t.Error("v1's audit does not say it had no baseline")
	}
}

func TestAuditHTML(t *testing.T) {
	t.Parallel()
	in := auditFixture(t, 2)
	in.Record.MergedBy = `<img src=x onerror=alert(1)>`
	in.Side.CommitSubject = `</td><script>alert(1)</script>`
	a, err := NewAudit(in)
	if err != nil {
		t.Fatal(err)
	}
	page, err := AuditHTML(a)
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, want := range []string{"<h1>Audit record: bone v2</h1>", "<h2>Datasets</h2>", "<h2>Evaluation</h2>", "<h2>Gates</h2>", "<h2>History</h2>",
		"@page{size:A4", "&lt;img src=x onerror=alert(1)&gt;", "&lt;/td&gt;&lt;script&gt;", "<td>2025-09-batch1</td><td class=\"n\">12</td>"} {
		if !strings.Contains(s, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	// Self-contained: no script, no stylesheet link, nothing fetched.
	if m := regexp.MustCompile(`(?i)<script|<link|<img|<iframe|src=|href=|url\(|@import`).FindString(strings.ReplaceAll(strings.ReplaceAll(s, "&lt;img src=x", ""), "&lt;script&gt;", "")); m != "" {
		t.Errorf("HTML is not self-contained: %q", m)
	}
	if m := phiRE.FindString(s); m != "" {
		t.Errorf("HTML holds %q", m)
	}
	md := AuditMarkdown(a)
	if strings.Contains(md, "<img") || strings.Contains(md, "<script") {
		t.Error("Markdown lets HTML through")
	}
}

// TestAuditJSON: the JSON form reads back to the same document and
// writes the same bytes again; infinite distances are null.
func TestAuditJSON(t *testing.T) {
	t.Parallel()
	for _, v := range []int{1, 2, 3} {
		a := audit(t, v)
		b, err := AuditJSON(a)
		if err != nil {
			t.Fatal(err)
		}
		var back Audit
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&back); err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		nanEqual := cmp.Comparer(func(x, y Num) bool { return x == y || x != x && y != y })
		// An infinite distance is written as null and reads back as NaN.
		for i, c := range a.Evaluation.Cases {
			for k, x := range c.Values {
				if math.IsInf(float64(x), 0) {
					a.Evaluation.Cases[i].Values[k] = Num(math.NaN())
				}
			}
		}
		if d := cmp.Diff(a, &back, nanEqual); d != "" {
			t.Errorf("v%d: JSON round trip (-built +read):\n%s", v, d)
		}
		again, err := AuditJSON(&back)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(b) {
			t.Errorf("v%d: re-encoding differs", v)
		}
		if m := phiRE.FindString(string(b)); m != "" {
			t.Errorf("v%d: JSON holds %q", v, m)
		}
	}
	b, _ := AuditJSON(audit(t, 3))
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	rb, _ := raw["rollback"].(map[string]any)
	if rb["of"] != 1.0 || rb["by"] != "qa-lead" || rb["reason"] != "dice drops on scanner B" {
		t.Errorf("JSON rollback: %v", raw["rollback"])
	}
	if !strings.Contains(string(b), `"hd_mm": null`) {
		t.Error("the infinite distance is not null in JSON")
	}
}

func TestAuditRefusesWrongInput(t *testing.T) {
	t.Parallel()
	in := auditFixture(t, 1)
	in.Record.Artifact = digest("another artifact")
	if _, err := NewAudit(in); !errors.Is(err, ErrAuditInput) || !strings.Contains(err.Error(), "bone v1") {
		t.Errorf("artifact mismatch: err = %v", err)
	}
	in = auditFixture(t, 2)
	in.Record.Eval = digest("another evaluation")
	if _, err := NewAudit(in); !errors.Is(err, ErrAuditInput) || !strings.Contains(err.Error(), "evaluation") {
		t.Errorf("evaluation mismatch: err = %v", err)
	}
	in = auditFixture(t, 2)
	in.Side = nil
	if _, err := NewAudit(in); !errors.Is(err, ErrAuditInput) {
		t.Errorf("no side: err = %v", err)
	}
}

// FuzzAuditJSON: any document that decodes re-encodes to JSON that
// decodes to the same bytes again, and its renderers do not fail or let
// HTML through in the Markdown.
func FuzzAuditJSON(f *testing.F) {
	for _, v := range []int{1, 3} {
		a, err := NewAudit(auditFixtureF(f, v))
		if err != nil {
			f.Fatal(err)
		}
		b, _ := AuditJSON(a)
		f.Add(b)
	}
	f.Add([]byte(`{"evaluation":{"metrics":[{"metric":"dice","better":"higher","mean":null}]},"model":"<b>x</b>"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a Audit
		if json.Unmarshal(data, &a) != nil {
			return
		}
		b, err := AuditJSON(&a)
		if err != nil {
			t.Fatal(err)
		}
		var back Audit
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("re-encoded document does not decode: %v", err)
		}
		again, err := AuditJSON(&back)
		if err != nil || string(again) != string(b) {
			t.Fatalf("round trip differs: %v", err)
		}
		if _, err := AuditHTML(&a); err != nil {
			t.Fatal(err)
		}
		if md := AuditMarkdown(&a); strings.Contains(md, "<b>") {
			t.Fatal("Markdown lets HTML through")
		}
	})
}
