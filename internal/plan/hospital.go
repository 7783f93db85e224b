package plan

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/render"
)

// Claims indexes device addresses: which devices claim each address. Addresses are compared
// in their canonical form (an IPv4-mapped IPv6 address is its IPv4 address), so a device cannot
// claim another's address unnoticed by spelling it differently.
type Claims map[netip.Addr][]v1alpha1.ObjectRef

// ClaimsOf indexes the addresses of the devices.
func ClaimsOf(devs []*v1alpha1.MedicalDevice) Claims {
	c := Claims{}
	for _, d := range devs {
		for _, a := range d.Spec.Network.Addresses {
			if ip, ok := CanonicalAddr(a); ok {
				c[ip] = append(c[ip], v1alpha1.ObjectRef{Namespace: d.Namespace, Name: d.Name})
			}
		}
	}
	return c
}

// CanonicalAddr parses a device address into the form medseg compares and renders.
func CanonicalAddr(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// Contested reports the device's addresses that another device also claims.
func (c Claims) Contested(dev *v1alpha1.MedicalDevice) []netip.Addr {
	self := v1alpha1.ObjectRef{Namespace: dev.Namespace, Name: dev.Name}
	var out []netip.Addr
	for _, a := range dev.Spec.Network.Addresses {
		ip, ok := CanonicalAddr(a)
		if !ok {
			continue
		}
		for _, r := range c[ip] {
			if r != self {
				out = append(out, ip)
				break
			}
		}
	}
	return out
}

// Hospital is everything the guards depend on: the devices, the policies, the namespaces'
// labels, and what medseg has already written for each device (nil offline, where nothing is).
type Hospital struct {
	Devices    []*v1alpha1.MedicalDevice
	Policies   []v1alpha1.SegmentPolicy
	Namespaces map[string]map[string]string
	// Approvals are the SegmentExceptions and AccessGrants (of any device).
	Approvals v1alpha1.Approvals
	// Live returns medseg's CiliumNetworkPolicy for a device as it is in the cluster, nil when
	// there is none; nil Live (offline) means nothing is.
	Live func(v1alpha1.ObjectRef) *ciliumv2.CiliumNetworkPolicy
}

func (h Hospital) live(ref v1alpha1.ObjectRef) *ciliumv2.CiliumNetworkPolicy {
	if h.Live == nil {
		return nil
	}
	return h.Live(ref)
}

// GuardMembers lists the devices whose gateways may reach their addresses under policy p (in
// Enforce): every device an enforced policy governs, whichever (device networks of two zones may
// overlap, and one zone's guard must not cut the other's enforced devices), and the ungoverned
// devices whose last enforced policy is kept in place (ungoverned is reported, never silently
// opened or cut). Render.Guard keeps only their addresses inside p's networks. Devices that no
// enforced policy governs are not members: a device declared in Audit, or in no zone, opens
// nothing in an enforced zone's networks.
//
// A contested address (claimed by several devices) is a conflict, and conflicts fail closed: it
// goes only to the claimants whose live policy already allows it, so the conflict adds no path
// and cuts none that medseg enforced before it arose. Offline nothing is live, so a contested
// address opens for nobody.
func GuardMembers(p *v1alpha1.SegmentPolicy, h Hospital) []render.GatewayMember {
	gov := NewGovernors(h.Policies, h.Namespaces)
	claims := ClaimsOf(h.Devices)
	valid := map[string]bool{} // by gateway selector: hospitals front many devices with few
	var out []render.GatewayMember
	for _, d := range h.Devices {
		ref := v1alpha1.ObjectRef{Namespace: d.Namespace, Name: d.Name}
		k := selectorKey(d.Spec.Gateway.PodSelector)
		ok, seen := valid[k]
		if !seen {
			ok = render.ValidGateway(d) == nil
			valid[k] = ok
		}
		if !ok {
			continue // reported InvalidInput; nothing opens for it
		}
		var live *ciliumv2.CiliumNetworkPolicy
		pol := gov.Of(d)
		switch {
		case enforces(pol):
		case pol == nil:
			if live = h.live(ref); live == nil || render.IsCompanion(live) {
				continue
			}
		default:
			continue
		}
		fetched := live != nil
		m := render.GatewayMember{Namespace: d.Namespace, Gateway: d.Spec.Gateway.PodSelector}
		for _, a := range d.Spec.Network.Addresses {
			ip, ok := CanonicalAddr(a)
			if !ok {
				continue
			}
			if len(claims[ip]) > 1 {
				if !fetched {
					live, fetched = h.live(ref), true
				}
				if !render.AllowsAddress(live, ip.String()) {
					continue
				}
			}
			m.Addresses = append(m.Addresses, ip)
		}
		out = append(out, m)
	}
	return out
}

// Devices returns pointers to the devices of a list, for Hospital and ClaimsOf.
func Devices(items []v1alpha1.MedicalDevice) []*v1alpha1.MedicalDevice {
	out := make([]*v1alpha1.MedicalDevice, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

func sortNeighbours(ns []Neighbour) {
	sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
}

// selectorKey identifies a label selector.
func selectorKey(s metav1.LabelSelector) string {
	k := labelsKey(s.MatchLabels)
	for _, r := range s.MatchExpressions {
		k += "\x01" + r.Key + "\x00" + string(r.Operator) + "\x00" + strings.Join(r.Values, "\x00")
	}
	return k
}

func labelsKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(l[k])
		b.WriteByte(0)
	}
	return b.String()
}

// Desired is what medseg writes for a whole hospital: a guard per enforced SegmentPolicy and a
// CiliumNetworkPolicy per device that gets one, in input order.
type Desired struct {
	Guards   []*ciliumv2.CiliumClusterwideNetworkPolicy
	Policies []*ciliumv2.CiliumNetworkPolicy
	// Plans are the devices' plans, in the order of Hospital.Devices.
	Plans []*Plan
}

// HospitalObjects plans every device of the hospital and decides every object medseg would
// write, against what is live (Hospital.Live; nil offline, where nothing is). This is what
// `kubectl medseg render` prints, and what the Cilium-engine tests load.
func HospitalObjects(h Hospital, now time.Time) (*Desired, error) {
	byNamespace := map[string][]*v1alpha1.MedicalDevice{}
	for _, d := range h.Devices {
		byNamespace[d.Namespace] = append(byNamespace[d.Namespace], d)
	}
	claims := ClaimsOf(h.Devices)
	approvals := h.Approvals.ByDevice()
	out := &Desired{}
	for _, d := range h.Devices {
		p, err := Device(Input{Device: d, Policies: h.Policies, Namespaces: h.Namespaces, Neighbours: byNamespace[d.Namespace],
			Approvals: approvals[v1alpha1.ObjectRef{Namespace: d.Namespace, Name: d.Name}], Now: now})
		if err != nil {
			return nil, fmt.Errorf("MedicalDevice %s: %w", v1alpha1.Qualified(d.Namespace, d.Name), err)
		}
		out.Plans = append(out.Plans, p)
		ref := v1alpha1.ObjectRef{Namespace: d.Namespace, Name: d.Name}
		if dec := DecideObject(p, h.live(ref), claims.Contested(d), nil); dec.Intent == Apply {
			out.Policies = append(out.Policies, dec.Object)
		}
	}
	for i := range h.Policies {
		p := &h.Policies[i]
		if !enforces(p) {
			continue
		}
		g, err := render.Guard(p, GuardMembers(p, h))
		if err != nil {
			return nil, fmt.Errorf("SegmentPolicy %s: %w", p.Name, err)
		}
		out.Guards = append(out.Guards, g)
	}
	return out, nil
}
