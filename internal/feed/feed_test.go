package feed

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/testenv"
)

func fixture(t *testing.T, name string) Document {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return Document{Name: name, Data: data}
}

func sample(t *testing.T, name string) Document {
	t.Helper()
	p := filepath.Join(testenv.RepoRoot(), "config", "samples", "feeds", name)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return Document{Name: name, Data: data}
}

func device(ns, name string, id v1alpha1.DeviceIdentity, vulns ...v1alpha1.Vulnerability) *v1alpha1.MedicalDevice {
	return &v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.MedicalDeviceSpec{Identity: id, Vulnerabilities: vulns}}
}

// TestCSAFFixturesPassTheOfficialSchema: the CSAF fixtures are valid CSAF 2.0 by the official
// schema, and a document that is not fails with the place named.
func TestCSAFFixturesPassTheOfficialSchema(t *testing.T) {
	for _, name := range []string{"acme-infusion-vex.json", "globex-monitor-advisory.json"} {
		var doc any
		if err := json.Unmarshal(fixture(t, name).Data, &doc); err != nil {
			t.Fatal(err)
		}
		msgs, err := ValidateCSAF(doc)
		if err != nil || len(msgs) > 0 {
			t.Errorf("%s: %v %v", name, err, msgs)
		}
	}
	var doc any
	if err := json.Unmarshal(fixture(t, "schema-invalid.json").Data, &doc); err != nil {
		t.Fatal(err)
	}
	msgs, err := ValidateCSAF(doc)
	if err != nil || len(msgs) != 1 || msgs[0] != "/document: missing property 'tracking'" {
		t.Errorf("schema-invalid.json: %v %q", err, msgs)
	}
}

