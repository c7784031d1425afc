package reports

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot is one PNG image of a report. Name is a file name (no folders) that
// is safe in a URL; CI commits the PNGs to the assets branch under it.
type Plot struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	PNG   []byte `json:"-"`
}

var (
	colourBetter = color.RGBA{R: 0x2d, G: 0x9c, B: 0x5a, A: 0xff}
	colourWorse  = color.RGBA{R: 0xd7, G: 0x3a, B: 0x31, A: 0xff}
	colourBase   = color.RGBA{R: 0x88, G: 0x88, B: 0x88, A: 0xff}
	colourCand   = color.RGBA{R: 0x1f, G: 0x6f, B: 0xd1, A: 0xff}
)

// Plots draws the report's charts with gonum/plot: the per-case change of
// the primary metric (bars, worst first) when there is a baseline, and
// the distribution of the primary metric and of hd95_mm for each model
// (box plots). Every chart shows case IDs only, never image content.
func Plots(c *Comparison) ([]Plot, error) {
	var out []Plot
	if c.Base != nil && len(c.Cases) > 0 {
		p, err := deltaPlot(c)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	shown := []string{c.Primary}
	if c.Primary != "hd95_mm" {
		shown = append(shown, "hd95_mm")
	}
	for _, m := range shown {
		if _, ok := c.candVals[m]; !ok {
			continue
		}
		p, err := distPlot(c, m)
		if err != nil {
			return nil, err
		}
		if p != nil {
			out = append(out, *p)
		}
	}
	return out, nil
}

func encodePNG(p *plot.Plot, w, h vg.Length) ([]byte, error) {
	c := vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(96), vgimg.UseBackgroundColor(color.White))}
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("draw plot: %w", err)
	}
	return b.Bytes(), nil
}

// deltaPlot: one bar per paired case, the change of the primary metric in
// its direction (up is better), worst first.
func deltaPlot(c *Comparison) (Plot, error) {
	m := c.Primary
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Per-case change of %s (candidate − baseline, up = better)", m)
	p.Y.Label.Text = "gain in " + m
	p.X.Label.Text = fmt.Sprintf("%d paired cases, worst first", len(c.Cases))
	var better, worse plotter.Values
	for _, cd := range c.Cases {
		g := float64(cd.Gain)
		if math.IsNaN(g) {
			g = 0
		}
		if math.IsInf(g, 0) { // an empty mask: draw at the plot's edge
			g = math.Copysign(1, g) * maxFinite(c.Cases)
		}
		if g >= 0 {
			better, worse = append(better, g), append(worse, 0)
		} else {
			better, worse = append(better, 0), append(worse, g)
		}
	}
	width := vg.Length(math.Max(1, math.Min(12, 600/float64(len(c.Cases)))))
	for _, set := range []struct {
		v   plotter.Values
		col color.Color
	}{{better, colourBetter}, {worse, colourWorse}} {
		bars, err := plotter.NewBarChart(set.v, width)
		if err != nil {
			return Plot{}, err
		}
		bars.Color = set.col
		bars.LineStyle.Width = 0
		p.Add(bars)
	}
	p.Add(plotter.NewGrid())
	p.X.Tick.Marker = plot.TickerFunc(func(float64, float64) []plot.Tick { return nil })
	b, err := encodePNG(p, 8*vg.Inch, 3.5*vg.Inch)
	if err != nil {
		return Plot{}, err
	}
	return Plot{Name: "delta-" + fileSafe(m) + ".png", Title: "Per-case change of " + m, PNG: b}, nil
}

func maxFinite(cases []CaseDiff) float64 {
	mx := 0.0
	for _, cd := range cases {
		if g := math.Abs(float64(cd.Gain)); !math.IsInf(g, 0) && !math.IsNaN(g) {
			mx = max(mx, g)
		}
	}
	if mx == 0 {
		return 1
	}
	return mx
}

// distPlot: box plots of metric m over each model's cases (finite values).
func distPlot(c *Comparison, m string) (*Plot, error) {
	p := plot.New()
	p.Title.Text = "Distribution of " + m + " (" + DirectionOf(m).String() + " is better)"
	p.Y.Label.Text = m
	var names []string
	sets := []struct {
		name string
		v    []float64
		col  color.Color
	}{}
	if c.Base != nil {
		sets = append(sets, struct {
			name string
			v    []float64
			col  color.Color
		}{"baseline", c.baseVals[m], colourBase})
	}
	sets = append(sets, struct {
		name string
		v    []float64
		col  color.Color
	}{"candidate", c.candVals[m], colourCand})
	drawn := 0
	for i, s := range sets {
		var v plotter.Values
		for _, x := range s.v {
			if !math.IsInf(x, 0) && !math.IsNaN(x) {
				v = append(v, x)
			}
		}
		names = append(names, fmt.Sprintf("%s (n=%d)", s.name, len(v)))
		if len(v) == 0 {
			continue
		}
		box, err := plotter.NewBoxPlot(vg.Points(40), float64(i), v)
		if err != nil {
			return nil, err
		}
		box.FillColor = s.col
		p.Add(box)
		drawn++
	}
	if drawn == 0 {
		return nil, nil
	}
	p.NominalX(names...)
	p.Add(plotter.NewGrid())
	b, err := encodePNG(p, 5*vg.Inch, 3.5*vg.Inch)
	if err != nil {
		return nil, err
	}
	return &Plot{Name: "dist-" + fileSafe(m) + ".png", Title: "Distribution of " + m, PNG: b}, nil
}

// fileSafe maps a metric name to a file-name part ("nsd@1" → "nsd-1").
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}
