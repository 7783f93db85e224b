package render

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	slimmetav1 "github.com/cilium/cilium/pkg/k8s/slim/k8s/apis/meta/v1"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/medseg/medseg/api/v1alpha1"
)

// GatewayMember is one device enforced under a SegmentPolicy, as its guard sees it: the gateway
// pods that front it (spec.gateway.podSelector in its namespace, with medseg.io/gateway=true)
// may reach its addresses; no other gateway may.
type GatewayMember struct {
	Namespace string
	Gateway   metav1.LabelSelector
	// Addresses the member's gateways may reach. An address claimed by several devices is
	// listed only under the claimants medseg already enforces it for (see plan.GuardMembers).
	Addresses []netip.Addr
}

// Guard renders the SegmentPolicy's CiliumClusterwideNetworkPolicy from the devices it enforces.
//
// Blast radius: enforcing a policy changes only the traffic to and from its device networks, and
// the traffic of the gateways that front its devices (those are put in default deny by the
// devices' own CiliumNetworkPolicies, not by the guard). The guard is deny-only, with
// enableDefaultDeny off in every spec, so no pod it selects falls into default deny; a gateway
// that fronts only Audit or ungoverned devices keeps all its traffic but the device networks.
//
// One selector cannot say "every pod except the gateways of these devices", and a CCNP can
// carry several specs, so:
//   - A: pods without medseg.io/gateway=true may not send to the device networks;
//   - B: gateway-labelled pods outside gateway namespaces may not either (Cilium strips pod
//     labels starting with io.cilium.k8s, so a pod cannot fake its namespace's label);
//   - C: gateway pods in gateway namespaces that hold none of the policy's devices may not;
//   - one spec per namespace N holding devices: N's gateway pods may not send to the device
//     networks except to the addresses of N's devices;
//   - one spec per requirement r of the devices' gateway selectors: gateway pods that fail r
//     may not send to the addresses of the devices whose selector has r.
//
// So a gateway pod reaches a device address only when it sits in the device's namespace and
// meets every requirement of the device's gateway selector: exactly the pods the device's own
// policy selects. Denies win over allows in Cilium, so no later rule reopens the rest.
func Guard(p *v1alpha1.SegmentPolicy, members []GatewayMember) (*ciliumv2.CiliumClusterwideNetworkPolicy, error) {
	nets, err := DeviceNetworks(p)
	if err != nil {
		return nil, err
	}
	off := policyapi.DefaultDenyConfig{Ingress: ptr.To(false), Egress: ptr.To(false)}
	denyNets := []policyapi.EgressDenyRule{{EgressCommonRule: policyapi.EgressCommonRule{ToCIDR: cidrSlice(nets)}}}
	gwNamespaceKey := keyNamespaceLabel + v1alpha1.LabelGatewayNamespace
	gatewayPods := func(exprs ...slimmetav1.LabelSelectorRequirement) policyapi.EndpointSelector {
		sortRequirements(exprs)
		return policyapi.EndpointSelector{LabelSelector: &slimmetav1.LabelSelector{
			MatchLabels:      map[string]string{v1alpha1.LabelGateway: "true", gwNamespaceKey: "true"},
			MatchExpressions: exprs,
		}}
	}
	specs := policyapi.Rules{
		{
			Description: fmt.Sprintf("medseg guard %s: ordinary pods may not reach device networks", p.Name),
			EndpointSelector: policyapi.EndpointSelector{LabelSelector: &slimmetav1.LabelSelector{MatchExpressions: []slimmetav1.LabelSelectorRequirement{
				{Key: keyPodNamespace, Operator: slimmetav1.LabelSelectorOpExists},
				{Key: v1alpha1.LabelGateway, Operator: slimmetav1.LabelSelectorOpNotIn, Values: []string{"true"}},
			}}},
			EgressDeny:        denyNets,
			EnableDefaultDeny: off,
		},
		{
			Description: fmt.Sprintf("medseg guard %s: gateway-labelled pods outside gateway namespaces may not reach device networks", p.Name),
			EndpointSelector: policyapi.EndpointSelector{LabelSelector: &slimmetav1.LabelSelector{
				MatchLabels: map[string]string{v1alpha1.LabelGateway: "true"},
				MatchExpressions: []slimmetav1.LabelSelectorRequirement{
					{Key: gwNamespaceKey, Operator: slimmetav1.LabelSelectorOpNotIn, Values: []string{"true"}},
					{Key: keyPodNamespace, Operator: slimmetav1.LabelSelectorOpExists},
				},
			}},
			EgressDeny:        denyNets,
			EnableDefaultDeny: off,
		},
	}

	g := groupMembers(members, nets)
	outside := gatewayPods()
	if len(g.namespaces) > 0 {
		outside = gatewayPods(slimmetav1.LabelSelectorRequirement{Key: keyPodNamespace, Operator: slimmetav1.LabelSelectorOpNotIn, Values: g.namespaces})
	}
	specs = append(specs, &policyapi.Rule{
		Description:       fmt.Sprintf("medseg guard %s: gateways in namespaces without its devices may not reach device networks", p.Name),
		EndpointSelector:  outside,
		EgressDeny:        denyNets,
		EnableDefaultDeny: off,
	})
	for _, ns := range g.namespaces {
		var set policyapi.CIDRRuleSlice
		for _, n := range nets {
			set = append(set, policyapi.CIDRRule{Cidr: policyapi.CIDR(n.String()), ExceptCIDRs: toCIDRs(aggregate(g.byNamespace[ns], n))})
		}
		sel := gatewayPods()
		sel.MatchLabels[keyPodNamespace] = ns
		specs = append(specs, &policyapi.Rule{
			Description:       fmt.Sprintf("medseg guard %s: gateways in %s may reach only the addresses of the devices there", p.Name, ns),
			EndpointSelector:  sel,
			EgressDeny:        []policyapi.EgressDenyRule{{EgressCommonRule: policyapi.EgressCommonRule{ToCIDRSet: set}}},
			EnableDefaultDeny: off,
		})
	}
	for _, k := range g.requirementKeys {
		r := g.requirements[k]
		specs = append(specs, &policyapi.Rule{
			Description:       fmt.Sprintf("medseg guard %s: gateways without %s may not reach the devices they do not front", p.Name, describeRequirement(r.want)),
			EndpointSelector:  gatewayPods(r.negated),
			EgressDeny:        []policyapi.EgressDenyRule{{EgressCommonRule: policyapi.EgressCommonRule{ToCIDR: toCIDRs(aggregateAll(r.addrs))}}},
			EnableDefaultDeny: off,
		})
	}

	ccnp := &ciliumv2.CiliumClusterwideNetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: ciliumv2.SchemeGroupVersion.String(), Kind: ciliumv2.CCNPKindDefinition},
		ObjectMeta: metav1.ObjectMeta{
			Name: GuardObjectName(p.Name),
			Labels: map[string]string{
				v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue,
				v1alpha1.LabelPolicy:    p.Name,
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "SegmentPolicy", Name: p.Name, UID: p.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Specs: specs,
	}
	if p.UID == "" {
		ccnp.OwnerReferences = nil
	}
	if err := setHash(&ccnp.ObjectMeta, nil, ccnp.Specs); err != nil {
		return nil, err
	}
	return ccnp, nil
}

