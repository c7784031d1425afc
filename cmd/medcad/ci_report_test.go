package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/gitops"
)

func TestGateReporter(t *testing.T) {
	model := func(metrics map[string]float64) *gitops.Model {
		return &gitops.Model{Name: "bone", Run: "r1", Metrics: metrics, Datasets: map[string]string{"b1": "sha256:1"}}
	}
	gate := func(metric, stat, rule string, tol, value float64) gitops.Gate {
		return gitops.Gate{Metric: metric, Stat: stat, Rule: rule, Tolerance: tol, Value: value}
	}
	tests := []struct {
		name       string
		gates      []gitops.Gate
		base, cand map[string]float64
		noBase     bool
		wantPass   bool
		wantFailed int
	}{
		{"dice improves", []gitops.Gate{gate("dice", "mean", "no-worse", 0.002, 0)}, map[string]float64{"dice": 0.80}, map[string]float64{"dice": 0.82}, false, true, 0},
		{"dice within tolerance", []gitops.Gate{gate("dice", "mean", "no-worse", 0.002, 0)}, map[string]float64{"dice": 0.80}, map[string]float64{"dice": 0.799}, false, true, 0},
		{"dice drops", []gitops.Gate{gate("dice", "mean", "no-worse", 0.002, 0)}, map[string]float64{"dice": 0.80}, map[string]float64{"dice": 0.79}, false, false, 1},
		{"hd95 lower is better", []gitops.Gate{gate("hd95_mm", "mean", "no-worse", 0.1, 0)}, map[string]float64{"hd95_mm": 5}, map[string]float64{"hd95_mm": 4}, false, true, 0},
		{"hd95 grows", []gitops.Gate{gate("hd95_mm", "mean", "no-worse", 0.1, 0)}, map[string]float64{"hd95_mm": 5}, map[string]float64{"hd95_mm": 6}, false, false, 1},
		{"better needs a gain", []gitops.Gate{gate("dice", "mean", "better", 0.01, 0)}, map[string]float64{"dice": 0.80}, map[string]float64{"dice": 0.805}, false, false, 1},
		{"at-least without baseline", []gitops.Gate{gate("dice", "min", "at-least", 0, 0.7)}, nil, map[string]float64{"dice_min": 0.71}, true, true, 0},
		{"at-most fails", []gitops.Gate{gate("hd95_mm", "p95", "at-most", 0, 8)}, nil, map[string]float64{"hd95_mm_p95": 9}, true, false, 1},
		{"relative gate skipped without baseline", []gitops.Gate{gate("dice", "mean", "no-worse", 0, 0)}, nil, map[string]float64{"dice": 0.1}, true, true, 0},
		{"candidate lacks the metric", []gitops.Gate{gate("nsd", "mean", "at-least", 0, 0.5)}, nil, map[string]float64{"dice": 0.9}, true, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := gitops.Default()
			cfg.Promote.Gates = tc.gates
			in := reportInput{cfg: cfg, cand: model(tc.cand), candRef: "pr@1"}
			if !tc.noBase {
				in.base, in.baseRef = model(tc.base), "main@2"
			}
			rep, err := gateReporter{}.report(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if rep.pass != tc.wantPass || len(rep.failed) != tc.wantFailed {
				t.Errorf("pass %v failed %q; want pass %v with %d failed", rep.pass, rep.failed, tc.wantPass, tc.wantFailed)
			}
		})
	}
}

func TestMdEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"batch1", "batch1"},
		{"a|b", `a\|b`},
		{"<!-- x -->", `&lt;\!\-\- x \-\-&gt;`},
		{"[link](http://x)", `\[link\]\(http\://x\)`},
		{"two\nlines", "two lines"},
	}
	for _, tc := range tests {
		if got := mdEscape(tc.in); !cmp.Equal(got, tc.want) {
			t.Errorf("mdEscape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

var unescapedPipe = regexp.MustCompile(`(^|[^\\])\|`)

func FuzzMdEscape(f *testing.F) {
	f.Add("x --> <img src=x onerror=alert(1)> | y")
	f.Add("`code` ![i](u) \r\n")
	f.Fuzz(func(t *testing.T, s string) {
		e := mdEscape(s)
		if strings.ContainsAny(e, "<>\n\r") || unescapedPipe.MatchString(e) || strings.Contains(e, "-->") {
			t.Fatalf("mdEscape(%q) = %q leaves markup", s, e)
		}
		c := mdCode(s)
		if strings.ContainsAny(c, "`<>|\n\r") {
			t.Fatalf("mdCode(%q) = %q leaves markup", s, c)
		}
	})
}
