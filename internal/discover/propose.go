package discover

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/medseg/medseg/api/v1alpha1"
)

// FlowStatus says what a row of a proposal is.
type FlowStatus string

// The row statuses.
const (
	// StatusNew: observed, not declared; proposed.
	StatusNew FlowStatus = "new"
	// StatusDeclared: observed and covered by a declared flow.
	StatusDeclared FlowStatus = "already declared"
	// StatusNeverSeen: declared, never observed in the input.
	StatusNeverSeen FlowStatus = "declared but never seen"
	// StatusDropped: observed, not declared, and every connection was dropped: not proposed
	// unless asked for (it may be what segmentation is for).
	StatusDropped FlowStatus = "dropped, not proposed"
	// StatusOverLimit: observed and new, but the device would exceed its flow limit.
	StatusOverLimit FlowStatus = "new, over the flow limit"
)

// MaxFlows and MaxPeers are the MedicalDevice API's limits.
const (
	MaxFlows = 32
	MaxPeers = 16
)

// TierRule maps peers to a tier: the first rule that matches a peer gives its proposed tier.
type TierRule struct {
	// Namespace, when set, must be the pod peer's namespace.
	Namespace string
	// Selector, when set, must match the pod peer's labels.
	Selector labels.Selector
	// CIDR, when valid, must contain the world peer's address.
	CIDR netip.Prefix
	Tier v1alpha1.Tier
	// Source says where the rule came from, for messages.
	Source string
}

func (r *TierRule) matches(p *Peer) bool {
	switch p.Kind {
	case peerWorld:
		return r.CIDR.IsValid() && r.CIDR.Contains(p.Addr)
	case peerPod:
		if r.CIDR.IsValid() || (r.Namespace == "" && r.Selector == nil) {
			return false
		}
		if r.Namespace != "" && r.Namespace != p.Namespace {
			return false
		}
		return r.Selector == nil || r.Selector.Matches(labels.Set(p.Labels))
	}
	return false
}

// ProposeOptions tune the proposal.
type ProposeOptions struct {
	Tiers []TierRule
	// IncludeDropped proposes flows whose every connection was dropped.
	IncludeDropped bool
}

// PeerCount is one observed peer of a row.
type PeerCount struct {
	Peer string `json:"peer"`
	Counts
}

// Row is one flow of a proposal: proposed, declared and seen, declared and never seen, or not
// proposed with the reason.
type Row struct {
	Namespace string     `json:"namespace"`
	Device    string     `json:"device"`
	Status    FlowStatus `json:"status"`
	// Flow is the proposed flow, or the declared one.
	Flow  v1alpha1.Flow `json:"flow"`
	Peers []PeerCount   `json:"peers,omitempty"`
	Counts
	// Note explains a row that needs attention.
	Note string `json:"note,omitempty"`
}

// DeviceProposal is what discovery proposes for one device, and what it saw that no flow can
// express.
type DeviceProposal struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Rows      []Row  `json:"rows,omitempty"`
	// Commissioned devices leave clinical approval when their flows change: adding proposed
	// flows puts them in onboarding until they are commissioned again.
	Commissioned bool `json:"commissioned,omitempty"`
	// Generation is the device's spec generation when discovery read it, from a cluster: an apply
	// is refused when the spec changed since (the operator's status writes do not count).
	Generation int64         `json:"-"`
	Bypass     []BypassRow   `json:"bypass,omitempty"`
	Unpaired   []UnpairedRow `json:"unpaired,omitempty"`
	// Unnamed are observed peers no flow can name (host, remote-node, NAT'd, ...).
	Unnamed []PeerCount `json:"unnamed,omitempty"`
}

// BypassRow is traffic that reached the device's address without its gateway.
type BypassRow struct {
	Direction v1alpha1.Direction `json:"direction"`
	Protocol  v1alpha1.Protocol  `json:"protocol"`
	Port      int32              `json:"port"`
	Peer      string             `json:"peer"`
	Counts
}

// UnpairedRow is hop-2 traffic with no peer behind it.
type UnpairedRow struct {
	Direction v1alpha1.Direction `json:"direction"`
	Protocol  v1alpha1.Protocol  `json:"protocol"`
	Port      int32              `json:"port"`
	Counts
}

