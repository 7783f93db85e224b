package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	reportpkg "github.com/medseg/medseg/internal/report"
	"github.com/medseg/medseg/internal/report/reporttest"
	"github.com/medseg/medseg/internal/testenv/browser"
)

// ReportResult is one hospital size's report: how long it takes to build and write, how big it
// is, and how long headless Chromium takes to load it (median of three loads).
type ReportResult struct {
	Devices    int     `json:"devices"`
	BuildMs    float64 `json:"buildMs"`
	HTMLMs     float64 `json:"htmlMs"`
	HTMLBytes  int     `json:"htmlBytes"`
	MDBytes    int     `json:"mdBytes"`
	JSONBytes  int     `json:"jsonBytes"`
	LoadMs     float64 `json:"loadMs"`
	Elements   int     `json:"elements"`
	LoadRatio  float64 `json:"loadRatio"`
	BuildRatio float64 `json:"buildRatio"`
}

// TestBenchReport measures the report at MEDSEG_BENCH_REPORT_SIZES devices (default 1,000 and
// 10,000) against the 5-device report measured in the same run (the baseline of the ratios):
// build and HTML time, HTML, Markdown and JSON size, and Chromium's load time (navigation start
// to the load event). make bench-report runs it; it needs MEDSEG_CHROMIUM.
func TestBenchReport(t *testing.T) {
	chromium := os.Getenv("MEDSEG_CHROMIUM")
	if chromium == "" {
		t.Skip("MEDSEG_CHROMIUM is not set: make bench-report installs Chromium and runs this")
	}
	sizes := []int{5}
	for _, s := range strings.Split(envOr("MEDSEG_BENCH_REPORT_SIZES", "1000,10000"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		must(t, err)
		sizes = append(sizes, n)
	}
	dir := t.TempDir()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	var results []ReportResult
	for _, n := range sizes {
		in := reporttest.Hospital(n, now)
		start := time.Now()
		r := reportpkg.Build(in)
		built := time.Since(start)
		var h, md, js bytes.Buffer
		start = time.Now()
		must(t, reportpkg.HTML(&h, r))
		written := time.Since(start)
		must(t, reportpkg.Markdown(&md, r))
		must(t, reportpkg.JSON(&js, r))
		page := filepath.Join(dir, fmt.Sprintf("report-%d.html", n))
		must(t, os.WriteFile(page, h.Bytes(), 0o644))
		var loads []float64
		elements := 0
		for range 3 {
			res, err := browser.Load(context.Background(), "file://"+page, browser.Options{Chromium: chromium, SkipOverflow: true, Timeout: 5 * time.Minute})
			must(t, err)
			if len(res.Requests) > 0 {
				t.Errorf("%d devices: the report made network requests: %v", n, res.Requests)
			}
			loads = append(loads, float64(res.Load.Microseconds())/1000)
			elements = res.Elements
		}
		sort.Float64s(loads)
		results = append(results, ReportResult{Devices: n, BuildMs: ms(built), HTMLMs: ms(written), HTMLBytes: h.Len(), MDBytes: md.Len(), JSONBytes: js.Len(),
			LoadMs: loads[1], Elements: elements})
	}
	base := results[0]
	for i := range results {
		r := &results[i]
		r.LoadRatio, r.BuildRatio = r.LoadMs/base.LoadMs, (r.BuildMs+r.HTMLMs)/(base.BuildMs+base.HTMLMs)
		t.Logf("%6d devices: build %.0f ms + HTML %.0f ms; HTML %.1f MB, Markdown %.1f MB, JSON %.1f MB; Chromium load %.0f ms (%.1f× the 5-device report), %d elements",
			r.Devices, r.BuildMs, r.HTMLMs, mb(r.HTMLBytes), mb(r.MDBytes), mb(r.JSONBytes), r.LoadMs, r.LoadRatio, r.Elements)
	}
	writeJSON(t, "bench-report.json", results)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mb(n int) float64 { return float64(n) / 1e6 }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
