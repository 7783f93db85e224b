// Package capture builds Hubble flow records as a Cilium node emits them, from the real
// flow.Flow protobuf types, and writes them as `hubble observe -o jsonpb` does. medseg's tests,
// demo and benchmarks use it to make recorded captures; Hubble itself cannot run here.
package capture

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Pod is an in-cluster endpoint.
type Pod struct {
	Namespace, Name string
	Labels          map[string]string
	// NamespaceLabels are the namespace's labels; kubernetes.io/metadata.name is added.
	NamespaceLabels map[string]string
	IP              string
	Node            string
	ServiceAccount  string
}

// Endpoint is one side of a connection: a pod, or an address outside the cluster (Pod nil).
type Endpoint struct {
	Pod *Pod
	// IP of an external endpoint; Reserved names a reserved identity instead of world
	// ("host", "remote-node", ...), e.g. a peer hidden by SNAT.
	IP       string
	Reserved string
}

// External is an address outside the cluster.
func External(ip string) Endpoint { return Endpoint{IP: ip} }

// PodEndpoint is a pod.
func PodEndpoint(p *Pod) Endpoint { return Endpoint{Pod: p} }

// Builder emits the events of connections, with increasing times.
type Builder struct {
	Cluster string
	now     time.Time
	step    time.Duration
	port    uint32
	uuid    uint64
	ids     map[string]uint32
	flows   []*flowpb.Flow
	// Emit, when set, receives each flow instead of the builder keeping it.
	Emit func(*flowpb.Flow)
}

// NewBuilder starts at t; every connection advances the clock by step.
func NewBuilder(t time.Time, step time.Duration) *Builder {
	return &Builder{Cluster: "default", now: t.UTC(), step: step, port: 32768, ids: map[string]uint32{}}
}

// Now is the builder's clock.
func (b *Builder) Now() time.Time { return b.now }

// Advance moves the clock.
func (b *Builder) Advance(d time.Duration) { b.now = b.now.Add(d) }

// Flows are the flows built so far (when Emit is unset).
func (b *Builder) Flows() []*flowpb.Flow { return b.flows }

func (b *Builder) emit(f *flowpb.Flow) {
	if b.Emit != nil {
		b.Emit(f)
		return
	}
	b.flows = append(b.flows, f)
}

func (b *Builder) ephemeral() uint32 {
	b.port++
	if b.port > 60999 {
		b.port = 32768
	}
	return b.port
}

// labels are the identity labels Cilium gives a pod, sorted.
func (b *Builder) labels(p *Pod) []string {
	var out []string
	for k, v := range p.Labels {
		out = append(out, "k8s:"+k+"="+v)
	}
	ns := map[string]string{"kubernetes.io/metadata.name": p.Namespace}
	for k, v := range p.NamespaceLabels {
		ns[k] = v
	}
	for k, v := range ns {
		out = append(out, "k8s:io.cilium.k8s.namespace.labels."+k+"="+v)
	}
	sa := p.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	out = append(out, "k8s:io.cilium.k8s.policy.cluster="+b.Cluster, "k8s:io.cilium.k8s.policy.serviceaccount="+sa,
		"k8s:io.kubernetes.pod.namespace="+p.Namespace)
	sort.Strings(out)
	return out
}

func (b *Builder) identity(lbls []string) uint32 {
	key := strings.Join(lbls, ",")
	id, ok := b.ids[key]
	if !ok {
		id = uint32(10000 + len(b.ids))
		b.ids[key] = id
	}
	return id
}

func (b *Builder) endpoint(e Endpoint, local bool) *flowpb.Endpoint {
	if e.Pod == nil {
		switch e.Reserved {
		case "":
			return &flowpb.Endpoint{Identity: 2, Labels: []string{"reserved:world"}}
		case "host":
			return &flowpb.Endpoint{Identity: 1, Labels: []string{"reserved:host"}}
		case "remote-node":
			return &flowpb.Endpoint{Identity: 6, Labels: []string{"reserved:remote-node"}}
		default:
			return &flowpb.Endpoint{Identity: 0, Labels: []string{"reserved:" + e.Reserved}}
		}
	}
	lbls := b.labels(e.Pod)
	ep := &flowpb.Endpoint{Identity: b.identity(lbls), ClusterName: b.Cluster, Namespace: e.Pod.Namespace,
		Labels: lbls, PodName: e.Pod.Name}
	if local {
		ep.ID = 100 + b.identity(lbls)%3000
		ep.Workloads = []*flowpb.Workload{{Name: strings.TrimSuffix(e.Pod.Name, e.Pod.Name[strings.LastIndex(e.Pod.Name, "-")+1:]), Kind: "Deployment"}}
		ep.Workloads[0].Name = strings.TrimSuffix(ep.Workloads[0].Name, "-")
	}
	return ep
}

