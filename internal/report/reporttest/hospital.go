// Package reporttest makes synthetic hospitals of any size, with the status medseg would have
// recorded for them, for the report's tests and benchmarks. The hospital is deterministic for
// a size and a time. Its shape follows what hospitals report: most devices Scheduled or
// Defer, about one in nine Immediate; zones by care area, the last one in Audit (a staged
// rollout); a few devices ungoverned, in address conflict, without gateway or widened by a
// foreign policy; exceptions and vendor grants, some ending soon; observed traffic in the
// Audit zone that Enforce would drop.
package reporttest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/report"
)

type zoneSpec struct {
	name      string
	careAreas []string
	types     []string
}

var zoneSpecs = []zoneSpec{
	{"critical-care", []string{"icu", "nicu", "ccu"}, []string{"InfusionPump", "PatientMonitor", "Ventilator", "Camera"}},
	{"surgery", []string{"or", "pacu"}, []string{"AnesthesiaMachine", "PatientMonitor", "InfusionPump", "SurgicalRobot"}},
	{"laboratory", []string{"lab", "pathology"}, []string{"LabAnalyser", "BloodGasAnalyser", "Centrifuge"}},
	{"general-wards", []string{"ward-a", "ward-b", "ward-c", "oncology"}, []string{"InfusionPump", "PatientMonitor", "BedsideTerminal", "ECG"}},
	{"dialysis", []string{"dialysis"}, []string{"DialysisMachine", "PatientMonitor"}},
	// The last zone is in Audit: the next stage of the rollout.
	{"imaging-staged", []string{"radiology", "cardiology"}, []string{"CTScanner", "MRIScanner", "Ultrasound", "XRay", "PACSWorkstation"}},
}

type flowSpec struct {
	name        string
	tier        v1alpha1.Tier
	dir         v1alpha1.Direction
	port        int32
	peerNS, app string
	cidr        string
}

var manufacturers = []string{"Acme Medical", "Northwind Devices", "Contoso Health", "Fabrikam Clinical"}

// flowsOf are a device type's declared flows.
func flowsOf(typ, careArea string) []flowSpec {
	out := []flowSpec{{"emr-results", v1alpha1.TierClinical, v1alpha1.DirectionFromDevice, 2575, "clinical-apps", "emr-interface", ""}}
	switch typ {
	case "InfusionPump", "Ventilator", "AnesthesiaMachine", "DialysisMachine":
		out = append(out, flowSpec{"device-server", v1alpha1.TierEssential, v1alpha1.DirectionToDevice, 8443, careArea, strings.ToLower(typ) + "-server", ""})
	case "PatientMonitor", "ECG":
		out = append(out, flowSpec{"alarms", v1alpha1.TierEssential, v1alpha1.DirectionFromDevice, 7000, "clinical-apps", "alarm-server", ""})
	case "CTScanner", "MRIScanner", "Ultrasound", "XRay", "PACSWorkstation":
		out = append(out, flowSpec{"dicom-store", v1alpha1.TierClinical, v1alpha1.DirectionFromDevice, 11112, "clinical-apps", "pacs", ""},
			flowSpec{"worklist", v1alpha1.TierClinical, v1alpha1.DirectionFromDevice, 11113, "clinical-apps", "ris", ""})
	case "LabAnalyser", "BloodGasAnalyser", "Centrifuge":
		out = append(out, flowSpec{"lis-results", v1alpha1.TierClinical, v1alpha1.DirectionFromDevice, 2577, "clinical-apps", "lis", ""})
	case "Camera":
		out = append(out, flowSpec{"video", v1alpha1.TierClinical, v1alpha1.DirectionToDevice, 8554, "clinical-apps", "video-viewer", ""})
	}
	return append(out,
		flowSpec{"time-sync", v1alpha1.TierSupport, v1alpha1.DirectionFromDevice, 123, "infra", "ntp", ""},
		flowSpec{"vendor-maintenance", v1alpha1.TierSupport, v1alpha1.DirectionToDevice, 2222, "", "", "203.0.113.0/28"})
}

// allowedIn says whether a mode keeps a tier's flows (Quarantine keeps Essential,
// Restricted Essential and Clinical).
func allowedIn(m v1alpha1.Mode, t v1alpha1.Tier) bool {
	switch m {
	case v1alpha1.ModeQuarantine:
		return t == v1alpha1.TierEssential
	case v1alpha1.ModeRestricted:
		return t != v1alpha1.TierSupport
	}
	return true
}

// Zones is how many zones a hospital of n devices has: two up to 2,000 devices (one enforced,
// one in Audit), then one more per 2,000, up to six.
func Zones(n int) int { return min(len(zoneSpecs), max(2, n/2000+1)) }

