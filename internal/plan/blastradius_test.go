package plan_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/segcheck"
)

var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// hospital is a generated hospital and its running pods.
type hospital struct {
	h      plan.Hospital
	pods   []segcheck.Pod
	probes []string
}

func (g *hospital) world(t *testing.T) *segcheck.World {
	t.Helper()
	w, err := segcheck.Rendered(g.h, g.pods, g.probes, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// randomHospital generates a hospital of two zones, three wards and eight devices with
// overlapping gateway selectors, so gateways are shared within and across zones, some
// devices are ungoverned, and (sometimes) an address is contested.
func randomHospital(r *rand.Rand) *hospital {
	w := &hospital{h: plan.Hospital{Namespaces: map[string]map[string]string{
		"clinical":   {"kubernetes.io/metadata.name": "clinical"},
		"monitoring": {"kubernetes.io/metadata.name": "monitoring"},
	}}}
	enforcement := func() v1alpha1.Enforcement {
		if r.IntN(2) == 0 {
			return v1alpha1.EnforcementAudit
		}
		return v1alpha1.EnforcementEnforce
	}
	for i := range 2 {
		w.h.Policies = append(w.h.Policies, v1alpha1.SegmentPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("zone-%d", i), UID: types.UID(fmt.Sprintf("uid-zone-%d", i))},
			Spec: v1alpha1.SegmentPolicySpec{
				// zone-0 takes whole wards; zone-1 takes devices labelled for it in any ward, and
				// wins, so one ward mixes zones and ungoverned devices.
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"zone": fmt.Sprint(i)}},
				Priority:          int32(i * 10),
				Enforcement:       enforcement(),
				DeviceNetworks:    []string{fmt.Sprintf("10.%d.0.0/16", 10+i), fmt.Sprintf("fd00:%d::/48", 10+i)},
				AllowedPeers:      &v1alpha1.AllowedPeers{ExternalCIDRs: []string{"203.0.113.0/24"}},
			},
		})
		w.probes = append(w.probes, fmt.Sprintf("10.%d.200.1", 10+i))
	}
	if r.IntN(4) == 0 { // zones whose device networks overlap
		w.h.Policies[1].Spec.DeviceNetworks = append(w.h.Policies[1].Spec.DeviceNetworks, "10.10.0.0/17")
	}
	w.h.Policies[1].Spec.NamespaceSelector = nil
	w.h.Policies[1].Spec.DeviceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "1"}}
	w.probes = append(w.probes, "10.99.200.1")
	for i := range 3 {
		ns := fmt.Sprintf("ward-%d", i)
		l := map[string]string{"kubernetes.io/metadata.name": ns}
		if r.IntN(3) < 2 {
			l["zone"] = "0"
		}
		if i < 2 || r.IntN(2) == 0 {
			l[v1alpha1.LabelGatewayNamespace] = "true"
		}
		w.h.Namespaces[ns] = l
		// Gateway pods for every combination of the labels device selectors use, and a rogue
		// gateway-labelled pod no device selects.
		for _, app := range []string{"gw-a", "gw-b", "rogue"} {
			for _, role := range []string{"", "r1", "r2"} {
				pl := map[string]string{"app": app, v1alpha1.LabelGateway: "true"}
				name := app
				if role != "" {
					pl["role"], name = role, app+"-"+role
				}
				w.pods = append(w.pods, segcheck.Pod{Name: name, Namespace: ns, Labels: pl})
			}
		}
		w.pods = append(w.pods, segcheck.Pod{Name: "ordinary", Namespace: ns, Labels: map[string]string{"app": "billing"}})
	}
	for i := range 3 {
		w.pods = append(w.pods, segcheck.Pod{Name: fmt.Sprintf("client-%d", i), Namespace: "clinical", Labels: map[string]string{"app": fmt.Sprintf("client-%d", i)}})
	}
	w.pods = append(w.pods, segcheck.Pod{Name: segcheck.ScraperName, Namespace: segcheck.ScraperNamespace, Labels: map[string]string{"app": "prometheus"}})

	gov := plan.NewGovernors(w.h.Policies, w.h.Namespaces)
	tiers := []v1alpha1.Tier{v1alpha1.TierEssential, v1alpha1.TierClinical, v1alpha1.TierSupport}
	for i := range 8 {
		ns := fmt.Sprintf("ward-%d", r.IntN(3))
		d := &v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("dev-%d", i), Namespace: ns, UID: types.UID(fmt.Sprintf("uid-dev-%d", i))}}
		if r.IntN(3) == 0 {
			d.Labels = map[string]string{"zone": "1"}
		}
		d.Spec.Identity = v1alpha1.DeviceIdentity{Manufacturer: "M", Model: "X"}
		d.Spec.Clinical = v1alpha1.ClinicalImpact{SafetyImpact: v1alpha1.SafetyCritical, MissionImpact: v1alpha1.MissionMEFFailure}
		sel := metav1.LabelSelector{MatchLabels: map[string]string{"app": []string{"gw-a", "gw-b"}[r.IntN(2)]}}
		switch r.IntN(3) {
		case 0:
			sel.MatchLabels["role"] = []string{"r1", "r2"}[r.IntN(2)]
		case 1:
			sel.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "role", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"r2"}}}
		}
		d.Spec.Gateway.PodSelector = sel
		net := 99
		if p := gov.Of(d); p != nil {
			net = 10 + int(p.Name[len(p.Name)-1]-'0')
		}
		d.Spec.Network.Addresses = []string{fmt.Sprintf("10.%d.%d.%d", net, i, 1+r.IntN(3))}
		if r.IntN(4) == 0 {
			d.Spec.Network.Addresses = append(d.Spec.Network.Addresses, fmt.Sprintf("fd00:%d::%d", net, i+1))
		}
		for k := range 1 + r.IntN(3) {
			f := v1alpha1.Flow{Name: fmt.Sprintf("f%d", k), Tier: tiers[r.IntN(3)], Protocol: v1alpha1.ProtocolTCP,
				GatewayPort: int32(10000 + i*10 + k)}
			peer := v1alpha1.Peer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "clinical"}},
				PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("client-%d", r.IntN(3))}}}
			if r.IntN(6) == 0 {
				peer = v1alpha1.Peer{CIDR: "203.0.113.0/28"}
			}
			f.Peers = []v1alpha1.Peer{peer}
			if r.IntN(2) == 0 {
				f.Direction, f.DevicePort = v1alpha1.DirectionToDevice, int32(20000+i*10+k)
			} else {
				f.Direction, f.PeerPort = v1alpha1.DirectionFromDevice, int32(30000+i*10+k)
			}
			d.Spec.Flows = append(d.Spec.Flows, f)
		}
		if r.IntN(3) > 0 {
			d.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: "a", Ticket: "t", ApprovedAt: metav1.NewTime(testNow.Add(-time.Hour)), FlowsHash: v1alpha1.FlowsHash(d.Spec.Flows)}
		}
		if r.IntN(3) == 0 {
			d.Spec.Vulnerabilities = []v1alpha1.Vulnerability{{ID: "CVE-2026-0001", KnownExploited: true, Automatable: r.IntN(2) == 0, Status: v1alpha1.VulnAffected}}
		}
		w.h.Devices = append(w.h.Devices, d)
	}
	if r.IntN(5) == 0 { // a conflict: one device claims another's address
		a, b := w.h.Devices[0], w.h.Devices[1+r.IntN(7)]
		b.Spec.Network.Addresses = append(b.Spec.Network.Addresses, a.Spec.Network.Addresses[0])
	}
	sort.Slice(w.h.Devices, func(i, j int) bool { return w.h.Devices[i].Name < w.h.Devices[j].Name })
	return w
}

