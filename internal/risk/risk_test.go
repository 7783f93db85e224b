package risk

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// referenceCSV reads a reference table from ../shared/reference/ssvc when the steering repo is
// beside this one, and otherwise from the copy under testdata/. When both exist they must match.
func referenceCSV(t *testing.T, name string) [][]string {
	t.Helper()
	local, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	data := local
	if shared, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "reference", "ssvc", name)); err == nil {
		if !bytes.Equal(shared, local) {
			t.Fatalf("testdata/%s differs from shared/reference/ssvc/%s: refresh the copy", name, name)
		}
		data = shared
	}
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows[1:] // header
}

func TestDeployerTableMatchesReference(t *testing.T) {
	exploit := map[string]ExploitLevel{"none": ExploitNone, "public poc": ExploitPoC, "active": ExploitActive}
	exposure := map[string]Exposure{"small": ExposureSmall, "controlled": ExposureControlled, "open": ExposureOpen}
	impact := map[string]HumanImpact{"low": ImpactLow, "medium": ImpactMedium, "high": ImpactHigh, "very high": ImpactVeryHigh}
	priority := map[string]v1alpha1.Priority{"defer": v1alpha1.PriorityDefer, "scheduled": v1alpha1.PriorityScheduled,
		"out-of-cycle": v1alpha1.PriorityOutOfCycle, "immediate": v1alpha1.PriorityImmediate}
	rows := referenceCSV(t, "deployer_patch_application_priority_1_0_0.csv")
	if len(rows) != 72 {
		t.Fatalf("reference has %d rows, want 72", len(rows))
	}
	for _, r := range rows {
		e, ok1 := exploit[r[1]]
		x, ok2 := exposure[r[2]]
		h, ok3 := impact[r[4]]
		want, ok4 := priority[r[5]]
		if !ok1 || !ok2 || !ok3 || !ok4 || (r[3] != "yes" && r[3] != "no") {
			t.Fatalf("row %s: unknown value in %v", r[0], r)
		}
		if got := Decide(e, x, r[3] == "yes", h); got != want {
			t.Errorf("row %s (%s): Decide = %s, want %s", r[0], strings.Join(r[1:5], ","), got, want)
		}
	}
}

func TestHumanImpactTableMatchesReference(t *testing.T) {
	safety := map[string]v1alpha1.SafetyImpact{"negligible": v1alpha1.SafetyNegligible, "marginal": v1alpha1.SafetyMarginal,
		"critical": v1alpha1.SafetyCritical, "catastrophic": v1alpha1.SafetyCatastrophic}
	mission := map[string]v1alpha1.MissionImpact{"degraded": v1alpha1.MissionDegraded, "mef support crippled": v1alpha1.MissionCrippled,
		"mef failure": v1alpha1.MissionMEFFailure, "mission failure": v1alpha1.MissionMissionFailure}
	impact := map[string]HumanImpact{"low": ImpactLow, "medium": ImpactMedium, "high": ImpactHigh, "very high": ImpactVeryHigh}
	rows := referenceCSV(t, "human_impact_1_0_0.csv")
	if len(rows) != 16 {
		t.Fatalf("reference has %d rows, want 16", len(rows))
	}
	for _, r := range rows {
		s, ok1 := safety[r[1]]
		m, ok2 := mission[r[2]]
		want, ok3 := impact[r[3]]
		if !ok1 || !ok2 || !ok3 {
			t.Fatalf("row %s: unknown value in %v", r[0], r)
		}
		if got := HumanImpactOf(s, m); got != want {
			t.Errorf("row %s (%s × %s): %s, want %s", r[0], r[1], r[2], got, want)
		}
	}
}

func vuln(id string, mut ...func(*v1alpha1.Vulnerability)) v1alpha1.Vulnerability {
	v := v1alpha1.Vulnerability{ID: id, Exploitation: v1alpha1.ExploitationNone, Status: v1alpha1.VulnAffected}
	for _, m := range mut {
		m(&v)
	}
	return v
}

