package reports

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medcad/medcad/internal/testenv"
)

// chromium runs headless Chromium on page with the extra arguments and
// returns its stdout.
func chromium(t *testing.T, exe string, page []byte, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	htmlPath := filepath.Join(dir, "page.html")
	if err := os.WriteFile(htmlPath, page, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(dir, "profile")}, args...)
	cmd := exec.CommandContext(ctx, exe, append(args, "file://"+htmlPath)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.Bytes())
	}
	return stdout.Bytes()
}

var (
	pdfPageRE  = regexp.MustCompile(`/Type\s*/Page\b[^s]`)
	mediaBoxRE = regexp.MustCompile(`/MediaBox\s*\[\s*0\s+0\s+([0-9.]+)\s+([0-9.]+)\s*\]`)
)

// printPDF prints page to PDF as a user's browser would (no header or
// footer) and returns the number of pages, checking each is A4.
func printPDF(t *testing.T, exe string, page []byte) int {
	t.Helper()
	out := filepath.Join(t.TempDir(), "page.pdf")
	chromium(t, exe, page, "--no-pdf-header-footer", "--print-to-pdf="+out)
	pdf, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	pages := len(pdfPageRE.FindAll(pdf, -1))
	boxes := mediaBoxRE.FindAllSubmatch(pdf, -1)
	if len(boxes) != pages || pages == 0 {
		t.Fatalf("PDF: %d pages, %d media boxes", pages, len(boxes))
	}
	for _, b := range boxes {
		w, _ := strconv.ParseFloat(string(b[1]), 64)
		h, _ := strconv.ParseFloat(string(b[2]), 64)
		if abs(int(w)-595) > 1 || abs(int(h)-842) > 1 { // A4 in points
			t.Fatalf("PDF page is %.1f × %.1f pt, want A4 (595 × 842)", w, h)
		}
	}
	return pages
}

// a4Width is the printable width of an A4 page with the audit's margins
// (210 mm − 2 × 12 mm) in CSS pixels.
const a4Width = 703 // 186 mm × 96 px / 25.4 mm

// overflowScript reports every element that reaches beyond the page's
// width, into the element #overflow.
const overflowScript = `<script>
addEventListener("load", () => {
  const w = document.documentElement.clientWidth, bad = [];
  if (document.documentElement.scrollWidth > w + 1) bad.push("document " + document.documentElement.scrollWidth + "px");
  for (const e of document.body.querySelectorAll("*")) {
    const r = e.getBoundingClientRect();
    if (r.right > w + 1) bad.push(e.tagName + " " + Math.round(r.right) + "px: " + e.textContent.slice(0, 40));
  }
  const p = document.createElement("pre");
  p.id = "overflow";
  p.textContent = "width " + w + "\n" + bad.join("\n");
  document.body.appendChild(p);
});
</script>`

var overflowRE = regexp.MustCompile(`(?s)<pre id="overflow">width ([0-9]+)\n?(.*?)</pre>`)

// overflow lays page out as printed on A4 (its print styles applied, the
// viewport as wide as the printable area) and returns what overflows.
func overflow(t *testing.T, exe string, page []byte) []string {
	t.Helper()
	s := string(page)
	s = regexp.MustCompile(`<meta http-equiv="Content-Security-Policy"[^>]*>`).ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, "@media print{", "@media all{")
	s = strings.Replace(s, "</body>", overflowScript+"</body>", 1)
	dom := chromium(t, exe, []byte(s), fmt.Sprintf("--window-size=%d,1200", a4Width), "--dump-dom")
	m := overflowRE.FindSubmatch(dom)
	if m == nil {
		t.Fatalf("the overflow check did not run:\n%.2000s", dom)
	}
	if w, _ := strconv.Atoi(string(m[1])); abs(w-a4Width) > 20 {
		t.Fatalf("viewport %d px wide, want the A4 printable width %d px", w, a4Width)
	}
	if len(bytes.TrimSpace(m[2])) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(m[2])), "\n")
}

// TestAuditPrintsOnA4 prints the HTML audit with headless Chromium: A4
// pages, a page count that grows with the cases (tables flow over pages
// instead of being cut), and nothing wider than the printable area.
func TestAuditPrintsOnA4(t *testing.T) {
	exe := testenv.LookPath(t, "chromium")
	// The detector works: a table with an unbreakable wide cell is caught.
	wide := []byte(`<!DOCTYPE html><html><head><style>@page{size:A4;margin:14mm 12mm}</style></head><body><table><tr><td>` +
		strings.Repeat("x", 400) + `</td></tr></table></body></html>`)
	if got := overflow(t, exe, wide); len(got) == 0 {
		t.Fatal("an overflowing table was not detected; the check below would prove nothing")
	}

	small := audit(t, 3)
	page, err := AuditHTML(small)
	if err != nil {
		t.Fatal(err)
	}
	if got := overflow(t, exe, page); len(got) > 0 {
		t.Errorf("elements wider than an A4 page:\n%s", strings.Join(got, "\n"))
	}
	pages := printPDF(t, exe, page)
	if pages < 2 || pages > 8 {
		t.Errorf("the audit of %d cases prints on %d A4 pages, want 2 to 8", len(small.Evaluation.Cases), pages)
	}

	// Ten times the cases: the case table runs over more pages.
	big := audit(t, 3)
	cases := big.Evaluation.Cases
	for i := 1; i < 10; i++ {
		for _, c := range cases {
			c.Case = fmt.Sprintf("%s-%d", c.Case, i)
			big.Evaluation.Cases = append(big.Evaluation.Cases, c)
		}
	}
	page, err = AuditHTML(big)
	if err != nil {
		t.Fatal(err)
	}
	if got := overflow(t, exe, page); len(got) > 0 {
		t.Errorf("%d cases: elements wider than an A4 page:\n%s", len(big.Evaluation.Cases), strings.Join(got, "\n"))
	}
	if more := printPDF(t, exe, page); more < pages+3 {
		t.Errorf("%d cases print on %d pages, %d cases on %d: the case table does not flow over pages", len(cases), pages, len(big.Evaluation.Cases), more)
	} else {
		t.Logf("A4 pages: %d cases → %d, %d cases → %d", len(cases), pages, len(big.Evaluation.Cases), more)
	}
}