// TestSegmentationRulesHoldOnRandomHospitals generates hospitals (zones in Audit and Enforce,
// shared and unselected gateways, ungoverned devices, contested addresses) and holds every
// object medseg would write against the segmentation rules with Cilium's own policy engine.
func TestSegmentationRulesHoldOnRandomHospitals(t *testing.T) {
	n := 60
	if testing.Short() {
		n = 10
	}
	var verdicts, companions, shared, contested int
	for seed := range n {
		g := randomHospital(rand.New(rand.NewPCG(uint64(seed), 42)))
		w := g.world(t)
		rep, err := w.Check(nil)
		if err != nil {
			t.Fatal(err)
		}
		verdicts += rep.Verdicts
		for i, p := range w.Plans {
			if p.Companion != nil {
				companions++
			}
			if len(p.SharedWith) > 0 {
				shared++
			}
			if len(plan.ClaimsOf(g.h.Devices).Contested(g.h.Devices[i])) > 0 {
				contested++
			}
		}
		if len(rep.Violations) > 0 {
			t.Fatalf("seed %d: %d violations, first: %s\n%s", seed, len(rep.Violations), strings.Join(rep.Violations[:min(5, len(rep.Violations))], "\n"), describe(g, w))
		}
	}
	if companions == 0 || shared == 0 || contested == 0 {
		t.Fatalf("the generator must produce shared gateways, companions and conflicts (got %d, %d, %d)", shared, companions, contested)
	}
	t.Logf("%d hospitals, %d verdicts from Cilium's engine; %d devices sharing gateways across enforcement, %d allow-only companions, %d contested devices",
		n, verdicts, shared, companions, contested)
}

