package discover

import (
	"net/netip"
	"slices"
	"sort"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Options tune the aggregation.
type Options struct {
	// PairWindow is how long after a connection into (or out of) a gateway pod the pod's next
	// connection to a device (or to a peer) still counts as the same proxied flow. Default 2s.
	PairWindow time.Duration
	// DedupWindow is how long events with the same 5-tuple count as one connection: Hubble
	// reports a connection at several observation points and on both nodes. Default 5s.
	DedupWindow time.Duration
	// MaxKeys bounds each aggregate (observations, bypass, ...); records beyond it are counted
	// in Stats.Overflow. Default 262144.
	MaxKeys int
}

func (o Options) withDefaults() Options {
	if o.PairWindow <= 0 {
		o.PairWindow = 2 * time.Second
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = 5 * time.Second
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 1 << 18
	}
	return o
}

// Stats count what happened to the input's records.
type Stats struct {
	// Lines read (offline) or responses received (live).
	Records uint64 `json:"records"`
	// Flows are the records that carried a flow.
	Flows uint64 `json:"flows"`
	// NonFlow are node status and lost-event records.
	NonFlow uint64 `json:"nonFlow"`
	// LostEvents sums the events Hubble reported lost: the capture is incomplete when non-zero.
	LostEvents uint64 `json:"lostEvents"`
	// Malformed records could not be decoded; FirstMalformed says where and why.
	Malformed      uint64 `json:"malformed"`
	FirstMalformed string `json:"firstMalformed,omitempty"`
	// Replies are reply-direction events (the request direction carries the flow).
	Replies uint64 `json:"replies"`
	// Duplicates are further events of a connection already counted.
	Duplicates uint64 `json:"duplicates"`
	// Skipped are L7 and socket events, and protocols flows cannot declare (ICMP, SCTP, ...).
	Skipped uint64 `json:"skipped"`
	// Unrelated records involve no device address and no gateway pod.
	Unrelated uint64 `json:"unrelated"`
	// Overflow are connections not aggregated because an aggregate reached its bound.
	Overflow uint64 `json:"overflow"`
}

// Counts aggregate the connections of one observation.
type Counts struct {
	// Connections observed (after deduplication), and how many were forwarded, dropped, or
	// allowed only because policy audit mode was on (Cilium's AUDIT verdict: would be dropped).
	Connections uint64 `json:"connections"`
	Forwarded   uint64 `json:"forwarded"`
	Dropped     uint64 `json:"dropped"`
	Audit       uint64 `json:"audit,omitempty"`
	// FirstSeen and LastSeen are when the first and the last connection were seen.
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`

	first, last int64 // while aggregating
}

// settled is the counts with FirstSeen and LastSeen set.
func (c Counts) settled() Counts {
	c.FirstSeen, c.LastSeen = time.Unix(0, c.first).UTC(), time.Unix(0, c.last).UTC()
	return c
}

func (c *Counts) add(t int64, v verdict) {
	if c.Connections == 0 || t < c.first {
		c.first = t
	}
	if t > c.last {
		c.last = t
	}
	c.Connections++
	switch v {
	case verdictDropped:
		c.Dropped++
	case verdictAudit:
		c.Audit++
	default:
		c.Forwarded++
	}
}

func (c *Counts) merge(o *Counts) {
	if o.Connections == 0 {
		return
	}
	if c.Connections == 0 || o.first < c.first {
		c.first = o.first
	}
	if o.last > c.last {
		c.last = o.last
	}
	c.Connections += o.Connections
	c.Forwarded += o.Forwarded
	c.Dropped += o.Dropped
	c.Audit += o.Audit
	c.FirstSeen, c.LastSeen = time.Unix(0, c.first).UTC(), time.Unix(0, c.last).UTC()
}

// Passed reports whether any connection got through (forwarded, or allowed in audit mode).
func (c *Counts) Passed() bool { return c.Forwarded+c.Audit > 0 }

type verdict uint8

const (
	verdictForwarded verdict = iota
	verdictDropped
	verdictAudit
)

func verdictOf(v flowpb.Verdict) verdict {
	switch v {
	case flowpb.Verdict_DROPPED, flowpb.Verdict_ERROR:
		return verdictDropped
	case flowpb.Verdict_AUDIT:
		return verdictAudit
	}
	return verdictForwarded
}

const (
	dirTo    uint8 = 1 // ToDevice
	dirFrom  uint8 = 2 // FromDevice
	protoTCP uint8 = 6
	protoUDP uint8 = 17
)

func direction(d uint8) v1alpha1.Direction {
	if d == dirFrom {
		return v1alpha1.DirectionFromDevice
	}
	return v1alpha1.DirectionToDevice
}

func protocol(p uint8) v1alpha1.Protocol {
	if p == protoUDP {
		return v1alpha1.ProtocolUDP
	}
	return v1alpha1.ProtocolTCP
}

type hop1Key struct {
	g     *gatewayGroup
	dir   uint8
	proto uint8
	port  uint16 // the gateway port (ToDevice) or the peer port (FromDevice)
	peer  int32
}

type hop2Key struct {
	d     *Device
	dir   uint8
	proto uint8
	port  uint16 // the device port (ToDevice) or the gateway port (FromDevice)
}

// assocKey is a hop-1 aggregate's key: pairings are counted per peer and port, so two flows of
// a device that share a port but not a peer never mix.
type assocKey = hop1Key

type target struct {
	d    *Device
	port uint16 // hop 2's port
}

type bypassKey struct {
	d     *Device
	dir   uint8 // dirTo: into the device; dirFrom: out of it
	proto uint8
	port  uint16 // the destination port
	peer  int32
}

type hop2Agg struct {
	Counts
	paired uint64
}

// Aggregator turns flow records into observations. It is not safe for concurrent use.
type Aggregator struct {
	ix   *Index
	opts Options

	stats  Stats
	hop1   map[hop1Key]*Counts
	hop2   map[hop2Key]*hop2Agg
	assoc  map[assocKey]map[target]*Counts // the hop-1 connections paired with each target
	bypass map[bypassKey]*Counts
	shared map[netip.Addr]*Counts
	world  map[netip.Addr]int32

	rings map[netip.Addr]*ring
	dedup dedup
}

// NewAggregator aggregates records against the index.
func NewAggregator(ix *Index, opts Options) *Aggregator {
	opts = opts.withDefaults()
	return &Aggregator{
		ix: ix, opts: opts,
		hop1:   map[hop1Key]*Counts{},
		hop2:   map[hop2Key]*hop2Agg{},
		assoc:  map[assocKey]map[target]*Counts{},
		bypass: map[bypassKey]*Counts{},
		shared: map[netip.Addr]*Counts{},
		world:  map[netip.Addr]int32{},
		rings:  map[netip.Addr]*ring{},
		dedup:  newDedup(1<<16, opts.DedupWindow),
	}
}

// Stats are the counters so far.
func (a *Aggregator) Stats() *Stats { return &a.stats }

// AddResponse counts a GetFlowsResponse and aggregates its flow, if it carries one.
func (a *Aggregator) AddResponse(flow *flowpb.Flow, lost *flowpb.LostEvent) {
	a.stats.Records++
	switch {
	case flow != nil:
		a.Add(flow)
	case lost != nil:
		a.stats.NonFlow++
		a.stats.LostEvents += lost.GetNumEventsLost()
	default:
		a.stats.NonFlow++
	}
}

// Add aggregates one flow.
func (a *Aggregator) Add(f *flowpb.Flow) {
	a.stats.Flows++
	if t := f.GetType(); t != flowpb.FlowType_L3_L4 && t != flowpb.FlowType_UNKNOWN_TYPE {
		a.stats.Skipped++
		return
	}
	var proto uint8
	var sport, dport uint32
	switch l4 := f.GetL4().GetProtocol().(type) {
	case *flowpb.Layer4_TCP:
		proto, sport, dport = protoTCP, l4.TCP.GetSourcePort(), l4.TCP.GetDestinationPort()
		if f.GetIsReply() == nil {
			if fl := l4.TCP.GetFlags(); fl.GetSYN() && fl.GetACK() {
				a.stats.Replies++
				return
			}
		}
	case *flowpb.Layer4_UDP:
		proto, sport, dport = protoUDP, l4.UDP.GetSourcePort(), l4.UDP.GetDestinationPort()
	default:
		a.stats.Skipped++
		return
	}
	if f.GetIsReply().GetValue() {
		a.stats.Replies++
		return
	}
	src, err1 := netip.ParseAddr(f.GetIP().GetSource())
	dst, err2 := netip.ParseAddr(f.GetIP().GetDestination())
	if err1 != nil || err2 != nil || dport == 0 || dport > 65535 || sport > 65535 {
		a.stats.Skipped++
		return
	}
	src, dst = src.Unmap(), dst.Unmap()
	t := int64(0)
	if ts := f.GetTime(); ts != nil {
		t = ts.GetSeconds()*int64(time.Second) + int64(ts.GetNanos())
	}
	v := verdictOf(f.GetVerdict())
	ck := connKey{src: src, dst: dst, sport: uint16(sport), dport: uint16(dport), proto: proto}
	if e := a.dedup.seen(ck, t); e != nil {
		a.stats.Duplicates++
		if v == verdictDropped && !e.dropped && e.counts != nil && e.counts.Forwarded > 0 {
			// Forwarded at one observation point, dropped at the next: the connection was dropped.
			e.counts.Forwarded--
			e.counts.Dropped++
			e.dropped = true
		}
		return
	}
	c := a.classify(f, src, dst, proto, uint16(dport), t, v)
	a.dedup.add(ck, t, c, v == verdictDropped)
}

// classify aggregates a request-direction connection and returns the counts it went to.
func (a *Aggregator) classify(f *flowpb.Flow, src, dst netip.Addr, proto uint8, dport uint16, t int64, v verdict) *Counts {
	if devs := a.ix.devicesAt(dst); len(devs) > 0 {
		return a.deviceSide(devs, dst, dirTo, f.GetSource(), src, proto, dport, t, v)
	}
	if devs := a.ix.devicesAt(src); len(devs) > 0 {
		return a.deviceSide(devs, src, dirFrom, f.GetDestination(), dst, proto, dport, t, v)
	}
	srcEp, dstEp := a.ix.endpointOf(f.GetSource()), a.ix.endpointOf(f.GetDestination())
	var c *Counts
	if g := dstEp.gateway; g != nil {
		// Hop 1 of a ToDevice flow: a peer connects to the gateway.
		peer := a.peerID(srcEp, src)
		c = a.addHop1(hop1Key{g: g, dir: dirTo, proto: proto, port: dport, peer: peer}, t, v)
		a.ringOf(dst).push(opening{t: t, v: v, dir: dirTo, proto: proto, port: dport, peer: peer})
	}
	if g := srcEp.gateway; g != nil {
		// Hop 1 of a FromDevice flow: the gateway connects on to the peer.
		peer := a.peerID(dstEp, dst)
		c2 := a.addHop1(hop1Key{g: g, dir: dirFrom, proto: proto, port: dport, peer: peer}, t, v)
		known := func(o *opening) bool {
			return a.assoc[assocKey{g: g, dir: dirFrom, proto: proto, port: dport, peer: peer}][target{d: o.d, port: o.port}] != nil
		}
		if o := a.ringOf(src).pair(dirFrom, proto, t, a.opts.PairWindow, known); o != nil {
			o.h.paired++
			a.associate(assocKey{g: g, dir: dirFrom, proto: proto, port: dport, peer: peer}, target{d: o.d, port: o.port}, t, v)
		}
		if c == nil {
			c = c2
		}
	}
	if c == nil {
		a.stats.Unrelated++
	}
	return c
}

// deviceSide aggregates a connection to or from a device address: hop 2 when the other side is
// a gateway pod that fronts the device, bypass otherwise.
func (a *Aggregator) deviceSide(devs []*Device, addr netip.Addr, dir uint8, otherEp *flowpb.Endpoint, other netip.Addr, proto uint8, dport uint16, t int64, v verdict) *Counts {
	if len(devs) > 1 {
		c, ok := a.shared[addr]
		if !ok {
			if len(a.shared) >= a.opts.MaxKeys {
				a.stats.Overflow++
				return nil
			}
			c = &Counts{}
			a.shared[addr] = c
		}
		c.add(t, v)
		return c
	}
	d := devs[0]
	ep := a.ix.endpointOf(otherEp)
	if !ep.gateway.fronts(d) {
		k := bypassKey{d: d, dir: dir, proto: proto, port: dport, peer: a.peerID(ep, other)}
		c, ok := a.bypass[k]
		if !ok {
			if len(a.bypass) >= a.opts.MaxKeys {
				a.stats.Overflow++
				return nil
			}
			c = &Counts{}
			a.bypass[k] = c
		}
		c.add(t, v)
		return c
	}
	k := hop2Key{d: d, dir: dir, proto: proto, port: dport}
	h, ok := a.hop2[k]
	if !ok {
		if len(a.hop2) >= a.opts.MaxKeys {
			a.stats.Overflow++
			return nil
		}
		h = &hop2Agg{}
		a.hop2[k] = h
	}
	h.add(t, v)
	if dir == dirTo {
		// Hop 2 of a ToDevice flow: the gateway connects on to the device.
		known := func(o *opening) bool {
			return a.assoc[assocKey{g: ep.gateway, dir: dirTo, proto: proto, port: o.port, peer: o.peer}][target{d: d, port: dport}] != nil
		}
		if o := a.ringOf(other).pair(dirTo, proto, t, a.opts.PairWindow, known); o != nil {
			h.paired++
			a.associate(assocKey{g: ep.gateway, dir: dirTo, proto: proto, port: o.port, peer: o.peer}, target{d: d, port: dport}, o.t, o.v)
		}
	} else {
		// Hop 2 of a FromDevice flow: the device connects to the gateway.
		a.ringOf(other).push(opening{t: t, dir: dirFrom, proto: proto, port: dport, d: d, h: h})
	}
	return &h.Counts
}

func (a *Aggregator) addHop1(k hop1Key, t int64, v verdict) *Counts {
	c, ok := a.hop1[k]
	if !ok {
		if len(a.hop1) >= a.opts.MaxKeys {
			a.stats.Overflow++
			return nil
		}
		c = &Counts{}
		a.hop1[k] = c
	}
	c.add(t, v)
	return c
}

func (a *Aggregator) associate(k assocKey, tg target, t int64, v verdict) {
	m, ok := a.assoc[k]
	if !ok {
		if len(a.assoc) >= a.opts.MaxKeys {
			a.stats.Overflow++
			return
		}
		m = map[target]*Counts{}
		a.assoc[k] = m
	}
	c, ok := m[tg]
	if !ok {
		c = &Counts{}
		m[tg] = c
	}
	c.add(t, v)
}

// peerID interns the peer on one side: world peers by address, others by identity.
func (a *Aggregator) peerID(ep *endpoint, addr netip.Addr) int32 {
	if ep.peer >= 0 {
		return ep.peer
	}
	if id, ok := a.world[addr]; ok {
		return id
	}
	if len(a.world) >= a.opts.MaxKeys {
		// Too many distinct external addresses to name each: one peer no flow can name.
		return a.ix.peers.intern(&Peer{Kind: peerReserved, Reserved: "world", key: "world (too many addresses)"})
	}
	id := a.ix.peers.intern(&Peer{Kind: peerWorld, Addr: addr, key: addr.String()})
	a.world[addr] = id
	return id
}

func (a *Aggregator) ringOf(gw netip.Addr) *ring {
	r, ok := a.rings[gw]
	if !ok {
		r = &ring{}
		if len(a.rings) < a.opts.MaxKeys {
			a.rings[gw] = r
		}
	}
	return r
}

// opening is a connection that starts a proxied flow at a gateway pod: a peer's connection into
// it (ToDevice) or the device's (FromDevice).
type opening struct {
	t      int64
	v      verdict // ToDevice: the peer's connection's verdict
	dir    uint8
	proto  uint8
	port   uint16   // ToDevice: the gateway port; FromDevice: the gateway port the device used
	peer   int32    // ToDevice: the peer
	d      *Device  // FromDevice: the device
	h      *hop2Agg // FromDevice: its hop-2 aggregate
	paired bool
}

const ringSize = 64

// ring holds a gateway pod's latest openings.
type ring struct {
	buf  [ringSize]opening
	n    int
	next int
}

func (r *ring) push(o opening) {
	r.buf[r.next] = o
	r.next = (r.next + 1) % ringSize
	if r.n < ringSize {
		r.n++
	}
}

// pair finds the unpaired opening of the direction and protocol, at most window before t (and
// at most a little after it: observation points' clocks differ), that the closing connection
// continues, and marks it paired. Among several, one whose pairing with this closing was seen
// before wins (a busy gateway accepts connections concurrently), else the latest.
func (r *ring) pair(dir, proto uint8, t int64, window time.Duration, known func(*opening) bool) *opening {
	const skew = int64(50 * time.Millisecond)
	var latest *opening
	for i := 1; i <= r.n; i++ {
		o := &r.buf[(r.next-i+ringSize)%ringSize]
		if o.paired || o.dir != dir || o.proto != proto {
			continue
		}
		if o.t > t+skew {
			continue
		}
		if o.t < t-int64(window) {
			break
		}
		if latest == nil {
			latest = o
		}
		if known == nil || known(o) {
			latest = o
			break
		}
	}
	if latest != nil {
		latest.paired = true
	}
	return latest
}

type connKey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
}

type dedupEntry struct {
	t       int64
	counts  *Counts
	dropped bool
}

// dedup remembers the latest connections, FIFO-bounded.
type dedup struct {
	m      map[connKey]*dedupEntry
	fifo   []connKey
	next   int
	window int64
}

func newDedup(size int, window time.Duration) dedup {
	return dedup{m: make(map[connKey]*dedupEntry, size), fifo: make([]connKey, 0, size), window: int64(window)}
}

func (d *dedup) seen(k connKey, t int64) *dedupEntry {
	e, ok := d.m[k]
	if !ok {
		return nil
	}
	if dt := t - e.t; dt > d.window || dt < -d.window {
		return nil
	}
	return e
}

func (d *dedup) add(k connKey, t int64, c *Counts, dropped bool) {
	if e, ok := d.m[k]; ok {
		e.t, e.counts, e.dropped = t, c, dropped
		return
	}
	if len(d.fifo) < cap(d.fifo) {
		d.fifo = append(d.fifo, k)
	} else {
		delete(d.m, d.fifo[d.next])
		d.fifo[d.next] = k
		d.next = (d.next + 1) % len(d.fifo)
	}
	d.m[k] = &dedupEntry{t: t, counts: c, dropped: dropped}
}

// Observation is a proxied flow discovery saw through a device's gateway.
type Observation struct {
	Device    *Device
	Direction v1alpha1.Direction
	Protocol  v1alpha1.Protocol
	// GatewayPort is the gateway's port; Port is the device port (ToDevice) or the peer port
	// (FromDevice).
	GatewayPort, Port int32
	Peer              *Peer
	Counts
}

// Bypass is traffic between a device address and something other than its gateway pods:
// evidence that the device's network is flat, never a proposed flow.
type Bypass struct {
	Device *Device
	// Direction is ToDevice for traffic into the device, FromDevice for traffic out of it.
	Direction v1alpha1.Direction
	Protocol  v1alpha1.Protocol
	// Port is the destination port.
	Port int32
	Peer *Peer
	Counts
}

// Shared is traffic to or from an address more than one device claims: discovery does not
// guess which device it was.
type Shared struct {
	Address string
	Devices []string
	Counts
}

// Unattributed is gateway traffic discovery could not pair with a device: a connection into a
// gateway that was not followed by one to a device it fronts (ToDevice), or a gateway's
// connection to a peer that no device's connection preceded (FromDevice).
type Unattributed struct {
	// Gateway names the gateway pods: namespace/devices they front.
	Gateway   string
	Direction v1alpha1.Direction
	Protocol  v1alpha1.Protocol
	// Port is the gateway port (ToDevice) or the peer port (FromDevice).
	Port int32
	Peer *Peer
	Counts
}

// Unpaired is a device's hop-2 traffic that no hop-1 connection explains: the gateway reached
// the device (or the device the gateway) with no peer on the other side.
type Unpaired struct {
	Device    *Device
	Direction v1alpha1.Direction
	Protocol  v1alpha1.Protocol
	// Port is the device port (ToDevice) or the gateway port (FromDevice).
	Port int32
	Counts
}

// Result is what the records showed.
type Result struct {
	Observations []Observation
	Bypass       []Bypass
	Shared       []Shared
	Unattributed []Unattributed
	Unpaired     []Unpaired
	Stats        Stats
}

// minShare is the share of a peer and port's strongest pairing another pairing needs to count:
// connections a busy gateway handles concurrently pair by chance, far less often than the
// connections it proxies.
const minShare = 5 // 1/5 = 20%

// Result pairs the hops and returns the observations. It does not change the aggregator: more
// records may be added and Result called again.
func (a *Aggregator) Result() *Result {
	accepted := make(map[assocKey][]target, len(a.assoc))
	for k, m := range a.assoc {
		var top uint64
		for _, c := range m {
			top = max(top, c.Connections)
		}
		var ts []target
		for tg, c := range m {
			if c.Connections*minShare >= top {
				ts = append(ts, tg)
			}
		}
		accepted[k] = ts
	}
	type obsKey struct {
		d          *Device
		dir, proto uint8
		gp, port   uint16
		peer       int32
	}
	obs := map[obsKey]*Counts{}
	un := map[hop1Key]*Counts{}
	// A peer whose every connection into a gateway was dropped never reached a device, so it
	// has no pairing of its own: it is attributed to the devices the port leads to for others.
	type portKey struct {
		g          *gatewayGroup
		dir, proto uint8
		port       uint16
	}
	var byPort map[portKey][]target
	for k, c := range a.hop1 {
		ts := accepted[k]
		if len(ts) == 0 && !c.Passed() {
			if byPort == nil {
				byPort = map[portKey][]target{}
				for k2, ts2 := range accepted {
					pk := portKey{g: k2.g, dir: k2.dir, proto: k2.proto, port: k2.port}
					for _, tg := range ts2 {
						if !slices.Contains(byPort[pk], tg) {
							byPort[pk] = append(byPort[pk], tg)
						}
					}
				}
			}
			ts = byPort[portKey{g: k.g, dir: k.dir, proto: k.proto, port: k.port}]
		}
		if len(ts) == 0 {
			un[k] = c
			continue
		}
		for _, tg := range ts {
			ok := obsKey{d: tg.d, dir: k.dir, proto: k.proto, gp: k.port, port: tg.port, peer: k.peer}
			if k.dir == dirFrom {
				ok.gp, ok.port = tg.port, k.port
			}
			sum, exists := obs[ok]
			if !exists {
				sum = &Counts{}
				obs[ok] = sum
			}
			// One device behind the peer and port: all its connections, paired or not. Several
			// (one port a gateway multiplexes, or one peer two devices send to): each gets the
			// connections paired with it, so none is counted twice.
			if paired := a.assoc[k][tg]; len(ts) > 1 && paired != nil {
				sum.merge(paired)
			} else {
				sum.merge(c)
			}
		}
	}
	r := &Result{Stats: a.stats}
	peers := a.ix.peers.peers
	for k, c := range obs {
		if k.d.gone {
			continue
		}
		r.Observations = append(r.Observations, Observation{Device: k.d, Direction: direction(k.dir),
			Protocol: protocol(k.proto), GatewayPort: int32(k.gp), Port: int32(k.port), Peer: peers[k.peer], Counts: c.settled()})
	}
	for k, c := range un {
		r.Unattributed = append(r.Unattributed, Unattributed{Gateway: k.g.key, Direction: direction(k.dir),
			Protocol: protocol(k.proto), Port: int32(k.port), Peer: peers[k.peer], Counts: c.settled()})
	}
	for k, c := range a.bypass {
		if k.d.gone {
			continue
		}
		r.Bypass = append(r.Bypass, Bypass{Device: k.d, Direction: direction(k.dir), Protocol: protocol(k.proto),
			Port: int32(k.port), Peer: peers[k.peer], Counts: c.settled()})
	}
	for addr, c := range a.shared {
		var names []string
		for _, d := range a.ix.devicesAt(addr) {
			names = append(names, d.Qualified())
		}
		r.Shared = append(r.Shared, Shared{Address: addr.String(), Devices: names, Counts: c.settled()})
	}
	for k, h := range a.hop2 {
		if h.paired == 0 && !k.d.gone {
			r.Unpaired = append(r.Unpaired, Unpaired{Device: k.d, Direction: direction(k.dir),
				Protocol: protocol(k.proto), Port: int32(k.port), Counts: h.settled()})
		}
	}
	r.sort()
	return r
}

func (r *Result) sort() {
	sort.Slice(r.Observations, func(i, j int) bool {
		a, b := &r.Observations[i], &r.Observations[j]
		if a.Device.index != b.Device.index {
			return a.Device.index < b.Device.index
		}
		if a.Direction != b.Direction {
			return a.Direction > b.Direction // ToDevice first
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.GatewayPort != b.GatewayPort {
			return a.GatewayPort < b.GatewayPort
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Peer.key < b.Peer.key
	})
	sort.Slice(r.Bypass, func(i, j int) bool {
		a, b := &r.Bypass[i], &r.Bypass[j]
		if a.Device.index != b.Device.index {
			return a.Device.index < b.Device.index
		}
		if a.Connections != b.Connections {
			return a.Connections > b.Connections
		}
		return a.Peer.key < b.Peer.key
	})
	sort.Slice(r.Shared, func(i, j int) bool { return r.Shared[i].Address < r.Shared[j].Address })
	sort.Slice(r.Unattributed, func(i, j int) bool {
		a, b := &r.Unattributed[i], &r.Unattributed[j]
		if a.Gateway != b.Gateway {
			return a.Gateway < b.Gateway
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Peer.key < b.Peer.key
	})
	sort.Slice(r.Unpaired, func(i, j int) bool {
		a, b := &r.Unpaired[i], &r.Unpaired[j]
		if a.Device.index != b.Device.index {
			return a.Device.index < b.Device.index
		}
		return a.Port < b.Port
	})
}

// Prune forgets what was last seen before the cutoff, so a long-running follower's memory
// tracks the recent window, not its uptime.
func (a *Aggregator) Prune(before time.Time) {
	cut := before.UnixNano()
	for k, c := range a.hop1 {
		if c.last < cut {
			delete(a.hop1, k)
		}
	}
	for k, h := range a.hop2 {
		if h.last < cut {
			delete(a.hop2, k)
		}
	}
	for k, c := range a.bypass {
		if c.last < cut {
			delete(a.bypass, k)
		}
	}
	for k, c := range a.shared {
		if c.last < cut {
			delete(a.shared, k)
		}
	}
	for k, r := range a.rings {
		if r.n == 0 || r.buf[(r.next-1+ringSize)%ringSize].t < cut {
			delete(a.rings, k)
		}
	}
	// Pairings are evidence about the gateways' port mapping, not traffic; they are kept until
	// both hops they join are gone.
	for k, m := range a.assoc {
		for tg := range m {
			if _, ok := a.hop2[hop2Key{d: tg.d, dir: k.dir, proto: k.proto, port: tg.port}]; !ok {
				delete(m, tg)
			}
		}
		if len(m) == 0 {
			delete(a.assoc, k)
		}
	}
}
