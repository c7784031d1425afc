package reports

import (
	"bytes"
	"context"
	"image"
	"image/color"
	_ "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/medcad/medcad/internal/testenv"
)

// consoleRE finds what the page wrote to the browser console (Chromium
// logs console messages as ":CONSOLE" with --enable-logging=stderr).
var consoleRE = regexp.MustCompile(`(?m)^.*:CONSOLE[:(].*$`)

// openInChromium renders page in headless Chromium and returns its console
// lines and the screenshot.
func openInChromium(t *testing.T, chromium string, page []byte) ([]string, image.Image) {
	t.Helper()
	dir := t.TempDir()
	htmlPath := filepath.Join(dir, "report.html")
	shot := filepath.Join(dir, "shot.png")
	if err := os.WriteFile(htmlPath, page, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--enable-logging=stderr", "--v=0",
		"--window-size=1200,1800", "--screenshot="+shot, "file://"+htmlPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.Bytes())
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v\n%s", err, stderr.Bytes())
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return consoleRE.FindAllString(stderr.String(), -1), img
}

// pixelStats counts the non-white pixels of img and those near colour c.
func pixelStats(img image.Image, c color.RGBA) (nonWhite, near, total int) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r8, g8, b8 := int(r>>8), int(g>>8), int(bl>>8)
			total++
			if r8 < 245 || g8 < 245 || b8 < 245 {
				nonWhite++
			}
			if abs(r8-int(c.R)) < 12 && abs(g8-int(c.G)) < 12 && abs(b8-int(c.B)) < 12 {
				near++
			}
		}
	}
	return
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestHTMLInChromium opens the HTML reports (with plots) in headless
// Chromium: no console message, and a screenshot that shows the verdict
// banner in its colour and is not blank.
func TestHTMLInChromium(t *testing.T) {
	chromium := testenv.LookPath(t, "chromium")
	// The detector works: a page that logs to the console is caught.
	if lines, _ := openInChromium(t, chromium, []byte(`<!DOCTYPE html><title>x</title><script>console.error("boom")</script>`)); len(lines) == 0 {
		t.Fatal("a console.error was not detected; the check below would prove nothing")
	}
	for _, tt := range []struct {
		fixture string
		banner  color.RGBA
	}{
		{"improvement", color.RGBA{0x1a, 0x7f, 0x37, 0xff}},
		{"regression", color.RGBA{0xcf, 0x22, 0x2e, 0xff}},
	} {
		c := compareFixture(t, tt.fixture)
		plots, err := Plots(c)
		if err != nil {
			t.Fatal(err)
		}
		page, err := HTML(c, plots)
		if err != nil {
			t.Fatal(err)
		}
		lines, img := openInChromium(t, chromium, page)
		if len(lines) > 0 {
			t.Errorf("%s: console messages:\n%q", tt.fixture, lines)
		}
		nonWhite, banner, total := pixelStats(img, tt.banner)
		if nonWhite < total/20 {
			t.Errorf("%s: screenshot is nearly blank: %d of %d pixels not white", tt.fixture, nonWhite, total)
		}
		if banner < 5000 {
			t.Errorf("%s: the verdict banner colour covers only %d pixels", tt.fixture, banner)
		}
	}
}
