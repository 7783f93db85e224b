package drift

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	policyapi "github.com/cilium/cilium/pkg/policy/api"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Pod is a workload with its name.
type Pod struct {
	Name string
	Workload
}

// IsGateway reports whether the pod is a gateway medseg trusts: labelled medseg.io/gateway=true
// in a namespace labelled medseg.io/gateway-namespace=true.
func (p Pod) IsGateway() bool {
	return p.Labels[v1alpha1.LabelGateway] == "true" && p.NamespaceLabels[v1alpha1.LabelGatewayNamespace] == "true"
}

// Verdict is the outcome of Reachable, with the policy that decided it.
type Verdict struct {
	Allowed bool
	Reason  string
}

// Reachable decides whether a pod may send to addr on port (0: any port) under every policy,
// with Cilium's egress semantics: a deny that selects the pod and covers the destination wins;
// otherwise a pod that no egress rule puts in default deny may send anywhere; otherwise an allow
// rule must cover the destination. The destination is outside the cluster (a device), so for
// Cilium it is "world".
func Reachable(pod Pod, addr netip.Addr, port int, proto string, p Policies) Verdict {
	defaultDeny := ""
	var allowedBy string
	visit := func(kind, ns, name string, rules []*policyapi.Rule, sc scope) *Verdict {
		for _, r := range rules {
			if !matches(r.EndpointSelector.LabelSelector, pod.Workload, sc) {
				continue
			}
			for _, d := range r.EgressDeny {
				if coversEntityOrCIDR(d.ToEntities, cidrsWithExcept(d.ToCIDR, d.ToCIDRSet), addr) && portsCover(d.ToPorts, port, proto, true) {
					return &Verdict{Allowed: false, Reason: fmt.Sprintf("denied by %s %s", kind, v1alpha1.Qualified(ns, name))}
				}
			}
			if (len(r.Egress) > 0 || len(r.EgressDeny) > 0) && (r.EnableDefaultDeny.Egress == nil || *r.EnableDefaultDeny.Egress) && defaultDeny == "" {
				defaultDeny = fmt.Sprintf("%s %s", kind, v1alpha1.Qualified(ns, name))
			}
			for _, a := range r.Egress {
				if allowedBy == "" && coversEntityOrCIDR(a.ToEntities, cidrsWithExcept(a.ToCIDR, a.ToCIDRSet), addr) && portRulesCover(a.ToPorts, port, proto) {
					allowedBy = fmt.Sprintf("allowed by %s %s", kind, v1alpha1.Qualified(ns, name))
				}
			}
		}
		return nil
	}
	for i := range p.CCNPs {
		c := &p.CCNPs[i]
		if v := visit(KindCCNP, "", c.Name, rulesOf(c.Spec, c.Specs), scope{}); v != nil {
			return *v
		}
	}
	for i := range p.CNPs {
		c := &p.CNPs[i]
		if c.Namespace != pod.Namespace {
			continue
		}
		if v := visit(KindCNP, c.Namespace, c.Name, rulesOf(c.Spec, c.Specs), scope{namespace: c.Namespace}); v != nil {
			return *v
		}
	}
	for i := range p.NetworkPolicies {
		np := &p.NetworkPolicies[i]
		if np.Namespace != pod.Namespace {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		if _, egress := policyTypes(np); !egress {
			continue
		}
		if defaultDeny == "" {
			defaultDeny = KindNetworkPolicy + " " + v1alpha1.Qualified(np.Namespace, np.Name)
		}
		if allowedBy == "" && npEgressAllows(np, addr, port, proto) {
			allowedBy = fmt.Sprintf("allowed by %s %s", KindNetworkPolicy, v1alpha1.Qualified(np.Namespace, np.Name))
		}
	}
	switch {
	case defaultDeny == "":
		return Verdict{Allowed: true, Reason: "no egress policy selects the pod (default allow)"}
	case allowedBy != "":
		return Verdict{Allowed: true, Reason: allowedBy}
	default:
		return Verdict{Allowed: false, Reason: "default deny from " + defaultDeny}
	}
}

type cidrExcept struct {
	prefix netip.Prefix
	except []netip.Prefix
}

func cidrsWithExcept(cidrs policyapi.CIDRSlice, sets policyapi.CIDRRuleSlice) []cidrExcept {
	var out []cidrExcept
	for _, c := range cidrs {
		if p, err := parsePrefix(string(c)); err == nil {
			out = append(out, cidrExcept{prefix: p})
		}
	}
	for _, s := range sets {
		p, err := parsePrefix(string(s.Cidr))
		if err != nil {
			continue
		}
		ce := cidrExcept{prefix: p}
		for _, e := range s.ExceptCIDRs {
			if ep, err := parsePrefix(string(e)); err == nil {
				ce.except = append(ce.except, ep)
			}
		}
		out = append(out, ce)
	}
	return out
}

func coversEntityOrCIDR(entities policyapi.EntitySlice, cidrs []cidrExcept, addr netip.Addr) bool {
	for _, e := range entities {
		switch e {
		case policyapi.EntityWorld, policyapi.EntityAll:
			return true
		case policyapi.EntityWorldIPv4:
			if addr.Is4() {
				return true
			}
		case policyapi.EntityWorldIPv6:
			if addr.Is6() {
				return true
			}
		}
	}
	for _, c := range cidrs {
		if c.prefix.Contains(addr) && !containedInAny(addr, c.except) {
			return true
		}
	}
	return false
}

func containedInAny(addr netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// portRulesCover: no port rule means every port; port 0 asks "any port at all".
func portRulesCover(prs policyapi.PortRules, port int, proto string) bool {
	groups := make([][]policyapi.PortProtocol, len(prs))
	for i, pr := range prs {
		groups[i] = pr.Ports
	}
	return coverPorts(groups, port, proto, false)
}

// portsCover is portRulesCover for deny rules: with port 0 ("any port") a deny counts only when
// it covers every port.
func portsCover(prs policyapi.PortDenyRules, port int, proto string, deny bool) bool {
	groups := make([][]policyapi.PortProtocol, len(prs))
	for i, pr := range prs {
		groups[i] = pr.Ports
	}
	return coverPorts(groups, port, proto, deny)
}

func coverPorts(groups [][]policyapi.PortProtocol, port int, proto string, deny bool) bool {
	if len(groups) == 0 {
		return true
	}
	for _, ports := range groups {
		if len(ports) == 0 {
			return true
		}
		for _, pp := range ports {
			if portMatches(pp, port, proto, deny) {
				return true
			}
		}
	}
	return false
}

func portMatches(pp policyapi.PortProtocol, port int, proto string, deny bool) bool {
	if pp.Protocol != "" && pp.Protocol != policyapi.ProtoAny && string(pp.Protocol) != proto {
		return false
	}
	n, err := strconv.Atoi(pp.Port)
	if err != nil {
		return false // named ports are not device ports
	}
	if n == 0 {
		return true
	}
	if port == 0 {
		return !deny
	}
	end := int(pp.EndPort)
	if end < n {
		end = n
	}
	return port >= n && port <= end
}

func npEgressAllows(np *networkingv1.NetworkPolicy, addr netip.Addr, port int, proto string) bool {
	for _, r := range np.Spec.Egress {
		if !npPortsCover(r.Ports, port, proto) {
			continue
		}
		if len(r.To) == 0 {
			return true
		}
		for _, to := range r.To {
			if to.IPBlock == nil {
				continue
			}
			p, err := parsePrefix(to.IPBlock.CIDR)
			if err != nil || !p.Contains(addr) {
				continue
			}
			var except []netip.Prefix
			for _, e := range to.IPBlock.Except {
				if ep, err := parsePrefix(e); err == nil {
					except = append(except, ep)
				}
			}
			if !containedInAny(addr, except) {
				return true
			}
		}
	}
	return false
}

func npPortsCover(ports []networkingv1.NetworkPolicyPort, port int, proto string) bool {
	if len(ports) == 0 || port == 0 {
		return true
	}
	for _, p := range ports {
		if p.Protocol != nil && string(*p.Protocol) != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		n := p.Port.IntValue()
		end := n
		if p.EndPort != nil {
			end = int(*p.EndPort)
		}
		if port >= n && port <= end {
			return true
		}
	}
	return false
}

// Offender is a non-gateway workload that can reach a device network.
type Offender struct {
	Namespace, Pod string
	Address        netip.Addr
	Reason         string
}

func (o Offender) String() string {
	return fmt.Sprintf("%s/%s → %s (%s)", o.Namespace, o.Pod, o.Address, o.Reason)
}

// MaxProbesPerNetwork bounds the device addresses probed in each network, so the audit stays
// linear in the number of pods at hospital scale.
const MaxProbesPerNetwork = 16

// Flatness lists the pods other than gateways that can reach any probe address (the first
// address of each network and up to MaxProbesPerNetwork device addresses inside it, the lowest
// first) on any port. Zero offenders is the goal. The result is sorted, each pod listed once.
func Flatness(pods []Pod, p Policies, networks []netip.Prefix, deviceAddrs []netip.Addr) []Offender {
	sorted := append([]netip.Addr(nil), deviceAddrs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Less(sorted[j]) })
	var probes []netip.Addr
	for _, n := range networks {
		probes = append(probes, n.Masked().Addr().Next())
		taken := 0
		for _, a := range sorted {
			if taken == MaxProbesPerNetwork {
				break
			}
			if n.Contains(a) {
				probes = append(probes, a)
				taken++
			}
		}
	}
	// Group the namespaced policies once: a pod only meets those of its own namespace.
	byNS := map[string]Policies{}
	for i := range p.CNPs {
		g := byNS[p.CNPs[i].Namespace]
		g.CNPs = append(g.CNPs, p.CNPs[i])
		byNS[p.CNPs[i].Namespace] = g
	}
	for i := range p.NetworkPolicies {
		g := byNS[p.NetworkPolicies[i].Namespace]
		g.NetworkPolicies = append(g.NetworkPolicies, p.NetworkPolicies[i])
		byNS[p.NetworkPolicies[i].Namespace] = g
	}
	var out []Offender
	for _, pod := range pods {
		if pod.IsGateway() {
			continue
		}
		local := byNS[pod.Namespace]
		local.CCNPs = p.CCNPs
		for _, a := range probes {
			if v := Reachable(pod, a, 0, "TCP", local); v.Allowed {
				out = append(out, Offender{Namespace: pod.Namespace, Pod: pod.Name, Address: a, Reason: v.Reason})
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Pod < out[j].Namespace+"/"+out[j].Pod
	})
	return out
}

// Summary formats the first n offenders.
func Summary(os []Offender, n int) []string {
	var out []string
	for i, o := range os {
		if i == n {
			out = append(out, fmt.Sprintf("… and %d more", len(os)-n))
			break
		}
		out = append(out, o.String())
	}
	return out
}