// UnattributedRow is gateway traffic no device could be paired with.
type UnattributedRow struct {
	Gateway   string             `json:"gateway"`
	Direction v1alpha1.Direction `json:"direction"`
	Protocol  v1alpha1.Protocol  `json:"protocol"`
	Port      int32              `json:"port"`
	Peer      string             `json:"peer"`
	Counts
}

// SharedRow is traffic at an address several devices claim.
type SharedRow struct {
	Address string   `json:"address"`
	Devices []string `json:"devices"`
	Counts
}

// Proposal is the reviewable result of discovery.
type Proposal struct {
	Devices      []DeviceProposal  `json:"devices"`
	Unattributed []UnattributedRow `json:"unattributed,omitempty"`
	Shared       []SharedRow       `json:"shared,omitempty"`
	Stats        Stats             `json:"stats"`
}

// Propose compares the observations with the devices' declared flows.
func Propose(r *Result, devs []*Device, opts ProposeOptions) *Proposal {
	byDev := map[*Device][]Observation{}
	for _, o := range r.Observations {
		byDev[o.Device] = append(byDev[o.Device], o)
	}
	p := &Proposal{Stats: r.Stats}
	for _, d := range devs {
		dp := proposeDevice(d, byDev[d], opts)
		for _, b := range r.Bypass {
			if b.Device == d {
				dp.Bypass = append(dp.Bypass, BypassRow{Direction: b.Direction, Protocol: b.Protocol, Port: b.Port, Peer: b.Peer.String(), Counts: b.Counts})
			}
		}
		for _, u := range r.Unpaired {
			if u.Device == d {
				dp.Unpaired = append(dp.Unpaired, UnpairedRow{Direction: u.Direction, Protocol: u.Protocol, Port: u.Port, Counts: u.Counts})
			}
		}
		p.Devices = append(p.Devices, dp)
	}
	for _, u := range r.Unattributed {
		p.Unattributed = append(p.Unattributed, UnattributedRow{Gateway: u.Gateway, Direction: u.Direction,
			Protocol: u.Protocol, Port: u.Port, Peer: u.Peer.String(), Counts: u.Counts})
	}
	for _, s := range r.Shared {
		p.Shared = append(p.Shared, SharedRow(s))
	}
	return p
}

