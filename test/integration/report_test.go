package integration

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/report"
	"github.com/medseg/medseg/internal/testenv"
	"github.com/medseg/medseg/internal/testenv/browser"
)

// TestLiveReport builds the auditor's report of a converged sample hospital from the status
// medseg wrote: every device segmented, both policies isolated, an open vendor window listed,
// history present, and the HTML well-formed and self-contained.
//
// With MEDSEG_CHROMIUM set (make test-browser), it also loads the HTML in headless Chromium
// (nothing overflows, the first viewport holds the tiles and the Immediate list, no network
// request) and writes it with screenshots under MEDSEG_REPORT_DIR for a person to look at; the
// hospital then keeps the samples' names, so nothing else may run alongside it.
func TestLiveReport(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	chromium := os.Getenv("MEDSEG_CHROMIUM")
	sfx := "-report"
	if chromium != "" {
		sfx = ""
	}
	startOperator(t)
	devices := applySamples(t, sfx)
	createGateways(t, devices)
	now := time.Now().UTC().Truncate(time.Second)
	grant := accessGrant("acme-firmware-check"+sfx, v1alpha1.ObjectRef{Namespace: "icu" + sfx, Name: "infusion-pump-bed-12"}, "vendor-maintenance", now.Add(-time.Minute), 4*time.Hour)
	g.Expect(env.Client.Create(ctx, &grant)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), &grant) })
	mine := func(g Gomega) report.Input {
		var devs v1alpha1.MedicalDeviceList
		g.Expect(env.Client.List(ctx, &devs)).To(Succeed())
		var pols v1alpha1.SegmentPolicyList
		g.Expect(env.Client.List(ctx, &pols)).To(Succeed())
		in := report.Input{Now: time.Now(), Source: "the live cluster"}
		approvals, err := cli.ListApprovals(ctx, env.Client, "")
		g.Expect(err).NotTo(HaveOccurred())
		for _, e := range approvals.Exceptions {
			if e.Spec.Device.Namespace == "nicu"+sfx {
				in.Approvals.Exceptions = append(in.Approvals.Exceptions, e)
			}
		}
		for _, a := range approvals.Grants {
			if a.Spec.Device.Namespace == "icu"+sfx {
				in.Approvals.Grants = append(in.Approvals.Grants, a)
			}
		}
		for _, d := range devs.Items {
			for _, ns := range sampleNamespaces {
				if d.Namespace == ns+sfx {
					in.Devices = append(in.Devices, d)
				}
			}
		}
		for _, p := range pols.Items {
			if p.Name == "critical-care"+sfx || p.Name == "diagnostics"+sfx {
				in.Policies = append(in.Policies, p)
			}
		}
		return in
	}
	var r *report.Report
	g.Eventually(func(g Gomega) {
		r = report.Build(mine(g))
		s := r.Summary
		g.Expect(s.Devices).To(Equal(5))
		g.Expect(s.Segmented).To(Equal(5), "%+v", s.NotSegmentedByReason)
		g.Expect(s.Policies).To(HaveLen(2))
		for _, p := range s.Policies {
			g.Expect(p.Flatness).To(Equal("Isolated"), p.Name)
		}
		g.Expect(s.Grants).To(HaveLen(1))
		g.Expect(s.Grants[0].State).To(Equal("Open"))
		g.Expect(s.Exceptions).To(HaveLen(1))
		for _, d := range r.Devices {
			g.Expect(d.History).NotTo(BeEmpty(), d.Ref)
			if d.Name == "infusion-pump-bed-12" {
				g.Expect(d.Grants).To(HaveLen(1))
				g.Expect(d.Flows).To(ContainElement(And(HaveField("Name", "vendor-maintenance"), HaveField("Allowed", true))))
			}
		}
	}, timeout, pollInterval).Should(Succeed())

	var html bytes.Buffer
	g.Expect(report.HTML(&html, r)).To(Succeed())
	testenv.CheckReportHTML(t, html.String(), 5)
	var md bytes.Buffer
	g.Expect(report.Markdown(&md, r)).To(Succeed())
	g.Expect(md.String()).To(ContainSubstring("| critical-care" + sfx + " | Enforce | 3 | Isolated | 0 of "))

	if chromium == "" {
		return
	}
	dir := os.Getenv("MEDSEG_REPORT_DIR")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(), "test", "output", "report")
	}
	g.Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	htmlPath := filepath.Join(dir, "sample-hospital.html")
	g.Expect(os.WriteFile(htmlPath, html.Bytes(), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, "sample-hospital.md"), md.Bytes(), 0o644)).To(Succeed())
	// What a person sees: Chromium at 1280×900, checked as the 1,000-device report is
	// (test/browser), and a screenshot of the first screen and of the whole page.
	res, err := browser.Load(ctx, "file://"+htmlPath, browser.Options{Chromium: chromium, Width: 1280, Height: 900,
		Screenshot: filepath.Join(dir, "sample-hospital.png"), FullScreenshot: filepath.Join(dir, "sample-hospital-full.png"),
		Visible: []string{"#tiles", "#urgent"}, Timeout: 2 * time.Minute})
	g.Expect(err).NotTo(HaveOccurred())
	// Nothing overflows its box, the first viewport holds the tiles and the Immediate list, no
	// network request, no console error.
	g.Expect(res.Problems()).To(BeEmpty())
	for _, shot := range []string{"sample-hospital.png", "sample-hospital-full.png"} {
		f, err := os.Open(filepath.Join(dir, shot))
		g.Expect(err).NotTo(HaveOccurred())
		img, err := png.Decode(f)
		_ = f.Close()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(img.Bounds().Dx()).To(Equal(1280))
		g.Expect(colours(img)).To(BeNumerically(">", 20), "the screenshot %s looks blank", shot)
	}
	t.Logf("wrote %s", htmlPath)
}

// colours counts distinct colours on a coarse grid: a blank or failed render has one or two.
func colours(img image.Image) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 12, g >> 12, bl >> 12}] = true
		}
	}
	return len(seen)
}
