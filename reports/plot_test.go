package reports

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlots(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture string
		names   []string
	}{
		{"regression", []string{"delta-dice.png", "dist-dice.png", "dist-hd95_mm.png"}},
		{"first-model", []string{"dist-dice.png", "dist-hd95_mm.png"}},
	}
	for _, tt := range tests {
		c := compareFixture(t, tt.fixture)
		plots, err := Plots(c)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range plots {
			names = append(names, p.Name)
			img, err := png.Decode(bytes.NewReader(p.PNG))
			if err != nil {
				t.Fatalf("%s %s: %v", tt.fixture, p.Name, err)
			}
			if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
				t.Errorf("%s: %v is too small", p.Name, b)
			}
			if colours(img) < 3 {
				t.Errorf("%s %s: the image is blank", tt.fixture, p.Name)
			}
		}
		if d := cmp.Diff(tt.names, names); d != "" {
			t.Errorf("%s: plots (-want +got):\n%s", tt.fixture, d)
		}
	}
	// The per-case bars: a regression draws red bars, an improvement green.
	c := compareFixture(t, "regression")
	plots, _ := Plots(c)
	img, _ := png.Decode(bytes.NewReader(plots[0].PNG))
	if !hasColour(img, colourWorse) || hasColour(img, colourBetter) {
		t.Error("the regression's per-case bars should all be red")
	}
}

func colours(img image.Image) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	return len(seen)
}

func hasColour(img image.Image, c interface{ RGBA() (r, g, b, a uint32) }) bool {
	wr, wg, wb, _ := c.RGBA()
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r == wr && g == wg && bl == wb {
				return true
			}
		}
	}
	return false
}
