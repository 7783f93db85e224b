package render

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/medseg/medseg/api/v1alpha1"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

var namespaces = map[string]map[string]string{
	"icu":           {"kubernetes.io/metadata.name": "icu", v1alpha1.LabelGatewayNamespace: "true", "medseg.io/zone": "critical-care"},
	"clinical-apps": {"kubernetes.io/metadata.name": "clinical-apps"},
	"guest-wifi":    {"kubernetes.io/metadata.name": "guest-wifi"},
}

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func pump() *v1alpha1.MedicalDevice {
	return &v1alpha1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Name: "infusion-pump-bed-12", Namespace: "icu", UID: types.UID("0a1b2c3d-pump")},
		Spec: v1alpha1.MedicalDeviceSpec{
			Identity: v1alpha1.DeviceIdentity{Manufacturer: "Acme Medical", Model: "InfuSafe 3000", DeviceType: "InfusionPump"},
			Clinical: v1alpha1.ClinicalImpact{SafetyImpact: v1alpha1.SafetyCatastrophic, MissionImpact: v1alpha1.MissionMEFFailure},
			Network:  v1alpha1.DeviceNetwork{Addresses: []string{"10.20.1.12"}},
			Gateway:  v1alpha1.GatewayRef{PodSelector: *sel("app", "pump-gateway")},
			Flows: []v1alpha1.Flow{
				{Name: "therapy-orders", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierEssential, Protocol: v1alpha1.ProtocolTCP,
					GatewayPort: 8443, DevicePort: 443, Peers: []v1alpha1.Peer{{PodSelector: sel("app", "pump-server")}}},
				{Name: "emr-documentation", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierClinical, Protocol: v1alpha1.ProtocolTCP,
					GatewayPort: 2575, PeerPort: 2575, Peers: []v1alpha1.Peer{{
						NamespaceSelector: sel("kubernetes.io/metadata.name", "clinical-apps"), PodSelector: sel("app", "emr-interface")}}},
				{Name: "vendor-maintenance", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierSupport, Protocol: v1alpha1.ProtocolTCP,
					GatewayPort: 2222, DevicePort: 22, Peers: []v1alpha1.Peer{{CIDR: "203.0.113.0/28"}}},
			},
		},
	}
}

func monitor() *v1alpha1.MedicalDevice {
	return &v1alpha1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Name: "patient-monitor-bed-12", Namespace: "icu", UID: types.UID("0a1b2c3d-monitor")},
		Spec: v1alpha1.MedicalDeviceSpec{
			Identity: v1alpha1.DeviceIdentity{Manufacturer: "VitalSigns Inc", Model: "VS-900", DeviceType: "PatientMonitor"},
			Clinical: v1alpha1.ClinicalImpact{SafetyImpact: v1alpha1.SafetyCatastrophic, MissionImpact: v1alpha1.MissionMissionFailure},
			Network:  v1alpha1.DeviceNetwork{Addresses: []string{"10.20.2.12", "fd00:20::2:12"}},
			Gateway:  v1alpha1.GatewayRef{PodSelector: *sel("app", "monitor-gateway")},
			Flows: []v1alpha1.Flow{
				{Name: "alarms", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierEssential, Protocol: v1alpha1.ProtocolUDP,
					GatewayPort: 7000, PeerPort: 7000, Peers: []v1alpha1.Peer{{
						NamespaceSelector: sel("kubernetes.io/metadata.name", "clinical-apps"), PodSelector: sel("app", "alarm-server")}}},
				{Name: "vitals-to-emr", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierClinical, Protocol: v1alpha1.ProtocolTCP,
					GatewayPort: 2576, PeerPort: 2575, Peers: []v1alpha1.Peer{{
						NamespaceSelector: sel("kubernetes.io/metadata.name", "clinical-apps"), PodSelector: sel("app", "emr-interface")}}},
			},
		},
	}
}

func ipv6Camera() *v1alpha1.MedicalDevice {
	return &v1alpha1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Name: "ward-camera-v6", Namespace: "icu", UID: types.UID("0a1b2c3d-camera")},
		Spec: v1alpha1.MedicalDeviceSpec{
			Identity: v1alpha1.DeviceIdentity{Manufacturer: "ClearView", Model: "NeoCam 2", DeviceType: "Camera"},
			Clinical: v1alpha1.ClinicalImpact{SafetyImpact: v1alpha1.SafetyMarginal, MissionImpact: v1alpha1.MissionDegraded},
			Network:  v1alpha1.DeviceNetwork{Addresses: []string{"fd00:20::3:3"}},
			Gateway:  v1alpha1.GatewayRef{PodSelector: *sel("app", "camera-gateway")},
			Flows: []v1alpha1.Flow{
				{Name: "video-feed", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierClinical, Protocol: v1alpha1.ProtocolTCP,
					GatewayPort: 8554, DevicePort: 554, Peers: []v1alpha1.Peer{{
						NamespaceSelector: sel("kubernetes.io/metadata.name", "clinical-apps"), PodSelector: sel("app", "video-viewer")}}},
			},
		},
	}
}

