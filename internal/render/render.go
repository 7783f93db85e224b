// Package render turns a MedicalDevice, the SegmentPolicy that governs it, its SSVC priority and
// the current time into the exact Cilium objects medseg owns, plus the decision for every flow.
//
// It is pure: plain values in, plain values out, no client, no context, the clock an argument.
// The same input gives byte-identical output (sorted selectors, ports, CIDRs and rules, and a
// content hash annotation), so it can run offline in GitOps CI and an unchanged device costs
// no write.
package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	slimmetav1 "github.com/cilium/cilium/pkg/k8s/slim/k8s/apis/meta/v1"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Cilium label keys used in selectors. Namespace keys carry an explicit source prefix: Cilium
// confines a peer selector to the policy's namespace unless it names the namespace
// (k8s:io.kubernetes.pod.namespace) or a namespace label with a k8s:/any: prefix.
const (
	keyPodNamespace   = "k8s:io.kubernetes.pod.namespace"
	keyNamespaceLabel = "k8s:io.cilium.k8s.namespace.labels."
	// PolicyMapCapacity is Cilium's default bpf-policy-map-max per endpoint.
	PolicyMapCapacity = 16384
	// CapacityWarnRatio is the share of PolicyMapCapacity at which medseg warns.
	CapacityWarnRatio = 0.75
)

// Input is everything the renderer needs for one device.
type Input struct {
	Device *v1alpha1.MedicalDevice
	// Policy governs the device (see SelectPolicy); nil means none does.
	Policy   *v1alpha1.SegmentPolicy
	Priority v1alpha1.Priority
	// Namespaces maps namespace names to their labels, for ceiling checks; may be nil offline.
	Namespaces map[string]map[string]string
	// Approvals are the SegmentExceptions and AccessGrants naming the device (others are
	// ignored).
	Approvals v1alpha1.Approvals
	Now       time.Time
}

// FlowDecision is the outcome for one declared flow.
type FlowDecision struct {
	Name    string
	Tier    v1alpha1.Tier
	Allowed bool
	Reason  v1alpha1.BlockReason
	Message string
	// Grant is the access grant that opens the flow, when it needs one and it is allowed.
	Grant *v1alpha1.AccessGrant
}

// Result is the renderer's output for one device.
type Result struct {
	// NoPolicy is true when no SegmentPolicy governs the device: nothing is rendered.
	NoPolicy bool
	Policy   string
	Enforce  bool
	ModeDecision
	// Commissioning is whether spec.commissioning approves the current flows.
	Commissioning v1alpha1.CommissioningState
	Flows         []FlowDecision
	// CNP is the desired CiliumNetworkPolicy (also computed under Audit, where it is not applied).
	CNP *ciliumv2.CiliumNetworkPolicy
	// AddressesOutsideDeviceNetworks are device addresses the policy's guard does not fence.
	AddressesOutsideDeviceNetworks []string
	// PolicyMapEntries estimates the entries this device adds to each gateway's policy map.
	PolicyMapEntries int
}

// Allowed returns the names of the allowed flows, in spec order.
func (r *Result) Allowed() []string {
	var out []string
	for _, f := range r.Flows {
		if f.Allowed {
			out = append(out, f.Name)
		}
	}
	return out
}

// Grants returns the access grants that open flows now, in spec order of the flows.
func (r *Result) Grants() []*v1alpha1.AccessGrant {
	var out []*v1alpha1.AccessGrant
	for _, f := range r.Flows {
		if f.Allowed && f.Grant != nil {
			out = append(out, f.Grant)
		}
	}
	return out
}

// Blocked returns the blocked flows, in spec order.
func (r *Result) Blocked() []FlowDecision {
	var out []FlowDecision
	for _, f := range r.Flows {
		if !f.Allowed {
			out = append(out, f)
		}
	}
	return out
}

// DeviceObjectName is the name of the device's CiliumNetworkPolicy.
func DeviceObjectName(device string) string { return "medseg-" + device }

// GuardObjectName is the name of a SegmentPolicy's CiliumClusterwideNetworkPolicy.
func GuardObjectName(policy string) string { return "medseg-guard-" + policy }

