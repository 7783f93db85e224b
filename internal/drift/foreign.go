// Package drift analyses the policies in a cluster that medseg does not own: which of them
// select a device's gateway, which widen access to a device (drift), and (flatness) which
// ordinary workloads could reach the device networks. It is pure: plain values in, findings out.
package drift

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/render"
)

// Kinds of policy the analysis reads.
const (
	KindCNP           = "CiliumNetworkPolicy"
	KindCCNP          = "CiliumClusterwideNetworkPolicy"
	KindNetworkPolicy = "NetworkPolicy"
)

// Device is what the analysis needs of one MedicalDevice.
type Device struct {
	Namespace, Name string
	UID             types.UID
	// Gateways are the gateway pods (spec.gateway.podSelector AND medseg.io/gateway=true). When
	// none exists yet, pass one workload built from the selector's matchLabels.
	Gateways []Workload
	// GatewayPorts are the gateway ports of the device's flows.
	GatewayPorts []int32
	Addresses    []netip.Addr
}

// Policies are the network policies of the cluster.
type Policies struct {
	CNPs            []ciliumv2.CiliumNetworkPolicy
	CCNPs           []ciliumv2.CiliumClusterwideNetworkPolicy
	NetworkPolicies []networkingv1.NetworkPolicy
	// OwnedGuards maps the names of medseg's guards to their SegmentPolicy's UID.
	OwnedGuards map[string]types.UID
}

// Finding is one foreign policy that concerns a device.
type Finding struct {
	Kind, Namespace, Name string
	// Widens is true when the policy widens access to the device or its gateway.
	Widens bool
	// Reason explains what the policy does, for people.
	Reason string
}

// Key names the policy as kind/namespace/name.
func (f Finding) Key() string { return f.Kind + "/" + f.Namespace + "/" + f.Name }

