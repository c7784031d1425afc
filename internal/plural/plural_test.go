package plural

import "testing"

func TestOf(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{{0, "0 cases"}, {1, "1 case"}, {2, "2 cases"}, {-1, "-1 cases"}} {
		if got := Of(tt.n, "case"); got != tt.want {
			t.Errorf("Of(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	if Noun(1, "file") != "file" || Noun(3, "file") != "files" {
		t.Error("Noun")
	}
}