// Device renders a device. Errors are input problems (an unparsable selector or address) that
// the reconciler reports as a condition; nothing is opened on error.
func Device(in Input) (*Result, error) {
	dev := in.Device
	commission := dev.Spec.CommissioningState()
	if in.Policy == nil {
		return &Result{NoPolicy: true, Commissioning: commission}, nil
	}
	p := in.Policy
	ref := v1alpha1.ObjectRef{Namespace: dev.Namespace, Name: dev.Name}
	res := &Result{Policy: p.Name, Enforce: p.Spec.Enforcement == v1alpha1.EnforcementEnforce, Commissioning: commission}
	res.ModeDecision = DecideMode(p, in.Approvals, ref, in.Priority, commission, in.Now)

	addrs, err := hostPrefixes(dev.Spec.Network.Addresses)
	if err != nil {
		return nil, err
	}
	res.AddressesOutsideDeviceNetworks = outsideNetworks(addrs, p.Spec.DeviceNetworks)

	gw, err := gatewaySelector(dev)
	if err != nil {
		return nil, err
	}
	var ceilingNS *slimmetav1.LabelSelector
	if p.Spec.AllowedPeers != nil && p.Spec.AllowedPeers.NamespaceSelector != nil {
		ceilingNS = toSlim(p.Spec.AllowedPeers.NamespaceSelector)
	}

	rule := &policyapi.Rule{
		EndpointSelector:  gw,
		EnableDefaultDeny: policyapi.DefaultDenyConfig{Ingress: ptr.To(true), Egress: ptr.To(true)},
		Description:       fmt.Sprintf("medseg: gateway of %s/%s, mode %s, policy %s", dev.Namespace, dev.Name, res.Mode, p.Name),
	}
	keepEssential := p.Spec.Quarantine.KeepsEssential()
	flows := append([]v1alpha1.Flow(nil), dev.Spec.Flows...)
	sort.SliceStable(flows, func(i, j int) bool { return flows[i].Name < flows[j].Name })
	decisions := map[string]FlowDecision{}
	for _, f := range flows {
		d := FlowDecision{Name: f.Name, Tier: f.Tier}
		var grant GrantDecision
		needsGrant := NeedsGrant(p, f)
		if needsGrant {
			grant = decideGrant(p, in.Approvals.Grants, ref, f.Name, in.Now, &res.ModeDecision)
			res.Ignored = append(res.Ignored, grant.Ignored...)
		}
		switch {
		case !res.Mode.Allows(f.Tier, keepEssential):
			d.Reason, d.Message = v1alpha1.BlockMode, fmt.Sprintf("mode %s does not allow %s flows", res.Mode, f.Tier)
			if f.Tier == v1alpha1.TierEssential {
				d.Message = fmt.Sprintf("mode %s with quarantine.keepEssentialFlows=false blocks every flow", res.Mode)
			}
		default:
			if why := checkCeiling(f, dev.Namespace, p, in.Namespaces); why != "" {
				d.Reason, d.Message = v1alpha1.BlockCeiling, why
			} else if needsGrant && grant.Active == nil {
				d.Reason, d.Message = v1alpha1.BlockGrant, grantMessage(f, grant)
			} else {
				d.Allowed, d.Grant = true, grant.Active
			}
		}
		if !d.Allowed && grant.Active != nil {
			d.Message += fmt.Sprintf("; AccessGrant %s is open until %s but does not override this", grant.Active.Name, grant.Active.Spec.NotAfter.UTC().Format(time.RFC3339))
		}
		if d.Allowed {
			n, err := addFlow(rule, f, dev.Namespace, addrs, ceilingNS)
			if err != nil {
				return nil, err
			}
			res.PolicyMapEntries += n
		}
		decisions[f.Name] = d
	}
	for _, f := range dev.Spec.Flows { // report in spec order
		res.Flows = append(res.Flows, decisions[f.Name])
	}
	if len(rule.Ingress) == 0 && len(rule.Egress) == 0 {
		// Isolation must not depend on any other object: deny the device both ways explicitly.
		cidrs := cidrSlice(addrs)
		rule.EgressDeny = []policyapi.EgressDenyRule{{EgressCommonRule: policyapi.EgressCommonRule{ToCIDR: cidrs}}}
		rule.IngressDeny = []policyapi.IngressDenyRule{{IngressCommonRule: policyapi.IngressCommonRule{FromCIDR: cidrs}}}
		res.PolicyMapEntries += 2 * len(cidrs)
	}
	// The gateway is in default deny: it keeps name resolution, which is not device access.
	rule.Egress = append(rule.Egress, dnsEgress())
	res.PolicyMapEntries += 2

	cnp, err := deviceCNP(dev, p.Name, rule)
	if err != nil {
		return nil, err
	}
	res.CNP = cnp
	return res, nil
}

