package reports

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func compareFixture(t *testing.T, name string) *Comparison {
	t.Helper()
	in, ok := fixtures()[name]
	if !ok {
		t.Fatalf("no fixture %q", name)
	}
	c, err := Compare(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", file)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./reports -update)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs from the golden file (-want +got; refresh with -update):\n%s", file, d)
	}
}

func TestGolden(t *testing.T) {
	t.Parallel()
	for name := range fixtures() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := compareFixture(t, name)
			golden(t, name+".md", []byte(Markdown(c, MarkdownOptions{})))
			h, err := HTML(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".html", h)
			j, err := JSON(c)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".json", j)
			for _, out := range []string{Markdown(c, MarkdownOptions{}), string(h), string(j)} {
				if strings.Contains(out, "PHI-SENTINEL") {
					t.Error("a report shows text from a dataset case's warnings")
				}
			}
		})
	}
}

// TestVerdicts checks what a reviewer reads first: the verdict and the
// failing gates with their numbers.
func TestVerdicts(t *testing.T) {
	t.Parallel()
	type gate struct{ name, status string }
	tests := []struct {
		fixture     string
		promote     bool
		gates       []gate
		warning     string
		metric      string // a metric row to check
		change      string
		significant bool
	}{
		{"improvement", true, []gate{{"dice mean no-worse (tolerance 0.002)", Pass}, {"hd95 p95 at-most 8", Pass}, {"dice min at-least 0.7", Pass}, {"dice per-case drop at most 0.05", Pass}}, "", "dice", "better", true},
		{"regression", false, []gate{{"dice mean no-worse (tolerance 0.002)", Fail}, {"hd95 p95 at-most 8", Pass}, {"dice min at-least 0.7", Pass}, {"dice per-case drop at most 0.05", Fail}}, "", "dice", "worse", true},
		{"first-model", true, []gate{{"dice mean no-worse (tolerance 0.002)", Skipped}, {"hd95 p95 at-most 8", Pass}, {"dice min at-least 0.7", Pass}, {"dice per-case drop at most 0.05", Skipped}}, "No baseline", "dice", "same", false},
		{"label-rules", true, nil, "Labelling rules differ (baseline v2, candidate v3)", "", "", false},
		{"dataset-removed", true, nil, "", "dice", "same", false},
		{"tied", false, []gate{{"dice mean no-worse (tolerance 0.002)", Pass}, {"hd95 p95 at-most 8", Pass}, {"dice min at-least 0.7", Pass}, {"dice median better (tolerance 0)", Fail}, {"dice per-case drop at most 0.05", Pass}}, "", "dice", "same", false},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			c := compareFixture(t, tt.fixture)
			if c.Verdict.Promote != tt.promote {
				t.Errorf("promote = %v, want %v; gates %+v", c.Verdict.Promote, tt.promote, c.Verdict.Gates)
			}
			if tt.gates != nil {
				var got []gate
				for _, g := range c.Verdict.Gates {
					got = append(got, gate{g.Name, g.Status})
				}
				if d := cmp.Diff(tt.gates, got, cmp.AllowUnexported(gate{})); d != "" {
					t.Errorf("gates (-want +got):\n%s", d)
				}
			}
			if tt.warning != "" && !strings.Contains(warningTexts(c.Warnings), tt.warning) {
				t.Errorf("warnings %q lack %q", c.Warnings, tt.warning)
			}
			for _, m := range c.Metrics {
				if m.Metric == tt.metric && (m.Change != tt.change || m.Significant != tt.significant) {
					t.Errorf("%s: change %s significant %v, want %s %v", m.Metric, m.Change, m.Significant, tt.change, tt.significant)
				}
			}
		})
	}
}

