package v1alpha1_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/manifest"
	"github.com/medseg/medseg/internal/testenv"
	"github.com/medseg/medseg/internal/validate"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{MedsegCRDs: true}, &env) }

// TestSamplesAreAccepted applies every object of config/samples to the real API server.
func TestSamplesAreAccepted(t *testing.T) {
	objs, err := manifest.Read([]string{filepath.Join(testenv.RepoRoot(), "config", "samples")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Namespaces and cluster-scoped policies first, as kubectl apply -k would order them.
	sort.SliceStable(objs, func(i, j int) bool { return kindOrder(objs[i]) < kindOrder(objs[j]) })
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.Object.GetKind()]++
		if err := env.Client.Create(context.Background(), o.Object); err != nil {
			t.Errorf("%s (%s %s): rejected: %v", o.Source, o.Object.GetKind(), o.Object.GetName(), err)
		}
	}
	if kinds["MedicalDevice"] < 5 || kinds["SegmentPolicy"] < 2 {
		t.Fatalf("samples should hold at least 5 devices and 2 policies, got %v", kinds)
	}
}

func kindOrder(o manifest.Object) int {
	switch o.Object.GetKind() {
	case "Namespace":
		return 0
	case "SegmentPolicy":
		return 1
	default:
		return 2
	}
}

func validDevice(name string) *v1alpha1.MedicalDevice {
	return &v1alpha1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "validation"},
		Spec: v1alpha1.MedicalDeviceSpec{
			Identity: v1alpha1.DeviceIdentity{Manufacturer: "Acme", Model: "Pump 1", DeviceType: "InfusionPump"},
			Clinical: v1alpha1.ClinicalImpact{SafetyImpact: v1alpha1.SafetyCatastrophic, MissionImpact: v1alpha1.MissionMEFFailure},
			Network:  v1alpha1.DeviceNetwork{Addresses: []string{"10.20.0.5"}},
			Gateway:  v1alpha1.GatewayRef{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "gw"}}},
			Flows: []v1alpha1.Flow{
				{Name: "therapy", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierEssential, GatewayPort: 8443, DevicePort: 443,
					Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}}}}},
				{Name: "emr", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierClinical, GatewayPort: 2575, PeerPort: 2575,
					Peers: []v1alpha1.Peer{{NamespaceSelector: &metav1.LabelSelector{}}}},
				{Name: "vendor", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierSupport, GatewayPort: 2222, DevicePort: 22,
					Peers: []v1alpha1.Peer{{CIDR: "203.0.113.0/28"}}},
			},
			Vulnerabilities: []v1alpha1.Vulnerability{{ID: "CVE-2025-0001", CVSS: "9.8", EPSS: "0.93"}},
			Detections:      []v1alpha1.Detection{{Source: "mdr", Type: "ExploitAttempt", ObservedAt: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}},
		},
	}
}

func validPolicy(name string) *v1alpha1.SegmentPolicy {
	return &v1alpha1.SegmentPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.SegmentPolicySpec{
			Enforcement:          v1alpha1.EnforcementEnforce,
			DeviceNetworks:       []string{"10.20.0.0/16", "fd00:20::/48"},
			AllowedPeers:         &v1alpha1.AllowedPeers{ExternalCIDRs: []string{"203.0.113.0/24"}},
			MaxExceptionDuration: &metav1.Duration{Duration: 720 * time.Hour},
		},
	}
}

var approvedAt = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func validApproval(d time.Duration) v1alpha1.Approval {
	return v1alpha1.Approval{Device: v1alpha1.ObjectRef{Namespace: "validation", Name: "pump"},
		NotBefore: metav1.NewTime(approvedAt), NotAfter: metav1.NewTime(approvedAt.Add(d)),
		ApprovedBy: "dr.who@hospital.example", Ticket: "CAB-1", Justification: "clinical need"}
}