var (
	kev        = func(v *v1alpha1.Vulnerability) { v.KnownExploited = true }
	poc        = func(v *v1alpha1.Vulnerability) { v.Exploitation = v1alpha1.ExploitationPoC }
	active     = func(v *v1alpha1.Vulnerability) { v.Exploitation = v1alpha1.ExploitationActive }
	automatic  = func(v *v1alpha1.Vulnerability) { v.Automatable = true }
	epss       = func(s string) func(*v1alpha1.Vulnerability) { return func(v *v1alpha1.Vulnerability) { v.EPSS = s } }
	withStatus = func(s v1alpha1.VulnerabilityStatus) func(*v1alpha1.Vulnerability) {
		return func(v *v1alpha1.Vulnerability) { v.Status = s }
	}
)

func pumpInput(x Exposure, vulns ...v1alpha1.Vulnerability) Input {
	return Input{Safety: v1alpha1.SafetyCatastrophic, Mission: v1alpha1.MissionMEFFailure, Exposure: x, ExposureSource: "test", Vulnerabilities: vulns, Now: now}
}

func TestAssessDerivationRules(t *testing.T) {
	detection := v1alpha1.Detection{Source: "mdr", Type: "ExploitAttempt", ObservedAt: metav1.NewTime(now), Status: v1alpha1.DetectionActive}
	cases := []struct {
		name         string
		in           Input
		priority     v1alpha1.Priority
		exploitation string // "Value (Source)"
		deciding     string
	}{
		{"a device without vulnerabilities is Defer", pumpInput(ExposureOpen), v1alpha1.PriorityDefer, "None (no vulnerability assessed)", ""},
		{"KEV vulnerability on a catastrophic-safety device with an external peer is Immediate",
			pumpInput(ExposureOpen, vuln("CVE-1", kev)), v1alpha1.PriorityImmediate, "Active (CISA KEV)", "CVE-1"},
		{"KEV vulnerability on the same device behind declared in-cluster flows is OutOfCycle",
			pumpInput(ExposureControlled, vuln("CVE-1", kev)), v1alpha1.PriorityOutOfCycle, "Active (CISA KEV)", "CVE-1"},
		{"an active detection makes every vulnerability Active",
			func() Input {
				in := pumpInput(ExposureOpen, vuln("CVE-2"))
				in.Detections = []v1alpha1.Detection{detection}
				return in
			}(),
			v1alpha1.PriorityImmediate, "Active (active detection mdr/ExploitAttempt)", "CVE-2"},
		{"a resolved detection does not count",
			func() Input {
				in := pumpInput(ExposureOpen, vuln("CVE-2"))
				d := detection
				d.Status = v1alpha1.DetectionResolved
				in.Detections = []v1alpha1.Detection{d}
				return in
			}(),
			v1alpha1.PriorityScheduled, "None (no known exploitation)", "CVE-2"},
		{"the feed's Active exploitation counts", pumpInput(ExposureOpen, vuln("CVE-3", active)), v1alpha1.PriorityImmediate, "Active (feed reports active exploitation)", "CVE-3"},
		{"EPSS at the threshold counts as Active", pumpInput(ExposureOpen, vuln("CVE-4", epss("0.9"))), v1alpha1.PriorityImmediate, "Active (EPSS 0.9 ≥ 0.9)", "CVE-4"},
		{"EPSS just below the threshold does not", pumpInput(ExposureOpen, vuln("CVE-4", epss("0.899999"))), v1alpha1.PriorityScheduled, "None (no known exploitation)", "CVE-4"},
		{"a policy threshold of 0.5 makes EPSS 0.6 Active",
			func() Input {
				in := pumpInput(ExposureOpen, vuln("CVE-4", epss("0.6")))
				in.EPSSThreshold = "0.5"
				return in
			}(),
			v1alpha1.PriorityImmediate, "Active (EPSS 0.6 ≥ 0.5)", "CVE-4"},
		{"a public PoC is PoC", pumpInput(ExposureOpen, vuln("CVE-5", poc)), v1alpha1.PriorityOutOfCycle, "PoC (public proof of concept)", "CVE-5"},
		{"Fixed and NotAffected vulnerabilities are ignored, as in VEX",
			pumpInput(ExposureOpen, vuln("CVE-6", kev, withStatus(v1alpha1.VulnFixed)), vuln("CVE-7", kev, withStatus(v1alpha1.VulnNotAffected))),
			v1alpha1.PriorityDefer, "None (no vulnerability assessed)", ""},
		{"UnderInvestigation vulnerabilities are assessed",
			pumpInput(ExposureOpen, vuln("CVE-8", kev, withStatus(v1alpha1.VulnUnderInvestigation))), v1alpha1.PriorityImmediate, "Active (CISA KEV)", "CVE-8"},
		{"the highest priority over all vulnerabilities decides",
			pumpInput(ExposureControlled, vuln("CVE-A"), vuln("CVE-B", kev, automatic), vuln("CVE-C", poc)),
			v1alpha1.PriorityOutOfCycle, "Active (CISA KEV)", "CVE-B"},
		{"a high CVSS alone does not raise the priority",
			Input{Safety: v1alpha1.SafetyMarginal, Mission: v1alpha1.MissionDegraded, Exposure: ExposureSmall,
				Vulnerabilities: []v1alpha1.Vulnerability{vuln("CVE-9", func(v *v1alpha1.Vulnerability) { v.CVSS = "10.0" })}, Now: now},
			v1alpha1.PriorityDefer, "None (no known exploitation)", "CVE-9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := Assess(tc.in)
			if a.Priority != tc.priority {
				t.Errorf("priority = %s, want %s (%s)", a.Priority, tc.priority, a.Summary)
			}
			if got := a.Exploitation.String(); got != tc.exploitation {
				t.Errorf("exploitation = %q, want %q", got, tc.exploitation)
			}
			got := ""
			if a.Deciding != nil {
				got = a.Deciding.ID
			}
			if got != tc.deciding {
				t.Errorf("deciding = %q, want %q", got, tc.deciding)
			}
		})
	}
}

