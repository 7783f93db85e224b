package drift

import (
	"fmt"
	"math/rand"
	"net/netip"
	"testing"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	slimmetav1 "github.com/cilium/cilium/pkg/k8s/slim/k8s/apis/meta/v1"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/ciliumsim"
)

var simPods = []Pod{
	{Name: "billing", Workload: Workload{Namespace: "finance", NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "finance", "team": "money"}, Labels: map[string]string{"app": "billing"}}},
	{Name: "web", Workload: Workload{Namespace: "web", NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "web"}, Labels: map[string]string{"app": "web", "tier": "front"}}},
	{Name: "gateway", Workload: Workload{Namespace: "icu", NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "icu", v1alpha1.LabelGatewayNamespace: "true"}, Labels: map[string]string{"app": "pump-gateway", v1alpha1.LabelGateway: "true"}}},
	{Name: "fake-gateway", Workload: Workload{Namespace: "web", NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "web"}, Labels: map[string]string{"app": "x", v1alpha1.LabelGateway: "true"}}},
}

var simAddrs = []string{"10.20.1.12", "10.30.2.2", "fd00:20::12"}

// randomPolicies builds a random set of CNPs and CCNPs over the shapes medseg meets.
func randomPolicies(r *rand.Rand) Policies {
	selectors := []*slimmetav1.LabelSelector{
		{},
		{MatchLabels: map[string]string{"app": "billing"}},
		{MatchLabels: map[string]string{"tier": "front"}},
		{MatchLabels: map[string]string{"k8s:app": "web"}},
		{MatchLabels: map[string]string{"k8s:io.cilium.k8s.namespace.labels.team": "money"}},
		{MatchExpressions: []slimmetav1.LabelSelectorRequirement{{Key: v1alpha1.LabelGateway, Operator: slimmetav1.LabelSelectorOpNotIn, Values: []string{"true"}}, {Key: "k8s:io.kubernetes.pod.namespace", Operator: slimmetav1.LabelSelectorOpExists}}},
		{MatchLabels: map[string]string{v1alpha1.LabelGateway: "true"}},
		{MatchLabels: map[string]string{"any:app": "pump-gateway"}},
	}
	cidrs := []string{"10.20.0.0/16", "10.20.1.0/24", "10.30.0.0/16", "0.0.0.0/0", "10.0.0.0/8", "fd00:20::/48", "192.168.0.0/16"}
	// The cluster entity is left out: device addresses are never inside the cluster, and
	// Cilium's simulated identities do not model that (see docs/design.md).
	entities := []policyapi.Entity{policyapi.EntityWorld, policyapi.EntityAll, policyapi.EntityWorldIPv4, policyapi.EntityWorldIPv6}
	ports := []string{"", "443", "8443", "0"}
	portRules := func() policyapi.PortRules {
		p := ports[r.Intn(len(ports))]
		if p == "" {
			return nil
		}
		return policyapi.PortRules{{Ports: []policyapi.PortProtocol{{Port: p, Protocol: policyapi.ProtoTCP}}}}
	}
	denyPorts := func() policyapi.PortDenyRules {
		p := ports[r.Intn(len(ports))]
		if p == "" {
			return nil
		}
		return policyapi.PortDenyRules{{Ports: []policyapi.PortProtocol{{Port: p, Protocol: policyapi.ProtoTCP}}}}
	}
	egressCommon := func() policyapi.EgressCommonRule {
		var c policyapi.EgressCommonRule
		switch r.Intn(3) {
		case 0:
			c.ToEntities = policyapi.EntitySlice{entities[r.Intn(len(entities))]}
		case 1:
			c.ToCIDR = policyapi.CIDRSlice{policyapi.CIDR(cidrs[r.Intn(len(cidrs))])}
		default:
			set := policyapi.CIDRRule{Cidr: policyapi.CIDR(cidrs[r.Intn(2)])}
			if r.Intn(2) == 0 {
				set.ExceptCIDRs = []policyapi.CIDR{"10.20.1.0/24"}
			}
			c.ToCIDRSet = policyapi.CIDRRuleSlice{set}
		}
		return c
	}
	rule := func() *policyapi.Rule {
		sel := selectors[r.Intn(len(selectors))]
		rl := &policyapi.Rule{EndpointSelector: policyapi.EndpointSelector{LabelSelector: sel.DeepCopy()}}
		for range r.Intn(3) {
			rl.Egress = append(rl.Egress, policyapi.EgressRule{EgressCommonRule: egressCommon(), ToPorts: portRules()})
		}
		for range r.Intn(2) {
			rl.EgressDeny = append(rl.EgressDeny, policyapi.EgressDenyRule{EgressCommonRule: egressCommon(), ToPorts: denyPorts()})
		}
		if len(rl.Egress) == 0 && len(rl.EgressDeny) == 0 {
			rl.Ingress = []policyapi.IngressRule{{}}
		}
		switch r.Intn(3) {
		case 1:
			rl.EnableDefaultDeny.Egress = ptr.To(false)
		case 2:
			rl.EnableDefaultDeny.Egress = ptr.To(true)
		}
		return rl
	}
	var p Policies
	for i := range r.Intn(3) + 1 {
		ns := simPods[r.Intn(len(simPods))].Namespace
		p.CNPs = append(p.CNPs, ciliumv2.CiliumNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cnp-%d", i), Namespace: ns}, Spec: rule()})
	}
	for i := range r.Intn(2) {
		p.CCNPs = append(p.CCNPs, ciliumv2.CiliumClusterwideNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ccnp-%d", i)}, Specs: policyapi.Rules{rule(), rule()}})
	}
	return p
}

// TestReachableAgreesWithCiliumsEngine generates policy sets and compares every verdict of
// Reachable with Cilium's policy.LookupFlow. Disagreements are printed with the seed so they can
// be kept as regression cases below.
func TestReachableAgreesWithCiliumsEngine(t *testing.T) {
	const sets = 1000
	compared, disagreements := 0, 0
	for seed := int64(1); seed <= sets; seed++ {
		r := rand.New(rand.NewSource(seed))
		pols := randomPolicies(r)
		compared += compareWithCilium(t, seed, pols, &disagreements)
		if disagreements > 5 {
			t.Fatal("too many disagreements")
		}
	}
	if compared < sets*len(simPods)*len(simAddrs) {
		t.Fatalf("only %d verdicts compared", compared)
	}
	t.Logf("%d verdicts compared over %d generated policy sets", compared, sets)
}

func compareWithCilium(t *testing.T, seed int64, pols Policies, disagreements *int) int {
	t.Helper()
	s := ciliumsim.New()
	ids := map[string]any{}
	for _, p := range simPods {
		ids[p.Name] = s.Pod(p.Name, p.Namespace, p.NamespaceLabels, p.Labels)
	}
	for _, a := range simAddrs {
		s.CIDR(hostPrefix(a))
	}
	for i := range pols.CNPs {
		if err := s.AddCNP(&pols.CNPs[i]); err != nil {
			return 0 // not a policy the agent would accept: nothing to compare
		}
	}
	for i := range pols.CCNPs {
		if err := s.AddCCNP(&pols.CCNPs[i]); err != nil {
			return 0
		}
	}
	n := 0
	for _, p := range simPods {
		for _, a := range simAddrs {
			for _, port := range []int{443, 8443} {
				want, err := s.EgressAllowed(idOf(ids[p.Name]), s.CIDR(hostPrefix(a)), "TCP", uint16(port))
				if err != nil {
					t.Fatal(err)
				}
				got := Reachable(p, netip.MustParseAddr(a), port, "TCP", pols)
				n++
				if got.Allowed != want {
					*disagreements++
					t.Errorf("seed %d: %s → %s:%d: medseg says %t (%s), Cilium says %t\npolicies: %+v", seed, p.Name, a, port, got.Allowed, got.Reason, want, describe(pols))
				}
			}
		}
	}
	return n
}

func hostPrefix(a string) string {
	addr := netip.MustParseAddr(a)
	return netip.PrefixFrom(addr, addr.BitLen()).String()
}

func describe(p Policies) string {
	var out string
	for _, c := range p.CNPs {
		out += fmt.Sprintf("\n  CNP %s/%s %+v", c.Namespace, c.Name, *c.Spec)
	}
	for _, c := range p.CCNPs {
		for _, r := range c.Specs {
			out += fmt.Sprintf("\n  CCNP %s %+v", c.Name, *r)
		}
	}
	return out
}

func TestFlatnessOfTheGuard(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}
	devs := []netip.Addr{netip.MustParseAddr("10.20.1.12")}
	open := Flatness(simPods, Policies{}, nets, devs)
	if len(open) != 3 {
		t.Fatalf("without policies every non-gateway pod reaches the devices: %v", open)
	}
	guard := ciliumv2.CiliumClusterwideNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "guard"}, Specs: policyapi.Rules{
		{EndpointSelector: policyapi.EndpointSelector{LabelSelector: &slimmetav1.LabelSelector{MatchExpressions: []slimmetav1.LabelSelectorRequirement{
			{Key: "k8s:io.kubernetes.pod.namespace", Operator: slimmetav1.LabelSelectorOpExists},
			{Key: v1alpha1.LabelGateway, Operator: slimmetav1.LabelSelectorOpNotIn, Values: []string{"true"}}}}},
			EgressDeny:        []policyapi.EgressDenyRule{{EgressCommonRule: policyapi.EgressCommonRule{ToCIDR: policyapi.CIDRSlice{"10.20.0.0/16"}}}},
			EnableDefaultDeny: policyapi.DefaultDenyConfig{Egress: ptr.To(false), Ingress: ptr.To(false)}},
	}}
	half := Flatness(simPods, Policies{CCNPs: []ciliumv2.CiliumClusterwideNetworkPolicy{guard}}, nets, devs)
	if len(half) != 1 || half[0].Pod != "fake-gateway" {
		t.Fatalf("spec A alone leaves the gateway-labelled pod outside gateway namespaces: %v", half)
	}
	guard.Specs = append(guard.Specs, &policyapi.Rule{
		EndpointSelector: policyapi.EndpointSelector{LabelSelector: &slimmetav1.LabelSelector{
			MatchLabels:      map[string]string{v1alpha1.LabelGateway: "true"},
			MatchExpressions: []slimmetav1.LabelSelectorRequirement{{Key: "k8s:io.cilium.k8s.namespace.labels." + v1alpha1.LabelGatewayNamespace, Operator: slimmetav1.LabelSelectorOpNotIn, Values: []string{"true"}}}}},
		EgressDeny:        []policyapi.EgressDenyRule{{EgressCommonRule: policyapi.EgressCommonRule{ToCIDR: policyapi.CIDRSlice{"10.20.0.0/16"}}}},
		EnableDefaultDeny: policyapi.DefaultDenyConfig{Egress: ptr.To(false), Ingress: ptr.To(false)},
	})
	if none := Flatness(simPods, Policies{CCNPs: []ciliumv2.CiliumClusterwideNetworkPolicy{guard}}, nets, devs); len(none) != 0 {
		t.Fatalf("the full guard leaves no offender: %v", none)
	}
}

// TestRegressionIngressOnlyRuleDoesNotBlockEgress keeps a disagreement found by the generator:
// a clusterwide rule that selects every endpoint with only an ingress section does not put pods
// in egress default deny. (Cilium's LookupFlow also applied it to the device's CIDR identity as a
// subject; devices are not endpoints, so only the egress verdict is compared.)
func TestRegressionIngressOnlyRuleDoesNotBlockEgress(t *testing.T) {
	pols := Policies{CCNPs: []ciliumv2.CiliumClusterwideNetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "ingress-only"},
		Specs: policyapi.Rules{{EndpointSelector: policyapi.EndpointSelector{LabelSelector: &slimmetav1.LabelSelector{}}, Ingress: []policyapi.IngressRule{{}}}}}}}
	disagreements := 0
	if n := compareWithCilium(t, 0, pols, &disagreements); n == 0 || disagreements > 0 {
		t.Fatalf("compared %d verdicts, %d disagreements", n, disagreements)
	}
	if v := Reachable(simPods[0], netip.MustParseAddr("10.20.1.12"), 443, "TCP", pols); !v.Allowed {
		t.Fatalf("an ingress-only rule must not block egress: %+v", v)
	}
}