// memberGroups indexes the members' addresses inside the device networks by namespace and by
// gateway selector requirement.
type memberGroups struct {
	namespaces      []string
	byNamespace     map[string][]netip.Addr
	requirementKeys []string
	requirements    map[string]*requirementGroup
}

type requirementGroup struct {
	want, negated slimmetav1.LabelSelectorRequirement
	addrs         []netip.Addr
}

func groupMembers(members []GatewayMember, nets []netip.Prefix) memberGroups {
	g := memberGroups{byNamespace: map[string][]netip.Addr{}, requirements: map[string]*requirementGroup{}}
	for _, m := range members {
		var inside []netip.Addr
		for _, a := range m.Addresses {
			if containedInAny(a.Unmap(), nets) {
				inside = append(inside, a.Unmap())
			}
		}
		if len(inside) == 0 {
			continue // nothing of the policy's networks to open for it
		}
		if _, ok := g.byNamespace[m.Namespace]; !ok {
			g.namespaces = append(g.namespaces, m.Namespace)
		}
		g.byNamespace[m.Namespace] = append(g.byNamespace[m.Namespace], inside...)
		for _, r := range gatewayRequirements(m.Gateway) {
			k := requirementKey(r)
			rg, ok := g.requirements[k]
			if !ok {
				rg = &requirementGroup{want: r, negated: negate(r)}
				g.requirements[k] = rg
				g.requirementKeys = append(g.requirementKeys, k)
			}
			rg.addrs = append(rg.addrs, inside...)
		}
	}
	sort.Strings(g.namespaces)
	sort.Strings(g.requirementKeys)
	return g
}

// gatewayRequirements lists a device gateway selector's requirements as Cilium selector
// requirements (matchLabels as In), leaving out medseg.io/gateway=true, which every guard
// gateway selector carries anyway.
func gatewayRequirements(s metav1.LabelSelector) []slimmetav1.LabelSelectorRequirement {
	var out []slimmetav1.LabelSelectorRequirement
	for k, v := range s.MatchLabels {
		if k == v1alpha1.LabelGateway && v == "true" {
			continue
		}
		out = append(out, slimmetav1.LabelSelectorRequirement{Key: k, Operator: slimmetav1.LabelSelectorOpIn, Values: []string{v}})
	}
	for _, r := range s.MatchExpressions {
		if r.Key == v1alpha1.LabelGateway && (r.Operator == metav1.LabelSelectorOpExists ||
			(r.Operator == metav1.LabelSelectorOpIn && len(r.Values) == 1 && r.Values[0] == "true")) {
			continue
		}
		vals := append([]string(nil), r.Values...)
		sort.Strings(vals)
		out = append(out, slimmetav1.LabelSelectorRequirement{Key: r.Key, Operator: slimmetav1.LabelSelectorOperator(r.Operator), Values: vals})
	}
	sortRequirements(out)
	return out
}