func TestParseKEV(t *testing.T) {
	k, ps, err := ParseKEV([]Document{sample(t, "kev.json")}, false)
	if err != nil || len(ps) != 0 {
		t.Fatal(err, ps)
	}
	if k.Version != "2026.12.01" || len(k.Entries) != 3 || k.Entries["CVE-2025-10001"].DateAdded != "2026-12-01" {
		t.Errorf("%+v", k)
	}
	bad := strings.Replace(string(sample(t, "kev.json").Data), `"cveID": "CVE-2024-3400"`, `"cveID": "CVE-24-3400"`, 1)
	_, ps, err = ParseKEV([]Document{{Name: "kev.json", Data: []byte(bad)}}, false)
	if err == nil || len(ps) != 1 || !strings.Contains(err.Error(), `kev.json: vulnerabilities[2]: cveID "CVE-24-3400" is not a CVE ID`) {
		t.Errorf("malformed CVE ID: %v", err)
	}
	k, ps, err = ParseKEV([]Document{{Name: "kev.json", Data: []byte(bad)}}, true)
	if err != nil || len(ps) != 1 || len(k.Entries) != 2 {
		t.Errorf("--partial keeps the valid entries: %v %v", err, ps)
	}
	data := sample(t, "kev.json").Data
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", data[:len(data)/2], "truncated"},
		{"epss instead", sample(t, "epss_scores-2026-12-01.csv").Data, "not a CISA KEV catalog"},
		{"csaf instead", fixture(t, "acme-infusion-vex.json").Data, "is not a CISA KEV catalog"},
	} {
		if _, _, err := ParseKEV([]Document{{Name: c.name, Data: c.data}}, true); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestParseEPSS(t *testing.T) {
	plain := sample(t, "epss_scores-2026-12-01.csv").Data
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(plain)
	_ = zw.Close()
	data, err := readAll(bytes.NewReader(gz.Bytes()), "epss.csv.gz")
	if err != nil || !bytes.Equal(data, plain) {
		t.Fatalf("gzip: %v", err)
	}
	e, ps, err := ParseEPSS([]Document{{Name: "epss.csv.gz", Data: data}}, false)
	if err != nil || len(ps) != 0 {
		t.Fatal(err, ps)
	}
	if e.Date != "2026-12-01" || e.Model != "v2025.03.14" || e.Scores["CVE-2025-31337"] != (EPSSScore{EPSS: "0.9201", Percentile: "0.99601"}) || len(e.Scores) != 8 {
		t.Errorf("%+v", e)
	}
	bad := strings.Replace(string(plain), "CVE-2024-00042,0.00043", "CVE-2024-00042,1.7", 1)
	if _, _, err := ParseEPSS([]Document{{Name: "epss.csv", Data: []byte(bad)}}, false); err == nil || !strings.Contains(err.Error(), "epss.csv: line 5 (CVE-2024-00042): epss 1.7 is outside [0, 1]") {
		t.Errorf("out of range: %v", err)
	}
	if _, _, err := ParseEPSS([]Document{sample(t, "kev.json")}, false); !errors.Is(err, ErrWrongFormat) {
		t.Errorf("KEV given to epss: %v", err)
	}
	if _, err := readAll(bytes.NewReader(gz.Bytes()[:gz.Len()/2]), "cut.csv.gz"); err == nil || !strings.Contains(err.Error(), "cut.csv.gz") {
		t.Errorf("truncated gzip: %v", err)
	}
}

func TestVersionsAndRanges(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"3.10.1", "3.9", 1}, {"2.4.0", "2.4", 0}, {"2.4.0-rc1", "2.4.0", -1}, {"v1.2", "1.2.0", 0}, {"11.2", "11.10", -1}} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for _, c := range []struct {
		r    string
		in   []string
		out  []string
		fail bool
	}{
		{r: "vers:semver/<3.2.0", in: []string{"3.1.0", "0.9"}, out: []string{"3.2.0", "4"}},
		{r: "vers:generic/>=1.0|<1.5|>=2.0|<2.5", in: []string{"1.0", "1.4.9", "2.0", "2.4"}, out: []string{"0.9", "1.5", "1.9", "2.5"}},
		{r: "vers:generic/>=2.2.0|!=2.2.1|<2.3.0", in: []string{"2.2.0", "2.2.5"}, out: []string{"2.2.1", "2.3.0"}},
		{r: "vers:all/*", in: []string{"0", "99"}},
		{r: "vers:generic/1.0|2.0", in: []string{"1.0", "2.0"}, out: []string{"1.5"}},
		{r: "<=2", fail: true},
	} {
		rg, err := ParseRange(c.r)
		if c.fail {
			if err == nil {
				t.Errorf("%s: parsed", c.r)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range c.in {
			if !rg.Contains(v) {
				t.Errorf("%s should contain %s", c.r, v)
			}
		}
		for _, v := range c.out {
			if rg.Contains(v) {
				t.Errorf("%s should not contain %s", c.r, v)
			}
		}
	}
}

// TestVEXMatchesOnlyWhatItMayKnow: CPE first, then package URL, then an explicit mapping; a
// version-specific statement never applies to a device whose version is unknown; nothing
// matches on a name alone.
func TestVEXMatchesOnlyWhatItMayKnow(t *testing.T) {
	as, ps, err := ParseVEX([]Document{fixture(t, "acme-infusion-vex.json"), fixture(t, "globex-monitor-advisory.json"), fixture(t, "initech-ct-vex.cdx.json")}, false)
	if err != nil || len(ps) != 0 {
		t.Fatal(err, ps)
	}
	acme := v1alpha1.DeviceIdentity{Manufacturer: "Acme Medical", Model: "IP-200"}
	byCPE := acme
	byCPE.FirmwareVersion, byCPE.CPE = "3.1.0", "cpe:2.3:h:acme_medical:infusion_pump_ip-200:3.1.0:*:*:*:*:*:*:*"
	old := acme
	old.FirmwareVersion = "3.0.9"
	fixed := acme
	fixed.FirmwareVersion = "3.2.0"
	ct := v1alpha1.DeviceIdentity{Manufacturer: "Initech Imaging", Model: "CT-9", PURL: "pkg:generic/initech/ct-9@2.4.0"}
	monitor := v1alpha1.DeviceIdentity{Manufacturer: "Globex", Model: "PM7"}
	named := v1alpha1.DeviceIdentity{Manufacturer: "Acme Medical", Model: "Infusion Pump IP-200", FirmwareVersion: "3.1.0"}
	targets := []Target{
		{Device: device("icu", "by-cpe", byCPE, v1alpha1.Vulnerability{ID: "CVE-2025-10002", CVSS: "5.0", Source: "scanner-a"})},
		{Device: device("icu", "old", old)}, {Device: device("icu", "fixed", fixed)},
		{Device: device("radiology", "ct", ct)}, {Device: device("icu", "monitor", monitor)}, {Device: device("icu", "named", named)},
	}
	mappings := []Mapping{{Manufacturer: "acme medical", Model: "ip-200", Vendor: "Acme Medical", Product: "Infusion Pump IP-200"},
		{Manufacturer: "Globex", Model: "PM7", Vendor: "Globex Health", Product: "Patient Monitor PM-7"}}
	p := PlanVEX(as, targets, mappings)
	got := map[string]string{}
	for _, dp := range p.Devices {
		for _, v := range dp.Updated.Spec.Vulnerabilities {
			got[dp.Name+"/"+v.ID] = vexText(v) + " " + v.Source
		}
	}
	want := map[string]string{
		"by-cpe/CVE-2025-10001": "Affected, CVSS 8.8 VEX ACME-VEX-2025-0007",
		"by-cpe/CVE-2025-10002": "NotAffected (vulnerable_code_not_present), CVSS 5.0 VEX ACME-VEX-2025-0007",
		"by-cpe/CVE-2025-10003": "UnderInvestigation VEX ACME-VEX-2025-0007",
		"old/CVE-2025-10001":    "Affected, CVSS 8.8 VEX ACME-VEX-2025-0007", // in vers:semver/<3.2.0, by mapping
		"fixed/CVE-2025-10001":  "Fixed VEX ACME-VEX-2025-0007",
		"fixed/CVE-2025-10002":  "NotAffected (vulnerable_code_not_present) VEX ACME-VEX-2025-0007",
		"fixed/CVE-2025-10003":  "UnderInvestigation VEX ACME-VEX-2025-0007",
		"ct/CVE-2025-30001":     "Affected, CVSS 7.5 VEX urn:uuid:6f1c2a8e-3b4d-4c5e-9f70-8a1b2c3d4e5f",
		"ct/CVE-2025-30002":     "NotAffected (code_not_reachable) VEX urn:uuid:6f1c2a8e-3b4d-4c5e-9f70-8a1b2c3d4e5f",
		"ct/CVE-2025-30003":     "Fixed VEX urn:uuid:6f1c2a8e-3b4d-4c5e-9f70-8a1b2c3d4e5f",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s: %s", k, got[k])
		}
	}
	if !contains(p.Unmatched, "icu/monitor") || !contains(p.Unmatched, "icu/named") {
		t.Errorf("unmatched devices: %v", p.Unmatched)
	}
	if len(p.Unknown) == 0 || !strings.Contains(p.Unknown[0], "icu/monitor: Globex Health Patient Monitor PM-7") {
		t.Errorf("the monitor's unknown version is not reported: %v", p.Unknown)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestVEXConflictAndWithdrawal: two statements that disagree are reported and the stricter
// wins; an entry the VEX feed wrote from an advisory it reads again, which no longer states it,
// is withdrawn, while entries from other advisories and other sources stay.
func TestVEXConflictAndWithdrawal(t *testing.T) {
	doc := fixture(t, "acme-infusion-vex.json")
	// A second publisher says 3.1.0 is not affected by CVE-2025-10001.
	dev := v1alpha1.DeviceIdentity{Manufacturer: "Acme Medical", Model: "IP-200", FirmwareVersion: "3.1.0"}
	mapping := []Mapping{{Manufacturer: "Acme Medical", Model: "IP-200", Vendor: "Acme Medical", Product: "Infusion Pump IP-200"}}
	a, _, err := ParseVEX([]Document{doc}, false)
	if err != nil {
		t.Fatal(err)
	}
	b := *a[0]
	b.ID, b.Publisher = "THIRD-PARTY-1", "https://third-party.example"
	b.Statements = []Statement{{CVE: "CVE-2025-10001", Product: "CSAFPID-IP200-3.1.0", Status: v1alpha1.VulnNotAffected, Justification: "component_not_present"}}
	p := PlanVEX([]*Advisory{a[0], &b}, []Target{{Device: device("icu", "pump", dev)}}, mapping)
	if len(p.Conflicts) != 1 || !strings.Contains(p.Conflicts[0], "THIRD-PARTY-1") || !strings.Contains(p.Conflicts[0], "the stricter, Affected, is used") {
		t.Errorf("conflicts: %v", p.Conflicts)
	}
	if v := p.Devices[0].Updated.Spec.Vulnerabilities[0]; v.ID != "CVE-2025-10001" || v.Status != v1alpha1.VulnAffected {
		t.Errorf("the stricter status did not win: %+v", v)
	}

	// Withdrawal: the device carries what the feed wrote from ACME-VEX-2025-0007 and from an
	// advisory not read now, and a scanner's entry.
	d := device("icu", "pump", dev,
		v1alpha1.Vulnerability{ID: "CVE-2025-10001", Status: v1alpha1.VulnAffected, CVSS: "8.8", Source: "VEX ACME-VEX-2025-0007"},
		v1alpha1.Vulnerability{ID: "CVE-2024-99999", Status: v1alpha1.VulnAffected, Source: "VEX ACME-VEX-2025-0007"},
		v1alpha1.Vulnerability{ID: "CVE-2023-11111", Status: v1alpha1.VulnAffected, Source: "VEX ACME-VEX-2024-0002"},
		v1alpha1.Vulnerability{ID: "CVE-2022-22222", Status: v1alpha1.VulnAffected, Source: "scanner-a"})
	for _, owned := range []map[string]bool{nil, {"CVE-2025-10001": true, "CVE-2024-99999": true, "CVE-2023-11111": true}} {
		p = PlanVEX(a, []Target{{Device: d, Owned: owned}}, mapping)
		var ids, applied []string
		for _, v := range p.Devices[0].Updated.Spec.Vulnerabilities {
			ids = append(ids, v.ID)
		}
		for _, v := range p.Devices[0].Vulnerabilities {
			applied = append(applied, v.ID)
		}
		if got := strings.Join(ids, " "); got != "CVE-2025-10001 CVE-2023-11111 CVE-2022-22222 CVE-2025-10002 CVE-2025-10003" {
			t.Errorf("owned %v: entries after the plan: %s", owned, got)
		}
		if got := strings.Join(applied, " "); got != "CVE-2023-11111 CVE-2025-10001 CVE-2025-10002 CVE-2025-10003" {
			t.Errorf("owned %v: applied: %s", owned, got)
		}
	}
	// A rerun over the result changes nothing.
	again := PlanVEX(a, []Target{{Device: p.Devices[0].Updated}}, mapping)
	if len(again.Devices) != 0 || again.Unchanged != 1 {
		t.Errorf("a rerun changes %+v", again.Devices)
	}
}

// TestKEVAndEPSSOnlyAnnotate: they never add a vulnerability; their annotations go when the
// vulnerability goes; a rerun writes nothing; EPSS writes only when a score changed.
func TestKEVAndEPSSOnlyAnnotate(t *testing.T) {
	k, _, _ := ParseKEV([]Document{sample(t, "kev.json")}, false)
	e, _, _ := ParseEPSS([]Document{sample(t, "epss_scores-2026-12-01.csv")}, false)
	d := device("icu", "pump", v1alpha1.DeviceIdentity{}, v1alpha1.Vulnerability{ID: "CVE-2025-10001"})
	d.Spec.ThreatIntel = []v1alpha1.ThreatIntel{{ID: "CVE-2020-0001", KnownExploited: true, KnownExploitedSince: "2021-01-01", EPSS: "0.5"}}
	p := PlanKEV(k, []Target{{Device: d}})
	u := p.Devices[0].Updated
	if len(u.Spec.Vulnerabilities) != 1 {
		t.Errorf("KEV added a vulnerability: %+v", u.Spec.Vulnerabilities)
	}
	if got := u.Spec.ThreatIntel; len(got) != 2 || got[0].ID != "CVE-2020-0001" || got[0].KnownExploited || got[0].EPSS != "0.5" || !got[1].KnownExploited || got[1].KnownExploitedSince != "2026-12-01" {
		t.Errorf("intel after KEV: %+v", got)
	}
	if len(p.Devices[0].Intel) != 1 || p.Devices[0].Intel[0].ID != "CVE-2025-10001" {
		t.Errorf("KEV applies %+v", p.Devices[0].Intel)
	}
	p = PlanEPSS(e, []Target{{Device: u}})
	u = p.Devices[0].Updated
	if got := u.Spec.ThreatIntel; len(got) != 1 || got[0].ID != "CVE-2025-10001" || got[0].EPSS != "0.41872" || !got[0].KnownExploited {
		t.Errorf("intel after EPSS (the stale CVE's score dropped, KEV's mark kept): %+v", got)
	}
	if again := PlanKEV(k, []Target{{Device: u}}); len(again.Devices) != 0 {
		t.Errorf("KEV rerun: %+v", again.Devices[0].Changes)
	}
	e.Date = "2026-12-02"
	for id, s := range e.Scores {
		s.Percentile = "0.5"
		e.Scores[id] = s
	}
	if again := PlanEPSS(e, []Target{{Device: u}}); len(again.Devices) != 0 {
		t.Errorf("a new day's file with the same scores writes: %+v", again.Devices[0].Changes)
	}
}

func TestReadSources(t *testing.T) {
	kev := sample(t, "kev.json").Data
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/kev.json" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(kev)
	}))
	defer srv.Close()
	docs, err := Read(context.Background(), srv.URL+"/kev.json", nil)
	if err != nil || len(docs) != 1 || !bytes.Equal(docs[0].Data, kev) {
		t.Fatalf("URL: %v", err)
	}
	if _, err := Read(context.Background(), srv.URL+"/missing.json", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing URL: %v", err)
	}
	docs, err = Read(context.Background(), "testdata", nil)
	if err != nil || len(docs) != 5 {
		t.Errorf("directory: %d %v", len(docs), err)
	}
	docs, err = Read(context.Background(), "-", bytes.NewReader(kev))
	if err != nil || docs[0].Name != "stdin" {
		t.Errorf("stdin: %v", err)
	}
}