func validException(name string) *v1alpha1.SegmentException {
	return &v1alpha1.SegmentException{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.SegmentExceptionSpec{Approval: validApproval(240 * time.Hour), MaxMode: v1alpha1.ModeRestricted}}
}

func validGrant(name string) *v1alpha1.AccessGrant {
	return &v1alpha1.AccessGrant{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.AccessGrantSpec{Approval: validApproval(8 * time.Hour), Flow: "vendor"}}
}

type invalidCase struct {
	name   string
	obj    client.Object
	field  string // the field path the API server names
	expect string // the message it gives
}

func deviceCase(name, field, expect string, mutate func(d *v1alpha1.MedicalDevice)) invalidCase {
	d := validDevice(fmt.Sprintf("d%d", len(name)%7))
	mutate(d)
	return invalidCase{name: name, obj: d, field: field, expect: expect}
}

func policyCase(name, field, expect string, mutate func(p *v1alpha1.SegmentPolicy)) invalidCase {
	p := validPolicy("p")
	mutate(p)
	return invalidCase{name: name, obj: p, field: field, expect: expect}
}

func exceptionCase(name, field, expect string, mutate func(e *v1alpha1.SegmentException)) invalidCase {
	e := validException("e")
	mutate(e)
	return invalidCase{name: name, obj: e, field: field, expect: expect}
}

func grantCase(name, field, expect string, mutate func(g *v1alpha1.AccessGrant)) invalidCase {
	g := validGrant("g")
	mutate(g)
	return invalidCase{name: name, obj: g, field: field, expect: expect}
}

func address(a string) func(d *v1alpha1.MedicalDevice) {
	return func(d *v1alpha1.MedicalDevice) { d.Spec.Network.Addresses = []string{a} }
}

func peer(p v1alpha1.Peer) func(d *v1alpha1.MedicalDevice) {
	return func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].Peers = []v1alpha1.Peer{p} }
}