func TestAssessExplainsEveryInput(t *testing.T) {
	in := pumpInput(ExposureOpen, vuln("CVE-2025-1", kev), vuln("CVE-2025-2", withStatus(v1alpha1.VulnFixed)))
	in.ExposureSource = "flow vendor-maintenance has external peer 203.0.113.0/28"
	a := Assess(in)
	st := a.Status()
	checks := map[string]string{
		"priority":     string(st.Priority),
		"deciding":     st.DecidingVulnerability,
		"exploitation": st.Exploitation.Value + " (" + st.Exploitation.Source + ")",
		"exposure":     st.Exposure.Value + " (" + st.Exposure.Source + ")",
		"humanImpact":  st.HumanImpact.Value + " (" + st.HumanImpact.Source + ")",
		"automatable":  st.Automatable.Value,
	}
	want := map[string]string{
		"priority":     "Immediate",
		"deciding":     "CVE-2025-1",
		"exploitation": "Active (CISA KEV)",
		"exposure":     "Open (flow vendor-maintenance has external peer 203.0.113.0/28)",
		"humanImpact":  "VeryHigh (Safety=Catastrophic, Mission=MEFFailure)",
		"automatable":  "No",
	}
	if !reflect.DeepEqual(checks, want) {
		t.Errorf("got %v\nwant %v", checks, want)
	}
	if st.AssessedVulnerabilities != 1 || st.IgnoredVulnerabilities != 1 {
		t.Errorf("counts = %d assessed, %d ignored", st.AssessedVulnerabilities, st.IgnoredVulnerabilities)
	}
	wantSummary := "Immediate: CVE-2025-1 with Exploitation=Active (CISA KEV), Exposure=Open (flow vendor-maintenance has external peer 203.0.113.0/28), Automatable=No, HumanImpact=VeryHigh (Safety=Catastrophic, Mission=MEFFailure); 1 assessed, 1 ignored"
	if a.Summary != wantSummary {
		t.Errorf("summary:\n got %s\nwant %s", a.Summary, wantSummary)
	}
	if !st.AssessedAt.Time.Equal(now) {
		t.Errorf("assessedAt = %v, want the injected clock %v", st.AssessedAt, now)
	}
}

