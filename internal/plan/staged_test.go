package plan_test

import (
	"path/filepath"
	"strings"
	"testing"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/segcheck"
	"github.com/medseg/medseg/internal/testenv"
)

// stagedPods are the pods of the staged-rollout sample hospital: its gateways, a gateway-labelled
// debug proxy no device selects, the clinical applications, and a metrics scraper.
var stagedPods = []segcheck.Pod{
	{Name: "pump-gateway", Namespace: "icu", Labels: map[string]string{"app": "pump-gateway", v1alpha1.LabelGateway: "true"}},
	{Name: "pump-server", Namespace: "icu", Labels: map[string]string{"app": "pump-server"}},
	{Name: "hl7-engine", Namespace: "integration", Labels: map[string]string{"app": "hl7-engine", v1alpha1.LabelGateway: "true"}},
	{Name: "poct-gateway", Namespace: "integration", Labels: map[string]string{"app": "poct-gateway", v1alpha1.LabelGateway: "true"}},
	{Name: "debug-proxy", Namespace: "integration", Labels: map[string]string{"app": "debug-proxy", v1alpha1.LabelGateway: "true"}},
	{Name: "dicom-gateway", Namespace: "radiology", Labels: map[string]string{"app": "dicom-gateway", v1alpha1.LabelGateway: "true"}},
	{Name: "emr-interface", Namespace: "clinical-apps", Labels: map[string]string{"app": "emr-interface"}},
	{Name: "alarm-server", Namespace: "clinical-apps", Labels: map[string]string{"app": "alarm-server"}},
	{Name: "lis", Namespace: "clinical-apps", Labels: map[string]string{"app": "lis"}},
	{Name: "lis-qc", Namespace: "clinical-apps", Labels: map[string]string{"app": "lis-qc"}},
	{Name: "pacs", Namespace: "clinical-apps", Labels: map[string]string{"app": "pacs"}},
	{Name: "ris", Namespace: "clinical-apps", Labels: map[string]string{"app": "ris"}},
	{Name: "billing", Namespace: "clinical-apps", Labels: map[string]string{"app": "billing"}},
	{Name: segcheck.ScraperName, Namespace: segcheck.ScraperNamespace, Labels: map[string]string{"app": "prometheus"}},
}

