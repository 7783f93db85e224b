// Package segcheck holds a hospital's Cilium objects against medseg's segmentation rules with
// Cilium's own policy engine (internal/ciliumsim): flows end to end through their gateway pods,
// who may reach the enforced device networks, and that the rest of the network is untouched.
// Reading YAML is not proof; these are the verdicts of the engine the Cilium agent runs.
//
// It is test and demo support: the random-hospital tests, the live rollout test and `make demo`
// use it on the objects medseg rendered or wrote.
package segcheck

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/cilium/cilium/pkg/identity"
	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/ciliumsim"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/render"
)

// Pod is a pod running in the hospital's cluster.
type Pod struct {
	Name, Namespace string
	Labels          map[string]string
}

// Outside is the address standing for "the internet" (rule 4), External the address standing
// for external flow peers (inside 203.0.113.0/24, the vendors' documentation range).
const (
	Outside  = "8.8.8.8"
	External = "203.0.113.7"
	// ScraperNamespace is the namespace of the metrics scraper pod rule 4 uses, if present.
	ScraperNamespace = "monitoring"
	// ScraperName is the name of that pod.
	ScraperName = "scraper"
)

// World is a hospital, its pods and a set of Cilium objects loaded into Cilium's engine.
type World struct {
	Hospital plan.Hospital
	Pods     []Pod
	// Probes are extra addresses to test, e.g. an undeclared address in each device network.
	Probes []string
	// Plans are the devices' plans (in Hospital.Devices order): the expectations.
	Plans []*plan.Plan
	// Guards and Policies are the objects loaded.
	Guards   []*ciliumv2.CiliumClusterwideNetworkPolicy
	Policies []*ciliumv2.CiliumNetworkPolicy

	sim *ciliumsim.Sim
	ids map[string]*identity.Identity
}

// Rendered builds a world from what medseg would write for the hospital (plan.HospitalObjects).
func Rendered(h plan.Hospital, pods []Pod, probes []string, now time.Time) (*World, error) {
	d, err := plan.HospitalObjects(h, now)
	if err != nil {
		return nil, err
	}
	return Load(h, pods, probes, d.Plans, d.Guards, d.Policies)
}