func TestBaselineExposure(t *testing.T) {
	essential := v1alpha1.Flow{Name: "alarms", Tier: v1alpha1.TierEssential, Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{}}}}
	clinical := v1alpha1.Flow{Name: "emr", Tier: v1alpha1.TierClinical, Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{}}}}
	vendor := v1alpha1.Flow{Name: "vendor", Tier: v1alpha1.TierSupport, Peers: []v1alpha1.Peer{{CIDR: "203.0.113.0/28"}}}
	gatedVendor := v1alpha1.Flow{Name: "vendor-window", Tier: v1alpha1.TierSupport, Access: v1alpha1.AccessGranted, Peers: []v1alpha1.Peer{{CIDR: "198.51.100.0/28"}}}
	gated := func(f v1alpha1.Flow) bool { return f.Access == v1alpha1.AccessGranted }
	cases := []struct {
		name       string
		flows      []v1alpha1.Flow
		unenforced string
		widened    string
		want       Exposure
	}{
		{"a device with only Essential flows is Small", []v1alpha1.Flow{essential}, "", "", ExposureSmall},
		{"a device with no flows is Small", nil, "", "", ExposureSmall},
		{"a device with declared in-cluster Clinical flows is Controlled", []v1alpha1.Flow{essential, clinical}, "", "", ExposureControlled},
		{"an external peer makes the device Open", []v1alpha1.Flow{essential, vendor}, "", "", ExposureOpen},
		{"an external peer only inside access grants makes the device Controlled, not Open", []v1alpha1.Flow{essential, gatedVendor}, "", "", ExposureControlled},
		{"a grant-gated external flow does not hide a standing one", []v1alpha1.Flow{gatedVendor, vendor}, "", "", ExposureOpen},
		{"no enforcement (Audit or no policy) makes the device Open", []v1alpha1.Flow{essential}, "policy is in Audit", "", ExposureOpen},
		{"a widening foreign policy makes the device Open", []v1alpha1.Flow{essential}, "", "foreign policy x widens", ExposureOpen},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why := BaselineExposure(tc.flows, gated, tc.unenforced, tc.widened)
			if got != tc.want || why == "" {
				t.Errorf("got %s (%q), want %s with a reason", got, why, tc.want)
			}
		})
	}
}

// TestRaisingAnInputNeverLowersPriority walks the whole input space: raising exploitation,
// exposure, automatable, safety or mission impact alone never lowers the priority. The
// published tables hold this everywhere, so no exception rows are listed.
func TestRaisingAnInputNeverLowersPriority(t *testing.T) {
	safeties := []v1alpha1.SafetyImpact{v1alpha1.SafetyNegligible, v1alpha1.SafetyMarginal, v1alpha1.SafetyCritical, v1alpha1.SafetyCatastrophic}
	missions := []v1alpha1.MissionImpact{v1alpha1.MissionDegraded, v1alpha1.MissionCrippled, v1alpha1.MissionMEFFailure, v1alpha1.MissionMissionFailure}
	exploits := []func(*v1alpha1.Vulnerability){func(*v1alpha1.Vulnerability) {}, poc, kev}
	type point struct{ e, x, a, s, m int }
	prio := func(p point) int {
		v := vuln("CVE-P", exploits[p.e])
		v.Automatable = p.a == 1
		return Assess(Input{Safety: safeties[p.s], Mission: missions[p.m], Exposure: Exposure(p.x), Vulnerabilities: []v1alpha1.Vulnerability{v}, Now: now}).Priority.Rank()
	}
	limits := point{3, 3, 2, 4, 4}
	checked := 0
	for e := range limits.e {
		for x := range limits.x {
			for a := range limits.a {
				for s := range limits.s {
					for m := range limits.m {
						p := point{e, x, a, s, m}
						base := prio(p)
						for _, up := range []point{{e + 1, x, a, s, m}, {e, x + 1, a, s, m}, {e, x, a + 1, s, m}, {e, x, a, s + 1, m}, {e, x, a, s, m + 1}} {
							if up.e >= limits.e || up.x >= limits.x || up.a >= limits.a || up.s >= limits.s || up.m >= limits.m {
								continue
							}
							checked++
							if got := prio(up); got < base {
								t.Errorf("raising an input from %+v to %+v lowers the priority %d → %d", p, up, base, got)
							}
						}
					}
				}
			}
		}
	}
	// 288 input points; each dimension of size n contributes (n-1)/n of them as raisable.
	if checked != 960 {
		t.Fatalf("%d comparisons made, want all 960", checked)
	}
}