// Hospital is a synthetic hospital of n devices as the report reads it from a live cluster.
func Hospital(n int, now time.Time) report.Input {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	nz := Zones(n)
	zones := append(append([]zoneSpec{}, zoneSpecs[:nz-1]...), zoneSpecs[len(zoneSpecs)-1])
	in := report.Input{Now: now, Source: fmt.Sprintf("synthetic hospital of %d devices", n)}
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(d).Truncate(time.Second)) }
	for zi, z := range zones {
		enf := v1alpha1.EnforcementEnforce
		if zi == len(zones)-1 {
			enf = v1alpha1.EnforcementAudit
		}
		p := v1alpha1.SegmentPolicy{ObjectMeta: metav1.ObjectMeta{Name: z.name}, Spec: v1alpha1.SegmentPolicySpec{Enforcement: enf,
			DeviceNetworks: []string{fmt.Sprintf("10.%d.0.0/16", 20+zi)}}}
		evaluated := at(-time.Duration(5+zi*7) * time.Minute)
		p.Status.Flatness = &v1alpha1.FlatnessStatus{EvaluatedWorkloads: int32(400 + 37*zi), EvaluatedAt: &evaluated}
		isolated := metav1.Condition{Type: v1alpha1.ConditionIsolated, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonIsolated, LastTransitionTime: at(-72 * time.Hour)}
		if enf == v1alpha1.EnforcementAudit {
			// No guard under Audit: the zone is still flat.
			isolated.Status, isolated.Reason = metav1.ConditionFalse, v1alpha1.ReasonFlatNetwork
			p.Status.Flatness.ReachableWorkloads = 212
			p.Status.Flatness.Offenders = []string{"guest/laptop-7 → 10.25.0.9 (no policy selects it)", "billing/report-0 → 10.25.1.3 (no policy selects it)"}
		}
		p.Status.Conditions = []metav1.Condition{isolated}
		p.Status.Gateways = []v1alpha1.GatewayLoad{{Namespace: z.careAreas[0], Pod: "gateway-0", Devices: int32(n / nz / len(z.careAreas)), Entries: int32(9 * n / nz / len(z.careAreas)), Capacity: 16384}}
		in.Policies = append(in.Policies, p)
	}
	for i := range n {
		in.Devices = append(in.Devices, device(rng, i, n, zones, now))
	}
	addApprovals(&in, rng, now)
	return in
}