// TestStagedRolloutNeverInterruptsAnotherZone switches one zone Audit → Enforce → Audit and
// asks Cilium's engine, after each step, whether every declared flow of every device outside
// that zone is as it was (traffic to the switched zone's networks aside); going back to Audit
// restores every verdict of the first step.
func TestStagedRolloutNeverInterruptsAnotherZone(t *testing.T) {
	zone0, zone0v6 := netip.MustParsePrefix("10.10.0.0/16"), netip.MustParsePrefix("fd00:10::/48")
	for seed := range 20 {
		g := randomHospital(rand.New(rand.NewPCG(uint64(seed), 7)))
		for i := range g.h.Policies {
			g.h.Policies[i].Spec.Enforcement = v1alpha1.EnforcementAudit
		}
		g.h.Policies[1].Spec.Enforcement = []v1alpha1.Enforcement{v1alpha1.EnforcementAudit, v1alpha1.EnforcementEnforce}[seed%2]
		verdicts := func() map[string]bool {
			w := g.world(t)
			inZone0 := func(d *v1alpha1.MedicalDevice) bool {
				for i, x := range g.h.Devices {
					if x == d {
						return w.Plans[i].Policy != nil && w.Plans[i].Policy.Name == "zone-0"
					}
				}
				return false
			}
			rep, err := w.Check(nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Violations) > 0 {
				t.Fatalf("seed %d: %s", seed, rep.Violations[0])
			}
			out := map[string]bool{}
			for _, d := range g.h.Devices {
				if inZone0(d) {
					continue // the zone being switched may change
				}
				for _, gw := range w.GatewaysOf(d) {
					for _, f := range d.Spec.Flows {
						for _, peer := range w.PeersOf(d, f) {
							for _, a := range d.Spec.Network.Addresses {
								if ip := netip.MustParseAddr(a); zone0.Contains(ip) || zone0v6.Contains(ip) {
									continue // traffic to the switched zone's networks may change
								}
								open, err := w.FlowOpen(f, gw, peer, a)
								if err != nil {
									t.Fatal(err)
								}
								out[fmt.Sprintf("%s/%s %s %s %s %s", d.Namespace, d.Name, f.Name, gw.Name, a, peer.Name)] = open
							}
						}
					}
				}
			}
			return out
		}
		audit := verdicts()
		g.h.Policies[0].Spec.Enforcement = v1alpha1.EnforcementEnforce
		enforced := verdicts()
		g.h.Policies[0].Spec.Enforcement = v1alpha1.EnforcementAudit
		back := verdicts()
		if len(audit) == 0 {
			t.Fatalf("seed %d: no flow outside zone-0 to compare", seed)
		}
		for k, v := range audit {
			if enforced[k] != v {
				t.Errorf("seed %d: enforcing zone-0 changed a flow outside it: %s open=%t → %t", seed, k, v, enforced[k])
			}
			if back[k] != v {
				t.Errorf("seed %d: going back to Audit did not restore %s: open=%t → %t", seed, k, v, back[k])
			}
		}
		if t.Failed() {
			return
		}
	}
}

func describe(g *hospital, w *segcheck.World) string {
	var b strings.Builder
	for _, p := range g.h.Policies {
		fmt.Fprintf(&b, "policy %s %s ns=%v dev=%v\n", p.Name, p.Spec.Enforcement, p.Spec.NamespaceSelector, p.Spec.DeviceSelector)
	}
	for ns, l := range g.h.Namespaces {
		fmt.Fprintf(&b, "namespace %s %v\n", ns, l)
	}
	for i, d := range g.h.Devices {
		p := w.Plans[i]
		fmt.Fprintf(&b, "device %s/%s gw=%v %v addrs=%v policy=%s enforced=%t mode=%s allowed=%v shared=%v\n", d.Namespace, d.Name,
			d.Spec.Gateway.PodSelector.MatchLabels, d.Spec.Gateway.PodSelector.MatchExpressions, d.Spec.Network.Addresses,
			p.Render.Policy, p.Enforced, p.Render.Mode, p.Render.Allowed(), p.SharedWith)
	}
	return b.String()
}