func TestAssessIsDeterministic(t *testing.T) {
	in := pumpInput(ExposureControlled, vuln("CVE-B", kev), vuln("CVE-A", kev), vuln("CVE-C", poc, automatic))
	first := Assess(in)
	for range 20 {
		if again := Assess(in); !reflect.DeepEqual(first, again) {
			t.Fatalf("assessment changed between runs:\n%+v\n%+v", first, again)
		}
	}
	if first.Deciding.ID != "CVE-A" {
		t.Errorf("ties should be broken by id: deciding = %s", first.Deciding.ID)
	}
}

func TestParseDecimal(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "0.9": 900000, "1": 1000000, "1.0": 1000000, "0.000001": 1, "10.0": 10000000} {
		if got, err := parseDecimal(s); err != nil || got != want {
			t.Errorf("parseDecimal(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", ".5", "-0.1", "+1", "0.1234567", "abc", "1e3", "0.x"} {
		if _, err := parseDecimal(s); err == nil {
			t.Errorf("parseDecimal(%q) accepted", s)
		}
	}
}

// FuzzAssess drives the engine with arbitrary inputs: it must never panic, and the priority must
// be one of the four and never below the priority of any single vulnerability assessed alone.
func FuzzAssess(f *testing.F) {
	f.Add("Catastrophic", "MEFFailure", 2, "CVE-1", "0.95", "PoC", "Affected", true, false, "0.9")
	f.Add("", "", 0, "", "", "", "", false, true, "")
	f.Add("Bogus", "Bogus", 7, "x", "1.0000001", "Weird", "Fixed", false, false, "2")
	f.Fuzz(func(t *testing.T, safety, mission string, exposure int, id, epssValue, exploitation, status string, known, withDetection bool, threshold string) {
		v := v1alpha1.Vulnerability{ID: id, EPSS: epssValue, Exploitation: v1alpha1.Exploitation(exploitation),
			Status: v1alpha1.VulnerabilityStatus(status), KnownExploited: known}
		in := Input{Safety: v1alpha1.SafetyImpact(safety), Mission: v1alpha1.MissionImpact(mission), Exposure: Exposure(exposure),
			Vulnerabilities: []v1alpha1.Vulnerability{v, vuln("CVE-base")}, EPSSThreshold: threshold, Now: now}
		if withDetection {
			in.Detections = []v1alpha1.Detection{{Source: "s", Type: "t"}}
		}
		a := Assess(in)
		switch a.Priority {
		case v1alpha1.PriorityDefer, v1alpha1.PriorityScheduled, v1alpha1.PriorityOutOfCycle, v1alpha1.PriorityImmediate:
		default:
			t.Fatalf("priority %q is not an SSVC priority", a.Priority)
		}
		for _, va := range a.Vulnerabilities {
			if va.Priority.Rank() > a.Priority.Rank() {
				t.Fatalf("device priority %s below vulnerability %s at %s", a.Priority, va.ID, va.Priority)
			}
		}
		if a.Summary == "" {
			t.Fatal("empty summary")
		}
	})
}

func BenchmarkAssess(b *testing.B) {
	in := pumpInput(ExposureControlled)
	for i := range 50 {
		v := vuln(fmt.Sprintf("CVE-2025-%05d", i), epss(fmt.Sprintf("0.%02d", i)))
		if i%7 == 0 {
			v.Exploitation = v1alpha1.ExploitationPoC
		}
		if i%11 == 0 {
			v.Automatable = true
		}
		if i%13 == 0 {
			v.Status = v1alpha1.VulnFixed
		}
		in.Vulnerabilities = append(in.Vulnerabilities, v)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = Assess(in)
	}
}
