package gitops

import "testing"

func TestStageLine(t *testing.T) {
	data := []byte(`[[stage]]
name = "a"
deps = ["x"]

[[stage]] # the second
name = "b"
run = """
deps = ["not a key"]
"""
deps = [
  "y",
]

[params.b]
deps = 1
`)
	for _, tt := range []struct {
		i    int
		key  string
		want int
	}{
		{0, "deps", 3},
		{1, "deps", 10},
		{1, "outs", 5}, // not set: the table's header
		{0, "run", 1},
		{2, "deps", 0},
	} {
		if got := StageLine(data, tt.i, tt.key); got != tt.want {
			t.Errorf("StageLine(%d, %q) = %d, want %d", tt.i, tt.key, got, tt.want)
		}
	}
	if got := KeyLine(data, "params.b.deps"); got != 15 {
		t.Errorf("KeyLine(params.b.deps) = %d, want 15", got)
	}
}
