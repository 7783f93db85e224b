package discover_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/discover"
	"github.com/medseg/medseg/internal/discover/capture"
)

func mdev(ns, name, gwApp string, addrs ...string) *v1alpha1.MedicalDevice {
	return &v1alpha1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.MedicalDeviceSpec{
			Network: v1alpha1.DeviceNetwork{Addresses: addrs},
			Gateway: v1alpha1.GatewayRef{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": gwApp}}},
		},
	}
}

func gwPod(ns, name, app, ip string) *capture.Pod {
	return &capture.Pod{Namespace: ns, Name: name, IP: ip, Node: "worker-a",
		Labels: map[string]string{"app": app, v1alpha1.LabelGateway: "true"}}
}

func appPod(ns, name, app, ip string) *capture.Pod {
	return &capture.Pod{Namespace: ns, Name: name, IP: ip, Node: "worker-b", Labels: map[string]string{"app": app}}
}

type edgeRow struct {
	device string
	status discover.FlowStatus
	flow   string // direction/proto/gp/port
	peers  string
}

func rowsOf(p *discover.Proposal) []edgeRow {
	var out []edgeRow
	for _, dp := range p.Devices {
		for _, r := range dp.Rows {
			port := r.Flow.DevicePort
			if r.Flow.Direction == v1alpha1.DirectionFromDevice {
				port = r.Flow.PeerPort
			}
			var peers []string
			for _, pc := range r.Peers {
				peers = append(peers, fmt.Sprintf("%s=%d", pc.Peer, pc.Connections))
			}
			out = append(out, edgeRow{device: dp.Name, status: r.Status,
				flow: fmt.Sprintf("%s/%s/%d/%d", r.Flow.Direction, r.Flow.Protocol, r.Flow.GatewayPort, port), peers: strings.Join(peers, " ")})
		}
	}
	return out
}

