package render

import (
	"fmt"
	"net/netip"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/medseg/medseg/api/v1alpha1"
)

// checkCeiling reports why a flow's peers exceed the policy's allowedPeers, or "" when they fit.
//
// External peers must lie inside one of allowedPeers.externalCIDRs (none allowed when unset) and
// must not overlap the device networks (devices are reached only through gateways). In-cluster
// peers must sit in namespaces allowedPeers.namespaceSelector matches: with a namespace
// inventory, a peer that selects any namespace outside the ceiling blocks the flow; without
// one (offline), only statically evident cases do. The renderer additionally ANDs the ceiling
// into every rendered peer selector, so enforcement never exceeds it even for namespaces
// created later.
func checkCeiling(f v1alpha1.Flow, devNamespace string, p *v1alpha1.SegmentPolicy, namespaces map[string]map[string]string) string {
	ap := p.Spec.AllowedPeers
	for _, peer := range f.Peers {
		if peer.IsExternal() {
			if why := externalCeiling(peer.CIDR, p); why != "" {
				return why
			}
			continue
		}
		if ap == nil || ap.NamespaceSelector == nil {
			continue
		}
		ceiling, err := metav1.LabelSelectorAsSelector(ap.NamespaceSelector)
		if err != nil {
			return fmt.Sprintf("policy allowedPeers.namespaceSelector is invalid: %v", err)
		}
		if peer.NamespaceSelector == nil {
			// Kubernetes semantics: the device's own namespace.
			if nsl, ok := namespaces[devNamespace]; ok && !ceiling.Matches(labels.Set(nsl)) {
				return fmt.Sprintf("peer namespace %s is outside allowedPeers.namespaceSelector", devNamespace)
			}
			continue
		}
		if isEmptySelector(peer.NamespaceSelector) && !ceiling.Empty() {
			return "peer selects every namespace; allowedPeers.namespaceSelector allows fewer"
		}
		peerSel, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
		if err != nil {
			return fmt.Sprintf("peer namespaceSelector is invalid: %v", err)
		}
		var outside []string
		for name, nsl := range namespaces {
			if peerSel.Matches(labels.Set(nsl)) && !ceiling.Matches(labels.Set(nsl)) {
				outside = append(outside, name)
			}
		}
		if len(outside) > 0 {
			sort.Strings(outside)
			return fmt.Sprintf("peer selects namespace %s, outside allowedPeers.namespaceSelector", outside[0])
		}
	}
	return ""
}

func externalCeiling(cidr string, p *v1alpha1.SegmentPolicy) string {
	peer, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Sprintf("peer cidr %q is not a valid network", cidr)
	}
	if peer.Bits() == 0 {
		return fmt.Sprintf("peer cidr %s is the whole internet", cidr)
	}
	for _, dn := range p.Spec.DeviceNetworks {
		if n, err := netip.ParsePrefix(dn); err == nil && n.Overlaps(peer) {
			return fmt.Sprintf("peer cidr %s overlaps device network %s: devices are reached only through gateways", cidr, dn)
		}
	}
	ap := p.Spec.AllowedPeers
	if ap == nil || len(ap.ExternalCIDRs) == 0 {
		return fmt.Sprintf("external peer %s: the policy allows no external peers", cidr)
	}
	for _, c := range ap.ExternalCIDRs {
		if n, err := netip.ParsePrefix(c); err == nil && n.Bits() > 0 && n.Bits() <= peer.Bits() && n.Contains(peer.Addr()) {
			return ""
		}
	}
	return fmt.Sprintf("external peer %s is outside allowedPeers.externalCIDRs", cidr)
}

func isEmptySelector(s *metav1.LabelSelector) bool {
	return s != nil && len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}