func criticalCare() *v1alpha1.SegmentPolicy {
	return &v1alpha1.SegmentPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "critical-care", UID: types.UID("0a1b2c3d-policy")},
		Spec: v1alpha1.SegmentPolicySpec{
			NamespaceSelector: sel("medseg.io/zone", "critical-care"),
			Priority:          100,
			Enforcement:       v1alpha1.EnforcementEnforce,
			RiskResponse: v1alpha1.RiskResponse{Defer: v1alpha1.ModeStandard, Scheduled: v1alpha1.ModeStandard,
				OutOfCycle: v1alpha1.ModeRestricted, Immediate: v1alpha1.ModeQuarantine},
			Quarantine:     &v1alpha1.Quarantine{KeepEssentialFlows: ptr.To(true)},
			DeviceNetworks: []string{"10.20.0.0/16", "fd00:20::/48"},
			AllowedPeers: &v1alpha1.AllowedPeers{
				NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{"icu", "clinical-apps"}}}},
				ExternalCIDRs: []string{"203.0.113.0/24"},
			},
			MaxExceptionDuration: &metav1.Duration{Duration: 720 * time.Hour},
		},
	}
}

// approvalsOf holds the approvals the fixtures made for a scenario's policy (the zone the
// approvals are held to): renderScenario passes them to the renderer.
var approvalsOf = map[*v1alpha1.SegmentPolicy]*v1alpha1.Approvals{}

func approvalsFor(p *v1alpha1.SegmentPolicy) *v1alpha1.Approvals {
	if approvalsOf[p] == nil {
		approvalsOf[p] = &v1alpha1.Approvals{}
	}
	return approvalsOf[p]
}

func exception(dev string, approved time.Time, d time.Duration) v1alpha1.SegmentException {
	return v1alpha1.SegmentException{ObjectMeta: metav1.ObjectMeta{Name: "keep-clinical"}, Spec: v1alpha1.SegmentExceptionSpec{
		MaxMode: v1alpha1.ModeRestricted,
		Approval: v1alpha1.Approval{Device: v1alpha1.ObjectRef{Namespace: "icu", Name: dev}, ApprovedBy: "a.okafor@hospital.example",
			Ticket: "CAB-2291", Justification: "EMR documentation needed while vendor patches",
			NotBefore: metav1.NewTime(approved), NotAfter: metav1.NewTime(approved.Add(d))}}}
}

func withException(p *v1alpha1.SegmentPolicy, dev string, approved time.Time, d time.Duration) *v1alpha1.SegmentPolicy {
	a := approvalsFor(p)
	a.Exceptions = append(a.Exceptions, exception(dev, approved, d))
	return p
}

// commissioned approves the device's current flows.
func commissioned(d *v1alpha1.MedicalDevice) *v1alpha1.MedicalDevice {
	d.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: "J. Rivera (clinical engineering)", Ticket: "CHG-2026-0412",
		ApprovedAt: metav1.NewTime(now.Add(-30 * 24 * time.Hour)), FlowsHash: v1alpha1.FlowsHash(d.Spec.Flows)}
	return d
}

var commissionedState = v1alpha1.CommissioningState{Commissioned: true, Reason: v1alpha1.ReasonCommissioned}

// withGrant adds an access grant for one of the pump's flows.
func withGrant(p *v1alpha1.SegmentPolicy, flow string, notBefore time.Time, d time.Duration) *v1alpha1.SegmentPolicy {
	a := approvalsFor(p)
	a.Grants = append(a.Grants, grant(flow, notBefore, d))
	return p
}

func grant(flow string, notBefore time.Time, d time.Duration) v1alpha1.AccessGrant {
	return v1alpha1.AccessGrant{ObjectMeta: metav1.ObjectMeta{Name: "vendor-window"}, Spec: v1alpha1.AccessGrantSpec{Flow: flow,
		Approval: v1alpha1.Approval{Device: v1alpha1.ObjectRef{Namespace: "icu", Name: "infusion-pump-bed-12"},
			NotBefore: metav1.NewTime(notBefore), NotAfter: metav1.NewTime(notBefore.Add(d)),
			ApprovedBy: "m.chen@hospital.example", Ticket: "VND-7781", Justification: "firmware check"}}}
}

var metav1LabelSelectorWithBadOperator = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}