// deviceCNP wraps a rule as the device's CiliumNetworkPolicy medseg-<device>: medseg's labels,
// a controller reference to the device and the content hash.
func deviceCNP(dev *v1alpha1.MedicalDevice, policy string, rule *policyapi.Rule) (*ciliumv2.CiliumNetworkPolicy, error) {
	lbls := map[string]string{
		v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue,
		v1alpha1.LabelDevice:    dev.Name,
	}
	if policy != "" {
		lbls[v1alpha1.LabelPolicy] = policy
	}
	cnp := &ciliumv2.CiliumNetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: ciliumv2.SchemeGroupVersion.String(), Kind: ciliumv2.CNPKindDefinition},
		ObjectMeta: metav1.ObjectMeta{
			Name:      DeviceObjectName(dev.Name),
			Namespace: dev.Namespace,
			Labels:    lbls,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "MedicalDevice", Name: dev.Name, UID: dev.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: rule,
	}
	if dev.UID == "" {
		// Rendered offline from files: there is no object to own it yet.
		cnp.OwnerReferences = nil
	}
	if err := setHash(&cnp.ObjectMeta, cnp.Spec, nil); err != nil {
		return nil, err
	}
	return cnp, nil
}

// dnsEgress lets a gateway in default deny resolve names with the cluster DNS (kube-dns in
// kube-system), over UDP and TCP port 53.
func dnsEgress() policyapi.EgressRule {
	return policyapi.EgressRule{
		EgressCommonRule: policyapi.EgressCommonRule{ToEndpoints: []policyapi.EndpointSelector{{LabelSelector: &slimmetav1.LabelSelector{
			MatchLabels: map[string]string{keyPodNamespace: "kube-system", "k8s:k8s-app": "kube-dns"},
		}}}},
		ToPorts: policyapi.PortRules{{Ports: []policyapi.PortProtocol{{Port: "53", Protocol: policyapi.ProtoUDP}, {Port: "53", Protocol: policyapi.ProtoTCP}}}},
	}
}

// Companion renders the allow-only CiliumNetworkPolicy of a device that is not enforced (its
// policy is in Audit, or no policy governs it) but whose gateway pods are also gateways of
// enforced devices. Their policies put those pods in default deny; the companion keeps every
// declared flow of this device open on them, every tier, as Standard would, so enforcing one
// zone never cuts another zone's traffic. enableDefaultDeny is off both ways: on a gateway that
// nothing else puts in default deny the companion changes nothing. policy is the Audit policy's
// name, "" for an ungoverned device.
func Companion(dev *v1alpha1.MedicalDevice, policy string) (*ciliumv2.CiliumNetworkPolicy, error) {
	addrs, err := hostPrefixes(dev.Spec.Network.Addresses)
	if err != nil {
		return nil, err
	}
	gw, err := gatewaySelector(dev)
	if err != nil {
		return nil, err
	}
	rule := &policyapi.Rule{
		EndpointSelector:  gw,
		EnableDefaultDeny: policyapi.DefaultDenyConfig{Ingress: ptr.To(false), Egress: ptr.To(false)},
		Description: fmt.Sprintf("medseg: %s/%s is not enforced; its declared flows stay open on the gateways it shares with enforced devices",
			dev.Namespace, dev.Name),
	}
	flows := append([]v1alpha1.Flow(nil), dev.Spec.Flows...)
	sort.SliceStable(flows, func(i, j int) bool { return flows[i].Name < flows[j].Name })
	for _, f := range flows {
		if _, err := addFlow(rule, f, dev.Namespace, addrs, nil); err != nil {
			return nil, err
		}
	}
	return deviceCNP(dev, policy, rule)
}

// IsCompanion reports whether a device CiliumNetworkPolicy is an allow-only companion (default
// deny off) rather than an enforcing policy.
func IsCompanion(cnp *ciliumv2.CiliumNetworkPolicy) bool {
	return cnp != nil && cnp.Spec != nil && cnp.Spec.EnableDefaultDeny.Ingress != nil && !*cnp.Spec.EnableDefaultDeny.Ingress
}

