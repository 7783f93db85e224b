package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2/validator"
	"k8s.io/utils/ptr"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/ciliumsim"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

type scenario struct {
	name     string
	device   *v1alpha1.MedicalDevice
	policy   *v1alpha1.SegmentPolicy
	priority v1alpha1.Priority
	now      time.Time
	wantMode v1alpha1.Mode
	allowed  []string
	// uncommissioned leaves spec.commissioning as the fixture has it; otherwise renderScenario
	// commissions the device's current flows, so scenarios about risk are not in onboarding.
	uncommissioned bool
}

func scenarios() []scenario {
	noEssential := criticalCare()
	noEssential.Spec.Quarantine.KeepEssentialFlows = ptr.To(false)
	noExternal := criticalCare()
	noExternal.Spec.AllowedPeers.ExternalCIDRs = nil
	overlapping := pump()
	overlapping.Spec.Flows[2].Peers = []v1alpha1.Peer{{CIDR: "10.20.9.0/24"}}
	wideNamespace := pump()
	wideNamespace.Spec.Flows[1].Peers = []v1alpha1.Peer{{NamespaceSelector: sel()}}
	guestPeer := pump()
	guestPeer.Spec.Flows[1].Peers = []v1alpha1.Peer{{NamespaceSelector: sel("kubernetes.io/metadata.name", "guest-wifi")}}
	approved := now.Add(-48 * time.Hour)
	changed := commissioned(pump())
	changed.Spec.Flows[1].GatewayPort = 2576
	brownfield := criticalCare()
	brownfield.Spec.Onboarding = &v1alpha1.Onboarding{Required: ptr.To(false)}
	standingVendor := criticalCare()
	standingVendor.Spec.AllowedPeers.ExternalRequiresGrant = ptr.To(false)
	grantedEMR := pump()
	grantedEMR.Spec.Flows[1].Access = v1alpha1.AccessGranted
	return []scenario{
		{"pump-standard", pump(), criticalCare(), v1alpha1.PriorityScheduled, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders", "emr-documentation"}, false},
		{"pump-vendor-grant-open", pump(), withGrant(criticalCare(), "vendor-maintenance", now.Add(-time.Hour), 2*time.Hour), v1alpha1.PriorityScheduled, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders", "emr-documentation", "vendor-maintenance"}, false},
		{"pump-vendor-grant-not-yet-open", pump(), withGrant(criticalCare(), "vendor-maintenance", now.Add(time.Hour), 2*time.Hour), v1alpha1.PriorityScheduled, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders", "emr-documentation"}, false},
		{"pump-vendor-grant-ended", pump(), withGrant(criticalCare(), "vendor-maintenance", now.Add(-2*time.Hour), 2*time.Hour), v1alpha1.PriorityScheduled, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders", "emr-documentation"}, false},
		{"pump-vendor-grant-over-max-window", pump(), withGrant(criticalCare(), "vendor-maintenance", now.Add(-time.Hour), 9*time.Hour), v1alpha1.PriorityScheduled, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders", "emr-documentation"}, false},
		{"pump-vendor-grant-mode-restricted", pump(), withGrant(criticalCare(), "vendor-maintenance", now.Add(-time.Hour), 2*time.Hour), v1alpha1.PriorityOutOfCycle, now, v1alpha1.ModeRestricted,
			[]string{"therapy-orders", "emr-documentation"}, false},
		{"pump-vendor-standing", pump(), standingVendor, v1alpha1.PriorityScheduled, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders", "emr-documentation", "vendor-maintenance"}, false},
		{"pump-in-cluster-flow-granted", grantedEMR, criticalCare(), v1alpha1.PriorityScheduled, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders"}, false},
		{"pump-onboarding", pump(), criticalCare(), v1alpha1.PriorityScheduled, now, v1alpha1.ModeRestricted,
			[]string{"therapy-orders", "emr-documentation"}, true},
		{"pump-onboarding-flows-changed", changed, criticalCare(), v1alpha1.PriorityScheduled, now, v1alpha1.ModeRestricted,
			[]string{"therapy-orders", "emr-documentation"}, true},
		{"pump-onboarding-risk-is-stricter", pump(), criticalCare(), v1alpha1.PriorityImmediate, now, v1alpha1.ModeQuarantine,
			[]string{"therapy-orders"}, true},
		{"pump-onboarding-exception-does-not-lift-it", pump(), withException(criticalCare(), "infusion-pump-bed-12", approved, 72*time.Hour),
			v1alpha1.PriorityScheduled, now, v1alpha1.ModeRestricted, []string{"therapy-orders", "emr-documentation"}, true},
		{"pump-onboarding-not-required", pump(), brownfield, v1alpha1.PriorityScheduled, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders", "emr-documentation"}, true},
		{"pump-restricted", pump(), criticalCare(), v1alpha1.PriorityOutOfCycle, now, v1alpha1.ModeRestricted,
			[]string{"therapy-orders", "emr-documentation"}, false},
		{"pump-quarantine", pump(), criticalCare(), v1alpha1.PriorityImmediate, now, v1alpha1.ModeQuarantine,
			[]string{"therapy-orders"}, false},
		{"pump-quarantine-without-essential", pump(), noEssential, v1alpha1.PriorityImmediate, now, v1alpha1.ModeQuarantine, nil, false},
		{"pump-exception-active", pump(), withException(criticalCare(), "infusion-pump-bed-12", approved, 72*time.Hour),
			v1alpha1.PriorityImmediate, now, v1alpha1.ModeRestricted, []string{"therapy-orders", "emr-documentation"}, false},
		{"pump-exception-expired", pump(), withException(criticalCare(), "infusion-pump-bed-12", approved, 24*time.Hour),
			v1alpha1.PriorityImmediate, now, v1alpha1.ModeQuarantine, []string{"therapy-orders"}, false},
		{"pump-exception-over-maximum", pump(), withException(criticalCare(), "infusion-pump-bed-12", approved, 800*time.Hour),
			v1alpha1.PriorityImmediate, now, v1alpha1.ModeQuarantine, []string{"therapy-orders"}, false},
		{"monitor-quarantine-keeps-alarms", monitor(), criticalCare(), v1alpha1.PriorityImmediate, now, v1alpha1.ModeQuarantine,
			[]string{"alarms"}, false},
		{"ipv6-camera", ipv6Camera(), criticalCare(), v1alpha1.PriorityDefer, now, v1alpha1.ModeStandard, []string{"video-feed"}, false},
		{"ceiling-no-external-peers", pump(), noExternal, v1alpha1.PriorityDefer, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders", "emr-documentation"}, false},
		{"ceiling-peer-overlaps-device-network", overlapping, criticalCare(), v1alpha1.PriorityDefer, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders", "emr-documentation"}, false},
		{"ceiling-peer-in-every-namespace", wideNamespace, criticalCare(), v1alpha1.PriorityDefer, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders"}, false},
		{"ceiling-peer-namespace-outside", guestPeer, criticalCare(), v1alpha1.PriorityDefer, now, v1alpha1.ModeStandard,
			[]string{"therapy-orders"}, false},
		{"no-segment-policy", pump(), nil, v1alpha1.PriorityImmediate, now, "", nil, false},
	}
}

func renderScenario(t *testing.T, sc scenario) *Result {
	t.Helper()
	dev := sc.device
	if !sc.uncommissioned && dev.Spec.Commissioning == nil {
		dev = commissioned(dev.DeepCopy())
	}
	var approvals v1alpha1.Approvals
	if a := approvalsOf[sc.policy]; a != nil {
		approvals = *a
	}
	res, err := Device(Input{Device: dev, Policy: sc.policy, Priority: sc.priority, Namespaces: namespaces, Approvals: approvals, Now: sc.now})
	if err != nil {
		t.Fatalf("%s: %v", sc.name, err)
	}
	return res
}

// golden renders a scenario as the decision (comments) followed by the objects.
func golden(t *testing.T, sc scenario, res *Result) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# scenario: %s\n", sc.name)
	if res.NoPolicy {
		b.WriteString("# no SegmentPolicy selects the device: NoSegmentPolicy, nothing rendered\n")
		return b.Bytes()
	}
	fmt.Fprintf(&b, "# policy %s, enforce=%t, mode %s: %s\n", res.Policy, res.Enforce, res.Mode, res.Reason)
	for _, f := range res.Flows {
		if f.Allowed {
			fmt.Fprintf(&b, "# flow %s (%s): allowed\n", f.Name, f.Tier)
		} else {
			fmt.Fprintf(&b, "# flow %s (%s): blocked by %s: %s\n", f.Name, f.Tier, f.Reason, f.Message)
		}
	}
	if res.Onboarding {
		fmt.Fprintf(&b, "# commissioning: %s: %s\n", res.Commissioning.Reason, res.Commissioning.Message)
	}
	for _, g := range res.Grants() {
		fmt.Fprintf(&b, "# access grant %s opens %s until %s\n", g.Name, g.Spec.Flow, g.Spec.NotAfter.UTC().Format(time.RFC3339))
	}
	if !res.NextChange.IsZero() {
		fmt.Fprintf(&b, "# next change: %s\n", res.NextChange.UTC().Format(time.RFC3339))
	}
	for _, ig := range res.Ignored {
		fmt.Fprintf(&b, "# ignored: %s\n", ig)
	}
	fmt.Fprintf(&b, "# policy map entries per gateway: %d\n", res.PolicyMapEntries)
	out, err := YAML(res.CNP)
	if err != nil {
		t.Fatal(err)
	}
	b.Write(out)
	return b.Bytes()
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.yaml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/render -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; rerun with -update if intended.\n--- got\n%s", path, got)
	}
}

func TestScenariosMatchGoldenFiles(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			res := renderScenario(t, sc)
			if sc.policy != nil {
				if res.Mode != sc.wantMode {
					t.Errorf("mode = %s, want %s (%s)", res.Mode, sc.wantMode, res.Reason)
				}
				if got := strings.Join(res.Allowed(), ","); got != strings.Join(sc.allowed, ",") {
					t.Errorf("allowed flows = %s, want %s", got, strings.Join(sc.allowed, ","))
				}
			} else if !res.NoPolicy || res.CNP != nil {
				t.Errorf("a device with no policy must render nothing, got %+v", res)
			}
			checkGolden(t, sc.name, golden(t, sc, res))
		})
	}
	g, err := Guard(criticalCare(), membersOf(pump(), monitor(), ipv6Camera()))
	if err != nil {
		t.Fatal(err)
	}
	out, err := YAML(g)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "guard-critical-care", out)
}

func TestRenderingIsDeterministic(t *testing.T) {
	for _, sc := range scenarios() {
		first := golden(t, sc, renderScenario(t, sc))
		for range 10 {
			// Shuffle what may arrive in any order: flows, peers, addresses.
			sc2 := sc
			sc2.device = sc.device.DeepCopy()
			f := sc2.device.Spec.Flows
			for i, j := 0, len(f)-1; i < j; i, j = i+1, j-1 {
				f[i], f[j] = f[j], f[i]
			}
			a := sc2.device.Spec.Network.Addresses
			for i, j := 0, len(a)-1; i < j; i, j = i+1, j-1 {
				a[i], a[j] = a[j], a[i]
			}
			res := renderScenario(t, sc2)
			again, _ := YAML(res.CNP)
			firstObjs, _ := YAML(renderScenario(t, sc).CNP)
			if !bytes.Equal(again, firstObjs) {
				t.Fatalf("%s: reordering the spec changed the output", sc.name)
			}
			if !bytes.Equal(first, golden(t, sc, renderScenario(t, sc))) {
				t.Fatalf("%s: two renders differ", sc.name)
			}
		}
	}
}

// TestRenderedObjectsPassCiliumValidation runs both of Cilium's offline checks on every object:
// the sanitizer (Parse) and the CRD schema validator, which also reports unknown fields.
func TestRenderedObjectsPassCiliumValidation(t *testing.T) {
	v, err := validator.NewNPValidator(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range scenarios() {
		res := renderScenario(t, sc)
		if res.CNP == nil {
			continue
		}
		if _, err := res.CNP.DeepCopy().Parse(slog.New(slog.DiscardHandler), ""); err != nil {
			t.Errorf("%s: Cilium Parse: %v", sc.name, err)
		}
		u, err := ToUnstructured(res.CNP)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.ValidateCNP(u); err != nil {
			t.Errorf("%s: Cilium schema validator: %v", sc.name, err)
		}
	}
	g, err := Guard(criticalCare(), membersOf(pump(), monitor(), ipv6Camera()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.DeepCopy().Parse(slog.New(slog.DiscardHandler), ""); err != nil {
		t.Errorf("guard: Cilium Parse: %v", err)
	}
	u, _ := ToUnstructured(g)
	if err := v.ValidateCCNP(u); err != nil {
		t.Errorf("guard: Cilium schema validator: %v", err)
	}
	// The validators must be able to fail, or the checks above prove nothing.
	bad := u.DeepCopy()
	specs := bad.Object["specs"].([]any)
	specs[0].(map[string]any)["egressDeny"].([]any)[0].(map[string]any)["toCIDRs"] = []any{"10.0.0.0/8"}
	if err := v.ValidateCCNP(bad); err == nil {
		t.Error("schema validator accepted a misspelt field")
	}
}

func TestCeilingReasons(t *testing.T) {
	for _, sc := range scenarios() {
		if !strings.HasPrefix(sc.name, "ceiling-") {
			continue
		}
		res := renderScenario(t, sc)
		var blocked []FlowDecision
		for _, b := range res.Blocked() {
			if b.Reason != v1alpha1.BlockGrant { // the vendor flow waits for a grant in every scenario
				blocked = append(blocked, b)
			}
		}
		if len(blocked) != 1 || blocked[0].Reason != v1alpha1.BlockCeiling || blocked[0].Message == "" {
			t.Errorf("%s: want exactly one flow blocked by the ceiling with a reason, got %+v", sc.name, blocked)
		}
	}
}

func TestSelectPolicy(t *testing.T) {
	mk := func(name string, prio int32, nsZone string) v1alpha1.SegmentPolicy {
		p := criticalCare()
		p.Name, p.Spec.Priority = name, prio
		p.Spec.NamespaceSelector = sel("medseg.io/zone", nsZone)
		return *p
	}
	dev := pump()
	cases := []struct {
		name     string
		policies []v1alpha1.SegmentPolicy
		want     string
	}{
		{"the only matching policy governs", []v1alpha1.SegmentPolicy{mk("a", 1, "critical-care"), mk("b", 9, "diagnostics")}, "a"},
		{"the highest priority wins", []v1alpha1.SegmentPolicy{mk("a", 1, "critical-care"), mk("b", 9, "critical-care")}, "b"},
		{"ties are broken by name", []v1alpha1.SegmentPolicy{mk("zeta", 5, "critical-care"), mk("alpha", 5, "critical-care")}, "alpha"},
		{"no matching policy is a distinct result", []v1alpha1.SegmentPolicy{mk("a", 1, "diagnostics")}, ""},
		{"a device selector narrows the policy", func() []v1alpha1.SegmentPolicy {
			p := mk("pumps-only", 50, "critical-care")
			p.Spec.DeviceSelector = sel("kind", "pump")
			return []v1alpha1.SegmentPolicy{p, mk("fallback", 1, "critical-care")}
		}(), "fallback"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := SelectPolicy(dev, namespaces["icu"], tc.policies)
			got := ""
			if s.Policy != nil {
				got = s.Policy.Name
			}
			if got != tc.want {
				t.Errorf("selected %q, want %q (candidates %v)", got, tc.want, s.Candidates)
			}
		})
	}
	broken := mk("broken", 99, "critical-care")
	broken.Spec.DeviceSelector = &metav1LabelSelectorWithBadOperator
	s := SelectPolicy(dev, namespaces["icu"], []v1alpha1.SegmentPolicy{broken, mk("ok", 1, "critical-care")})
	if s.Policy == nil || s.Policy.Name != "ok" || len(s.Invalid) != 1 {
		t.Errorf("a policy with an invalid selector must be skipped and reported: %+v", s)
	}
}

func TestExceptionEdgesAreExact(t *testing.T) {
	approved := now
	p := criticalCare()
	approvals := v1alpha1.Approvals{Exceptions: []v1alpha1.SegmentException{exception("infusion-pump-bed-12", approved, 24*time.Hour)}}
	ref := v1alpha1.ObjectRef{Namespace: "icu", Name: "infusion-pump-bed-12"}
	cases := []struct {
		at   time.Time
		mode v1alpha1.Mode
		next time.Time
	}{
		{approved.Add(-time.Second), v1alpha1.ModeQuarantine, approved},
		{approved, v1alpha1.ModeRestricted, approved.Add(24 * time.Hour)},
		{approved.Add(24*time.Hour - time.Nanosecond), v1alpha1.ModeRestricted, approved.Add(24 * time.Hour)},
		{approved.Add(24 * time.Hour), v1alpha1.ModeQuarantine, time.Time{}},
	}
	for _, tc := range cases {
		d := DecideMode(p, approvals, ref, v1alpha1.PriorityImmediate, commissionedState, tc.at)
		if d.Mode != tc.mode || !d.NextChange.Equal(tc.next) {
			t.Errorf("at %s: mode %s next %s, want %s next %s", tc.at, d.Mode, d.NextChange, tc.mode, tc.next)
		}
	}
	// An exception never opens beyond the risk mode: a Defer device stays Standard and the
	// exception is reported but does not change the reason.
	d := DecideMode(p, approvals, ref, v1alpha1.PriorityDefer, commissionedState, approved.Add(time.Hour))
	if d.Mode != v1alpha1.ModeStandard || d.Exception == nil {
		t.Errorf("exception on a Standard device: %+v", d)
	}
}

// TestRenderedPoliciesBehaveInCiliumsEngine loads each scenario's CNP and the guard into
// Cilium's policy repository and checks what they let through.
func TestRenderedPoliciesBehaveInCiliumsEngine(t *testing.T) {
	icu := namespaces["icu"]
	apps := namespaces["clinical-apps"]
	guest := namespaces["guest-wifi"]
	for _, sc := range scenarios() {
		if sc.policy == nil {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			res := renderScenario(t, sc)
			guard, err := Guard(sc.policy, membersOf(sc.device))
			if err != nil {
				t.Fatal(err)
			}
			s := ciliumsim.New()
			gwLabels := map[string]string{v1alpha1.LabelGateway: "true"}
			for k, v := range sc.device.Spec.Gateway.PodSelector.MatchLabels {
				gwLabels[k] = v
			}
			gateway := s.Pod("gateway", "icu", icu, gwLabels)
			otherGateway := s.Pod("other-gateway", "icu", icu, map[string]string{"app": "other-gateway", v1alpha1.LabelGateway: "true"})
			fakeGateway := s.Pod("fake-gateway", "guest-wifi", guest, map[string]string{"app": "x", v1alpha1.LabelGateway: "true"})
			ordinary := s.Pod("ordinary", "clinical-apps", apps, map[string]string{"app": "billing"})
			peers := map[string]any{
				"pump-server":      s.Pod("pump-server", "icu", icu, map[string]string{"app": "pump-server"}),
				"pump-server-apps": s.Pod("pump-server-apps", "clinical-apps", apps, map[string]string{"app": "pump-server"}),
				"emr-interface":    s.Pod("emr-interface", "clinical-apps", apps, map[string]string{"app": "emr-interface"}),
				"alarm-server":     s.Pod("alarm-server", "clinical-apps", apps, map[string]string{"app": "alarm-server"}),
				"video-viewer":     s.Pod("video-viewer", "clinical-apps", apps, map[string]string{"app": "video-viewer"}),
				"guest":            s.Pod("guest", "guest-wifi", guest, map[string]string{"app": "guest"}),
			}
			vendor := s.CIDR("203.0.113.0/28")
			var devIDs []string
			for _, a := range sc.device.Spec.Network.Addresses {
				devIDs = append(devIDs, hostCIDR(a))
				s.CIDR(hostCIDR(a))
			}
			for _, f := range sc.device.Spec.Flows {
				for _, p := range f.Peers {
					if p.IsExternal() {
						s.CIDR(p.CIDR)
					}
				}
			}
			otherDevice := s.CIDR("10.20.1.99/32")
			otherDevice6 := s.CIDR("fd00:20::99/128")
			if err := s.AddCNP(res.CNP); err != nil {
				t.Fatal(err)
			}
			if err := s.AddCCNP(guard); err != nil {
				t.Fatal(err)
			}
			check := func(what string, want bool, from, to any, proto string, port int32) {
				t.Helper()
				got, err := s.Allowed(idOf(from), idOf(to), proto, uint16(port))
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if got != want {
					t.Errorf("%s: allowed=%t, want %t", what, got, want)
				}
			}
			allowed := map[string]bool{}
			for _, n := range res.Allowed() {
				allowed[n] = true
			}
			for _, f := range sc.device.Spec.Flows {
				proto := string(f.Protocol)
				for _, p := range f.Peers {
					var peer any
					if p.IsExternal() {
						peer = vendor
						if p.CIDR != "203.0.113.0/28" {
							peer = s.CIDR(p.CIDR)
						}
					} else {
						// A peer without a pod selector stands for any pod it selects; the guest
						// pod is the one a ceiling must keep out.
						peer = peers["guest"]
						if p.PodSelector != nil && peers[p.PodSelector.MatchLabels["app"]] != nil {
							peer = peers[p.PodSelector.MatchLabels["app"]]
						}
					}
					for _, dev := range devIDs {
						if f.Direction == v1alpha1.DirectionToDevice {
							check(fmt.Sprintf("flow %s: peer → gateway:%d", f.Name, f.GatewayPort), allowed[f.Name], peer, gateway, proto, f.GatewayPort)
							if allowed[f.Name] {
								check(fmt.Sprintf("flow %s: gateway → device %s:%d", f.Name, dev, f.DevicePort), true, gateway, s.CIDR(dev), proto, f.DevicePort)
							}
						} else {
							check(fmt.Sprintf("flow %s: device %s → gateway:%d", f.Name, dev, f.GatewayPort), allowed[f.Name], s.CIDR(dev), gateway, proto, f.GatewayPort)
							if allowed[f.Name] {
								check(fmt.Sprintf("flow %s: gateway → peer:%d", f.Name, f.PeerPort), true, gateway, peer, proto, f.PeerPort)
							}
						}
					}
				}
				// Whatever the mode, the gateway never reaches another device, a pod that is no
				// peer never reaches the gateway, and ordinary pods never reach the device.
				port := f.DevicePort
				if port == 0 {
					port = f.PeerPort
				}
				check("gateway → another device", false, gateway, otherDevice, proto, port)
				check("gateway → another IPv6 device", false, gateway, otherDevice6, proto, port)
				check(fmt.Sprintf("non-peer pod → gateway:%d", f.GatewayPort), false, ordinary, gateway, proto, f.GatewayPort)
				if f.Name == "therapy-orders" {
					check("pod-selector-only peer in another namespace → gateway", false, peers["pump-server-apps"], gateway, proto, f.GatewayPort)
				}
				for _, dev := range devIDs {
					check("ordinary pod → device "+dev, false, ordinary, s.CIDR(dev), proto, port)
					check("gateway-labelled pod outside gateway namespaces → device "+dev, false, fakeGateway, s.CIDR(dev), proto, port)
					check("another gateway (no device policy) → device "+dev, false, otherGateway, s.CIDR(dev), proto, port)
				}
			}
			check("ordinary pods keep other traffic", true, ordinary, peers["emr-interface"], "TCP", 443)
		})
	}
}

// membersOf lists devices as guard members, as plan.GuardMembers would for uncontested devices.
func membersOf(devs ...*v1alpha1.MedicalDevice) []GatewayMember {
	var out []GatewayMember
	for _, d := range devs {
		m := GatewayMember{Namespace: d.Namespace, Gateway: d.Spec.Gateway.PodSelector}
		for _, a := range d.Spec.Network.Addresses {
			m.Addresses = append(m.Addresses, netip.MustParseAddr(a))
		}
		out = append(out, m)
	}
	return out
}

func hostCIDR(a string) string {
	if strings.Contains(a, ":") {
		return a + "/128"
	}
	return a + "/32"
}

// BenchmarkRender10000Devices renders 10,000 devices (the pump fixture with distinct names and
// addresses) under one policy; devices/s = 10000 / (ns/op / 1e9).
func BenchmarkRender10000Devices(b *testing.B) {
	p := criticalCare()
	devs := make([]*v1alpha1.MedicalDevice, 10000)
	for i := range devs {
		d := pump()
		d.Name = fmt.Sprintf("pump-%05d", i)
		d.Spec.Network.Addresses = []string{fmt.Sprintf("10.20.%d.%d", i/250, i%250+1)}
		devs[i] = d
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, d := range devs {
			if _, err := Device(Input{Device: d, Policy: p, Priority: v1alpha1.PriorityScheduled, Namespaces: namespaces, Now: now}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkGuard10000Devices renders the guard of one policy enforcing 10,000 devices in 100
// namespaces behind 10 gateway selectors (the layout of test/bench), with addresses
// interleaved across namespaces (no two consecutive addresses in one namespace: the worst case
// for the per-namespace exceptions) and with each namespace's devices on a contiguous range
// (the usual DHCP reservation per care area). It reports the guard's size.
func BenchmarkGuard10000Devices(b *testing.B) {
	p := criticalCare()
	p.Spec.DeviceNetworks = []string{"10.64.0.0/10"}
	for _, layout := range []string{"interleaved", "contiguous"} {
		b.Run(layout, func(b *testing.B) {
			members := make([]GatewayMember, 10000)
			for i := range members {
				ns, idx := i%100, i
				if layout == "contiguous" {
					ns, idx = i/100, i
				}
				addr := netip.MustParseAddr(fmt.Sprintf("10.%d.%d.%d", 64+idx/65025, (idx/255)%255, idx%255+1))
				members[i] = GatewayMember{Namespace: fmt.Sprintf("ward-%03d", ns), Gateway: *sel("app", fmt.Sprintf("gw-%d", (i/100)%10)), Addresses: []netip.Addr{addr}}
			}
			var size int
			b.ReportAllocs()
			for b.Loop() {
				g, err := Guard(p, members)
				if err != nil {
					b.Fatal(err)
				}
				raw, _ := json.Marshal(g)
				size = len(raw)
			}
			b.ReportMetric(float64(size), "guard-bytes")
		})
	}
}
