// Package discover learns medical devices' flows from Hubble flow records.
//
// A MedicalDevice's traffic crosses two hops: a peer and a gateway pod (hop 1), the gateway pod
// and the device's address (hop 2). Hubble records each hop as its own connection, so discover
// classifies every request-direction record against the devices' addresses and gateway
// selectors, pairs the hops a gateway pod opens in quick succession, and aggregates what it saw
// into observations (device, direction, protocol, gateway port, device or peer port, peer). It
// never guesses: a record it cannot attribute is counted and reported (bypass of the gateway,
// an address two devices claim, a peer no selector can name, gateway traffic that never reached
// a device), never turned into a proposed flow.
package discover

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Device is one MedicalDevice as discovery sees it.
type Device struct {
	// Namespace and Name identify the device.
	Namespace, Name string
	// Object is the MedicalDevice.
	Object *v1alpha1.MedicalDevice

	gateway labels.Selector // nil when the selector is invalid: no pod fronts the device
	addrs   []netip.Addr
	index   int
	gone    bool // no longer indexed (Index.Update)
}

// Qualified is namespace/name.
func (d *Device) Qualified() string { return v1alpha1.Qualified(d.Namespace, d.Name) }

// Index maps addresses and gateway pods to devices. It caches what it learns about each
// security identity, so it is not safe for concurrent use.
type Index struct {
	devices []*Device
	byAddr  map[netip.Addr][]*Device
	byNS    map[string][]*Device
	groups  map[string]*gatewayGroup
	// prevGroups are the groups before the last Update: a group learned again keeps its
	// identity, so what was aggregated under it is not split or duplicated.
	prevGroups map[string]*gatewayGroup
	peers      peerTable

	byIdentity map[uint32]*endpoint
	byLabels   map[string]*endpoint
}

// gatewayGroup is the set of devices a gateway pod fronts: the devices of its namespace whose
// gateway selector selects it. Pods with the same identity share a group.
type gatewayGroup struct {
	devices []*Device
	key     string
}

// peerKind says how a peer can be named in a flow.
type peerKind uint8

const (
	peerPod      peerKind = iota + 1 // an in-cluster pod: namespace and labels
	peerWorld                        // outside the cluster: a CIDR of its address
	peerReserved                     // host, remote-node, health, ...: no flow can name it
)

// Peer is one side of an observed connection, named as narrowly as a flow's peer can name it.
type Peer struct {
	Kind peerKind
	// Namespace and Labels name a pod peer: its namespace and its pod labels (the identity's
	// k8s labels without the ones Cilium derives).
	Namespace       string
	Labels          map[string]string
	NamespaceLabels map[string]string
	// Addr is a world peer's address.
	Addr netip.Addr
	// Reserved is the reserved identity of a peer no flow can name (host, remote-node, ...).
	Reserved string

	key string
}

// String names the peer for people: ns/app=x,tier=y; 203.0.113.7; reserved:host.
func (p *Peer) String() string { return p.key }

// Representable reports whether a flow's peer can name it.
func (p *Peer) Representable() bool { return p.Kind == peerPod || p.Kind == peerWorld }

// CIDR is a world peer's host network, e.g. 203.0.113.7/32 or 2001:db8::7/128.
func (p *Peer) CIDR() string {
	return netip.PrefixFrom(p.Addr, p.Addr.BitLen()).String()
}

// FlowPeer is the v1alpha1 peer that names exactly this peer.
func (p *Peer) FlowPeer() v1alpha1.Peer {
	if p.Kind == peerWorld {
		return v1alpha1.Peer{CIDR: p.CIDR()}
	}
	out := v1alpha1.Peer{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{corev1NamespaceName: p.Namespace}}}
	if len(p.Labels) > 0 {
		out.PodSelector = &metav1.LabelSelector{MatchLabels: maps(p.Labels)}
	}
	return out
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

const corev1NamespaceName = "kubernetes.io/metadata.name"

// peerTable interns peers so observations key on a small integer.
type peerTable struct {
	ids   map[string]int32
	peers []*Peer
}