func grantMessage(f v1alpha1.Flow, g GrantDecision) string {
	why := "it has an external peer and allowedPeers.externalRequiresGrant is on"
	if f.Access == v1alpha1.AccessGranted {
		why = "access: Granted"
	}
	msg := fmt.Sprintf("the flow opens only inside an AccessGrant (%s) and none is open", why)
	if g.Next != nil {
		msg += fmt.Sprintf("; AccessGrant %s (approved by %s, ticket %s) opens at %s", g.Next.Name, g.Next.Spec.ApprovedBy, g.Next.Spec.Ticket, g.Next.Spec.NotBefore.UTC().Format(time.RFC3339))
	}
	for _, ig := range g.Ignored {
		msg += "; " + ig + " and never opens"
	}
	return msg
}

// addFlow appends the rules of one allowed flow and returns its policy map estimate.
func addFlow(rule *policyapi.Rule, f v1alpha1.Flow, ns string, device []netip.Prefix, ceilingNS *slimmetav1.LabelSelector) (int, error) {
	proto := policyapi.ProtoTCP
	if f.Protocol == v1alpha1.ProtocolUDP {
		proto = policyapi.ProtoUDP
	}
	ports := func(p int32) policyapi.PortRules {
		return policyapi.PortRules{{Ports: []policyapi.PortProtocol{{Port: strconv.Itoa(int(p)), Protocol: proto}}}}
	}
	var selectors []policyapi.EndpointSelector
	var cidrs []netip.Prefix
	for i, peer := range f.Peers {
		if peer.IsExternal() {
			c, err := netip.ParsePrefix(peer.CIDR)
			if err != nil {
				return 0, fmt.Errorf("spec.flows[%s].peers[%d].cidr: %w", f.Name, i, err)
			}
			cidrs = append(cidrs, c.Masked())
			continue
		}
		es, err := peerSelector(peer, ns, ceilingNS)
		if err != nil {
			return 0, fmt.Errorf("spec.flows[%s].peers[%d]: %w", f.Name, i, err)
		}
		selectors = append(selectors, es)
	}
	sortSelectors(selectors)
	peerCIDRs := cidrSlice(cidrs)
	deviceCIDRs := cidrSlice(device)
	switch f.Direction {
	case v1alpha1.DirectionToDevice:
		if len(selectors) > 0 {
			rule.Ingress = append(rule.Ingress, policyapi.IngressRule{IngressCommonRule: policyapi.IngressCommonRule{FromEndpoints: selectors}, ToPorts: ports(f.GatewayPort)})
		}
		if len(peerCIDRs) > 0 {
			rule.Ingress = append(rule.Ingress, policyapi.IngressRule{IngressCommonRule: policyapi.IngressCommonRule{FromCIDR: peerCIDRs}, ToPorts: ports(f.GatewayPort)})
		}
		rule.Egress = append(rule.Egress, policyapi.EgressRule{EgressCommonRule: policyapi.EgressCommonRule{ToCIDR: deviceCIDRs}, ToPorts: ports(f.DevicePort)})
	default:
		rule.Ingress = append(rule.Ingress, policyapi.IngressRule{IngressCommonRule: policyapi.IngressCommonRule{FromCIDR: deviceCIDRs}, ToPorts: ports(f.GatewayPort)})
		if len(selectors) > 0 {
			rule.Egress = append(rule.Egress, policyapi.EgressRule{EgressCommonRule: policyapi.EgressCommonRule{ToEndpoints: selectors}, ToPorts: ports(f.PeerPort)})
		}
		if len(peerCIDRs) > 0 {
			rule.Egress = append(rule.Egress, policyapi.EgressRule{EgressCommonRule: policyapi.EgressCommonRule{ToCIDR: peerCIDRs}, ToPorts: ports(f.PeerPort)})
		}
	}
	// One entry per peer identity and port, a lower bound: a selector may match many identities.
	return len(selectors) + len(peerCIDRs) + len(deviceCIDRs), nil
}

// ValidGateway reports whether the device's gateway selector can be rendered.
func ValidGateway(dev *v1alpha1.MedicalDevice) error {
	_, err := gatewaySelector(dev)
	return err
}

// gatewaySelector selects the device's gateway pods: spec.gateway.podSelector AND
// medseg.io/gateway: "true".
func gatewaySelector(dev *v1alpha1.MedicalDevice) (policyapi.EndpointSelector, error) {
	if _, err := metav1.LabelSelectorAsSelector(&dev.Spec.Gateway.PodSelector); err != nil {
		return policyapi.EndpointSelector{}, fmt.Errorf("spec.gateway.podSelector: %w", err)
	}
	s := toSlim(&dev.Spec.Gateway.PodSelector)
	if s.MatchLabels == nil {
		s.MatchLabels = map[string]string{}
	}
	if v, ok := s.MatchLabels[v1alpha1.LabelGateway]; ok && v != "true" {
		return policyapi.EndpointSelector{}, fmt.Errorf("spec.gateway.podSelector: %s must be \"true\" when set", v1alpha1.LabelGateway)
	}
	s.MatchLabels[v1alpha1.LabelGateway] = "true"
	sortRequirements(s.MatchExpressions)
	return policyapi.EndpointSelector{LabelSelector: s}, nil
}