var invalidCases = []invalidCase{
	deviceCase("unknown flow access", "spec.flows[0].access", "Unsupported value", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].Access = "Always" }),
	deviceCase("commissioning hash that is no sha256", "spec.commissioning.flowsHash", "should match", func(d *v1alpha1.MedicalDevice) {
		d.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: "J. Rivera", ApprovedAt: metav1.Now(), Ticket: "CHG-1", FlowsHash: "md5:abc"}
	}),
	deviceCase("commissioning without ticket", "spec.commissioning.ticket", "at least 1 chars long", func(d *v1alpha1.MedicalDevice) {
		d.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: "J. Rivera", ApprovedAt: metav1.Now(), FlowsHash: v1alpha1.FlowsHash(d.Spec.Flows)}
	}),
	deviceCase("a network is not a device address", "spec.network.addresses[0]", "address must be a single IP address", address("10.20.0.0/24")),
	deviceCase("a host name is not a device address", "spec.network.addresses[0]", "address must be a single IP address", address("pump.icu.local")),
	deviceCase("0.0.0.0 is rejected", "spec.network.addresses[0]", "must not be unspecified", address("0.0.0.0")),
	deviceCase(":: is rejected", "spec.network.addresses[0]", "must not be unspecified", address("::")),
	deviceCase("loopback is rejected", "spec.network.addresses[0]", "must not be a loopback address", address("127.0.0.1")),
	deviceCase("IPv6 loopback is rejected", "spec.network.addresses[0]", "must not be a loopback address", address("::1")),
	deviceCase("link-local is rejected", "spec.network.addresses[0]", "must not be link-local", address("169.254.10.1")),
	deviceCase("IPv6 link-local is rejected", "spec.network.addresses[0]", "must not be link-local", address("fe80::1")),
	deviceCase("multicast is rejected", "spec.network.addresses[0]", "must be a unicast host address", address("239.1.1.1")),
	deviceCase("broadcast is rejected", "spec.network.addresses[0]", "must be a unicast host address", address("255.255.255.255")),
	deviceCase("non-canonical IPv6 is rejected", "spec.network.addresses[0]", "canonical form", address("2001:0db8:0::1")),
	deviceCase("a device needs an address", "spec.network.addresses", "Required value", func(d *v1alpha1.MedicalDevice) { d.Spec.Network.Addresses = nil }),
	deviceCase("too many addresses", "spec.network.addresses", "must have at most 8 items", func(d *v1alpha1.MedicalDevice) {
		d.Spec.Network.Addresses = nil
		for i := range 9 {
			d.Spec.Network.Addresses = append(d.Spec.Network.Addresses, fmt.Sprintf("10.20.0.%d", i+1))
		}
	}),
	deviceCase("duplicate addresses", "spec.network.addresses[1]", "Duplicate value", func(d *v1alpha1.MedicalDevice) {
		d.Spec.Network.Addresses = []string{"10.20.0.5", "10.20.0.5"}
	}),
	deviceCase("model is required", "spec.identity.model", "at least 1 chars long", func(d *v1alpha1.MedicalDevice) { d.Spec.Identity.Model = "" }),
	deviceCase("unknown safety impact", "spec.clinical.safetyImpact", "Unsupported value: \"Severe\"", func(d *v1alpha1.MedicalDevice) { d.Spec.Clinical.SafetyImpact = "Severe" }),
	deviceCase("unknown mission impact", "spec.clinical.missionImpact", "Unsupported value", func(d *v1alpha1.MedicalDevice) { d.Spec.Clinical.MissionImpact = "Bad" }),
	deviceCase("empty gateway selector", "spec.gateway.podSelector", "gateway.podSelector must not be empty", func(d *v1alpha1.MedicalDevice) { d.Spec.Gateway.PodSelector = metav1.LabelSelector{} }),
	deviceCase("gateway port 0", "spec.flows[0].gatewayPort", "should be greater than or equal to 1", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].GatewayPort = 0 }),
	deviceCase("gateway port 65536", "spec.flows[0].gatewayPort", "should be less than or equal to 65535", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].GatewayPort = 65536 }),
	deviceCase("device port 70000", "spec.flows[0].devicePort", "should be less than or equal to 65535", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].DevicePort = 70000 }),
	deviceCase("negative peer port", "spec.flows[1].peerPort", "should be greater than or equal to 1", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[1].PeerPort = -1 }),
	deviceCase("ToDevice flow without devicePort", "spec.flows[0]", "ToDevice flows need devicePort", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].DevicePort = 0 }),
	deviceCase("FromDevice flow without peerPort", "spec.flows[1]", "FromDevice flows need peerPort", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[1].PeerPort = 0 }),
	deviceCase("duplicate flow names", "spec.flows[1]", "Duplicate value", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[1].Name = "therapy" }),
	deviceCase("flow name not a DNS label", "spec.flows[0].name", "should match", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].Name = "Therapy_Orders" }),
	deviceCase("unknown tier", "spec.flows[0].tier", "Unsupported value: \"Critical\"", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].Tier = "Critical" }),
	deviceCase("unknown direction", "spec.flows[0].direction", "Unsupported value", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].Direction = "Both" }),
	deviceCase("unknown protocol", "spec.flows[0].protocol", "Unsupported value: \"ICMP\"", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].Protocol = "ICMP" }),
	deviceCase("flow without peers", "spec.flows[0].peers", "Required value", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].Peers = nil }),
	deviceCase("flow with an empty peer list", "spec.flows[0].peers", "should have at least 1 items", func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].Peers = []v1alpha1.Peer{} }),
	deviceCase("peer with both selectors and cidr", "spec.flows[0].peers[0]", "a peer is exactly one of", peer(v1alpha1.Peer{CIDR: "203.0.113.0/28", PodSelector: &metav1.LabelSelector{}})),
	deviceCase("empty peer", "spec.flows[0].peers[0]", "a peer is exactly one of", peer(v1alpha1.Peer{})),
	deviceCase("peer cidr 0.0.0.0/0", "spec.flows[0].peers[0].cidr", "must not be 0.0.0.0/0 or ::/0", peer(v1alpha1.Peer{CIDR: "0.0.0.0/0"})),
	deviceCase("peer cidr ::/0", "spec.flows[0].peers[0].cidr", "must not be 0.0.0.0/0 or ::/0", peer(v1alpha1.Peer{CIDR: "::/0"})),
	deviceCase("peer cidr with host bits", "spec.flows[0].peers[0].cidr", "host bits must be zero", peer(v1alpha1.Peer{CIDR: "203.0.113.7/24"})),
	deviceCase("peer cidr that is not a CIDR", "spec.flows[0].peers[0].cidr", "must be a network in CIDR notation", peer(v1alpha1.Peer{CIDR: "203.0.113.7"})),
	deviceCase("cvss above 10", "spec.vulnerabilities[0].cvss", "cvss must be a decimal string from 0.0 to 10.0", func(d *v1alpha1.MedicalDevice) { d.Spec.Vulnerabilities[0].CVSS = "11" }),
	deviceCase("cvss with two decimals", "spec.vulnerabilities[0].cvss", "cvss must be a decimal string", func(d *v1alpha1.MedicalDevice) { d.Spec.Vulnerabilities[0].CVSS = "9.85" }),
	deviceCase("cvss not a number", "spec.vulnerabilities[0].cvss", "cvss must be a decimal string", func(d *v1alpha1.MedicalDevice) { d.Spec.Vulnerabilities[0].CVSS = "high" }),
	deviceCase("epss above 1", "spec.vulnerabilities[0].epss", "epss must be a decimal string from 0 to 1", func(d *v1alpha1.MedicalDevice) { d.Spec.Vulnerabilities[0].EPSS = "1.5" }),
	deviceCase("epss as a percentage", "spec.vulnerabilities[0].epss", "epss must be a decimal string from 0 to 1", func(d *v1alpha1.MedicalDevice) { d.Spec.Vulnerabilities[0].EPSS = "93%" }),
	deviceCase("duplicate vulnerability ids", "spec.vulnerabilities[1]", "Duplicate value", func(d *v1alpha1.MedicalDevice) {
		d.Spec.Vulnerabilities = append(d.Spec.Vulnerabilities, d.Spec.Vulnerabilities[0])
	}),
	deviceCase("unknown VEX status", "spec.vulnerabilities[0].status", "Unsupported value: \"Patched\"", func(d *v1alpha1.MedicalDevice) { d.Spec.Vulnerabilities[0].Status = "Patched" }),
	deviceCase("unknown exploitation", "spec.vulnerabilities[0].exploitation", "Unsupported value", func(d *v1alpha1.MedicalDevice) { d.Spec.Vulnerabilities[0].Exploitation = "Weaponized" }),
	deviceCase("too many flows", "spec.flows", "must have at most 32 items", func(d *v1alpha1.MedicalDevice) {
		for i := range 32 {
			f := d.Spec.Flows[0]
			f.Name = fmt.Sprintf("f%d", i)
			d.Spec.Flows = append(d.Spec.Flows, f)
		}
	}),

	deviceCase("a device name with dots", "metadata.name must be a DNS label", "metadata.name must be a DNS label", func(d *v1alpha1.MedicalDevice) { d.Name = "pump.icu" }),
	deviceCase("a device name longer than 63", "metadata.name must be a DNS label", "metadata.name must be a DNS label", func(d *v1alpha1.MedicalDevice) { d.Name = strings.Repeat("p", 64) }),
	policyCase("a policy name with dots", "metadata.name must be a DNS label", "metadata.name must be a DNS label", func(p *v1alpha1.SegmentPolicy) { p.Name = "icu.policy" }),
	policyCase("deviceNetworks 0.0.0.0/0", "spec.deviceNetworks[0]", "must not contain 0.0.0.0/0 or ::/0", func(p *v1alpha1.SegmentPolicy) { p.Spec.DeviceNetworks = []string{"0.0.0.0/0"} }),
	policyCase("deviceNetworks not a CIDR", "spec.deviceNetworks[0]", "must be networks in CIDR notation", func(p *v1alpha1.SegmentPolicy) { p.Spec.DeviceNetworks = []string{"10.20.0.0/33"} }),
	policyCase("deviceNetworks with host bits", "spec.deviceNetworks[0]", "host bits must be zero", func(p *v1alpha1.SegmentPolicy) { p.Spec.DeviceNetworks = []string{"10.20.0.1/16"} }),
	policyCase("deviceNetworks empty", "spec.deviceNetworks", "Required value", func(p *v1alpha1.SegmentPolicy) { p.Spec.DeviceNetworks = nil }),
	policyCase("externalCIDRs 0.0.0.0/0", "spec.allowedPeers.externalCIDRs[0]", "must not contain 0.0.0.0/0", func(p *v1alpha1.SegmentPolicy) { p.Spec.AllowedPeers.ExternalCIDRs = []string{"0.0.0.0/0"} }),
	policyCase("enforcement missing", "spec.enforcement", "Unsupported value: \"\"", func(p *v1alpha1.SegmentPolicy) { p.Spec.Enforcement = "" }),
	policyCase("unknown riskResponse mode", "spec.riskResponse.immediate", "Unsupported value: \"Block\"", func(p *v1alpha1.SegmentPolicy) { p.Spec.RiskResponse.Immediate = "Block" }),
	policyCase("epss threshold above 1", "spec.exploitation.epssActiveThreshold", "epssActiveThreshold must be a decimal string", func(p *v1alpha1.SegmentPolicy) {
		p.Spec.Exploitation = &v1alpha1.ExploitationSettings{EPSSActiveThreshold: "2"}
	}),
	exceptionCase("exception without approver", "spec.approvedBy", "at least 1 chars long", func(e *v1alpha1.SegmentException) { e.Spec.ApprovedBy = "" }),
	exceptionCase("exception without justification", "spec.justification", "at least 1 chars long", func(e *v1alpha1.SegmentException) { e.Spec.Justification = "" }),
	exceptionCase("exception without ticket", "spec.ticket", "at least 1 chars long", func(e *v1alpha1.SegmentException) { e.Spec.Ticket = "" }),
	exceptionCase("exception ending before it starts", "spec", "notAfter must be after notBefore", func(e *v1alpha1.SegmentException) {
		e.Spec.NotAfter = metav1.NewTime(e.Spec.NotBefore.Add(-time.Hour))
	}),
	exceptionCase("exception longer than a year", "spec", "an exception may last at most 8760h", func(e *v1alpha1.SegmentException) {
		e.Spec.NotAfter = metav1.NewTime(e.Spec.NotBefore.Add(8761 * time.Hour))
	}),
	exceptionCase("exception with unknown maxMode", "spec.maxMode", "Unsupported value", func(e *v1alpha1.SegmentException) { e.Spec.MaxMode = "Open" }),
	exceptionCase("exception for a device without name", "spec.device.name", "", func(e *v1alpha1.SegmentException) { e.Spec.Device.Name = "" }),
	policyCase("maxExceptionDuration over a year", "spec.maxExceptionDuration", "at most 8760h", func(p *v1alpha1.SegmentPolicy) {
		p.Spec.MaxExceptionDuration = &metav1.Duration{Duration: 9000 * time.Hour}
	}),
	grantCase("grant ending before it starts", "spec", "notAfter must be after notBefore", func(g *v1alpha1.AccessGrant) {
		g.Spec.NotAfter = metav1.NewTime(g.Spec.NotBefore.Add(-time.Minute))
	}),
	grantCase("grant longer than 30 days", "spec", "an access grant may last at most 720h", func(g *v1alpha1.AccessGrant) {
		g.Spec.NotAfter = metav1.NewTime(g.Spec.NotBefore.Add(721 * time.Hour))
	}),
	policyCase("maxWindow over 30 days", "spec.vendorAccess.maxWindow", "at most 720h", func(p *v1alpha1.SegmentPolicy) {
		p.Spec.VendorAccess = &v1alpha1.VendorAccess{MaxWindow: &metav1.Duration{Duration: 721 * time.Hour}}
	}),
	grantCase("grant without ticket", "spec.ticket", "at least 1 chars long", func(g *v1alpha1.AccessGrant) { g.Spec.Ticket = "" }),
	grantCase("grant without justification", "spec.justification", "at least 1 chars long", func(g *v1alpha1.AccessGrant) { g.Spec.Justification = "" }),
	grantCase("grant for a flow that is no DNS label", "spec.flow", "should match", func(g *v1alpha1.AccessGrant) { g.Spec.Flow = "Vendor Flow" }),
	policyCase("unknown onboarding mode", "spec.onboarding.mode", "Unsupported value", func(p *v1alpha1.SegmentPolicy) {
		p.Spec.Onboarding = &v1alpha1.Onboarding{Mode: "Open"}
	}),
	policyCase("priority above 1000", "spec.priority", "less than or equal to 1000", func(p *v1alpha1.SegmentPolicy) { p.Spec.Priority = 5000 }),
}