func (t *peerTable) intern(p *Peer) int32 {
	if id, ok := t.ids[p.key]; ok {
		return id
	}
	if t.ids == nil {
		t.ids = map[string]int32{}
	}
	id := int32(len(t.peers))
	t.ids[p.key] = id
	t.peers = append(t.peers, p)
	return id
}

// endpoint is what the index learned about one security identity.
type endpoint struct {
	peer    int32         // interned peer; -1 for world peers (named by address)
	gateway *gatewayGroup // non-nil for a gateway pod some device of its namespace selects
}

// NewIndex indexes the devices. Devices whose gateway selector is invalid are indexed by
// address only: no pod fronts them, so all their traffic is reported as bypass.
func NewIndex(devs []*v1alpha1.MedicalDevice) *Index {
	ix := &Index{}
	ix.Update(devs)
	return ix
}

// Update brings the index to the given devices. A device that stays keeps its identity, so what
// was aggregated about it stays; its addresses and gateway selector are read again. A device
// that went is left out of results. What the index learned about identities is forgotten:
// gateway selectors may have changed.
func (ix *Index) Update(devs []*v1alpha1.MedicalDevice) {
	old := map[string]*Device{}
	for _, d := range ix.devices {
		old[d.Qualified()] = d
	}
	sorted := slices.Clone(devs)
	sort.Slice(sorted, func(i, j int) bool {
		return v1alpha1.Qualified(sorted[i].Namespace, sorted[i].Name) < v1alpha1.Qualified(sorted[j].Namespace, sorted[j].Name)
	})
	ix.devices = ix.devices[:0:0]
	ix.byAddr = map[netip.Addr][]*Device{}
	ix.byNS = map[string][]*Device{}
	for k, g := range ix.groups {
		if ix.prevGroups == nil {
			ix.prevGroups = map[string]*gatewayGroup{}
		}
		ix.prevGroups[k] = g
	}
	ix.groups = map[string]*gatewayGroup{}
	ix.byIdentity = map[uint32]*endpoint{}
	ix.byLabels = map[string]*endpoint{}
	for _, obj := range sorted {
		q := v1alpha1.Qualified(obj.Namespace, obj.Name)
		d, ok := old[q]
		if !ok {
			d = &Device{Namespace: obj.Namespace, Name: obj.Name}
		}
		delete(old, q)
		d.Object, d.gateway, d.addrs, d.index, d.gone = obj, nil, nil, len(ix.devices), false
		if sel, err := metav1.LabelSelectorAsSelector(&obj.Spec.Gateway.PodSelector); err == nil && !sel.Empty() {
			d.gateway = sel
		}
		for _, a := range obj.Spec.Network.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				ip = ip.Unmap()
				d.addrs = append(d.addrs, ip)
				ix.byAddr[ip] = append(ix.byAddr[ip], d)
			}
		}
		ix.devices = append(ix.devices, d)
		ix.byNS[d.Namespace] = append(ix.byNS[d.Namespace], d)
	}
	for _, d := range old {
		d.gone = true
	}
}

// Devices are the indexed devices, by namespace/name.
func (ix *Index) Devices() []*Device { return ix.devices }

// devicesAt are the devices that claim the address.
func (ix *Index) devicesAt(a netip.Addr) []*Device { return ix.byAddr[a] }

// Identities of world traffic: the reserved world identities and the local CIDR identities.
const (
	identityWorld     = 2
	identityWorldIPv4 = 9
	identityWorldIPv6 = 10
	localIdentityFlag = 1 << 24
	// identityMinCluster is the first identity allocated for label sets; below it are reserved.
	identityMinCluster = 256
)