// ForDevice returns the foreign policies that select the device's gateway or open access to its
// addresses, sorted, each with whether it widens access and why. DeviceNetworks are every
// SegmentPolicy's device networks.
func ForDevice(d Device, p Policies, deviceNetworks []netip.Prefix) []Finding {
	var out []Finding
	for i := range p.CNPs {
		c := &p.CNPs[i]
		if render.Owned(c) {
			continue // medseg's policy for this or another device: its rules are medseg's
		}
		if f, ok := judgeCilium(KindCNP, c.Namespace, c.Name, rulesOf(c.Spec, c.Specs), scope{namespace: c.Namespace}, d, deviceNetworks); ok {
			out = append(out, f)
		}
	}
	for i := range p.CCNPs {
		c := &p.CCNPs[i]
		if ref, ok := render.Owner(c); ok && ref.UID == p.OwnedGuards[c.Name] {
			continue // the guard of an existing SegmentPolicy
		}
		if f, ok := judgeCilium(KindCCNP, "", c.Name, rulesOf(c.Spec, c.Specs), scope{}, d, deviceNetworks); ok {
			out = append(out, f)
		}
	}
	for i := range p.NetworkPolicies {
		if f, ok := judgeNetworkPolicy(&p.NetworkPolicies[i], d, deviceNetworks); ok {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// Widening joins the reasons of the widening findings, or "" when none widens.
func Widening(fs []Finding) string {
	var parts []string
	for _, f := range fs {
		if f.Widens {
			parts = append(parts, fmt.Sprintf("%s %s %s", f.Kind, v1alpha1.Qualified(f.Namespace, f.Name), f.Reason))
		}
	}
	return strings.Join(parts, "; ")
}

func rulesOf(spec *policyapi.Rule, specs policyapi.Rules) []*policyapi.Rule {
	var out []*policyapi.Rule
	if spec != nil {
		out = append(out, spec)
	}
	out = append(out, specs...)
	return out
}

// judgeCilium looks at every rule of a Cilium policy for the device.
func judgeCilium(kind, ns, name string, rules []*policyapi.Rule, sc scope, d Device, nets []netip.Prefix) (Finding, bool) {
	f := Finding{Kind: kind, Namespace: ns, Name: name}
	var reasons, widening []string
	concerns := false
	for _, r := range rules {
		selectsGateway := false
		for _, gw := range d.Gateways {
			if matches(r.EndpointSelector.LabelSelector, gw, sc) {
				selectsGateway = true
				break
			}
		}
		if selectsGateway {
			concerns = true
			reasons = append(reasons, "selects the gateway")
			for _, in := range r.Ingress {
				if why := widensIngress(in, sc, d); why != "" {
					widening = append(widening, why)
				}
			}
			for _, eg := range r.Egress {
				if why := widensGatewayEgress(eg.ToEntities, cidrsOf(eg.ToCIDR, eg.ToCIDRSet), d, nets); why != "" {
					widening = append(widening, why)
				}
			}
			continue
		}
		// Any other pod: explicitly allowing traffic to the device's addresses widens access.
		for _, eg := range r.Egress {
			if hit := devicesHit(cidrsOf(eg.ToCIDR, eg.ToCIDRSet), d); hit != "" {
				concerns = true
				widening = append(widening, "allows non-gateway pods to reach "+hit)
			}
		}
	}
	if !concerns {
		return f, false
	}
	f.Widens = len(widening) > 0
	if f.Widens {
		f.Reason = strings.Join(dedupe(widening), "; ")
	} else {
		f.Reason = dedupe(reasons)[0] + " without widening access"
	}
	return f, true
}

func widensIngress(in policyapi.IngressRule, sc scope, d Device) string {
	for _, e := range in.FromEntities {
		if e == policyapi.EntityWorld || e == policyapi.EntityAll {
			return fmt.Sprintf("opens the gateway to %s", e)
		}
	}
	for _, c := range cidrsOf(in.FromCIDR, in.FromCIDRSet) {
		if c.Bits() == 0 {
			return "opens the gateway to the world (" + c.String() + ")"
		}
	}
	for _, s := range in.FromEndpoints {
		if spansAllNamespaces(s.LabelSelector, sc) {
			return "opens the gateway to every namespace"
		}
	}
	if p := devicePortsOpened(in.ToPorts, d.GatewayPorts); p != "" {
		return "opens device " + p + " on the gateway to peers the device does not declare"
	}
	return ""
}

func widensGatewayEgress(entities policyapi.EntitySlice, cidrs []netip.Prefix, d Device, nets []netip.Prefix) string {
	for _, e := range entities {
		if e == policyapi.EntityWorld || e == policyapi.EntityAll {
			return fmt.Sprintf("lets the gateway reach %s, including every device network", e)
		}
	}
	for _, c := range cidrs {
		for _, n := range nets {
			if c.Overlaps(n) {
				return fmt.Sprintf("lets the gateway reach %s in device network %s", c, n)
			}
		}
	}
	return ""
}

// devicesHit names the device addresses inside any of the CIDRs.
func devicesHit(cidrs []netip.Prefix, d Device) string {
	for _, c := range cidrs {
		for _, a := range d.Addresses {
			if c.Contains(a) {
				return fmt.Sprintf("device address %s (%s)", a, c)
			}
		}
	}
	return ""
}

// devicePortsOpened reports a device gateway port a rule opens (no ports means all ports).
func devicePortsOpened(ports policyapi.PortRules, gatewayPorts []int32) string {
	if len(gatewayPorts) == 0 {
		return ""
	}
	if len(ports) == 0 {
		return "ports (all ports)"
	}
	for _, pr := range ports {
		for _, p := range pr.Ports {
			n, err := strconv.Atoi(p.Port)
			if err != nil {
				continue // named port: cannot be a device flow port
			}
			end := int(p.EndPort)
			if end < n {
				end = n
			}
			if n == 0 {
				return "ports (all ports)"
			}
			for _, gp := range gatewayPorts {
				if int(gp) >= n && int(gp) <= end {
					return fmt.Sprintf("port %d", gp)
				}
			}
		}
	}
	return ""
}

func cidrsOf(cidrs policyapi.CIDRSlice, sets policyapi.CIDRRuleSlice) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cidrs {
		if p, err := parsePrefix(string(c)); err == nil {
			out = append(out, p)
		}
	}
	for _, s := range sets {
		if p, err := parsePrefix(string(s.Cidr)); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

// judgeNetworkPolicy applies the same questions to a Kubernetes NetworkPolicy.
func judgeNetworkPolicy(np *networkingv1.NetworkPolicy, d Device, nets []netip.Prefix) (Finding, bool) {
	f := Finding{Kind: KindNetworkPolicy, Namespace: np.Namespace, Name: np.Name}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		return f, false
	}
	ingress, egress := policyTypes(np)
	selectsGateway := false
	if np.Namespace == d.Namespace {
		for _, gw := range d.Gateways {
			if sel.Matches(labels.Set(gw.Labels)) {
				selectsGateway = true
				break
			}
		}
	}
	var widening []string
	if selectsGateway {
		if ingress {
			for _, r := range np.Spec.Ingress {
				if why := widensNPIngress(r, d); why != "" {
					widening = append(widening, why)
				}
			}
		}
		if egress {
			for _, r := range np.Spec.Egress {
				if len(r.To) == 0 {
					widening = append(widening, "lets the gateway reach every destination, including every device network")
					continue
				}
				for _, peer := range r.To {
					if peer.IPBlock == nil {
						continue
					}
					if p, err := parsePrefix(peer.IPBlock.CIDR); err == nil {
						if why := widensGatewayEgress(nil, []netip.Prefix{p}, d, nets); why != "" {
							widening = append(widening, why)
						}
					}
				}
			}
		}
	} else if egress {
		for _, r := range np.Spec.Egress {
			for _, peer := range r.To {
				if peer.IPBlock == nil {
					continue
				}
				if p, err := parsePrefix(peer.IPBlock.CIDR); err == nil && p.Bits() > 0 {
					if hit := devicesHit([]netip.Prefix{p}, d); hit != "" {
						widening = append(widening, "allows non-gateway pods to reach "+hit)
					}
				}
			}
		}
	}
	if !selectsGateway && len(widening) == 0 {
		return f, false
	}
	f.Widens = len(widening) > 0
	if f.Widens {
		f.Reason = strings.Join(dedupe(widening), "; ")
	} else {
		f.Reason = "selects the gateway without widening access"
	}
	return f, true
}

func widensNPIngress(r networkingv1.NetworkPolicyIngressRule, d Device) string {
	if len(r.From) == 0 {
		return "opens the gateway to every source"
	}
	for _, peer := range r.From {
		if peer.IPBlock != nil {
			if p, err := parsePrefix(peer.IPBlock.CIDR); err == nil && p.Bits() == 0 {
				return "opens the gateway to the world (" + peer.IPBlock.CIDR + ")"
			}
		}
		if peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchLabels) == 0 && len(peer.NamespaceSelector.MatchExpressions) == 0 {
			return "opens the gateway to every namespace"
		}
	}
	var ports policyapi.PortRules
	for _, p := range r.Ports {
		pp := policyapi.PortProtocol{}
		if p.Port != nil {
			pp.Port = p.Port.String()
		}
		if p.EndPort != nil {
			pp.EndPort = *p.EndPort
		}
		ports = append(ports, policyapi.PortRule{Ports: []policyapi.PortProtocol{pp}})
	}
	if p := devicePortsOpened(ports, d.GatewayPorts); p != "" {
		return "opens device " + p + " on the gateway to peers the device does not declare"
	}
	return ""
}

func policyTypes(np *networkingv1.NetworkPolicy) (ingress, egress bool) {
	if len(np.Spec.PolicyTypes) == 0 {
		return true, len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		}
	}
	return ingress, egress
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// GatewayWorkloads builds the workloads of a device's gateway: the pods that exist, or, when
// none does yet, one stand-in from the selector's matchLabels.
func GatewayWorkloads(ns string, nsLabels map[string]string, selector metav1.LabelSelector, pods []map[string]string) []Workload {
	var out []Workload
	for _, p := range pods {
		out = append(out, Workload{Namespace: ns, NamespaceLabels: nsLabels, Labels: p})
	}
	if len(out) == 0 {
		l := map[string]string{v1alpha1.LabelGateway: "true"}
		for k, v := range selector.MatchLabels {
			l[k] = v
		}
		out = append(out, Workload{Namespace: ns, NamespaceLabels: nsLabels, Labels: l})
	}
	return out
}