func TestRegressionMessageNamesNumbers(t *testing.T) {
	t.Parallel()
	c := compareFixture(t, "regression")
	f := c.Verdict.Failed()
	if len(f) != 2 {
		t.Fatalf("failed gates %+v, want 2", f)
	}
	// The mean gate: baseline and candidate means, Δ and the limit.
	var bm, cm float64
	for _, m := range c.Metrics {
		if m.Metric == "dice" {
			bm, cm = m.Base.Mean, m.Candidate.Mean
		}
	}
	msg := f[0].Message
	for _, want := range []string{fmtNum(bm), fmtNum(cm), "must be ≥", fmtNum(bm - 0.002), "24 paired cases"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if got := f[1].Cases; len(got) != 2 {
		t.Errorf("per-case rule flagged %v, want the 2 cases that lost 0.12", got)
	}
	if c.Regressions[0].Case != f[1].Cases[0] && c.Regressions[0].Case != f[1].Cases[1] {
		t.Errorf("worst regression %s is not a flagged case %v", c.Regressions[0].Case, f[1].Cases)
	}
}

func TestDataAndEnvChanges(t *testing.T) {
	t.Parallel()
	c := compareFixture(t, "dataset-removed")
	if len(c.Data.Datasets) != 1 || c.Data.Datasets[0].Status != Removed || len(c.Data.Datasets[0].CasesRemoved) != 12 {
		t.Errorf("datasets %+v, want batch2 removed with 12 cases", c.Data.Datasets)
	}
	if len(c.OnlyBase) != 12 || len(c.Cases) != 12 {
		t.Errorf("only base %d, paired %d; want 12 and 12", len(c.OnlyBase), len(c.Cases))
	}
	c = compareFixture(t, "improvement")
	want := []PackageChange{{"monai", Added, "", "1.3.2"}, {"nibabel", Removed, "5.2.1", ""}, {"numpy", Changed, "1.26.4", "2.0.1"}}
	if d := cmp.Diff(want, c.Env.Packages); d != "" {
		t.Errorf("packages (-want +got):\n%s", d)
	}
	wantP := []ParamChange{{"train.epochs", Changed, "6", "12"}, {"train.hidden", Changed, "16", "32"}}
	if d := cmp.Diff(wantP, c.Params.Changes); d != "" {
		t.Errorf("params (-want +got):\n%s", d)
	}
	var diff []string
	for _, l := range c.Params.Lines {
		diff = append(diff, l.Op+l.Text)
	}
	wantDiff := []string{" [train]", "-epochs = 6", "-hidden = 16", "+epochs = 12", "+hidden = 32", " lr = 0.001"}
	if d := cmp.Diff(wantDiff, diff); d != "" {
		t.Errorf("params diff (-want +got):\n%s", d)
	}
	c = compareFixture(t, "label-rules")
	if !c.Data.LabelRulesDiffer || len(c.Data.Datasets) != 2 || len(c.Data.Datasets[0].CasesChanged) != 12 {
		t.Errorf("label-rules data changes %+v", c.Data)
	}
	md := Markdown(c, MarkdownOptions{})
	if !strings.Contains(md, "> [!CAUTION]\n> **Labelling rules differ") {
		t.Errorf("Markdown does not shout about the labelling rules:\n%s", md[:min(len(md), 800)])
	}
}

func TestJSONRoundTrips(t *testing.T) {
	t.Parallel()
	c := compareFixture(t, "first-model")
	j, err := JSON(c)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatalf("JSON report does not parse: %v", err)
	}
	if back["base"] != nil {
		t.Errorf("base = %v, want null for the first model", back["base"])
	}
	v := back["verdict"].(map[string]any)
	if v["promote"] != true {
		t.Errorf("verdict %v", v)
	}
}

func warningTexts(ws []Warning) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w.Text + "\n")
	}
	return b.String()
}

// TestFewPairedWarning: a comparison resting on fewer than MinPaired
// paired cases says so in every form; one with enough cases does not.
func TestFewPairedWarning(t *testing.T) {
	t.Parallel()
	few := compareFixture(t, "few-paired")
	if few.Verdict.Paired != 4 {
		t.Errorf("paired = %d, want 4", few.Verdict.Paired)
	}
	var found bool
	for _, w := range few.Warnings {
		found = found || w.Kind == FewPaired
	}
	if !found {
		t.Fatalf("no %s warning in %q", FewPaired, warningTexts(few.Warnings))
	}
	md := Markdown(few, MarkdownOptions{})
	h, err := HTML(few, nil)
	if err != nil {
		t.Fatal(err)
	}
	for form, out := range map[string]string{"markdown": md, "html": string(h)} {
		if !strings.Contains(out, "rests on only 4 paired cases") {
			t.Errorf("%s report does not warn about 4 paired cases", form)
		}
	}
	for _, name := range []string{"improvement", "first-model", "dataset-removed"} {
		for _, w := range compareFixture(t, name).Warnings {
			if w.Kind == FewPaired {
				t.Errorf("%s: unexpected %q", name, w.Text)
			}
		}
	}
}
