package cli

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/report"
	"github.com/medseg/medseg/internal/testenv"
)

const relSamples = "../../config/samples"

// TestReportOfSampleHospital keeps the Markdown and JSON reports of the sample hospital as
// golden files, and checks that the same input gives byte-identical output in every format.
func TestReportOfSampleHospital(t *testing.T) {
	for _, format := range []string{"md", "json", "html"} {
		// A relative path: the report names its source, and the golden file must not depend on
		// where the repository is checked out.
		first, stderr, code := run(t, "", "report", "-f", relSamples, "-o", format, "--now", fixedNow)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", format, code, stderr)
		}
		for range 3 {
			if again, _, _ := run(t, "", "report", "-f", relSamples, "-o", format, "--now", fixedNow); again != first {
				t.Fatalf("%s report changed between runs", format)
			}
		}
		if format != "html" {
			checkGolden(t, "report-samples."+format, first)
		} else {
			checkHTML(t, first, 5)
		}
	}
	out, _, _ := run(t, "", "report", "-f", relSamples, "-o", "json", "--now", fixedNow)
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Summary.Devices != 5 || r.Summary.Segmented != 5 || len(r.Zones) != 2 || len(r.Summary.Exceptions) != 1 {
		t.Errorf("summary of the sample hospital: %+v", r.Summary)
	}
}