// Load builds a world from given objects (for example those a live cluster holds) and the
// devices' plans.
func Load(h plan.Hospital, pods []Pod, probes []string, plans []*plan.Plan, guards []*ciliumv2.CiliumClusterwideNetworkPolicy, policies []*ciliumv2.CiliumNetworkPolicy) (*World, error) {
	w := &World{Hospital: h, Pods: pods, Probes: probes, Plans: plans, Guards: guards, Policies: policies,
		sim: ciliumsim.New(), ids: map[string]*identity.Identity{}}
	for _, p := range pods {
		w.ids["pod:"+p.Namespace+"/"+p.Name] = w.sim.Pod(p.Namespace+"/"+p.Name, p.Namespace, namespaceLabels(h, p.Namespace), p.Labels)
	}
	for _, a := range append(w.addresses(), Outside, External) {
		ip := netip.MustParseAddr(a)
		w.ids["ip:"+a] = w.sim.CIDR(netip.PrefixFrom(ip, ip.BitLen()).String())
	}
	for _, g := range guards {
		if err := w.sim.AddCCNP(g); err != nil {
			return nil, err
		}
	}
	for _, p := range policies {
		if err := w.sim.AddCNP(p); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// namespaceLabels are a namespace's labels as Cilium sees them (the API server adds
// kubernetes.io/metadata.name to every namespace).
func namespaceLabels(h plan.Hospital, ns string) map[string]string {
	out := map[string]string{"kubernetes.io/metadata.name": ns}
	for k, v := range h.Namespaces[ns] {
		out[k] = v
	}
	return out
}

func (w *World) addresses() []string {
	seen := map[string]bool{}
	var out []string
	add := func(a string) {
		if ip, ok := plan.CanonicalAddr(a); ok && !seen[ip.String()] {
			seen[ip.String()] = true
			out = append(out, ip.String())
		}
	}
	for _, d := range w.Hospital.Devices {
		for _, a := range d.Spec.Network.Addresses {
			add(a)
		}
	}
	for _, a := range w.Probes {
		add(a)
	}
	return out
}

func (w *World) pod(p Pod) *identity.Identity { return w.ids["pod:"+p.Namespace+"/"+p.Name] }

func (w *World) ip(a string) *identity.Identity {
	if ip, ok := plan.CanonicalAddr(a); ok {
		return w.ids["ip:"+ip.String()]
	}
	return nil
}

// Allowed asks Cilium's engine whether from may connect to to on proto/port. egressOnly is for
// destinations outside the cluster, where no endpoint enforces ingress.
func (w *World) Allowed(from, to *identity.Identity, proto string, port int32, egressOnly bool) (bool, error) {
	if from == nil || to == nil {
		return false, errors.New("segcheck: unknown pod or address (not in the world's pods, devices or probes)")
	}
	if egressOnly {
		return w.sim.EgressAllowed(from, to, proto, uint16(port))
	}
	return w.sim.Allowed(from, to, proto, uint16(port))
}

// GatewaysOf are the running pods that front a device: in its namespace, matching its gateway
// selector and labelled medseg.io/gateway=true.
func (w *World) GatewaysOf(d *v1alpha1.MedicalDevice) []Pod {
	sel, err := metav1.LabelSelectorAsSelector(&d.Spec.Gateway.PodSelector)
	if err != nil {
		return nil
	}
	var out []Pod
	for _, p := range w.Pods {
		if p.Namespace == d.Namespace && p.Labels[v1alpha1.LabelGateway] == "true" && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

// Peer is an identity standing for a flow's peer; external peers enforce no ingress policy.
type Peer struct {
	Name     string
	id       *identity.Identity
	external bool
}

// PeersOf are the identities standing for a flow's peers: the running pods its in-cluster peers
// select, and External for each external peer.
func (w *World) PeersOf(d *v1alpha1.MedicalDevice, f v1alpha1.Flow) []Peer {
	var out []Peer
	for _, peer := range f.Peers {
		if peer.IsExternal() {
			out = append(out, Peer{Name: External, id: w.ip(External), external: true})
			continue
		}
		podSel := labels.Everything()
		if peer.PodSelector != nil {
			podSel, _ = metav1.LabelSelectorAsSelector(peer.PodSelector)
		}
		for _, p := range w.Pods {
			inNS := p.Namespace == d.Namespace
			if peer.NamespaceSelector != nil {
				nsSel, _ := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
				inNS = nsSel.Matches(labels.Set(namespaceLabels(w.Hospital, p.Namespace)))
			}
			if inNS && podSel.Matches(labels.Set(p.Labels)) {
				out = append(out, Peer{Name: p.Namespace + "/" + p.Name, id: w.pod(p)})
			}
		}
	}
	return out
}

// FlowOpen reports whether one declared flow of a device is open end to end through a gateway
// pod: both hops (peer → gateway:gatewayPort → device:devicePort, or device → gateway:gatewayPort
// → peer:peerPort) pass Cilium's engine.
func (w *World) FlowOpen(f v1alpha1.Flow, gw Pod, peer Peer, addr string) (bool, error) {
	proto := string(f.Protocol)
	if proto == "" {
		proto = "TCP"
	}
	var first, second bool
	var err error
	if f.Direction == v1alpha1.DirectionToDevice {
		if first, err = w.Allowed(peer.id, w.pod(gw), proto, f.GatewayPort, false); err != nil || !first {
			return false, err
		}
		second, err = w.Allowed(w.pod(gw), w.ip(addr), proto, f.DevicePort, true)
		return second, err
	}
	if first, err = w.Allowed(w.ip(addr), w.pod(gw), proto, f.GatewayPort, false); err != nil || !first {
		return false, err
	}
	second, err = w.Allowed(w.pod(gw), peer.id, proto, f.PeerPort, peer.external)
	return second, err
}

// Report is the outcome of Check.
type Report struct {
	// Verdicts counts the questions put to Cilium's engine.
	Verdicts int
	// Violations describe every broken rule.
	Violations []string
}

// Check holds the loaded objects against medseg's segmentation rules:
//
//  1. an enforced, uncontested device in a gateway namespace: its allowed flows are open end
//     to end through each of its gateway pods, its blocked flows are not;
//  2. an unenforced (Audit or ungoverned), uncontested device outside the enforced networks:
//     every declared flow is open through each of its gateway pods, whatever else those pods
//     front (blast radius);
//  3. no pod reaches an address in an enforced policy's networks unless it is a gateway pod in
//     a gateway namespace, in the namespace of an enforced (or kept) device with that address
//     whose gateway selector it meets; a contested address is reachable only through the
//     claimants' live policies (offline: by nobody);
//  4. outside the enforced networks nothing changes: every pod no enforcing device policy
//     selects still reaches the internet and is reached by the metrics scraper.
//
// Devices outside scope (switched zones in a rollout step) are left out with skip.
func (w *World) Check(skip func(*v1alpha1.MedicalDevice) bool) (Report, error) {
	var r Report
	fail := func(format string, args ...any) { r.Violations = append(r.Violations, fmt.Sprintf(format, args...)) }
	claims := plan.ClaimsOf(w.Hospital.Devices)
	for i, d := range w.Hospital.Devices {
		if skip != nil && skip(d) {
			continue
		}
		p := w.Plans[i]
		if p.Render == nil || len(claims.Contested(d)) > 0 {
			continue // invalid input renders nothing; rule 3 covers contested addresses
		}
		if !p.Enforced && w.inEnforcedNetworks(d) {
			continue // enforcing a zone may change the traffic to its networks, by design
		}
		if p.Enforced && namespaceLabels(w.Hospital, d.Namespace)[v1alpha1.LabelGatewayNamespace] != "true" {
			continue // reported GatewayNamespaceNotLabelled: the guard cuts it off, by design
		}
		allowed := map[string]bool{}
		for _, n := range p.Render.Allowed() {
			allowed[n] = true
		}
		for _, gw := range w.GatewaysOf(d) {
			for _, f := range d.Spec.Flows {
				want := !p.Enforced || allowed[f.Name]
				for _, peer := range w.PeersOf(d, f) {
					for _, a := range d.Spec.Network.Addresses {
						r.Verdicts++
						got, err := w.FlowOpen(f, gw, peer, a)
						if err != nil {
							return r, err
						}
						if got != want {
							fail("device %s/%s (policy %q, enforced=%t, mode %s) flow %s via gateway %s, address %s, peer %s: open=%t, want %t",
								d.Namespace, d.Name, p.Render.Policy, p.Enforced, p.Render.Mode, f.Name, gw.Name, a, peer.Name, got, want)
						}
					}
				}
			}
		}
	}
	if err := w.checkEnforcedNetworks(&r, claims, fail); err != nil {
		return r, err
	}
	return r, w.checkElsewhere(&r, fail)
}

// inEnforcedNetworks reports whether one of the device's addresses lies in the device networks
// of an enforced policy.
func (w *World) inEnforcedNetworks(d *v1alpha1.MedicalDevice) bool {
	for _, p := range w.Hospital.Policies {
		if p.Spec.Enforcement != v1alpha1.EnforcementEnforce {
			continue
		}
		for _, n := range p.Spec.DeviceNetworks {
			pfx, err := netip.ParsePrefix(n)
			if err != nil {
				continue
			}
			for _, a := range d.Spec.Network.Addresses {
				if ip, ok := plan.CanonicalAddr(a); ok && pfx.Contains(ip) {
					return true
				}
			}
		}
	}
	return false
}

// checkEnforcedNetworks is rule 3.
func (w *World) checkEnforcedNetworks(r *Report, claims plan.Claims, fail func(string, ...any)) error {
	gov := plan.NewGovernors(w.Hospital.Policies, w.Hospital.Namespaces)
	live := map[string]*ciliumv2.CiliumNetworkPolicy{}
	for _, c := range w.Policies {
		live[c.Namespace+"/"+c.Name] = c
	}
	mayReach := func(pod Pod, addr netip.Addr) bool {
		if pod.Labels[v1alpha1.LabelGateway] != "true" || namespaceLabels(w.Hospital, pod.Namespace)[v1alpha1.LabelGatewayNamespace] != "true" {
			return false
		}
		for _, d := range w.Hospital.Devices {
			if d.Namespace != pod.Namespace {
				continue
			}
			pol := gov.Of(d)
			own := live[d.Namespace+"/"+render.DeviceObjectName(d.Name)]
			kept := pol == nil && own != nil && !render.IsCompanion(own)
			if !kept && (pol == nil || pol.Spec.Enforcement != v1alpha1.EnforcementEnforce) {
				continue // only devices enforced (or kept) open their addresses to their gateways
			}
			if len(claims[addr]) > 1 && !render.AllowsAddress(live[d.Namespace+"/"+render.DeviceObjectName(d.Name)], addr.String()) {
				continue
			}
			sel, _ := metav1.LabelSelectorAsSelector(&d.Spec.Gateway.PodSelector)
			for _, a := range d.Spec.Network.Addresses {
				if ip, _ := plan.CanonicalAddr(a); ip == addr && sel.Matches(labels.Set(pod.Labels)) {
					return true
				}
			}
		}
		return false
	}
	var policies []string
	nets := map[string][]netip.Prefix{}
	for _, p := range w.Hospital.Policies {
		if p.Spec.Enforcement != v1alpha1.EnforcementEnforce {
			continue
		}
		policies = append(policies, p.Name)
		for _, n := range p.Spec.DeviceNetworks {
			nets[p.Name] = append(nets[p.Name], netip.MustParsePrefix(n))
		}
	}
	sort.Strings(policies)
	for _, policy := range policies {
		for _, a := range w.addresses() {
			ip := netip.MustParseAddr(a)
			inside := false
			for _, n := range nets[policy] {
				inside = inside || n.Contains(ip)
			}
			if !inside {
				continue
			}
			for _, pod := range w.Pods {
				if mayReach(pod, ip) {
					continue
				}
				for _, port := range []int32{22, 443} {
					r.Verdicts++
					ok, err := w.Allowed(w.pod(pod), w.ip(a), "TCP", port, true)
					if err != nil {
						return err
					}
					if ok {
						fail("pod %s/%s reaches %s:%d in the networks of enforced policy %s", pod.Namespace, pod.Name, a, port, policy)
					}
				}
			}
		}
	}
	return nil
}

// checkElsewhere is rule 4.
func (w *World) checkElsewhere(r *Report, fail func(string, ...any)) error {
	scraper := w.ids["pod:"+ScraperNamespace+"/"+ScraperName]
	for _, pod := range w.Pods {
		if w.selectedByEnforcing(pod) {
			continue
		}
		r.Verdicts++
		ok, err := w.Allowed(w.pod(pod), w.ip(Outside), "TCP", 443, true)
		if err != nil {
			return err
		}
		if !ok {
			fail("pod %s/%s lost the internet, but no enforcing device policy selects it", pod.Namespace, pod.Name)
		}
		if scraper == nil || pod.Namespace == ScraperNamespace && pod.Name == ScraperName {
			continue
		}
		r.Verdicts++
		if ok, err = w.Allowed(scraper, w.pod(pod), "TCP", 9090, false); err != nil {
			return err
		}
		if !ok {
			fail("pod %s/%s cannot be scraped, but no enforcing device policy selects it", pod.Namespace, pod.Name)
		}
	}
	return nil
}

// selectedByEnforcing reports whether a loaded device policy that enforces (not an allow-only
// companion) selects the pod.
func (w *World) selectedByEnforcing(pod Pod) bool {
	for _, cnp := range w.Policies {
		if render.IsCompanion(cnp) || cnp.Namespace != pod.Namespace {
			continue
		}
		for _, d := range w.Hospital.Devices {
			if d.Namespace != cnp.Namespace || render.DeviceObjectName(d.Name) != cnp.Name {
				continue
			}
			for _, gw := range w.GatewaysOf(d) {
				if gw.Name == pod.Name {
					return true
				}
			}
		}
	}
	return false
}

// Identity is the identity of a pod ("namespace/name") or of an address, for Allowed.
func (w *World) Identity(podOrAddr string) *identity.Identity {
	if id := w.ip(podOrAddr); id != nil {
		return id
	}
	return w.ids["pod:"+podOrAddr]
}

// PolicyMapEntries is the size of a pod's policy map as Cilium's engine computes it.
func (w *World) PolicyMapEntries(pod string) (int, error) {
	id := w.ids["pod:"+pod]
	if id == nil {
		return 0, errors.New("segcheck: unknown pod " + pod)
	}
	return w.sim.PolicyMapEntries(id)
}