// negate returns the requirement a pod meets exactly when it fails r (NotIn and DoesNotExist
// match a pod without the key, as in Kubernetes).
func negate(r slimmetav1.LabelSelectorRequirement) slimmetav1.LabelSelectorRequirement {
	n := slimmetav1.LabelSelectorRequirement{Key: r.Key, Values: r.Values}
	switch r.Operator {
	case slimmetav1.LabelSelectorOpIn:
		n.Operator = slimmetav1.LabelSelectorOpNotIn
	case slimmetav1.LabelSelectorOpNotIn:
		n.Operator = slimmetav1.LabelSelectorOpIn
	case slimmetav1.LabelSelectorOpExists:
		n.Operator = slimmetav1.LabelSelectorOpDoesNotExist
	default:
		n.Operator = slimmetav1.LabelSelectorOpExists
	}
	if n.Operator == slimmetav1.LabelSelectorOpExists || n.Operator == slimmetav1.LabelSelectorOpDoesNotExist {
		n.Values = nil
	}
	return n
}

func requirementKey(r slimmetav1.LabelSelectorRequirement) string {
	return r.Key + "\x00" + string(r.Operator) + "\x00" + strings.Join(r.Values, "\x00")
}

func describeRequirement(r slimmetav1.LabelSelectorRequirement) string {
	switch r.Operator {
	case slimmetav1.LabelSelectorOpIn:
		if len(r.Values) == 1 {
			return r.Key + "=" + r.Values[0]
		}
		return r.Key + " in (" + strings.Join(r.Values, ",") + ")"
	case slimmetav1.LabelSelectorOpNotIn:
		return r.Key + " not in (" + strings.Join(r.Values, ",") + ")"
	case slimmetav1.LabelSelectorOpExists:
		return "label " + r.Key
	default:
		return "no label " + r.Key
	}
}

// aggregate returns the smallest set of prefixes inside n that covers exactly the addresses
// in n: adjacent host addresses merge into their common network, so a contiguous range of
// device addresses costs a few CIDRs rather than one per device.
func aggregate(addrs []netip.Addr, n netip.Prefix) []netip.Prefix {
	var in []netip.Addr
	for _, a := range addrs {
		if n.Contains(a) {
			in = append(in, a)
		}
	}
	return mergeHosts(in, n.Bits())
}

// aggregateAll is aggregate without a bounding network.
func aggregateAll(addrs []netip.Addr) []netip.Prefix { return mergeHosts(addrs, 0) }

// mergeHosts merges host prefixes of the addresses into the minimal exact cover, never
// merging above minBits: the addresses are sorted, and a stack merges the two prefixes on top
// while they are the two halves of one parent (the classic single-pass CIDR aggregation).
func mergeHosts(addrs []netip.Addr, minBits int) []netip.Prefix {
	hosts := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		hosts = append(hosts, netip.PrefixFrom(a, a.BitLen()))
	}
	sortPrefixesInPlace(hosts)
	stack := make([]netip.Prefix, 0, len(hosts))
	for i, h := range hosts {
		if i > 0 && h == hosts[i-1] {
			continue
		}
		stack = append(stack, h)
		for len(stack) >= 2 {
			hi, lo := stack[len(stack)-1], stack[len(stack)-2]
			if hi.Bits() != lo.Bits() || hi.Bits() <= minBits || hi.Addr().Is4() != lo.Addr().Is4() {
				break
			}
			parent, _ := lo.Addr().Prefix(lo.Bits() - 1)
			if parent.Addr() != lo.Addr() || sibling(lo, parent) != hi {
				break
			}
			stack = append(stack[:len(stack)-2], parent)
		}
	}
	return stack
}

// sibling is the other half of parent next to p.
func sibling(p, parent netip.Prefix) netip.Prefix {
	lo := parent.Addr()
	if p.Addr() != lo {
		return netip.PrefixFrom(lo, p.Bits())
	}
	// The upper half starts at lo with bit number parent.Bits() set.
	b := lo.AsSlice()
	bit := parent.Bits()
	b[bit/8] |= 0x80 >> (bit % 8)
	hi, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(hi, p.Bits())
}

func toCIDRs(ps []netip.Prefix) []policyapi.CIDR {
	out := make([]policyapi.CIDR, 0, len(ps))
	for _, p := range ps {
		out = append(out, policyapi.CIDR(p.String()))
	}
	return out
}

func containedInAny(a netip.Addr, nets []netip.Prefix) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}