func proposeDevice(d *Device, obs []Observation, opts ProposeOptions) DeviceProposal {
	dev := d.Object
	dp := DeviceProposal{Namespace: d.Namespace, Name: d.Name, Generation: dev.Generation,
		Commissioned: dev.Spec.Commissioning != nil}
	declared := dev.Spec.Flows
	seen := make([]*Row, len(declared))
	type group struct {
		dir      v1alpha1.Direction
		proto    v1alpha1.Protocol
		gp, port int32
		tier     v1alpha1.Tier
	}
	groups := map[group][]Observation{}
	var dropped []Observation
	unnamed := map[string]*PeerCount{}
	for _, o := range obs {
		if !o.Peer.Representable() {
			pc, ok := unnamed[o.Peer.String()]
			if !ok {
				pc = &PeerCount{Peer: o.Peer.String()}
				unnamed[o.Peer.String()] = pc
			}
			pc.merge(&o.Counts)
			continue
		}
		if i := covering(declared, d.Namespace, o); i >= 0 {
			if seen[i] == nil {
				seen[i] = &Row{Namespace: d.Namespace, Device: d.Name, Status: StatusDeclared, Flow: declared[i]}
			}
			seen[i].Peers = append(seen[i].Peers, PeerCount{Peer: o.Peer.String(), Counts: o.Counts})
			seen[i].merge(&o.Counts)
			continue
		}
		if !o.Passed() && !opts.IncludeDropped {
			dropped = append(dropped, o)
			continue
		}
		g := group{dir: o.Direction, proto: o.Protocol, gp: o.GatewayPort, port: o.Port, tier: tierOf(o.Peer, opts.Tiers)}
		groups[g] = append(groups[g], o)
	}
	keys := make([]group, 0, len(groups))
	tiersPerPorts := map[group]int{}
	for g := range groups {
		keys = append(keys, g)
		tiersPerPorts[group{dir: g.dir, proto: g.proto, gp: g.gp, port: g.port}]++
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.dir != b.dir {
			return a.dir > b.dir
		}
		if a.proto != b.proto {
			return a.proto < b.proto
		}
		if a.gp != b.gp {
			return a.gp < b.gp
		}
		if a.port != b.port {
			return a.port < b.port
		}
		return a.tier < b.tier
	})
	names := map[string]bool{}
	for _, f := range declared {
		names[f.Name] = true
	}
	var fresh []Row
	for _, g := range keys {
		os := groups[g]
		sort.Slice(os, func(i, j int) bool {
			if os[i].Connections != os[j].Connections {
				return os[i].Connections > os[j].Connections
			}
			return os[i].Peer.String() < os[j].Peer.String()
		})
		chunks := (len(os) + MaxPeers - 1) / MaxPeers
		for c := 0; c < chunks; c++ {
			part := os[c*MaxPeers : min((c+1)*MaxPeers, len(os))]
			base := flowName(g.dir, g.proto, g.gp, g.port)
			if tiersPerPorts[group{dir: g.dir, proto: g.proto, gp: g.gp, port: g.port}] > 1 {
				base += "-" + strings.ToLower(string(g.tier))
			}
			if chunks > 1 {
				base += fmt.Sprintf("-%d", c+1)
			}
			name := unique(base, names)
			row := Row{Namespace: d.Namespace, Device: d.Name, Status: StatusNew}
			row.Flow = v1alpha1.Flow{Name: name, Direction: g.dir, Tier: g.tier, Protocol: g.proto, GatewayPort: g.gp}
			if g.dir == v1alpha1.DirectionToDevice {
				row.Flow.DevicePort = g.port
			} else {
				row.Flow.PeerPort = g.port
			}
			for _, o := range part {
				row.Flow.Peers = append(row.Flow.Peers, o.Peer.FlowPeer())
				row.Peers = append(row.Peers, PeerCount{Peer: o.Peer.String(), Counts: o.Counts})
				row.merge(&o.Counts)
			}
			row.Flow.Description = describe(row.Peers, g.tier, tierRuled(part, opts.Tiers))
			row.Note = noteFor(part)
			fresh = append(fresh, row)
		}
	}
	// The most used flows first when the device's flow limit leaves no room for all.
	room := MaxFlows - len(declared)
	if len(fresh) > room {
		order := make([]int, len(fresh))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(i, j int) bool { return fresh[order[i]].Connections > fresh[order[j]].Connections })
		for rank, i := range order {
			if rank >= max(room, 0) {
				fresh[i].Status = StatusOverLimit
				fresh[i].Note = fmt.Sprintf("the device already has %d of %d flows; merge peers into existing flows or review", len(declared), MaxFlows)
			}
		}
	}
	dp.Rows = append(dp.Rows, fresh...)
	for i, f := range declared {
		if seen[i] != nil {
			dp.Rows = append(dp.Rows, *seen[i])
		} else {
			dp.Rows = append(dp.Rows, Row{Namespace: d.Namespace, Device: d.Name, Status: StatusNeverSeen, Flow: f})
		}
	}
	for _, o := range dropped {
		row := Row{Namespace: d.Namespace, Device: d.Name, Status: StatusDropped, Counts: o.Counts,
			Peers: []PeerCount{{Peer: o.Peer.String(), Counts: o.Counts}}}
		row.Flow = v1alpha1.Flow{Direction: o.Direction, Protocol: o.Protocol, GatewayPort: o.GatewayPort, Peers: []v1alpha1.Peer{o.Peer.FlowPeer()}}
		if o.Direction == v1alpha1.DirectionToDevice {
			row.Flow.DevicePort = o.Port
		} else {
			row.Flow.PeerPort = o.Port
		}
		row.Note = "every connection was dropped; --include-dropped proposes it"
		dp.Rows = append(dp.Rows, row)
	}
	for _, pc := range unnamed {
		dp.Unnamed = append(dp.Unnamed, *pc)
	}
	sort.Slice(dp.Unnamed, func(i, j int) bool { return dp.Unnamed[i].Peer < dp.Unnamed[j].Peer })
	return dp
}

// NewFlows are the rows a write would add.
func (dp DeviceProposal) NewFlows() []v1alpha1.Flow {
	var out []v1alpha1.Flow
	for _, r := range dp.Rows {
		if r.Status == StatusNew {
			out = append(out, r.Flow)
		}
	}
	return out
}

func flowName(dir v1alpha1.Direction, proto v1alpha1.Protocol, gp, port int32) string {
	d := "in"
	if dir == v1alpha1.DirectionFromDevice {
		d = "out"
	}
	return fmt.Sprintf("%s-%s-%d-%d", d, strings.ToLower(string(proto)), gp, port)
}