// endpointOf classifies one side of a record.
func (ix *Index) endpointOf(ep *flowpb.Endpoint) *endpoint {
	id := ep.GetIdentity()
	if id >= identityMinCluster && id < localIdentityFlag {
		if e, ok := ix.byIdentity[id]; ok {
			return e
		}
		e := ix.learn(ep)
		ix.byIdentity[id] = e
		return e
	}
	if isWorld(ep) {
		return worldEndpoint
	}
	if len(ep.GetLabels()) == 0 {
		e := ix.learn(ep)
		return e
	}
	key := ep.GetNamespace() + "\x00" + strings.Join(ep.GetLabels(), "\x00")
	if e, ok := ix.byLabels[key]; ok {
		return e
	}
	e := ix.learn(ep)
	if len(ix.byLabels) < 1<<16 {
		ix.byLabels[key] = e
	}
	return e
}

var worldEndpoint = &endpoint{peer: -1}

func isWorld(ep *flowpb.Endpoint) bool {
	switch ep.GetIdentity() {
	case identityWorld, identityWorldIPv4, identityWorldIPv6:
		return true
	}
	if ep.GetPodName() != "" {
		return false
	}
	for _, l := range ep.GetLabels() {
		if strings.HasPrefix(l, "reserved:world") {
			return true
		}
	}
	return false
}

// Reserved identities below 256 that are not world (pkg/identity/numericidentity.go).
var reservedNames = map[uint32]string{
	0: "unknown", 1: "host", 3: "unmanaged", 4: "health", 5: "init", 6: "remote-node",
	7: "kube-apiserver", 8: "ingress",
}

// learn derives the peer and gateway group of an endpoint from its labels.
func (ix *Index) learn(ep *flowpb.Endpoint) *endpoint {
	ns := ep.GetNamespace()
	podLabels := map[string]string{}
	nsLabels := map[string]string{}
	reserved := ""
	for _, l := range ep.GetLabels() {
		src, kv, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		switch src {
		case "reserved":
			if reserved == "" {
				reserved = k
			}
			continue
		case "k8s":
		default:
			continue
		}
		switch {
		case k == "io.kubernetes.pod.namespace":
			if ns == "" {
				ns = v
			}
		case strings.HasPrefix(k, "io.cilium.k8s.namespace.labels."):
			nsLabels[strings.TrimPrefix(k, "io.cilium.k8s.namespace.labels.")] = v
		case strings.HasPrefix(k, "io.cilium.k8s."), strings.HasPrefix(k, "io.kubernetes."):
		default:
			podLabels[k] = v
		}
	}
	if ns == "" {
		name := reserved
		if name == "" {
			name = reservedNames[ep.GetIdentity()]
		}
		if name == "" {
			name = "unknown"
		}
		p := &Peer{Kind: peerReserved, Reserved: name, key: "reserved:" + name}
		return &endpoint{peer: ix.peers.intern(p)}
	}
	if _, ok := nsLabels[corev1NamespaceName]; !ok {
		nsLabels[corev1NamespaceName] = ns
	}
	p := &Peer{Kind: peerPod, Namespace: ns, Labels: podLabels, NamespaceLabels: nsLabels}
	p.key = ns + "/" + labels.FormatLabels(podLabels)
	if len(podLabels) == 0 {
		p.key = ns + "/*"
	}
	e := &endpoint{peer: ix.peers.intern(p)}
	if podLabels[v1alpha1.LabelGateway] == "true" {
		set := labels.Set(podLabels)
		var group []*Device
		for _, d := range ix.byNS[ns] {
			if d.gateway != nil && d.gateway.Matches(set) {
				group = append(group, d)
			}
		}
		if len(group) > 0 {
			names := make([]string, len(group))
			for i, d := range group {
				names[i] = d.Name
			}
			key := ns + "/" + strings.Join(names, ",")
			g, ok := ix.groups[key]
			if !ok {
				if g, ok = ix.prevGroups[key]; ok {
					g.devices = group // the same devices by name; their current objects
					delete(ix.prevGroups, key)
				} else {
					g = &gatewayGroup{devices: group, key: key}
				}
				ix.groups[key] = g
			}
			e.gateway = g
		}
	}
	return e
}

// fronts reports whether the gateway group fronts the device.
func (g *gatewayGroup) fronts(d *Device) bool {
	return g != nil && slices.Contains(g.devices, d)
}
