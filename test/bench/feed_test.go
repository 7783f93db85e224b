package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/feed"
	"github.com/medseg/medseg/internal/testenv"
)

// TestBenchFeeds: the feeds at hospital scale against a real API server. MEDSEG_BENCH_FEED_N
// devices (make bench: 10,000; make test: 200) of 50 models, each with four CVEs a scanner
// found; a KEV catalog of 1,500 entries, an EPSS file of 300,000 rows and 50 CSAF VEX documents
// (one per model, 20 statements each). For VEX, KEV and EPSS in turn: the time to read, to list
// the devices, to plan, to apply, and the writes; then every feed again, which must write
// nothing. The baseline is reading the feed files, the least any tool must do.
func TestBenchFeeds(t *testing.T) {
	if os.Getenv("MEDSEG_BENCH_CHILD") != "" {
		t.Skip("child process")
	}
	n := envInt(t, "MEDSEG_BENCH_FEED_N", 200)
	const models, perModel = 50, 20
	log.SetLogger(logr.Discard())
	env, err := testenv.StartWith(testenv.Options{MedsegCRDs: true})
	must(t, err)
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	c := env.Client
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(7, 11))
	cve := func(m, k int) string { return fmt.Sprintf("CVE-2026-%d", 100000+m*100+k) }

	// The devices: 50 models, firmware 1.0 to 1.4, four CVEs of their model each.
	nss := max(1, n/500)
	for i := range nss {
		must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("feeds-%d", i)}}))
	}
	start := time.Now()
	parallel(n, func(i int) {
		m := i % models
		d := benchDevice(fmt.Sprintf("dev-%d", i), fmt.Sprintf("feeds-%d", i%nss), "gw", i)
		d.Spec.Identity = v1alpha1.DeviceIdentity{Manufacturer: fmt.Sprintf("Vendor %d", m), Model: fmt.Sprintf("Model %d", m), FirmwareVersion: fmt.Sprintf("1.%d", i%5)}
		d.Spec.Vulnerabilities = nil
		for k := range 4 {
			d.Spec.Vulnerabilities = append(d.Spec.Vulnerabilities, v1alpha1.Vulnerability{ID: cve(m, (i+k*3)%perModel), CVSS: "7.5", Source: "scanner"})
		}
		must(t, c.Create(ctx, d))
	})
	t.Logf("created %d devices in %.1fs", n, time.Since(start).Seconds())

	// The feeds, in their real formats.
	var mappings []feed.Mapping
	for m := range models {
		mappings = append(mappings, feed.Mapping{Manufacturer: fmt.Sprintf("Vendor %d", m), Model: fmt.Sprintf("Model %d", m), Vendor: fmt.Sprintf("Vendor %d", m), Product: fmt.Sprintf("Model %d", m)})
		raw, err := json.Marshal(csafFor(m, perModel, cve))
		must(t, err)
		must(t, os.MkdirAll(filepath.Join(dir, "vex"), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "vex", fmt.Sprintf("vendor-%02d.json", m)), raw, 0o600))
	}
	var kev struct {
		Title           string           `json:"title"`
		CatalogVersion  string           `json:"catalogVersion"`
		DateReleased    string           `json:"dateReleased"`
		Count           int              `json:"count"`
		Vulnerabilities []map[string]any `json:"vulnerabilities"`
	}
	kev.Title, kev.CatalogVersion, kev.DateReleased = "CISA Catalog of Known Exploited Vulnerabilities", "2026.12.01", "2026-12-01T16:00:00.000Z"
	for i := range 1500 {
		id := fmt.Sprintf("CVE-2019-%d", 10000+i)
		if i < 300 { // 300 of the 1,000 device CVEs are exploited
			id = cve(i%models, i/models%perModel)
		}
		kev.Vulnerabilities = append(kev.Vulnerabilities, map[string]any{"cveID": id, "vendorProject": "V", "product": "P", "vulnerabilityName": "N",
			"dateAdded": "2026-11-01", "shortDescription": "D", "requiredAction": "A", "dueDate": "2026-11-22", "knownRansomwareCampaignUse": "Unknown", "notes": "", "cwes": []string{}})
	}
	kev.Count = len(kev.Vulnerabilities)
	raw, err := json.Marshal(kev)
	must(t, err)
	kevFile := filepath.Join(dir, "kev.json")
	must(t, os.WriteFile(kevFile, raw, 0o600))
	var epss bytes.Buffer
	epss.WriteString("#model_version:v2025.03.14,score_date:2026-12-01T12:55:00Z\ncve,epss,percentile\n")
	for i := range 300000 {
		id := fmt.Sprintf("CVE-2020-%d", 100000+i)
		if i < models*perModel {
			id = cve(i/perModel, i%perModel)
		}
		fmt.Fprintf(&epss, "%s,%.5f,%.5f\n", id, r.Float64(), r.Float64())
	}
	epssFile := filepath.Join(dir, "epss_scores-2026-12-01.csv")
	must(t, os.WriteFile(epssFile, epss.Bytes(), 0o600))

	type phase struct {
		Feed                                             string
		Records                                          int
		ReadSeconds, ListSeconds, PlanSeconds, ApplySecs float64
		Writes, Unchanged, RerunWrites                   int
	}
	var phases []phase
	run := func(kind string, source string) phase {
		ph := phase{Feed: kind}
		t0 := time.Now()
		docs, err := feed.Read(ctx, source, nil)
		must(t, err)
		f, _, err := feed.Parse(kind, docs, false, mappings)
		must(t, err)
		ph.Records = f.Records
		ph.ReadSeconds = time.Since(t0).Seconds()
		t1 := time.Now()
		var devs v1alpha1.MedicalDeviceList
		must(t, c.List(ctx, &devs))
		ts := make([]feed.Target, len(devs.Items))
		for i := range devs.Items {
			ts[i] = feed.ClusterTarget(&devs.Items[i], f.Manager)
		}
		ph.ListSeconds = time.Since(t1).Seconds()
		t2 := time.Now()
		p := f.Plan(ts)
		ph.PlanSeconds = time.Since(t2).Seconds()
		t3 := time.Now()
		must(t, cli.ApplyFeed(ctx, c, io.Discard, p, "none"))
		ph.ApplySecs = time.Since(t3).Seconds()
		ph.Writes, ph.Unchanged = len(p.Devices), p.Unchanged
		return ph
	}
	feeds := []struct{ kind, source string }{{"vex", filepath.Join(dir, "vex")}, {"kev", kevFile}, {"epss", epssFile}}
	for _, f := range feeds {
		phases = append(phases, run(f.kind, f.source))
	}
	// A rerun of every feed: nothing may be written.
	gens := map[string]int64{}
	var devs v1alpha1.MedicalDeviceList
	must(t, c.List(ctx, &devs))
	for _, d := range devs.Items {
		gens[d.Namespace+"/"+d.Name] = d.Generation
	}
	for i, f := range feeds {
		phases[i].RerunWrites = run(f.kind, f.source).Writes
	}
	must(t, c.List(ctx, &devs))
	changed := 0
	for _, d := range devs.Items {
		if gens[d.Namespace+"/"+d.Name] != d.Generation {
			changed++
		}
	}
	for _, ph := range phases {
		t.Logf("%-4s %7d records: read %.2fs, list %.2fs, plan %.2fs (%.2f× the read), apply %.1fs; writes %d (%d devices unchanged), rerun writes %d",
			ph.Feed, ph.Records, ph.ReadSeconds, ph.ListSeconds, ph.PlanSeconds, ph.PlanSeconds/ph.ReadSeconds, ph.ApplySecs, ph.Writes, ph.Unchanged, ph.RerunWrites)
		if ph.RerunWrites != 0 {
			t.Errorf("%s: a rerun wrote %d devices", ph.Feed, ph.RerunWrites)
		}
	}
	if changed != 0 {
		t.Errorf("%d devices' specs changed on the rerun", changed)
	}
	// The writes equal the devices whose inputs change: every device gets VEX statements of its
	// model; KEV marks the devices that carry one of the 300 exploited CVEs.
	exploited := 0
	for _, d := range devs.Items {
		for _, ti := range d.Spec.ThreatIntel {
			if ti.KnownExploited {
				exploited++
				break
			}
		}
	}
	if phases[1].Writes != exploited {
		t.Errorf("KEV wrote %d devices, %d carry a known exploited CVE", phases[1].Writes, exploited)
	}
	writeJSON(t, fmt.Sprintf("bench-feeds-%d.json", n), map[string]any{"devices": n, "phases": phases})
}