// TestInvalidObjectsAreRejected holds every validation rule against the real API server: the
// object must be rejected and the error must name the field and the problem.
func TestInvalidObjectsAreRejected(t *testing.T) {
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "validation"}}); err != nil {
		t.Fatal(err)
	}
	// The valid bases must be accepted, or every rejection below proves nothing.
	for _, base := range []client.Object{validDevice("base"), validPolicy("base"), validException("base"), validGrant("base")} {
		if err := env.Client.Create(ctx, base, client.DryRunAll); err != nil {
			t.Fatalf("valid %T rejected: %v", base, err)
		}
	}
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			err := env.Client.Create(ctx, tc.obj.DeepCopyObject().(client.Object), client.DryRunAll)
			if err == nil {
				t.Fatalf("accepted, want rejection with %q", tc.expect)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.field) || !strings.Contains(msg, tc.expect) {
				t.Fatalf("rejected with\n  %s\nwant field %q and message %q", msg, tc.field, tc.expect)
			}
		})
	}
}

// TestDefaults checks that the API server fills the documented defaults.
func TestDefaults(t *testing.T) {
	ctx := context.Background()
	p := &v1alpha1.SegmentPolicy{ObjectMeta: metav1.ObjectMeta{Name: "defaults"},
		Spec: v1alpha1.SegmentPolicySpec{Enforcement: v1alpha1.EnforcementAudit, DeviceNetworks: []string{"10.9.0.0/16"}}}
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	rr := p.Spec.RiskResponse
	if rr.Defer != v1alpha1.ModeStandard || rr.Scheduled != v1alpha1.ModeStandard || rr.OutOfCycle != v1alpha1.ModeRestricted || rr.Immediate != v1alpha1.ModeQuarantine {
		t.Errorf("riskResponse defaults = %+v", rr)
	}
	if !p.Spec.Quarantine.KeepsEssential() || p.Spec.Quarantine == nil || p.Spec.Quarantine.KeepEssentialFlows == nil {
		t.Errorf("quarantine.keepEssentialFlows should default to true: %+v", p.Spec.Quarantine)
	}
	if p.Spec.EPSSThreshold() != "0.9" || p.Spec.Exploitation == nil {
		t.Errorf("epssActiveThreshold default = %+v", p.Spec.Exploitation)
	}
	if p.Spec.MaxExceptionDuration == nil || p.Spec.MaxExceptionDuration.Duration != 720*time.Hour {
		t.Errorf("maxExceptionDuration default = %v", p.Spec.MaxExceptionDuration)
	}
	if !p.Spec.OnboardingRequired() || p.Spec.Onboarding == nil || p.Spec.Onboarding.Required == nil || p.Spec.OnboardingMode() != v1alpha1.ModeRestricted || p.Spec.Onboarding.Mode == "" {
		t.Errorf("onboarding should default to required, Restricted: %+v", p.Spec.Onboarding)
	}
	if p.Spec.VendorAccess == nil || p.Spec.VendorAccess.MaxWindow == nil || p.Spec.VendorAccess.MaxWindow.Duration != 8*time.Hour {
		t.Errorf("vendorAccess.maxWindow should default to 8h: %+v", p.Spec.VendorAccess)
	}
	d := validDevice("defaults")
	d.Namespace = "default"
	if err := env.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	if d.Spec.Flows[0].Protocol != v1alpha1.ProtocolTCP || d.Spec.Vulnerabilities[0].Status != v1alpha1.VulnAffected ||
		d.Spec.Vulnerabilities[0].Exploitation != v1alpha1.ExploitationNone || d.Spec.Detections[0].Status != v1alpha1.DetectionActive {
		t.Errorf("device defaults not applied: %+v", d.Spec)
	}
}