// peerSelector writes an in-cluster peer as a Cilium endpoint selector with Kubernetes
// NetworkPolicy semantics: a podSelector alone means the device's namespace; a
// namespaceSelector is written as namespace-label keys ({} = every namespace, which needs an
// explicit namespace Exists). The policy's namespace ceiling is ANDed in.
func peerSelector(peer v1alpha1.Peer, ns string, ceilingNS *slimmetav1.LabelSelector) (policyapi.EndpointSelector, error) {
	out := &slimmetav1.LabelSelector{MatchLabels: map[string]string{}}
	if peer.PodSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(peer.PodSelector); err != nil {
			return policyapi.EndpointSelector{}, fmt.Errorf("podSelector: %w", err)
		}
		pod := toSlim(peer.PodSelector)
		for k, v := range pod.MatchLabels {
			out.MatchLabels[k] = v
		}
		out.MatchExpressions = append(out.MatchExpressions, pod.MatchExpressions...)
	}
	if peer.NamespaceSelector == nil {
		out.MatchLabels[keyPodNamespace] = ns
	} else {
		if _, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector); err != nil {
			return policyapi.EndpointSelector{}, fmt.Errorf("namespaceSelector: %w", err)
		}
		addNamespaceSelector(out, toSlim(peer.NamespaceSelector))
		out.MatchExpressions = append(out.MatchExpressions, slimmetav1.LabelSelectorRequirement{Key: keyPodNamespace, Operator: slimmetav1.LabelSelectorOpExists})
	}
	if ceilingNS != nil {
		addNamespaceSelector(out, ceilingNS)
	}
	if len(out.MatchLabels) == 0 {
		out.MatchLabels = nil
	}
	sortRequirements(out.MatchExpressions)
	out.MatchExpressions = dedupeRequirements(out.MatchExpressions)
	return policyapi.EndpointSelector{LabelSelector: out}, nil
}

func addNamespaceSelector(out, ns *slimmetav1.LabelSelector) {
	for k, v := range ns.MatchLabels {
		key := keyNamespaceLabel + k
		if old, ok := out.MatchLabels[key]; ok && old != v {
			// Contradictory requirements (peer vs ceiling): keep both as an In expression with
			// the other value, which matches nothing, rather than silently widening.
			out.MatchExpressions = append(out.MatchExpressions, slimmetav1.LabelSelectorRequirement{Key: key, Operator: slimmetav1.LabelSelectorOpIn, Values: []string{v}})
			continue
		}
		out.MatchLabels[key] = v
	}
	for _, r := range ns.MatchExpressions {
		r.Key = keyNamespaceLabel + r.Key
		r.Values = append([]string(nil), r.Values...)
		sort.Strings(r.Values)
		out.MatchExpressions = append(out.MatchExpressions, r)
	}
}

// setHash stores the content hash of everything medseg sets (labels, spec, specs) in the
// medseg.io/content-hash annotation.
func setHash(meta *metav1.ObjectMeta, spec *policyapi.Rule, specs policyapi.Rules) error {
	h, err := HashOf(meta.Labels, spec, specs)
	if err != nil {
		return fmt.Errorf("hashing %s: %w", meta.Name, err)
	}
	meta.Annotations = map[string]string{v1alpha1.AnnotationContentHash: h}
	return nil
}

// HashOf is the content hash of a Cilium policy's labels and rules. The controllers compute it
// over what they read back, so a hand edit of the rules is detected even when the annotation
// was left alone.
func HashOf(labels map[string]string, spec *policyapi.Rule, specs policyapi.Rules) (string, error) {
	raw, err := json.Marshal(struct {
		Labels map[string]string `json:"labels"`
		Spec   *policyapi.Rule   `json:"spec,omitempty"`
		Specs  policyapi.Rules   `json:"specs,omitempty"`
	}{labels, spec, specs})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:16]), nil
}

