package render

import (
	"encoding/json"
	"slices"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/medseg/medseg/api/v1alpha1"
)

// GatewaysOverlap reports whether two devices' gateway selectors (in one namespace) can select
// a common pod: one labelled medseg.io/gateway=true that meets every requirement of both. It
// looks at the selectors, not at the pods running now, so a pod started later is covered too.
// An unparsable selector overlaps nothing (such a device is reported InvalidInput and renders
// nothing).
func GatewaysOverlap(a, b metav1.LabelSelector) bool {
	if len(a.MatchExpressions) == 0 && len(b.MatchExpressions) == 0 {
		// The common case, label equality only: they overlap unless one key needs two values.
		for k, v := range a.MatchLabels {
			if w, ok := b.MatchLabels[k]; ok && w != v {
				return false
			}
		}
		gatewayOK := func(s metav1.LabelSelector) bool {
			v, ok := s.MatchLabels[v1alpha1.LabelGateway]
			return !ok || v == "true"
		}
		return gatewayOK(a) && gatewayOK(b)
	}
	c := map[string]*keyConstraint{}
	add := func(s metav1.LabelSelector) bool {
		if _, err := metav1.LabelSelectorAsSelector(&s); err != nil {
			return false
		}
		for k, v := range s.MatchLabels {
			c[k] = c[k].with(true, false, []string{v}, nil)
		}
		for _, r := range s.MatchExpressions {
			switch r.Operator {
			case metav1.LabelSelectorOpIn:
				c[r.Key] = c[r.Key].with(true, false, r.Values, nil)
			case metav1.LabelSelectorOpNotIn:
				c[r.Key] = c[r.Key].with(false, false, nil, r.Values)
			case metav1.LabelSelectorOpExists:
				c[r.Key] = c[r.Key].with(true, false, nil, nil)
			case metav1.LabelSelectorOpDoesNotExist:
				c[r.Key] = c[r.Key].with(false, true, nil, nil)
			}
		}
		return true
	}
	if !add(a) || !add(b) || !add(metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.LabelGateway: "true"}}) {
		return false
	}
	for _, k := range c {
		if !k.satisfiable() {
			return false
		}
	}
	return true
}

// keyConstraint is what a set of requirements asks of one label key.
type keyConstraint struct {
	present, absent bool
	allowed         sets.Set[string] // nil: any value
	excluded        sets.Set[string]
}

func (k *keyConstraint) with(present, absent bool, allowed, excluded []string) *keyConstraint {
	if k == nil {
		k = &keyConstraint{excluded: sets.New[string]()}
	}
	k.present = k.present || present
	k.absent = k.absent || absent
	if allowed != nil {
		if k.allowed == nil {
			k.allowed = sets.New(allowed...)
		} else {
			k.allowed = k.allowed.Intersection(sets.New(allowed...))
		}
	}
	k.excluded.Insert(excluded...)
	return k
}

func (k *keyConstraint) satisfiable() bool {
	switch {
	case k.present && k.absent:
		return false
	case k.allowed != nil:
		return k.allowed.Difference(k.excluded).Len() > 0
	}
	return true // present with a value outside excluded, or absent
}

// NoWider reports whether applying desired in place of live opens nothing live does not: the
// same gateway selector, default deny at least where live has it, every allow rule of desired
// already in live, and every deny rule of live still in desired. Rules are compared whole, so
// the answer errs on the side of "wider". medseg uses it while an input conflict lasts: the
// device's policy may tighten (its risk rose) but never open.
func NoWider(desired, live *ciliumv2.CiliumNetworkPolicy) bool {
	if desired == nil || live == nil || desired.Spec == nil || live.Spec == nil {
		return false
	}
	d, l := desired.Spec, live.Spec
	if !sameJSON(d.EndpointSelector, l.EndpointSelector) {
		return false
	}
	if on(l.EnableDefaultDeny.Ingress) && !on(d.EnableDefaultDeny.Ingress) || on(l.EnableDefaultDeny.Egress) && !on(d.EnableDefaultDeny.Egress) {
		return false
	}
	return subset(d.Ingress, l.Ingress) && subset(d.Egress, l.Egress) &&
		subset(l.IngressDeny, d.IngressDeny) && subset(l.EgressDeny, d.EgressDeny)
}

// on reads an enableDefaultDeny field as Cilium does: unset means on when the rule has rules in
// that direction; medseg always sets it, so unset is read as on (the stricter reading for live).
func on(b *bool) bool { return b == nil || *b }

func subset[T policyapi.IngressRule | policyapi.EgressRule | policyapi.IngressDenyRule | policyapi.EgressDenyRule](small, big []T) bool {
	have := make([]string, 0, len(big))
	for _, r := range big {
		have = append(have, jsonOf(r))
	}
	for _, r := range small {
		if !slices.Contains(have, jsonOf(r)) {
			return false
		}
	}
	return true
}

func sameJSON(a, b any) bool { return jsonOf(a) == jsonOf(b) }

func jsonOf(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return "\x00unencodable"
	}
	return string(raw)
}

// AllowsAddress reports whether a device policy has an allow rule to or from the address (a
// device address medseg opened on the gateway): the test of which claimant of a contested
// address medseg already enforces it for.
func AllowsAddress(cnp *ciliumv2.CiliumNetworkPolicy, addr string) bool {
	if cnp == nil || cnp.Spec == nil {
		return false
	}
	ps, err := hostPrefixes([]string{addr})
	if err != nil {
		return false
	}
	want := policyapi.CIDR(ps[0].String())
	for _, in := range cnp.Spec.Ingress {
		if slices.Contains(in.FromCIDR, want) {
			return true
		}
	}
	for _, eg := range cnp.Spec.Egress {
		if slices.Contains(eg.ToCIDR, want) {
			return true
		}
	}
	return false
}

// SameGateway reports whether two device policies select the same gateway pods.
func SameGateway(a, b *ciliumv2.CiliumNetworkPolicy) bool {
	return a != nil && b != nil && a.Spec != nil && b.Spec != nil && sameJSON(a.Spec.EndpointSelector, b.Spec.EndpointSelector)
}