// csafFor is a CSAF 2.0 VEX document for one model: versions before 1.3 affected by most of its
// CVEs, 1.3 and 1.4 fixed; a few CVEs not affecting the model at all.
func csafFor(m, perModel int, cve func(int, int) string) map[string]any {
	vendor, product := fmt.Sprintf("Vendor %d", m), fmt.Sprintf("Model %d", m)
	id := func(s string) string { return fmt.Sprintf("M%d-%s", m, s) }
	var vulns []any
	for k := range perModel {
		st := map[string]any{"known_affected": []string{id("LT-1.3")}, "fixed": []string{id("1.3"), id("1.4")}}
		v := map[string]any{"cve": cve(m, k), "notes": []any{map[string]any{"category": "description", "title": "Description", "text": "A vulnerability."}}}
		if k%5 == 4 {
			st = map[string]any{"known_not_affected": []string{id("LT-1.3"), id("1.3"), id("1.4")}}
			v["flags"] = []any{map[string]any{"label": "vulnerable_code_not_present", "product_ids": []string{id("LT-1.3"), id("1.3"), id("1.4")}}}
		} else {
			v["remediations"] = []any{map[string]any{"category": "vendor_fix", "details": "Update to 1.3.", "product_ids": []string{id("LT-1.3")}}}
			v["scores"] = []any{map[string]any{"products": []string{id("LT-1.3")}, "cvss_v3": map[string]any{"version": "3.1",
				"vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "baseScore": 9.8, "baseSeverity": "CRITICAL"}}}
		}
		v["product_status"] = st
		vulns = append(vulns, v)
	}
	branch := func(cat, name, pid string) map[string]any {
		return map[string]any{"category": cat, "name": name, "product": map[string]any{"name": vendor + " " + product + " " + name, "product_id": pid}}
	}
	return map[string]any{
		"document": map[string]any{"category": "csaf_vex", "csaf_version": "2.0", "title": vendor + " VEX for " + product,
			"publisher": map[string]any{"category": "vendor", "name": vendor, "namespace": fmt.Sprintf("https://vendor-%d.example", m)},
			"tracking": map[string]any{"id": fmt.Sprintf("V%d-VEX-2026-1", m), "status": "final", "version": "1",
				"initial_release_date": "2026-11-20T08:00:00.000Z", "current_release_date": "2026-11-20T08:00:00.000Z",
				"revision_history": []any{map[string]any{"date": "2026-11-20T08:00:00.000Z", "number": "1", "summary": "Initial."}}}},
		"product_tree": map[string]any{"branches": []any{map[string]any{"category": "vendor", "name": vendor, "branches": []any{
			map[string]any{"category": "product_name", "name": product, "branches": []any{
				branch("product_version_range", "vers:generic/<1.3", id("LT-1.3")), branch("product_version", "1.3", id("1.3")), branch("product_version", "1.4", id("1.4"))}}}}}},
		"vulnerabilities": vulns,
	}
}