// TestDiscoverEdgeCases: one capture with every case the proposal must get right.
func TestDiscoverEdgeCases(t *testing.T) {
	ct := mdev("radiology", "ct-1", "dicom-gw", "10.50.0.11")
	ct.Spec.Flows = []v1alpha1.Flow{
		{Name: "worklist", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierClinical, Protocol: v1alpha1.ProtocolTCP,
			GatewayPort: 11104, DevicePort: 104, Peers: []v1alpha1.Peer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "clinical-apps"}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "ris"}}}}},
		{Name: "service", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierSupport, GatewayPort: 9000, PeerPort: 9000,
			Peers: []v1alpha1.Peer{{CIDR: "198.51.100.0/24"}}},
	}
	ct.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: "x", Ticket: "t"}
	mri := mdev("radiology", "mri-1", "dicom-gw", "10.50.0.12")
	mon := mdev("icu", "monitor-6", "mon-gw", "2001:db8:50::6")
	dupA := mdev("lab", "analyser-a", "lab-gw", "10.60.0.99")
	dupB := mdev("lab", "analyser-b", "lab-gw", "10.60.0.99")
	devs := []*v1alpha1.MedicalDevice{ct, mri, mon, dupA, dupB}

	gw0, gw1 := gwPod("radiology", "dicom-gw-0", "dicom-gw", "10.244.1.10"), gwPod("radiology", "dicom-gw-1", "dicom-gw", "10.244.1.11")
	monGw := gwPod("icu", "mon-gw-0", "mon-gw", "fd00:10:244::20")
	labGw := gwPod("lab", "lab-gw-0", "lab-gw", "10.244.3.10")
	pacs, ris := appPod("clinical-apps", "pacs-0", "pacs", "10.244.2.10"), appPod("clinical-apps", "ris-0", "ris", "10.244.2.11")
	scanner := appPod("clinical-apps", "scanner-0", "scanner", "10.244.2.12")
	central := appPod("icu", "central-0", "central-station", "fd00:10:244::30")
	rogue := appPod("radiology", "debug-0", "debug", "10.244.1.99")
	bare := &capture.Pod{Namespace: "clinical-apps", Name: "bare", IP: "10.244.2.13", Node: "worker-b"}

	b := capture.NewBuilder(t0, 50*time.Millisecond)
	for i := 0; i < 5; i++ {
		// Declared and seen; a new peer on the same ports; through both replicas.
		b.Proxied(capture.PodEndpoint(ris), []*capture.Pod{gw0, gw1}[i%2], 11104, "10.50.0.11", 104, "TCP", true, capture.Forwarded)
		b.Proxied(capture.PodEndpoint(pacs), gw0, 11104, "10.50.0.11", 104, "TCP", true, capture.Forwarded)
		// A second device behind the same gateway, on its own gateway port.
		b.Proxied(capture.PodEndpoint(pacs), gw1, 12104, "10.50.0.12", 104, "TCP", true, capture.Forwarded)
		// FromDevice to the internet (world) and to an unlabelled pod.
		b.Proxied(capture.External("203.0.113.7"), gw0, 8443, "10.50.0.11", 443, "TCP", false, capture.Forwarded)
		b.Proxied(capture.PodEndpoint(bare), gw0, 5000, "10.50.0.11", 5000, "UDP", false, capture.Forwarded)
		// IPv6, UDP.
		b.Proxied(capture.PodEndpoint(central), monGw, 7000, "2001:db8:50::6", 7001, "UDP", true, capture.Forwarded)
		// A peer every connection of which was dropped.
		b.Proxied(capture.PodEndpoint(scanner), gw0, 11104, "10.50.0.11", 104, "TCP", true, capture.Dropped)
		// NAT'd: the peer arrives as the node (SNAT): no flow can name it.
		b.Proxied(capture.Endpoint{Reserved: "remote-node", IP: "172.18.0.3"}, gw1, 12104, "10.50.0.12", 104, "TCP", true, capture.Forwarded)
		// Bypass: a pod straight to a device address.
		b.Connection(capture.PodEndpoint(rogue), capture.External("10.50.0.11"), "TCP", 104, capture.Forwarded)
		// An address two devices claim.
		b.Proxied(capture.PodEndpoint(ris), labGw, 2575, "10.60.0.99", 2575, "TCP", true, capture.Forwarded)
	}
	lost := new(bytes.Buffer)
	_ = capture.NewWriter(lost).Write(capture.Lost(3, t0))
	extra := lost.String() + "{not json\n" + `{"flow":{"IP":` + "\n" +
		`{"node_status":{"state_change":"NODE_CONNECTED","node_names":["default/kind-worker"]}}` + "\n"

	p := discoverJSONPB(t, devs, b, extra, discover.ProposeOptions{})
	want := []edgeRow{
		{"monitor-6", discover.StatusNew, "ToDevice/UDP/7000/7001", "icu/app=central-station=5"},
		{"ct-1", discover.StatusNew, "ToDevice/TCP/11104/104", "clinical-apps/app=pacs=5"},
		{"ct-1", discover.StatusNew, "FromDevice/TCP/8443/443", "203.0.113.7=5"},
		{"ct-1", discover.StatusNew, "FromDevice/UDP/5000/5000", "clinical-apps/*=5"},
		{"ct-1", discover.StatusDeclared, "ToDevice/TCP/11104/104", "clinical-apps/app=ris=5"},
		{"ct-1", discover.StatusNeverSeen, "FromDevice//9000/9000", ""},
		{"ct-1", discover.StatusDropped, "ToDevice/TCP/11104/104", "clinical-apps/app=scanner=5"},
		{"mri-1", discover.StatusNew, "ToDevice/TCP/12104/104", "clinical-apps/app=pacs=5"},
	}
	got := rowsOf(p)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows:\n got %v\nwant %v", got, want)
	}
	byName := map[string]discover.DeviceProposal{}
	for _, dp := range p.Devices {
		byName[dp.Name] = dp
	}
	if b := byName["ct-1"].Bypass; len(b) != 1 || b[0].Peer != "radiology/app=debug" || b[0].Port != 104 || b[0].Connections != 5 {
		t.Errorf("bypass of ct-1: %+v", b)
	}
	if !byName["ct-1"].Commissioned {
		t.Error("ct-1 is commissioned: the proposal must say adding flows un-commissions it")
	}
	if u := byName["mri-1"].Unnamed; len(u) != 1 || u[0].Peer != "reserved:remote-node" {
		t.Errorf("NAT'd peer of mri-1: %+v", u)
	}
	if len(p.Shared) != 1 || p.Shared[0].Address != "10.60.0.99" || len(p.Shared[0].Devices) != 2 {
		t.Errorf("shared: %+v", p.Shared)
	}
	for _, name := range []string{"analyser-a", "analyser-b"} {
		if len(byName[name].Rows) != 0 {
			t.Errorf("%s: a shared address must not be attributed: %+v", name, byName[name].Rows)
		}
	}
	if s := p.Stats; s.Malformed != 2 || s.LostEvents != 3 || s.NonFlow != 2 || !strings.HasPrefix(s.FirstMalformed, "capture.jsonpb:") {
		t.Errorf("stats: %+v", s)
	}
	if w := p.Stats.Warnings(); len(w) != 2 {
		t.Errorf("warnings: %v", w)
	}
	// The proposed flows are valid MedicalDevice flows: names, tiers, peers, descriptions.
	for _, dp := range p.Devices {
		for _, f := range dp.NewFlows() {
			if f.Tier != v1alpha1.TierSupport || len(f.Description) > 256 || !strings.Contains(f.Description, "clinician") {
				t.Errorf("%s/%s: tier %s description %q", dp.Name, f.Name, f.Tier, f.Description)
			}
		}
	}
	if f := byName["ct-1"].NewFlows(); f[0].Name != "in-tcp-11104-104" || f[1].Peers[0].CIDR != "203.0.113.7/32" {
		t.Errorf("ct-1 flows: %+v", f)
	}
	if f := byName["monitor-6"].NewFlows(); len(f) != 1 || f[0].Peers[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "icu" {
		t.Errorf("monitor-6 flows: %+v", f)
	}

	// Tier mapping: the first rule that matches the peer.
	sel, _ := labels.Parse("app=central-station")
	p = discoverJSONPB(t, devs, b, "", discover.ProposeOptions{Tiers: []discover.TierRule{{Selector: sel, Tier: v1alpha1.TierEssential}}})
	for _, dp := range p.Devices {
		if dp.Name == "monitor-6" && dp.NewFlows()[0].Tier != v1alpha1.TierEssential {
			t.Errorf("tier mapping not applied: %+v", dp.NewFlows())
		}
	}
	// Dropped flows are proposed on request.
	p = discoverJSONPB(t, devs, b, "", discover.ProposeOptions{IncludeDropped: true})
	for _, r := range rowsOf(p) {
		if r.status == discover.StatusDropped {
			t.Errorf("dropped row with IncludeDropped: %+v", r)
		}
	}
}