func device(rng *rand.Rand, i, n int, zones []zoneSpec, now time.Time) v1alpha1.MedicalDevice {
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(d).Truncate(time.Second)) }
	// The Audit zone holds about a third of the devices; the enforced zones share the rest.
	zi := i % (2 * (len(zones) - 1))
	if i%3 == 2 {
		zi = len(zones) - 1
	} else {
		zi %= len(zones) - 1
	}
	z := zones[zi]
	area := z.careAreas[i%len(z.careAreas)]
	typ := z.types[(i/len(zones))%len(z.types)]
	name := fmt.Sprintf("%s-%05d", strings.ToLower(typ), i)
	d := v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Namespace: area, Name: name}}
	d.Spec.Identity = v1alpha1.DeviceIdentity{Manufacturer: manufacturers[i%len(manufacturers)], Model: typ[:3] + "-" + fmt.Sprint(100+i%7*10),
		DeviceType: typ, FirmwareVersion: fmt.Sprintf("%d.%d.%d", 1+i%4, i%10, i%3), SerialNumber: fmt.Sprintf("SN%08d", 7919*i%100000000)}
	d.Spec.Clinical = v1alpha1.ClinicalImpact{SafetyImpact: []v1alpha1.SafetyImpact{v1alpha1.SafetyCritical, v1alpha1.SafetyMarginal, v1alpha1.SafetyCatastrophic}[i%3],
		MissionImpact: v1alpha1.MissionDegraded, CareArea: area}
	d.Spec.Gateway.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "gateway"}}
	d.Spec.Network.Addresses = []string{fmt.Sprintf("10.%d.%d.%d", 20+zi, (i/250)%256, i%250+1)}
	commissioned := rng.IntN(100) >= 3
	if commissioned {
		d.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: "biomed.lead", ApprovedAt: at(-30 * 24 * time.Hour), Ticket: fmt.Sprintf("BME-%d", 1000+i%500)}
	}
	var priority v1alpha1.Priority
	switch x := rng.IntN(100); {
	case x < 11:
		priority = v1alpha1.PriorityImmediate
	case x < 26:
		priority = v1alpha1.PriorityOutOfCycle
	case x < 76:
		priority = v1alpha1.PriorityScheduled
	default:
		priority = v1alpha1.PriorityDefer
	}
	mode := map[v1alpha1.Priority]v1alpha1.Mode{v1alpha1.PriorityImmediate: v1alpha1.ModeQuarantine, v1alpha1.PriorityOutOfCycle: v1alpha1.ModeRestricted}[priority]
	if mode == "" {
		mode = v1alpha1.ModeStandard
	}
	cve := fmt.Sprintf("CVE-2026-%05d", 1000+rng.IntN(40000))
	st := &d.Status
	st.Risk = &v1alpha1.RiskStatus{Priority: priority, DecidingVulnerability: cve,
		Exploitation: &v1alpha1.SSVCInput{Value: []string{"none", "public-poc", "active"}[int(rank(priority))%3]},
		Exposure:     &v1alpha1.SSVCInput{Value: "controlled"}, Automatable: &v1alpha1.SSVCInput{Value: "no"}, HumanImpact: &v1alpha1.SSVCInput{Value: "high"}}
	seg := &v1alpha1.SegmentationStatus{Policy: z.name, Mode: mode, Enforcement: v1alpha1.EnforcementEnforce,
		ModeReason: fmt.Sprintf("riskResponse %s → %s", priority, mode)}
	if zi == len(zones)-1 {
		seg.Enforcement = v1alpha1.EnforcementAudit
	}
	for _, f := range flowsOf(typ, area) {
		fl := v1alpha1.Flow{Name: f.name, Direction: f.dir, Tier: f.tier, GatewayPort: f.port}
		if f.dir == v1alpha1.DirectionToDevice {
			fl.DevicePort = f.port
		} else {
			fl.PeerPort = f.port
		}
		peer := v1alpha1.Peer{CIDR: f.cidr}
		if f.cidr == "" {
			peer = v1alpha1.Peer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": f.peerNS}},
				PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": f.app}}}
		} else {
			fl.Access = v1alpha1.AccessGranted
		}
		fl.Peers = []v1alpha1.Peer{peer}
		d.Spec.Flows = append(d.Spec.Flows, fl)
		switch {
		case f.cidr != "":
			seg.BlockedFlows = append(seg.BlockedFlows, v1alpha1.BlockedFlow{Name: f.name, Reason: v1alpha1.BlockGrant, Message: "no access grant is open"})
		case allowedIn(mode, f.tier):
			seg.AllowedFlows = append(seg.AllowedFlows, f.name)
		default:
			seg.BlockedFlows = append(seg.BlockedFlows, v1alpha1.BlockedFlow{Name: f.name, Reason: v1alpha1.BlockMode, Message: fmt.Sprintf("%s keeps no %s flows", mode, f.tier)})
		}
	}
	st.Segmentation = seg
	if d.Spec.Commissioning != nil {
		d.Spec.Commissioning.FlowsHash = v1alpha1.FlowsHash(d.Spec.Flows)
	}
	cond := metav1.Condition{Type: v1alpha1.ConditionSegmented, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSegmented,
		Message: "the device's CiliumNetworkPolicy is applied as desired", LastTransitionTime: at(-48 * time.Hour)}
	x := rng.IntN(1000)
	switch {
	case x < 5: // ungoverned: no policy selects the device
		st.Segmentation = nil
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, v1alpha1.ReasonNoSegmentPolicy, "no SegmentPolicy selects this device: it is not governed"
	case seg.Enforcement == v1alpha1.EnforcementAudit && x < 50:
		seg.SharedWith = []string{area + "/shared-neighbour (critical-care)"}
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonSharedGateway
		cond.Message = "SegmentPolicy " + z.name + " is in Audit; its gateway pods are shared with enforced devices: medseg keeps its declared flows open on them"
	case seg.Enforcement == v1alpha1.EnforcementAudit:
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonAuditOnly
		cond.Message = "SegmentPolicy " + z.name + " is in Audit: nothing is enforced"
	case x < 15:
		other := fmt.Sprintf("%s/%s-%05d", area, strings.ToLower(typ), (i+7)%n)
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonAddressConflict
		cond.Message = fmt.Sprintf("address %s is also claimed by %s: nothing new is allowed until one of them changes", d.Spec.Network.Addresses[0], other)
	case x < 25:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, v1alpha1.ReasonGatewayNotFound, "no pod matches the gateway selector app=gateway yet; policies are written and apply when the gateway starts"
	case x < 30:
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonForeignPolicyWidens
		cond.Message = "CiliumNetworkPolicy " + area + "/allow-vendor-vpn widens access to the device"
		st.Drift = &v1alpha1.DriftStatus{ForeignPolicies: []v1alpha1.ForeignPolicy{{Kind: "CiliumNetworkPolicy", Namespace: area, Name: "allow-vendor-vpn", Widens: true, Reason: "allows 0.0.0.0/0 to the gateway"}}}
	}
	st.Conditions = []metav1.Condition{cond}
	st.History = []v1alpha1.HistoryEntry{
		{Time: at(-time.Duration(1+i%20) * time.Hour), Priority: priority, Mode: mode, Reason: "feed kev: " + cve},
		{Time: at(-40 * 24 * time.Hour), Priority: v1alpha1.PriorityScheduled, Mode: v1alpha1.ModeStandard, Reason: "first assessment"},
	}
	if seg.Enforcement == v1alpha1.EnforcementAudit && rng.IntN(100) < 30 {
		flows := 1 + rng.IntN(3)
		t := &v1alpha1.TrafficStatus{Window: metav1.Duration{Duration: time.Hour}, UndeclaredFlows: int32(flows)}
		for k := range flows {
			conns := int64(1 + rng.IntN(400))
			t.UndeclaredConnections += conns
			t.Undeclared = append(t.Undeclared, v1alpha1.ObservedFlow{Direction: v1alpha1.DirectionFromDevice, Peer: fmt.Sprintf("it-tools/scanner-%d", k),
				Protocol: v1alpha1.ProtocolTCP, GatewayPort: int32(9000 + k), Port: int32(9000 + k), Connections: conns, LastSeen: at(-time.Duration(k+1) * time.Minute)})
		}
		st.Traffic = t
	}
	return d
}

