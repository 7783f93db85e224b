// Package browser checks the auditor's report as people see it: rendered by headless Chromium
// (make test-browser installs it from Debian's packages and sets MEDSEG_CHROMIUM).
package browser

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medseg/medseg/internal/report"
	"github.com/medseg/medseg/internal/report/reporttest"
	"github.com/medseg/medseg/internal/testenv"
	"github.com/medseg/medseg/internal/testenv/browser"
)

// filterScript types into the report's filter and returns how many device lines stay visible
// and what the filter says, after its debounce.
const filterScript = `new Promise(resolve => {
  const q = document.getElementById('q');
  q.value = 'ctscanner immediate';
  q.dispatchEvent(new Event('input'));
  setTimeout(() => {
    const shown = [...document.querySelectorAll('details.dev')].filter(d => !d.hidden).length;
    resolve(shown + '|' + document.getElementById('qn').textContent);
  }, 600);
})`

// TestLargeReportInBrowser renders the report of a 1,000-device hospital (two zones, one in
// Audit) in headless Chromium at 1280×900 and checks what a person would notice: nothing
// overflows its box (HTML or SVG text), the first viewport holds the summary tiles and the
// Immediate list, the page makes no network request and logs no error, the filter finds the
// devices it should, and printing gives a summary of a few pages with the devices as appendix.
// It writes the screenshots, the HTML and the PDF under MEDSEG_REPORT_DIR (test/output/report).
func TestLargeReportInBrowser(t *testing.T) {
	chromium := os.Getenv("MEDSEG_CHROMIUM")
	if chromium == "" {
		t.Skip("MEDSEG_CHROMIUM is not set: make test-browser installs Chromium and runs this")
	}
	dir := reportDir(t)
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	r := report.Build(reporttest.Hospital(1000, now))
	var html bytes.Buffer
	if err := report.HTML(&html, r); err != nil {
		t.Fatal(err)
	}
	testenv.CheckReportHTML(t, html.String(), 1000)
	page := filepath.Join(dir, "hospital-1000.html")
	if err := os.WriteFile(page, html.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pdf := filepath.Join(dir, "hospital-1000.pdf")
	res, err := browser.Load(context.Background(), "file://"+page, browser.Options{Chromium: chromium, Width: 1280, Height: 900,
		Screenshot: filepath.Join(dir, "hospital-1000.png"), FullScreenshot: filepath.Join(dir, "hospital-1000-full.png"), PDF: pdf,
		Visible: []string{"#tiles", "#urgent"}, Script: filterScript, Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, res)

	want := 0
	for _, d := range r.Devices {
		if d.DeviceType == "CTScanner" && d.Priority == "Immediate" {
			want++
		}
	}
	shown, said, _ := strings.Cut(res.Script, "|")
	if n, _ := strconv.Atoi(shown); want == 0 || n != want || said != fmt.Sprintf("%d devices match", want) {
		t.Errorf("filtering for 'ctscanner immediate' shows %q (%s), want %d", shown, said, want)
	}

	// Printing: the summary and the diagram first, then the devices as an appendix.
	data, err := os.ReadFile(pdf)
	if err != nil {
		t.Fatal(err)
	}
	pages := browser.PDFPages(data)
	if pages < 10 || pages > 400 {
		t.Errorf("the printed report has %d pages: want the per-device appendix and no more than a few pages per 10 devices", pages)
	}
	t.Logf("1,000 devices: %d bytes of HTML, %d elements, loaded in %v; printed to %d pages (%d bytes of PDF)", html.Len(), res.Elements, res.Load, pages, len(data))
}

// TestSmallReportInBrowser does the same for the sample hospital's report computed from files
// (5 devices: every device drawn, every conduit a curve).
func TestSmallReportInBrowser(t *testing.T) {
	chromium := os.Getenv("MEDSEG_CHROMIUM")
	if chromium == "" {
		t.Skip("MEDSEG_CHROMIUM is not set: make test-browser installs Chromium and runs this")
	}
	dir := reportDir(t)
	r := report.Build(reporttest.Hospital(5, time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)))
	var html bytes.Buffer
	if err := report.HTML(&html, r); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "hospital-5.html")
	if err := os.WriteFile(page, html.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := browser.Load(context.Background(), "file://"+page, browser.Options{Chromium: chromium, Width: 1280, Height: 900,
		FullScreenshot: filepath.Join(dir, "hospital-5-full.png"), Visible: []string{"#tiles", "#urgent"}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, res)
}

// checkPage holds a loaded report to what can be checked automatically.
func checkPage(t *testing.T, res *browser.Result) {
	t.Helper()
	for _, p := range res.Problems() {
		t.Error(p)
	}
}

func reportDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MEDSEG_REPORT_DIR")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(), "test", "output", "report")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