func hostPrefixes(addrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(addrs))
	for i, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("spec.network.addresses[%d]: %w", i, err)
		}
		if ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() || ip.IsLinkLocalUnicast() {
			return nil, fmt.Errorf("spec.network.addresses[%d]: %s is not a device host address", i, a)
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	sortPrefixesInPlace(out)
	return out, nil
}

// DeviceNetworks parses a SegmentPolicy's deviceNetworks: the one parser the guard, the
// flatness audit and the foreign-policy analysis share. The networks come back masked and
// sorted; a /0 is an error (the API rejects it; files read offline may not have been checked).
func DeviceNetworks(p *v1alpha1.SegmentPolicy) ([]netip.Prefix, error) {
	nets, err := sortedPrefixes(p.Spec.DeviceNetworks)
	if err != nil {
		return nil, fmt.Errorf("SegmentPolicy %s: spec.deviceNetworks: %w", p.Name, err)
	}
	return nets, nil
}

func sortedPrefixes(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, err
		}
		if p.Bits() == 0 {
			return nil, fmt.Errorf("%s would cover every address", c)
		}
		out = append(out, p.Masked())
	}
	sortPrefixesInPlace(out)
	return out, nil
}

func outsideNetworks(addrs []netip.Prefix, networks []string) []string {
	var out []string
	for _, a := range addrs {
		inside := false
		for _, n := range networks {
			if p, err := netip.ParsePrefix(n); err == nil && p.Contains(a.Addr()) {
				inside = true
				break
			}
		}
		if !inside {
			out = append(out, a.Addr().String())
		}
	}
	return out
}

func sortPrefixesInPlace(ps []netip.Prefix) {
	sort.Slice(ps, func(i, j int) bool {
		if c := ps[i].Addr().Compare(ps[j].Addr()); c != 0 {
			return c < 0
		}
		return ps[i].Bits() < ps[j].Bits()
	})
}

func cidrSlice(ps []netip.Prefix) policyapi.CIDRSlice {
	sortPrefixesInPlace(ps)
	out := make(policyapi.CIDRSlice, 0, len(ps))
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, policyapi.CIDR(p.String()))
	}
	return out
}

func toSlim(s *metav1.LabelSelector) *slimmetav1.LabelSelector {
	out := &slimmetav1.LabelSelector{}
	if len(s.MatchLabels) > 0 {
		out.MatchLabels = make(map[string]string, len(s.MatchLabels))
		for k, v := range s.MatchLabels {
			out.MatchLabels[k] = v
		}
	}
	for _, r := range s.MatchExpressions {
		vals := append([]string(nil), r.Values...)
		sort.Strings(vals)
		out.MatchExpressions = append(out.MatchExpressions, slimmetav1.LabelSelectorRequirement{
			Key: r.Key, Operator: slimmetav1.LabelSelectorOperator(r.Operator), Values: vals,
		})
	}
	return out
}

func sortRequirements(rs []slimmetav1.LabelSelectorRequirement) {
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Key != rs[j].Key {
			return rs[i].Key < rs[j].Key
		}
		if rs[i].Operator != rs[j].Operator {
			return rs[i].Operator < rs[j].Operator
		}
		return fmt.Sprint(rs[i].Values) < fmt.Sprint(rs[j].Values)
	})
}

func dedupeRequirements(rs []slimmetav1.LabelSelectorRequirement) []slimmetav1.LabelSelectorRequirement {
	var out []slimmetav1.LabelSelectorRequirement
	for i, r := range rs {
		if i > 0 && r.Key == rs[i-1].Key && r.Operator == rs[i-1].Operator && fmt.Sprint(r.Values) == fmt.Sprint(rs[i-1].Values) {
			continue
		}
		out = append(out, r)
	}
	return out
}

func sortSelectors(s []policyapi.EndpointSelector) {
	keys := make([]string, len(s))
	for i := range s {
		raw, _ := json.Marshal(s[i].LabelSelector)
		keys[i] = string(raw)
	}
	sort.Sort(bySelectorKey{s, keys})
}

type bySelectorKey struct {
	s    []policyapi.EndpointSelector
	keys []string
}

func (b bySelectorKey) Len() int           { return len(b.s) }
func (b bySelectorKey) Less(i, j int) bool { return b.keys[i] < b.keys[j] }
func (b bySelectorKey) Swap(i, j int) {
	b.s[i], b.s[j] = b.s[j], b.s[i]
	b.keys[i], b.keys[j] = b.keys[j], b.keys[i]
}