func (e Endpoint) ip() string {
	if e.Pod != nil {
		return e.Pod.IP
	}
	return e.IP
}

func (e Endpoint) node() string {
	if e.Pod != nil && e.Pod.Node != "" {
		return e.Pod.Node
	}
	return "kind-worker"
}

// Verdict of a connection.
type Verdict int

// The verdicts a connection can get.
const (
	Forwarded Verdict = iota
	Dropped
	Audit
)

// Connection emits the events Hubble records for one connection from src to dst:port: at the
// source node a trace from the endpoint and an egress policy verdict (pods only), at the
// destination node an ingress policy verdict and a trace to the endpoint (pods only), and the
// replies. A dropped connection ends with the drop. IPv6 addresses give IPv6 records.
func (b *Builder) Connection(src, dst Endpoint, proto string, port uint32, v Verdict) {
	b.now = b.now.Add(b.step)
	b.connection(src, dst, proto, port, v)
}

// connection emits a connection's events at the builder's clock.
func (b *Builder) connection(src, dst Endpoint, proto string, port uint32, v Verdict) {
	sport := b.ephemeral()
	ipv := flowpb.IPVersion_IPv4
	if strings.Contains(src.ip(), ":") {
		ipv = flowpb.IPVersion_IPv6
	}
	mk := func(node string, from, to Endpoint, fromLocal, toLocal bool, sp, dp uint32, reply bool, dt time.Duration) *flowpb.Flow {
		b.uuid++
		t := timestamppb.New(b.now.Add(dt))
		f := &flowpb.Flow{
			Time:        t,
			Uuid:        fmt.Sprintf("00000000-0000-4000-8000-%012x", b.uuid),
			Emitter:     &flowpb.Emitter{Name: "Hubble", Version: "1.20.2"},
			Verdict:     flowpb.Verdict_FORWARDED,
			IP:          &flowpb.IP{Source: from.ip(), Destination: to.ip(), IpVersion: ipv},
			Source:      b.endpoint(from, fromLocal),
			Destination: b.endpoint(to, toLocal),
			Type:        flowpb.FlowType_L3_L4,
			NodeName:    b.Cluster + "/" + node,
			IsReply:     wrapperspb.Bool(reply),
			EventType:   &flowpb.CiliumEventType{Type: 4},
		}
		switch strings.ToUpper(proto) {
		case "UDP":
			f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: sp, DestinationPort: dp}}}
			f.Summary = "UDP" //nolint:staticcheck // Hubble still fills the deprecated summary; the capture mirrors it
		default:
			flags := &flowpb.TCPFlags{SYN: true}
			f.Summary = "TCP Flags: SYN" //nolint:staticcheck // as above
			if reply {
				flags.ACK = true
				f.Summary = "TCP Flags: SYN, ACK" //nolint:staticcheck // as above
			}
			f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: sp, DestinationPort: dp, Flags: flags}}}
		}
		return f
	}
	trace := func(f *flowpb.Flow, point flowpb.TraceObservationPoint, dir flowpb.TrafficDirection, reason flowpb.TraceReason) *flowpb.Flow {
		f.TraceObservationPoint, f.TrafficDirection, f.TraceReason = point, dir, reason
		return f
	}
	verdictEvent := func(f *flowpb.Flow, dir flowpb.TrafficDirection) *flowpb.Flow {
		f.EventType = &flowpb.CiliumEventType{Type: 5}
		f.TrafficDirection = dir
		f.PolicyMatchType = 1
		return f
	}
	srcPod, dstPod := src.Pod != nil, dst.Pod != nil
	ms := time.Millisecond
	if srcPod {
		b.emit(trace(mk(src.node(), src, dst, true, false, sport, port, false, 0), flowpb.TraceObservationPoint_FROM_ENDPOINT, flowpb.TrafficDirection_EGRESS, flowpb.TraceReason_NEW))
		b.emit(verdictEvent(mk(src.node(), src, dst, true, false, sport, port, false, 0), flowpb.TrafficDirection_EGRESS))
	}
	if v == Dropped {
		at := dst.node()
		dir := flowpb.TrafficDirection_INGRESS
		if !dstPod {
			at, dir = src.node(), flowpb.TrafficDirection_EGRESS
		}
		f := mk(at, src, dst, !dstPod, dstPod, sport, port, false, ms)
		f.Verdict = flowpb.Verdict_DROPPED
		f.DropReasonDesc = flowpb.DropReason_POLICY_DENIED
		f.DropReason = 133 //nolint:staticcheck // Hubble still fills the deprecated numeric reason
		f.EventType = &flowpb.CiliumEventType{Type: 1, SubType: 133}
		f.TrafficDirection = dir
		f.IsReply = nil // drops do not know
		b.emit(f)
		return
	}
	if dstPod {
		pv := verdictEvent(mk(dst.node(), src, dst, false, true, sport, port, false, ms), flowpb.TrafficDirection_INGRESS)
		if v == Audit {
			pv.Verdict = flowpb.Verdict_AUDIT
		}
		b.emit(pv)
		b.emit(trace(mk(dst.node(), src, dst, false, true, sport, port, false, ms), flowpb.TraceObservationPoint_TO_ENDPOINT, flowpb.TrafficDirection_INGRESS, flowpb.TraceReason_NEW))
		b.emit(trace(mk(dst.node(), dst, src, true, false, port, sport, true, 2*ms), flowpb.TraceObservationPoint_FROM_ENDPOINT, flowpb.TrafficDirection_INGRESS, flowpb.TraceReason_REPLY))
	} else {
		b.emit(trace(mk(src.node(), src, dst, true, false, sport, port, false, ms), flowpb.TraceObservationPoint_TO_STACK, flowpb.TrafficDirection_EGRESS, flowpb.TraceReason_NEW))
	}
	if srcPod {
		b.emit(trace(mk(src.node(), dst, src, false, true, port, sport, true, 3*ms), flowpb.TraceObservationPoint_TO_ENDPOINT, flowpb.TrafficDirection_EGRESS, flowpb.TraceReason_REPLY))
	}
}

