package report_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/medseg/medseg/internal/report"
	"github.com/medseg/medseg/internal/report/reporttest"
)

// BenchmarkReport builds the report and writes it in each format for 1,000 and 10,000 devices;
// bytes/op is the size of the output (b.SetBytes), so MB/s compares the formats.
func BenchmarkReport(b *testing.B) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	for _, n := range []int{1000, 10000} {
		in := reporttest.Hospital(n, now)
		b.Run(fmt.Sprintf("build/%d", n), func(b *testing.B) {
			for b.Loop() {
				report.Build(in)
			}
		})
		r := report.Build(in)
		for _, format := range []string{"html", "md", "json"} {
			b.Run(fmt.Sprintf("%s/%d", format, n), func(b *testing.B) {
				var buf bytes.Buffer
				for b.Loop() {
					buf.Reset()
					if err := report.Write(&buf, r, format); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(buf.Len()))
			})
		}
	}
}