// TestOfflineValidationMatchesTheAPIServer holds the plugin's offline validator to the same
// table: every object the server rejects is rejected offline with the same field and message,
// and the valid bases pass.
func TestOfflineValidationMatchesTheAPIServer(t *testing.T) {
	v, err := validate.New()
	if err != nil {
		t.Fatal(err)
	}
	toU := func(obj client.Object) *unstructured.Unstructured {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		kind := map[string]string{"*v1alpha1.SegmentPolicy": "SegmentPolicy", "*v1alpha1.SegmentException": "SegmentException",
			"*v1alpha1.AccessGrant": "AccessGrant", "*v1alpha1.MedicalDevice": "MedicalDevice"}[fmt.Sprintf("%T", obj)]
		u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
		return u
	}
	for _, base := range []client.Object{validDevice("base"), validPolicy("base"), validException("base"), validGrant("base")} {
		if errs := v.Validate(toU(base)); len(errs) > 0 {
			t.Fatalf("valid %T rejected offline: %v", base, errs)
		}
	}
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			errs := v.Validate(toU(tc.obj))
			if len(errs) == 0 {
				t.Fatalf("accepted offline, the API server rejects it with %q", tc.expect)
			}
			msg := validate.Error(errs)
			if !strings.Contains(msg, tc.field) || !strings.Contains(msg, tc.expect) {
				t.Fatalf("offline rejection\n  %s\nwant field %q and message %q", msg, tc.field, tc.expect)
			}
		})
	}
	unknown := toU(validDevice("typo"))
	unknown.Object["spec"].(map[string]any)["flow"] = []any{}
	if msg := validate.Error(v.Validate(unknown)); !strings.Contains(msg, "spec.flow") || !strings.Contains(msg, "unknown field") {
		t.Errorf("a misspelt field must be rejected offline, got %q", msg)
	}
}

// TestApprovalTargetsAreImmutable: an approval names one device (and a grant one flow) for its
// whole life; pointing it elsewhere is a new approval.
func TestApprovalTargetsAreImmutable(t *testing.T) {
	ctx := context.Background()
	e, g := validException("immutable"), validGrant("immutable")
	for _, o := range []client.Object{e, g} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	e.Spec.Device.Name = "other"
	if err := env.Client.Update(ctx, e); err == nil || !strings.Contains(err.Error(), "device is immutable") {
		t.Errorf("moving an exception to another device: %v", err)
	}
	g.Spec.Flow = "other"
	if err := env.Client.Update(ctx, g); err == nil || !strings.Contains(err.Error(), "flow is immutable") {
		t.Errorf("moving a grant to another flow: %v", err)
	}
	g.Spec.Flow = "vendor"
	g.Spec.NotAfter = metav1.NewTime(g.Spec.NotAfter.Add(-time.Hour))
	if err := env.Client.Update(ctx, g); err != nil {
		t.Errorf("shortening a grant's window must be allowed: %v", err)
	}
}