// Proxied emits a flow through a gateway pod (advancing the clock by one step): peer →
// gateway:gatewayPort, then 2ms later gateway → device:devicePort (ToDevice); or device → gateway:gatewayPort, then
// gateway → peer:peerPort (FromDevice, toDevice false).
func (b *Builder) Proxied(peer Endpoint, gw *Pod, gatewayPort uint32, device string, port uint32, proto string, toDevice bool, v Verdict) {
	dev := External(device)
	if toDevice {
		b.Connection(peer, PodEndpoint(gw), proto, gatewayPort, v)
		if v != Dropped {
			b.now = b.now.Add(2 * time.Millisecond)
			b.connection(PodEndpoint(gw), dev, proto, port, Forwarded)
		}
		return
	}
	b.Connection(dev, PodEndpoint(gw), proto, gatewayPort, Forwarded)
	b.now = b.now.Add(2 * time.Millisecond)
	b.connection(PodEndpoint(gw), peer, proto, port, v)
}

// Lost emits a lost-events record.
func Lost(n uint64, t time.Time) *observerpb.GetFlowsResponse {
	return &observerpb.GetFlowsResponse{
		ResponseTypes: &observerpb.GetFlowsResponse_LostEvents{LostEvents: &flowpb.LostEvent{
			Source: flowpb.LostEventSource_HUBBLE_RING_BUFFER, NumEventsLost: n, Cpu: wrapperspb.Int32(1)}},
		NodeName: "default/kind-worker", Time: timestamppb.New(t),
	}
}

// Response wraps a flow as Relay sends it.
func Response(f *flowpb.Flow) *observerpb.GetFlowsResponse {
	return &observerpb.GetFlowsResponse{ResponseTypes: &observerpb.GetFlowsResponse_Flow{Flow: f},
		NodeName: f.GetNodeName(), Time: f.GetTime()}
}

// Writer writes records exactly as `hubble observe -o jsonpb` does: encoding/json over the
// generated MarshalJSON (protojson with proto names), one compact record per line.
type Writer struct{ enc *json.Encoder }

// NewWriter writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{enc: json.NewEncoder(w)} }

// Write writes one record.
func (w *Writer) Write(res *observerpb.GetFlowsResponse) error { return w.enc.Encode(res) }

// WriteFlows writes the flows as records.
func (w *Writer) WriteFlows(flows []*flowpb.Flow) error {
	for _, f := range flows {
		if err := w.Write(Response(f)); err != nil {
			return err
		}
	}
	return nil
}