func stagedHospital(t *testing.T) plan.Hospital {
	t.Helper()
	in, err := cli.Load([]string{filepath.Join(testenv.RepoRoot(), "config", "samples", "staged-rollout")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in.Devices {
		in.Devices[i].UID = types.UID("uid-" + in.Devices[i].Name)
	}
	return plan.Hospital{Devices: plan.Devices(in.Devices), Policies: in.Policies, Namespaces: in.Namespaces}
}

func setEnforcement(h plan.Hospital, policy string, e v1alpha1.Enforcement) {
	for i := range h.Policies {
		if h.Policies[i].Name == policy {
			h.Policies[i].Spec.Enforcement = e
		}
	}
}

func device(h plan.Hospital, name string) *v1alpha1.MedicalDevice {
	for _, d := range h.Devices {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// verdict is one expected answer of Cilium's engine.
type verdict struct {
	what           string
	from, to       string // pod "ns/name" or address
	proto          string
	port           int32
	want           bool
	egressOnlyDest bool
}

func pod(ns, name string) string { return ns + "/" + name }

// expect asks Cilium's engine for each verdict on the world.
func expect(t *testing.T, w *segcheck.World, vs []verdict) {
	t.Helper()
	for _, v := range vs {
		got, err := w.Allowed(w.Identity(v.from), w.Identity(v.to), v.proto, v.port, v.egressOnlyDest)
		if err != nil {
			t.Fatal(err)
		}
		if got != v.want {
			t.Errorf("%s: %s → %s %d/%s allowed=%t, want %t", v.what, v.from, v.to, v.port, v.proto, got, v.want)
		}
	}
}

func flowOpen(t *testing.T, w *segcheck.World, dev *v1alpha1.MedicalDevice, flow string) bool {
	t.Helper()
	for _, f := range dev.Spec.Flows {
		if f.Name != flow {
			continue
		}
		open := true
		for _, gw := range w.GatewaysOf(dev) {
			for _, peer := range w.PeersOf(dev, f) {
				ok, err := w.FlowOpen(f, gw, peer, dev.Spec.Network.Addresses[0])
				if err != nil {
					t.Fatal(err)
				}
				open = open && ok
			}
		}
		return open
	}
	t.Fatalf("%s has no flow %s", dev.Name, flow)
	return false
}

// TestStagedRolloutHospitalInCiliumsEngine checks the staged-rollout sample (critical care
// enforced, diagnostics in Audit, one ungoverned device, an HL7 engine shared across zones)
// verdict by verdict, then every rule on the whole hospital.
func TestStagedRolloutHospitalInCiliumsEngine(t *testing.T) {
	h := stagedHospital(t)
	w, err := segcheck.Rendered(h, stagedPods, []string{"10.20.99.1", "10.30.99.1"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("an Audit-only gateway keeps every flow it had", func(t *testing.T) {
		expect(t, w, []verdict{
			{"CT sends DICOM to the gateway", "10.30.1.3", pod("radiology", "dicom-gateway"), "TCP", 104, true, false},
			{"the gateway forwards to PACS", pod("radiology", "dicom-gateway"), pod("clinical-apps", "pacs"), "TCP", 104, true, false},
			{"the gateway reaches its device on any port (no default deny)", pod("radiology", "dicom-gateway"), "10.30.1.3", "TCP", 22, true, true},
			{"the gateway reaches the internet", pod("radiology", "dicom-gateway"), segcheck.Outside, "TCP", 443, true, true},
			{"the gateway is scraped", pod(segcheck.ScraperNamespace, segcheck.ScraperName), pod("radiology", "dicom-gateway"), "TCP", 9090, true, false},
			{"but it cannot reach critical care's devices", pod("radiology", "dicom-gateway"), "10.20.1.4", "TCP", 443, false, true},
			{"nor the rest of critical care's network", pod("radiology", "dicom-gateway"), "10.20.99.1", "TCP", 443, false, true},
		})
		if !flowOpen(t, w, device(h, "ct-scanner-3"), "dicom-to-pacs") || !flowOpen(t, w, device(h, "ct-scanner-3"), "modality-worklist") {
			t.Error("an Audit device's flows must stay open end to end")
		}
	})
	t.Run("a shared gateway keeps the Audit device's declared flows, every tier", func(t *testing.T) {
		analyser, monitor := device(h, "chemistry-analyser-7"), device(h, "patient-monitor-bed-4")
		for _, f := range []string{"hl7-results", "qc-upload"} {
			if !flowOpen(t, w, analyser, f) {
				t.Errorf("the Audit analyser's %s flow was cut on the gateway it shares with an enforced monitor", f)
			}
		}
		for _, f := range []string{"alarms", "vitals-to-emr"} {
			if !flowOpen(t, w, monitor, f) {
				t.Errorf("the enforced monitor's %s flow is closed", f)
			}
		}
		expect(t, w, []verdict{
			{"the shared gateway is in default deny (it fronts an enforced device)", pod(segcheck.ScraperNamespace, segcheck.ScraperName), pod("integration", "hl7-engine"), "TCP", 9090, false, false},
			{"and cannot reach the internet", pod("integration", "hl7-engine"), segcheck.Outside, "TCP", 443, false, true},
			{"the analyser's gateway port is closed to other pods", pod("clinical-apps", "billing"), pod("integration", "hl7-engine"), "TCP", 2577, false, false},
		})
		var companion *ciliumv2.CiliumNetworkPolicy
		for _, p := range w.Policies {
			if p.Name == "medseg-chemistry-analyser-7" {
				companion = p
			}
		}
		if companion == nil || *companion.Spec.EnableDefaultDeny.Ingress || *companion.Spec.EnableDefaultDeny.Egress {
			t.Errorf("the Audit analyser needs an allow-only policy (default deny off): %+v", companion)
		}
	})
	t.Run("an ungoverned device's gateway keeps its traffic", func(t *testing.T) {
		if !flowOpen(t, w, device(h, "blood-gas-analyser-2"), "results") {
			t.Error("the ungoverned analyser's flow was cut")
		}
		expect(t, w, []verdict{
			{"its gateway reaches the internet", pod("integration", "poct-gateway"), segcheck.Outside, "TCP", 443, true, true},
			{"its gateway is scraped", pod(segcheck.ScraperNamespace, segcheck.ScraperName), pod("integration", "poct-gateway"), "TCP", 9090, true, false},
			{"its gateway cannot reach critical care's devices", pod("integration", "poct-gateway"), "10.20.2.4", "UDP", 7000, false, true},
		})
		for _, p := range w.Policies {
			if p.Name == "medseg-blood-gas-analyser-2" {
				t.Error("an ungoverned device that shares no gateway gets nothing written")
			}
		}
	})
	t.Run("an unselected gateway-labelled pod reaches no enforced device", func(t *testing.T) {
		var vs []verdict
		for _, a := range []string{"10.20.1.4", "10.20.2.4", "10.20.99.1"} {
			for _, port := range []int32{22, 443, 2575, 7000, 8443} {
				vs = append(vs, verdict{"debug proxy in a gateway namespace", pod("integration", "debug-proxy"), a, "TCP", port, false, true})
			}
			vs = append(vs, verdict{"debug proxy over UDP", pod("integration", "debug-proxy"), a, "UDP", 7000, false, true},
				verdict{"ordinary pod", pod("clinical-apps", "billing"), a, "TCP", 443, false, true})
		}
		vs = append(vs, verdict{"the debug proxy keeps the rest of the network", pod("integration", "debug-proxy"), segcheck.Outside, "TCP", 443, true, true},
			verdict{"and reaches the Audit zone (not enforced)", pod("integration", "debug-proxy"), "10.30.2.7", "TCP", 443, true, true})
		expect(t, w, vs)
	})
	t.Run("every rule holds on the whole hospital", func(t *testing.T) {
		rep, err := w.Check(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Violations) > 0 {
			t.Errorf("%d violations:\n%s", len(rep.Violations), strings.Join(rep.Violations, "\n"))
		}
		t.Logf("%d verdicts", rep.Verdicts)
	})
}

// TestTwoEnforcedZonesWithDisjointGateways: with diagnostics enforced too, each zone's gateways
// reach only their own devices.
func TestTwoEnforcedZonesWithDisjointGateways(t *testing.T) {
	h := stagedHospital(t)
	setEnforcement(h, "diagnostics", v1alpha1.EnforcementEnforce)
	w, err := segcheck.Rendered(h, stagedPods, []string{"10.20.99.1", "10.30.99.1"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, w, []verdict{
		{"radiology's gateway → critical care's pump", pod("radiology", "dicom-gateway"), "10.20.1.4", "TCP", 443, false, true},
		{"the pump's gateway → radiology's CT", pod("icu", "pump-gateway"), "10.30.1.3", "TCP", 104, false, true},
		{"the pump's gateway → its pump", pod("icu", "pump-gateway"), "10.20.1.4", "TCP", 443, true, true},
		{"radiology's gateway → PACS", pod("radiology", "dicom-gateway"), pod("clinical-apps", "pacs"), "TCP", 104, true, false},
		{"radiology's gateway is now in default deny", pod("radiology", "dicom-gateway"), segcheck.Outside, "TCP", 443, false, true},
	})
	for _, d := range []string{"ct-scanner-3", "chemistry-analyser-7", "patient-monitor-bed-4", "infusion-pump-bed-4"} {
		dev := device(h, d)
		for _, f := range dev.Spec.Flows {
			if !flowOpen(t, w, dev, f.Name) {
				t.Errorf("%s %s closed with both zones enforced", d, f.Name)
			}
		}
	}
	if rep, err := w.Check(nil); err != nil || len(rep.Violations) > 0 {
		t.Errorf("%v %v", err, rep.Violations)
	}
}

// TestAuditEnforceAuditOnTheStagedHospital switches diagnostics Audit → Enforce → Audit: no flow
// of critical care or of the ungoverned analyser changes at any step, and going back restores
// every verdict.
func TestAuditEnforceAuditOnTheStagedHospital(t *testing.T) {
	h := stagedHospital(t)
	outside := []struct{ dev, flow string }{
		{"infusion-pump-bed-4", "therapy-orders"}, {"infusion-pump-bed-4", "emr-documentation"},
		{"patient-monitor-bed-4", "alarms"}, {"patient-monitor-bed-4", "vitals-to-emr"},
		{"blood-gas-analyser-2", "results"},
	}
	diagnostics := []struct{ dev, flow string }{
		{"chemistry-analyser-7", "hl7-results"}, {"chemistry-analyser-7", "qc-upload"},
		{"ct-scanner-3", "dicom-to-pacs"}, {"ct-scanner-3", "modality-worklist"},
	}
	step := func(e v1alpha1.Enforcement) map[string]bool {
		setEnforcement(h, "diagnostics", e)
		w, err := segcheck.Rendered(h, stagedPods, []string{"10.20.99.1", "10.30.99.1"}, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := w.Check(nil); err != nil || len(rep.Violations) > 0 {
			t.Fatalf("%s: %v %v", e, err, rep.Violations)
		}
		out := map[string]bool{}
		for _, f := range append(outside, diagnostics...) {
			out[f.dev+"/"+f.flow] = flowOpen(t, w, device(h, f.dev), f.flow)
		}
		return out
	}
	audit, enforce, back := step(v1alpha1.EnforcementAudit), step(v1alpha1.EnforcementEnforce), step(v1alpha1.EnforcementAudit)
	for _, f := range outside {
		k := f.dev + "/" + f.flow
		if !audit[k] || !enforce[k] || !back[k] {
			t.Errorf("%s: open in Audit=%t, Enforce=%t, Audit again=%t; want open throughout", k, audit[k], enforce[k], back[k])
		}
	}
	for k, v := range audit {
		if back[k] != v {
			t.Errorf("%s: going back to Audit changed open=%t to %t", k, v, back[k])
		}
	}
}

// TestAddressConflictFailsClosed: a new, uncommissioned device claims the quarantined pump's
// address and selects the pump's gateway (the attack the live demo found). While the conflict
// lasts the pump's blocked flows stay blocked, its Essential flow stays open, the newcomer gets
// no policy, and the pump's policy may tighten but never open.
func TestAddressConflictFailsClosed(t *testing.T) {
	h := stagedHospital(t)
	pump := device(h, "infusion-pump-bed-4")
	pump.Spec.Vulnerabilities = []v1alpha1.Vulnerability{{ID: "CVE-2026-1111", KnownExploited: true, Automatable: true, Status: v1alpha1.VulnAffected}}
	before, err := plan.HospitalObjects(h, testNow)
	if err != nil {
		t.Fatal(err)
	}
	live := map[v1alpha1.ObjectRef]*ciliumv2.CiliumNetworkPolicy{}
	for _, p := range before.Policies {
		live[v1alpha1.ObjectRef{Namespace: p.Namespace, Name: p.Labels[v1alpha1.LabelDevice]}] = p
	}
	pumpRef := v1alpha1.ObjectRef{Namespace: "icu", Name: pump.Name}
	if live[pumpRef] == nil || !strings.Contains(live[pumpRef].Spec.Description, "Quarantine") {
		t.Fatalf("the pump must be quarantined before the conflict: %+v", live[pumpRef])
	}

	dup := &v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Name: "dup-addr", Namespace: "icu", UID: "uid-dup", Labels: map[string]string{"medseg.io/zone": "critical-care"}}}
	dup.Spec = *pump.Spec.DeepCopy()
	dup.Spec.Commissioning, dup.Spec.Vulnerabilities = nil, nil
	h.Devices = append(h.Devices, dup)
	h.Live = func(r v1alpha1.ObjectRef) *ciliumv2.CiliumNetworkPolicy { return live[r] }

	during, err := plan.HospitalObjects(h, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range during.Policies {
		if p.Name == "medseg-dup-addr" {
			t.Fatalf("the newcomer claiming a contested address got a policy: %+v", p.Spec)
		}
	}
	w, err := segcheck.Load(h, stagedPods, nil, during.Plans, during.Guards, during.Policies)
	if err != nil {
		t.Fatal(err)
	}
	if !flowOpen(t, w, pump, "therapy-orders") {
		t.Error("the quarantined pump's Essential flow was cut by the conflict")
	}
	if flowOpen(t, w, pump, "emr-documentation") {
		t.Error("the conflict reopened the quarantined pump's Clinical flow")
	}
	expect(t, w, []verdict{
		{"the pump's device never sends to the EMR port", "10.20.1.4", pod("icu", "pump-gateway"), "TCP", 2575, false, false},
		{"the pump's gateway never reaches the EMR", pod("icu", "pump-gateway"), pod("clinical-apps", "emr-interface"), "TCP", 2575, false, false},
	})

	// The pump's risk falls during the conflict: its policy stays as it was (no new path).
	pump.Spec.Vulnerabilities = nil
	relaxed, err := plan.HospitalObjects(h, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range relaxed.Policies {
		if p.Name == "medseg-infusion-pump-bed-4" {
			t.Errorf("a conflict must not let the pump's policy open (it would leave quarantine): %s", p.Spec.Description)
		}
	}
	var pumpPlan *plan.Plan
	for i, d := range h.Devices {
		if d == pump {
			pumpPlan = relaxed.Plans[i]
		}
	}
	dec := plan.DecideObject(pumpPlan, live[pumpRef], plan.ClaimsOf(h.Devices).Contested(pump), nil)
	if dec.Intent != plan.Keep || !strings.Contains(dec.Why, "contested") {
		t.Errorf("decision for the pump while contested and less risky: %+v", dec)
	}
}