// TestConcurrentConnectionsThroughASharedGateway: a gateway that accepts a second connection
// before it opened the first one's onward connection still gets each peer paired with its own
// device, once each pairing has been seen unambiguously.
func TestConcurrentConnectionsThroughASharedGateway(t *testing.T) {
	devs := []*v1alpha1.MedicalDevice{mdev("radiology", "ct-1", "dicom-gw", "10.50.0.11"), mdev("radiology", "mri-1", "dicom-gw", "10.50.0.12")}
	gw := gwPod("radiology", "dicom-gw-0", "dicom-gw", "10.244.1.10")
	pacs, ris := appPod("clinical-apps", "pacs-0", "pacs", "10.244.2.10"), appPod("clinical-apps", "ris-0", "ris", "10.244.2.11")
	b := capture.NewBuilder(t0, time.Millisecond)
	for i := 0; i < 10; i++ {
		b.Proxied(capture.PodEndpoint(pacs), gw, 11104, "10.50.0.11", 104, "TCP", true, capture.Forwarded)
		b.Proxied(capture.PodEndpoint(ris), gw, 12104, "10.50.0.12", 4104, "TCP", true, capture.Forwarded)
	}
	for i := 0; i < 200; i++ {
		b.Connection(capture.PodEndpoint(pacs), capture.PodEndpoint(gw), "TCP", 11104, capture.Forwarded)
		b.Connection(capture.PodEndpoint(ris), capture.PodEndpoint(gw), "TCP", 12104, capture.Forwarded)
		first, second := func() {
			b.Connection(capture.PodEndpoint(gw), capture.External("10.50.0.11"), "TCP", 104, capture.Forwarded)
		},
			func() {
				b.Connection(capture.PodEndpoint(gw), capture.External("10.50.0.12"), "TCP", 4104, capture.Forwarded)
			}
		if i%2 == 0 {
			first, second = second, first
		}
		first()
		second()
	}
	p := discoverJSONPB(t, devs, b, "", discover.ProposeOptions{})
	got := fmt.Sprint(rowsOf(p))
	want := fmt.Sprint([]edgeRow{
		{"ct-1", discover.StatusNew, "ToDevice/TCP/11104/104", "clinical-apps/app=pacs=210"},
		{"mri-1", discover.StatusNew, "ToDevice/TCP/12104/4104", "clinical-apps/app=ris=210"},
	})
	if got != want {
		t.Errorf("rows:\n got %s\nwant %s", got, want)
	}
}