func unique(base string, taken map[string]bool) string {
	name := base
	for i := 2; taken[name]; i++ {
		name = fmt.Sprintf("%s-obs%d", base, i)
	}
	taken[name] = true
	return name
}

func tierOf(p *Peer, rules []TierRule) v1alpha1.Tier {
	for i := range rules {
		if rules[i].matches(p) {
			return rules[i].Tier
		}
	}
	return v1alpha1.TierSupport
}

func tierRuled(obs []Observation, rules []TierRule) bool {
	for _, o := range obs {
		for i := range rules {
			if rules[i].matches(o.Peer) {
				return true
			}
		}
	}
	return false
}

// describe says what was seen, within the API's 256 characters.
func describe(peers []PeerCount, tier v1alpha1.Tier, ruled bool) string {
	tail := " Tier " + string(tier) + " is proposed: a clinician or clinical engineer must confirm it before commissioning."
	if ruled {
		tail = " Tier " + string(tier) + " from the tier mapping: confirm it before commissioning."
	}
	first, last := peers[0].first, peers[0].last
	for _, p := range peers {
		first, last = min(first, p.first), max(last, p.last)
	}
	head := fmt.Sprintf("Seen by Hubble %s to %s:", stamp(first), stamp(last))
	const limit = 256
	body := ""
	for i, p := range peers {
		part := fmt.Sprintf(" %s %d×", p.Peer, p.Connections)
		if i > 0 {
			part = "," + part
		}
		more := ""
		if rest := len(peers) - i - 1; rest > 0 {
			more = fmt.Sprintf(", +%d more", rest)
		}
		if len(head)+len(body)+len(part)+len(more)+1+len(tail) > limit {
			body += fmt.Sprintf(", +%d more", len(peers)-i)
			break
		}
		body += part
	}
	s := head + body + "." + tail
	if len(s) > limit {
		s = s[:limit]
	}
	return s
}

func stamp(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02T15:04Z") }

func noteFor(obs []Observation) string {
	var notes []string
	for _, o := range obs {
		if o.Peer.Kind == peerPod && len(o.Peer.Labels) == 0 {
			notes = append(notes, o.Peer.String()+" has no labels: the selector names every pod of its namespace")
		}
		if o.Dropped > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d of %d connections dropped", o.Peer.String(), o.Dropped, o.Connections))
		}
	}
	if len(obs) > 0 && obs[0].Peer.Kind == peerWorld {
		notes = append(notes, "external peer: the default SegmentPolicy renders it only inside an access grant")
	}
	return strings.Join(notes, "; ")
}

// covering is the index of the first declared flow that covers the observation, or -1.
func covering(flows []v1alpha1.Flow, ns string, o Observation) int {
	for i := range flows {
		if Covers(&flows[i], ns, o.Direction, o.Protocol, o.GatewayPort, o.Port, o.Peer) {
			return i
		}
	}
	return -1
}

// Covers reports whether a flow of a device in namespace ns allows the observed connection.
func Covers(f *v1alpha1.Flow, ns string, dir v1alpha1.Direction, proto v1alpha1.Protocol, gp, port int32, p *Peer) bool {
	fp := f.Protocol
	if fp == "" {
		fp = v1alpha1.ProtocolTCP
	}
	if f.Direction != dir || fp != proto || f.GatewayPort != gp {
		return false
	}
	if dir == v1alpha1.DirectionToDevice && f.DevicePort != port || dir == v1alpha1.DirectionFromDevice && f.PeerPort != port {
		return false
	}
	for i := range f.Peers {
		if peerMatches(&f.Peers[i], ns, p) {
			return true
		}
	}
	return false
}

func peerMatches(fp *v1alpha1.Peer, ns string, p *Peer) bool {
	switch p.Kind {
	case peerWorld:
		if fp.CIDR == "" {
			return false
		}
		pfx, err := netip.ParsePrefix(fp.CIDR)
		return err == nil && pfx.Contains(p.Addr)
	case peerPod:
		if fp.CIDR != "" {
			return false
		}
		if fp.NamespaceSelector == nil {
			if p.Namespace != ns {
				return false
			}
		} else if !selects(fp.NamespaceSelector, p.NamespaceLabels) {
			return false
		}
		return fp.PodSelector == nil || selects(fp.PodSelector, p.Labels)
	}
	return false
}

func selects(s *metav1.LabelSelector, set map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(s)
	return err == nil && sel.Matches(labels.Set(set))
}