// TestReportShowsOnboardingGrantsAndExpiringExceptions changes the sample hospital: one device
// loses its commissioning, the pump gets an open vendor window and one starting tomorrow, and
// time moves to two days before the NICU exception expires.
func TestReportShowsOnboardingGrantsAndExpiringExceptions(t *testing.T) {
	in, err := Load([]string{samples()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 16, 9, 0, 0, 0, time.UTC)
	for i := range in.Devices {
		if in.Devices[i].Name == "ct-scanner-1" {
			in.Devices[i].Spec.Commissioning = nil
		}
	}
	pump := v1alpha1.ObjectRef{Namespace: "icu", Name: "infusion-pump-bed-12"}
	g := func(name string, from time.Duration, ticket string) v1alpha1.AccessGrant {
		return v1alpha1.AccessGrant{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.AccessGrantSpec{Flow: "vendor-maintenance",
			Approval: v1alpha1.Approval{Device: pump, NotBefore: metav1.NewTime(now.Add(from)), NotAfter: metav1.NewTime(now.Add(from + 2*time.Hour)),
				ApprovedBy: "m.chen", Ticket: ticket, Justification: "firmware"}}}
	}
	in.Approvals.Grants = []v1alpha1.AccessGrant{g("now", -time.Hour, "VND-1"), g("tomorrow", 24*time.Hour, "VND-2"), g("last-month", -30*24*time.Hour, "VND-0"),
		{ObjectMeta: metav1.ObjectMeta{Name: "typo"}, Spec: v1alpha1.AccessGrantSpec{Flow: "vendor-upkeep", Approval: v1alpha1.Approval{Device: pump,
			NotBefore: metav1.NewTime(now.Add(-time.Hour)), NotAfter: metav1.NewTime(now.Add(time.Hour)), ApprovedBy: "m.chen", Ticket: "VND-3", Justification: "typo"}}}}
	r, err := OfflineReport(in, now, "test")
	if err != nil {
		t.Fatal(err)
	}
	s := r.Summary
	if s.Onboarding != 1 {
		t.Errorf("onboarding = %d, want 1 (the CT scanner)", s.Onboarding)
	}
	if len(s.Grants) != 2 || s.Grants[0].Name != "now" || s.Grants[0].State != "Open" || s.Grants[1].State != "Upcoming" {
		t.Errorf("grants = %+v, want the open one and tomorrow's, not last month's", s.Grants)
	}
	if len(s.IneffectiveApprovals) != 1 || s.IneffectiveApprovals[0].Reason != v1alpha1.ReasonApprovalNoFlow || s.IneffectiveApprovals[0].Count != 1 || !strings.Contains(s.IneffectiveApprovals[0].Details[0].Text, "AccessGrant typo") {
		t.Errorf("ineffective approvals = %+v, want the grant naming a flow the pump does not declare", s.IneffectiveApprovals)
	}
	if len(s.Exceptions) != 1 || s.Exceptions[0].State != "Expires soon" || s.Exceptions[0].Ticket != "CAB-2291" {
		t.Errorf("exceptions = %+v, want the NICU exception expiring soon", s.Exceptions)
	}
	ending := map[string]string{}
	for _, e := range s.Ending {
		ending[e.Name] = e.Kind
	}
	if len(s.Ending) != 2 || ending["now"] != "AccessGrant" || ending[s.Exceptions[0].Name] != "SegmentException" {
		t.Errorf("ending soon = %+v, want the open grant and the expiring exception", s.Ending)
	}
	devs := map[string]report.Device{}
	for _, d := range r.Devices {
		devs[d.Name] = d
	}
	if ct := devs["ct-scanner-1"]; ct.Commissioned || ct.Mode != "Restricted" || !strings.Contains(ct.ModeReason, "onboarding") {
		t.Errorf("the uncommissioned CT scanner should be in onboarding: %+v", ct)
	}
	pumpDev := devs["infusion-pump-bed-12"]
	allowed := map[string]bool{}
	for _, f := range pumpDev.Flows {
		allowed[f.Name] = f.Allowed
	}
	if !allowed["vendor-maintenance"] || len(pumpDev.Grants) != 2 {
		t.Errorf("the pump's vendor flow is open inside its grant: flows %v, grants %+v", allowed, pumpDev.Grants)
	}
	var md bytes.Buffer
	if err := report.Markdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 in onboarding", "### Ending within 7 days (2)", "| icu/infusion-pump-bed-12 | vendor-maintenance | now | m.chen | VND-1 |", "Expires soon"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	var h bytes.Buffer
	if err := report.HTML(&h, r); err != nil {
		t.Fatal(err)
	}
	checkHTML(t, h.String(), 5)
}

// TestReportDiagramSummarisesLargeHospitals: past MaxDiagramDevices the diagram aggregates
// conduits by zone, device type and peer (one curve per group and peer, not per device flow),
// each group linking to its conduit table, and stays well-formed.
func TestReportDiagramSummarisesLargeHospitals(t *testing.T) {
	in, err := Load([]string{samples()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := in.Devices[0]
	for i := range report.MaxDiagramDevices + 1 {
		d := base.DeepCopy()
		d.Name = base.Name + "-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		d.Spec.Network.Addresses = []string{"10.20.200." + itoa(i+1)}
		in.Devices = append(in.Devices, *d)
	}
	r, err := OfflineReport(in, time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), "test")
	if err != nil {
		t.Fatal(err)
	}
	svg := report.Diagram(r)
	curves, flows := strings.Count(svg, "<path"), 0
	for _, d := range r.Devices {
		flows += len(d.Flows)
	}
	if !strings.Contains(svg, "devices aggregated by type") || curves == 0 || curves >= flows/10 {
		t.Errorf("a large hospital's diagram should aggregate its %d device flows into a few conduits, drew %d curves", flows, curves)
	}
	for _, z := range r.Zones {
		for i, g := range z.Groups {
			if id := "zone-" + z.Name + "-g" + strconv.Itoa(i); !strings.Contains(svg, "href=\"#"+id+"\"") {
				t.Errorf("the diagram's group %s does not link to its conduit table #%s", g.Name, id)
			}
		}
	}
	var h bytes.Buffer
	if err := report.HTML(&h, r); err != nil {
		t.Fatal(err)
	}
	checkHTML(t, h.String(), len(in.Devices))
}

func itoa(i int) string { return strconv.Itoa(i) }

func checkHTML(t *testing.T, doc string, devices int) {
	t.Helper()
	testenv.CheckReportHTML(t, doc, devices)
}