func rank(p v1alpha1.Priority) int {
	switch p {
	case v1alpha1.PriorityImmediate:
		return 2
	case v1alpha1.PriorityOutOfCycle:
		return 1
	}
	return 0
}

// addApprovals gives about 1% of the enforced devices an exception (some ending within a week)
// and 0.5% an open vendor grant ending within hours.
func addApprovals(in *report.Input, rng *rand.Rand, now time.Time) {
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(d).Truncate(time.Second)) }
	for i := range in.Devices {
		d := &in.Devices[i]
		seg := d.Status.Segmentation
		if seg == nil || seg.Policy == "" || seg.Enforcement != v1alpha1.EnforcementEnforce {
			continue
		}
		ref := v1alpha1.ObjectRef{Namespace: d.Namespace, Name: d.Name}
		switch x := rng.IntN(1000); {
		case x < 10 && seg.Mode != v1alpha1.ModeStandard:
			ends := at(time.Duration(2+rng.IntN(60)) * 24 * time.Hour)
			name := "exc-" + d.Name
			in.Approvals.Exceptions = append(in.Approvals.Exceptions, v1alpha1.SegmentException{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: v1alpha1.SegmentExceptionSpec{MaxMode: v1alpha1.ModeRestricted, Approval: v1alpha1.Approval{Device: ref, NotAfter: ends, ApprovedBy: "dr.osei",
					Ticket: fmt.Sprintf("CAB-%d", 2000+i), Justification: "life-sustaining; vendor patch scheduled"}},
				Status: v1alpha1.ApprovalStatus{Phase: v1alpha1.ApprovalActive, Policy: seg.Policy}})
			seg.ActiveException = &v1alpha1.ActiveException{Name: name, MaxMode: v1alpha1.ModeRestricted, ApprovedBy: "dr.osei", ExpiresAt: ends}
			seg.Mode, seg.ModeReason = v1alpha1.ModeRestricted, "exception "+name+" caps the mode at Restricted"
		case x >= 10 && x < 15:
			name := "vendor-" + d.Name
			in.Approvals.Grants = append(in.Approvals.Grants, v1alpha1.AccessGrant{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: v1alpha1.AccessGrantSpec{Flow: "vendor-maintenance", Approval: v1alpha1.Approval{Device: ref, NotBefore: at(-time.Hour), NotAfter: at(time.Duration(1+rng.IntN(6)) * time.Hour),
					ApprovedBy: "m.chen", Ticket: fmt.Sprintf("VND-%d", 300+i)}},
				Status: v1alpha1.ApprovalStatus{Phase: v1alpha1.ApprovalActive, Policy: seg.Policy}})
			// The grant opens the flow.
			kept := seg.BlockedFlows[:0]
			for _, b := range seg.BlockedFlows {
				if b.Name != "vendor-maintenance" {
					kept = append(kept, b)
				}
			}
			seg.BlockedFlows = kept
			seg.AllowedFlows = append(seg.AllowedFlows, "vendor-maintenance")
		}
	}
}