// TestReviewFindings: what a review of this package found, each fixed.
func TestReviewFindings(t *testing.T) {
	// Two CycloneDX objects about one CVE and component (one per analysis state) keep their own
	// version ranges.
	bom := `{"bomFormat":"CycloneDX","specVersion":"1.6","serialNumber":"urn:uuid:00000000-0000-4000-8000-000000000001","version":1,
	 "components":[{"type":"device","bom-ref":"pump","name":"Pump","version":"2.1","manufacturer":{"name":"Acme"}}],
	 "vulnerabilities":[
	  {"id":"CVE-2026-10001","analysis":{"state":"exploitable"},"ratings":[{"score":10.05,"method":"CVSSv31"}],"affects":[{"ref":"pump","versions":[{"range":"vers:generic/<2.0","status":"affected"}]}]},
	  {"id":"CVE-2026-10001","analysis":{"state":"resolved"},"affects":[{"ref":"pump","versions":[{"range":"vers:generic/>=2.0","status":"unaffected"}]}]}]}`
	as, ps, err := ParseVEX([]Document{{Name: "pump.cdx.json", Data: []byte(bom)}}, true)
	if err != nil || len(ps) != 1 || !strings.Contains(ps[0].Message, "CVSS score 10.05 is outside [0, 10]") {
		t.Fatalf("%v %v", err, ps)
	}
	mapping := []Mapping{{Manufacturer: "Acme", Model: "Pump", Vendor: "Acme", Product: "Pump"}}
	old := device("icu", "old", v1alpha1.DeviceIdentity{Manufacturer: "Acme", Model: "Pump", FirmwareVersion: "1.5"})
	newer := device("icu", "new", v1alpha1.DeviceIdentity{Manufacturer: "Acme", Model: "Pump", FirmwareVersion: "2.1"})
	p := PlanVEX(as, []Target{{Device: old}, {Device: newer}}, mapping)
	if len(p.Conflicts) != 0 || len(p.Devices) != 2 || p.Devices[0].Updated.Spec.Vulnerabilities[0].Status != v1alpha1.VulnAffected ||
		p.Devices[0].Updated.Spec.Vulnerabilities[0].CVSS != "" || p.Devices[1].Updated.Spec.Vulnerabilities[0].Status != v1alpha1.VulnFixed {
		t.Errorf("per-version statements: %+v %+v", p.Devices, p.Conflicts)
	}

	// Truncation never splits a character.
	if s := truncate(strings.Repeat("é", 200), 256); !utf8.ValidString(s) || len(s) > 256 {
		t.Errorf("truncate: %q", s)
	}
	// EPSS "-0" is 0.
	if v, err := probability("-0.0"); err != nil || v != "0" {
		t.Errorf("-0: %q %v", v, err)
	}

	// KEV withdraws only what it applied (in a cluster); ids are matched case-insensitively and
	// annotations keep the id as the device writes it.
	k, _, _ := ParseKEV([]Document{sample(t, "kev.json")}, false)
	d := device("icu", "pump", v1alpha1.DeviceIdentity{}, v1alpha1.Vulnerability{ID: "cve-2025-10001"}, v1alpha1.Vulnerability{ID: "CVE-2020-0001"})
	d.Spec.ThreatIntel = []v1alpha1.ThreatIntel{{ID: "CVE-2020-0001", KnownExploited: true, KnownExploitedSince: "2021-01-01"}}
	p = PlanKEV(k, []Target{{Device: d, Owned: map[string]bool{}}})
	if len(p.Devices) != 1 || len(p.Devices[0].Changes) != 1 || p.Devices[0].Intel[0].ID != "cve-2025-10001" {
		t.Errorf("KEV: %+v", p.Devices)
	}

	// VEX: a justification another manager keeps is not a change to make on every run; an entry
	// kept from an advisory not read now is re-sent with the fields VEX owns only.
	acme, _, _ := ParseVEX([]Document{fixture(t, "acme-infusion-vex.json")}, false)
	id := v1alpha1.DeviceIdentity{Manufacturer: "Acme Medical", Model: "IP-200", FirmwareVersion: "3.1.0"}
	m := []Mapping{{Manufacturer: "Acme Medical", Model: "IP-200", Vendor: "Acme Medical", Product: "Infusion Pump IP-200"}}
	d = device("icu", "pump", id,
		v1alpha1.Vulnerability{ID: "CVE-2025-10001", Status: v1alpha1.VulnAffected, CVSS: "8.8", Justification: "stale", Source: "VEX ACME-VEX-2025-0007"},
		v1alpha1.Vulnerability{ID: "CVE-2025-10002", Status: v1alpha1.VulnNotAffected, Justification: "vulnerable_code_not_present", Source: "VEX ACME-VEX-2025-0007"},
		v1alpha1.Vulnerability{ID: "CVE-2025-10003", Status: v1alpha1.VulnUnderInvestigation, Source: "VEX ACME-VEX-2025-0007"},
		v1alpha1.Vulnerability{ID: "CVE-2023-1", Status: v1alpha1.VulnAffected, CVSS: "7.5", Source: "VEX OLD-1"})
	owned := map[string]map[string]bool{"CVE-2023-1": {"id": true, "status": true, "source": true}}
	p = PlanVEX(acme, []Target{{Device: d, Owned: map[string]bool{"CVE-2023-1": true}, OwnedFields: owned}}, m)
	if len(p.Devices) != 0 {
		t.Errorf("a co-owned justification rewrites: %+v", p.Devices[0].Changes)
	}
	d.Spec.Vulnerabilities[2].Status = v1alpha1.VulnAffected // something to write
	p = PlanVEX(acme, []Target{{Device: d, Owned: map[string]bool{"CVE-2023-1": true}, OwnedFields: owned}}, m)
	for _, v := range p.Devices[0].Vulnerabilities {
		if v.ID == "CVE-2023-1" && v.CVSS != "" {
			t.Errorf("the kept entry claims the scanner's CVSS: %+v", v)
		}
	}

	// Offline withdrawal keeps what a scanner found in the entry.
	d = device("icu", "pump", id, v1alpha1.Vulnerability{ID: "CVE-2024-9", Status: v1alpha1.VulnNotAffected, EPSS: "0.5", Source: "VEX ACME-VEX-2025-0007"})
	p = PlanVEX(acme, []Target{{Device: d}}, m)
	var kept *v1alpha1.Vulnerability
	for i, v := range p.Devices[0].Updated.Spec.Vulnerabilities {
		if v.ID == "CVE-2024-9" {
			kept = &p.Devices[0].Updated.Spec.Vulnerabilities[i]
		}
	}
	if kept == nil || kept.EPSS != "0.5" || kept.Source != "" || kept.Status != "" {
		t.Errorf("offline withdrawal: %+v", kept)
	}
}
