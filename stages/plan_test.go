package stages

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/gitops"
)

type fakeWorkspace struct {
	datasets []string
	paths    []string
}

func (w fakeWorkspace) IsDataset(n string) bool {
	for _, d := range w.datasets {
		if d == n {
			return true
		}
	}
	return false
}

func (w fakeWorkspace) Datasets() []string { return w.datasets }

func (w fakeWorkspace) PathExists(p string) bool {
	for _, x := range w.paths {
		if x == p {
			return true
		}
	}
	return false
}

func st(name, run string, deps, outs []string, foreach string) gitops.Stage {
	return gitops.Stage{Name: name, Run: run, Deps: deps, Outs: outs, Foreach: foreach}
}

func TestNewPlanOrder(t *testing.T) {
	cfg := gitops.Default()
	cfg.Stages = []gitops.Stage{
		st("eval", "medcad eval --pred {predict.out} --out {out}", []string{"predict"}, []string{"build/eval"}, ""),
		st("train", "medcad segment train --data {ingest.out} --out {out}", []string{"ingest", "params.toml"}, []string{"build/model"}, ""),
		st("ingest", "x {case.image} {out}", []string{"data/*"}, []string{"build/nnunet"}, "case"),
		st("predict", "x {train.out} {case} {out}", []string{"train", "build/nnunet/imagesTr"}, []string{"build/pred"}, "case"),
	}
	p, err := NewPlan(cfg, fakeWorkspace{datasets: []string{"b1", "b2"}, paths: []string{"params.toml"}})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range p.Stages {
		order = append(order, s.Name)
	}
	if diff := cmp.Diff([]string{"ingest", "train", "predict", "eval"}, order); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	pr := p.Stage("predict")
	if diff := cmp.Diff([]string{"train", "ingest"}, pr.Upstream); diff != "" {
		t.Errorf("predict upstream (path under ingest's out counts) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b1", "b2"}, p.DatasetsOf(pr)); diff != "" {
		t.Errorf("datasets of predict (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"params.toml"}, p.Stage("train").Paths); diff != "" {
		t.Errorf("train paths (-want +got):\n%s", diff)
	}
	sel, err := p.Select([]string{"train"})
	if err != nil || len(sel) != 2 || sel[0].Name != "ingest" || sel[1].Name != "train" {
		t.Errorf("Select(train) = %v, %v", sel, err)
	}
}

func TestNewPlanErrors(t *testing.T) {
	ws := fakeWorkspace{datasets: []string{"b1"}, paths: []string{"x.txt"}}
	tests := []struct {
		name   string
		stages []gitops.Stage
		want   string
	}{
		{"cycle", []gitops.Stage{
			st("a", "x {out}", []string{"c"}, []string{"a"}, ""),
			st("b", "x {out}", []string{"a"}, []string{"b"}, ""),
			st("c", "x {out}", []string{"b"}, []string{"c"}, ""),
			st("d", "x {out}", nil, []string{"d"}, ""),
		}, `stage "a": dependency cycle among stages a, b, c`},
		{"self", []gitops.Stage{st("a", "x", []string{"a"}, nil, "")}, `stage "a": depends on itself`},
		{"unknown dep", []gitops.Stage{st("a", "x", []string{"nope"}, nil, "")}, `stage "a": dep "nope" is not a stage, a dataset or a workspace path`},
		{"escaping dep", []gitops.Stage{st("a", "x", []string{"../etc"}, nil, "")}, `stage "a": dep "../etc" is not a stage`},
		{"out claimed twice", []gitops.Stage{
			st("a", "x", nil, []string{"build/m"}, ""),
			st("b", "x", nil, []string{"build/m/sub"}, ""),
		}, `stage "b": output "build/m/sub" is also claimed by stage "a" ("build/m")`},
		{"out absolute", []gitops.Stage{st("a", "x", nil, []string{"/tmp/x"}, "")}, `stage "a": out "/tmp/x": not a relative slash path`},
		{"undeclared out", []gitops.Stage{st("a", "x {out}", nil, nil, "")}, `stage "a": uses {out} but declares no outs`},
		{"upstream without outs", []gitops.Stage{
			st("a", "x", nil, nil, ""),
			st("b", "x {a.out}", []string{"a"}, nil, ""),
		}, `stage "b": uses {a.out} but stage "a" declares no outs`},
		{"not a dep", []gitops.Stage{
			st("a", "x {out}", nil, []string{"a"}, ""),
			st("b", "x {a.out}", nil, nil, ""),
		}, `stage "b": uses {a.out} but "a" is not among its deps`},
		{"case outside foreach", []gitops.Stage{st("a", "x {case}", []string{"b1"}, nil, "")}, `stage "a": uses {case} but is not a foreach = "case" stage`},
		{"foreach without data", []gitops.Stage{st("a", "x {case}", []string{"x.txt"}, nil, "case")}, `stage "a": foreach = "case" but no dataset among its deps`},
		{"unknown placeholder", []gitops.Stage{st("a", "x {outt}", nil, nil, "")}, `stage "a": unknown placeholder {outt}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := gitops.Default()
			cfg.Stages = tt.stages
			_, err := NewPlan(cfg, ws)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant prefix %s", err, tt.want)
			}
		})
	}
}

func TestKeyChangesWithInputs(t *testing.T) {
	base := keyInput{Run: "x", Outs: []string{"o"}, Deps: map[string]string{"a": "1"}, Params: map[string]string{"t.lr": "0.1"}}
	k0 := base.key()
	if k0 != base.key() {
		t.Fatal("key not deterministic")
	}
	variants := []keyInput{base, base, base, base, base}
	variants[0].Run = "y"
	variants[1].Deps = map[string]string{"a": "2"}
	variants[2].Params = map[string]string{"t.lr": "0.05"}
	variants[3].Env = "e"
	variants[4].Algorithm = "medcad segment train 2"
	for i, v := range variants {
		if v.key() == k0 {
			t.Errorf("variant %d has the same key", i)
		}
	}
}

func TestFlattenParams(t *testing.T) {
	all := map[string]map[string]any{"train": {"lr": 0.1, "aug": map[string]any{"flip": true}, "name": "a b", "layers": []any{int64(2), int64(3)}}}
	got, err := flattenParams(all, []string{"train"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"train.lr": "0.1", "train.aug.flip": "true", "train.name": `"a b"`, "train.layers": "[2, 3]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	cfg := gitops.Default()
	cfg.Stages = []gitops.Stage{
		st("a", "x {out}", []string{"trian"}, []string{"build/m"}, ""),
		st("b", "x {datset.out}", nil, []string{"build/m"}, ""),
		{Name: "train", Run: "medcad segment train --data d --params {params.toml} --out {out}", Params: []string{"train"}, Outs: []string{"build/t"}},
	}
	cfg.Params["train"] = map[string]any{"epochs": "six", "hidden": int64(16)}
	var got []string
	for _, p := range Check(cfg, fakeWorkspace{}) {
		got = append(got, fmt.Sprintf("%d %s %v", p.Stage, p.Key, p.Err))
	}
	want := []string{
		`1 outs stage "b": output "build/m" is also claimed by stage "a" ("build/m")`,
		`0 deps stage "a": dep "trian" is not a stage, a dataset or a workspace path`,
		`1 run stage "b": uses {datset.out} but there is no stage "datset"`,
		`-1 params.train.epochs stage "train": key "params.train.epochs": wrong type: string, want integer`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Check =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