func TestMalformedInput(t *testing.T) {
	ix := discover.NewIndex(nil)
	agg := discover.NewAggregator(ix, discover.Options{})
	if err := agg.ReadJSONPB(strings.NewReader("hello\n{\"flow\": 3}\n"), "x.json"); err != nil {
		t.Fatal(err)
	}
	err := agg.Stats().Check()
	if !errors.Is(err, discover.ErrNoFlows) || !strings.Contains(err.Error(), "all 2 records were malformed (first: x.json:1:") {
		t.Errorf("all malformed: %v", err)
	}
	agg = discover.NewAggregator(ix, discover.Options{})
	_ = agg.ReadJSONPB(strings.NewReader(""), "empty")
	if err := agg.Stats().Check(); !errors.Is(err, discover.ErrNoFlows) {
		t.Errorf("empty: %v", err)
	}
	// The exact line hubble's own printer test expects, plus a field a newer Hubble might add.
	line := `{"flow":{"time":"1970-01-01T00:20:34.567800Z","verdict":"DROPPED","IP":{"source":"1.1.1.1","destination":"2.2.2.2"},"l4":{"TCP":{"source_port":31793,"destination_port":8080}},"source":{"identity":4},"destination":{"identity":12345},"Type":"L3_L4","node_name":"k8s1","event_type":{"type":1,"sub_type":133},"is_reply":false,"Summary":"TCP Flags: SYN","some_future_field":{"x":1}}}`
	agg = discover.NewAggregator(ix, discover.Options{})
	_ = agg.ReadJSONPB(strings.NewReader(line+"\n"), "hubble.json")
	if s := agg.Stats(); s.Flows != 1 || s.Malformed != 0 || s.Check() != nil {
		t.Errorf("hubble's line: %+v", s)
	}
}

// TestIndexUpdateKeepsAggregates: the operator's follower re-reads the devices every tick. A
// device or gateway that stays must keep what was aggregated under it: before, every Update
// made new gateway groups, so each tick started new aggregates beside the old ones until the
// key bound was reached and new traffic was dropped as overflow.
func TestIndexUpdateKeepsAggregates(t *testing.T) {
	devs := []*v1alpha1.MedicalDevice{mdev("radiology", "ct", "dicom", "10.30.1.10"), mdev("radiology", "us", "dicom", "10.30.1.23")}
	gw := gwPod("radiology", "dicom-0", "dicom", "10.244.1.20")
	pacs := appPod("clinical-apps", "pacs-0", "pacs", "10.244.2.30")
	ix := discover.NewIndex(devs)
	agg := discover.NewAggregator(ix, discover.Options{MaxKeys: 16})
	start := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	const rounds = 50
	for i := 0; i < rounds; i++ {
		b := capture.NewBuilder(start.Add(time.Duration(i)*time.Minute), time.Second)
		b.Proxied(capture.PodEndpoint(pacs), gw, 11112, "10.30.1.10", 104, "TCP", false, capture.Forwarded)
		b.Proxied(capture.PodEndpoint(pacs), gw, 11114, "10.30.1.23", 104, "TCP", false, capture.Forwarded)
		for _, f := range b.Flows() {
			agg.AddResponse(f, nil)
		}
		copies := make([]*v1alpha1.MedicalDevice, len(devs))
		for j, d := range devs {
			copies[j] = d.DeepCopy() // as a fresh List returns them
		}
		ix.Update(copies)
	}
	if o := agg.Stats().Overflow; o != 0 {
		t.Errorf("%d connections overflowed after %d updates of unchanged devices", o, rounds)
	}
	r := agg.Result()
	if len(r.Observations) != 2 {
		t.Fatalf("want one observation per flow, got %d", len(r.Observations))
	}
	for _, o := range r.Observations {
		if o.Connections != rounds {
			t.Errorf("%s %d: %d connections, want %d", o.Device.Name, o.GatewayPort, o.Connections, rounds)
		}
	}
}
