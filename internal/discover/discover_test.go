package discover_test

import (
	"bytes"
	"fmt"
	"math/rand"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/discover"
	"github.com/medseg/medseg/internal/discover/capture"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/segcheck"
)

var t0 = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

// site is a hospital whose devices' real flows are known (truth) but not declared: what
// discovery has to learn from the traffic alone.
type site struct {
	devices []*v1alpha1.MedicalDevice
	truth   map[string][]v1alpha1.Flow // device name → its real flows
	pods    []*capture.Pod
	ns      map[string]map[string]string
}

func (s *site) podsOf(ns string, sel labels.Selector) []*capture.Pod {
	var out []*capture.Pod
	for _, p := range s.pods {
		if p.Namespace == ns && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

func (s *site) gateways(d *v1alpha1.MedicalDevice) []*capture.Pod {
	sel, _ := metav1.LabelSelectorAsSelector(&d.Spec.Gateway.PodSelector)
	var out []*capture.Pod
	for _, p := range s.podsOf(d.Namespace, sel) {
		if p.Labels[v1alpha1.LabelGateway] == "true" {
			out = append(out, p)
		}
	}
	return out
}

// peers are the endpoints a flow's peer stands for.
func (s *site) peers(d *v1alpha1.MedicalDevice, p v1alpha1.Peer) []capture.Endpoint {
	if p.CIDR != "" {
		return []capture.Endpoint{capture.External(segcheck.External)}
	}
	ns := d.Namespace
	if p.NamespaceSelector != nil {
		ns = p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
	}
	sel := labels.Everything()
	if p.PodSelector != nil {
		sel, _ = metav1.LabelSelectorAsSelector(p.PodSelector)
	}
	var out []capture.Endpoint
	for _, pod := range s.podsOf(ns, sel) {
		out = append(out, capture.PodEndpoint(pod))
	}
	return out
}

// randomSite builds gateway namespaces with gateway deployments (one or two replicas) fronting
// one to four devices each, with IPv4 and IPv6 addresses, and flows in both directions to pods
// and to an external peer; gateway ports are distinct per gateway deployment, as a proxy's
// port-per-device configuration has them.
func randomSite(r *rand.Rand) *site {
	s := &site{truth: map[string][]v1alpha1.Flow{}, ns: map[string]map[string]string{}}
	apps := []string{"pacs", "ris", "emr", "alarm-server", "lis"}
	for _, app := range apps {
		s.pods = append(s.pods, &capture.Pod{Namespace: "clinical-apps", Name: app + "-0", Labels: map[string]string{"app": app},
			IP: fmt.Sprintf("10.244.9.%d", len(s.pods)+10), Node: "worker-b"})
	}
	s.ns["clinical-apps"] = map[string]string{}
	nsCount := 1 + r.Intn(3)
	devN, ipN := 0, 0
	for n := 0; n < nsCount; n++ {
		ns := fmt.Sprintf("zone-%d", n)
		s.ns[ns] = map[string]string{v1alpha1.LabelGatewayNamespace: "true"}
		s.pods = append(s.pods, &capture.Pod{Namespace: ns, Name: "local-app-0", Labels: map[string]string{"app": "local-app"},
			IP: fmt.Sprintf("10.244.%d.200", n), Node: "worker-a"})
		for g := 0; g < 1+r.Intn(2); g++ {
			app := fmt.Sprintf("gw-%d", g)
			for rep := 0; rep < 1+r.Intn(2); rep++ {
				ipN++
				s.pods = append(s.pods, &capture.Pod{Namespace: ns, Name: fmt.Sprintf("%s-%d", app, rep),
					Labels: map[string]string{"app": app, v1alpha1.LabelGateway: "true"}, IP: fmt.Sprintf("10.244.%d.%d", n, ipN), Node: "worker-a"})
			}
			nextGP := int32(10000)
			for k := 0; k < 1+r.Intn(4); k++ {
				devN++
				addr := fmt.Sprintf("10.20.%d.%d", n, devN)
				if r.Intn(3) == 0 {
					addr = fmt.Sprintf("2001:db8:%d::%x", n, devN)
				}
				d := &v1alpha1.MedicalDevice{
					TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "MedicalDevice"},
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("dev-%d", devN), Namespace: ns, Labels: map[string]string{"zone": "all"}},
					Spec: v1alpha1.MedicalDeviceSpec{
						Identity: v1alpha1.DeviceIdentity{Manufacturer: "Acme", Model: "M"},
						Clinical: v1alpha1.ClinicalImpact{SafetyImpact: v1alpha1.SafetyMarginal, MissionImpact: v1alpha1.MissionDegraded},
						Network:  v1alpha1.DeviceNetwork{Addresses: []string{addr}},
						Gateway:  v1alpha1.GatewayRef{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
					},
				}
				var flows []v1alpha1.Flow
				for f := 0; f < 1+r.Intn(3); f++ {
					proto := v1alpha1.ProtocolTCP
					if r.Intn(4) == 0 {
						proto = v1alpha1.ProtocolUDP
					}
					fl := v1alpha1.Flow{Name: fmt.Sprintf("f%d", f), Tier: v1alpha1.TierSupport, Protocol: proto, GatewayPort: nextGP}
					nextGP++
					var peer v1alpha1.Peer
					switch r.Intn(4) {
					case 0:
						peer = v1alpha1.Peer{CIDR: "203.0.113.0/24"}
					case 1:
						peer = v1alpha1.Peer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "local-app"}}}
					default:
						peer = v1alpha1.Peer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "clinical-apps"}},
							PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": apps[r.Intn(len(apps))]}}}
					}
					fl.Peers = []v1alpha1.Peer{peer}
					if r.Intn(2) == 0 {
						fl.Direction, fl.DevicePort = v1alpha1.DirectionToDevice, int32(100+r.Intn(3000))
					} else {
						fl.Direction, fl.PeerPort = v1alpha1.DirectionFromDevice, int32(100+r.Intn(3000))
					}
					flows = append(flows, fl)
				}
				s.devices = append(s.devices, d)
				s.truth[d.Name] = flows
			}
		}
	}
	return s
}

// traffic emits the site's real flows through random gateway replicas, interleaving devices,
// plus traffic no flow may be proposed for: kubelet probes of the gateways and a pod that
// reaches a device directly.
func (s *site) traffic(r *rand.Rand, b *capture.Builder) {
	type conn struct {
		d  *v1alpha1.MedicalDevice
		f  v1alpha1.Flow
		gw *capture.Pod
		p  capture.Endpoint
	}
	var conns []conn
	for _, d := range s.devices {
		gws := s.gateways(d)
		for _, f := range s.truth[d.Name] {
			for _, p := range s.peers(d, f.Peers[0]) {
				for i := 0; i < 1+r.Intn(3); i++ {
					conns = append(conns, conn{d: d, f: f, gw: gws[r.Intn(len(gws))], p: p})
				}
			}
		}
	}
	r.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	for _, c := range conns {
		addr := c.d.Spec.Network.Addresses[0]
		if c.f.Direction == v1alpha1.DirectionToDevice {
			b.Proxied(c.p, c.gw, uint32(c.f.GatewayPort), addr, uint32(c.f.DevicePort), string(c.f.Protocol), true, capture.Forwarded)
		} else {
			b.Proxied(c.p, c.gw, uint32(c.f.GatewayPort), addr, uint32(c.f.PeerPort), string(c.f.Protocol), false, capture.Forwarded)
		}
		if r.Intn(5) == 0 {
			b.Connection(capture.Endpoint{Reserved: "host", IP: "10.0.0.1"}, capture.PodEndpoint(c.gw), "TCP", 8080, capture.Forwarded)
		}
	}
}

func (s *site) hospital(flows map[string][]v1alpha1.Flow) plan.Hospital {
	var devs []v1alpha1.MedicalDevice
	for _, d := range s.devices {
		c := d.DeepCopy()
		c.Spec.Flows = flows[d.Name]
		c.UID = "uid-" + types.UID(c.Name)
		devs = append(devs, *c)
	}
	pol := v1alpha1.SegmentPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "SegmentPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "all"},
		Spec: v1alpha1.SegmentPolicySpec{
			DeviceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "all"}},
			Enforcement:    v1alpha1.EnforcementEnforce,
			DeviceNetworks: []string{"10.20.0.0/16", "2001:db8::/32"},
			AllowedPeers:   &v1alpha1.AllowedPeers{ExternalCIDRs: []string{"203.0.113.0/24"}, ExternalRequiresGrant: ptr.To(false)},
			Onboarding:     &v1alpha1.Onboarding{Required: ptr.To(false)},
		},
	}
	return plan.Hospital{Devices: plan.Devices(devs), Policies: []v1alpha1.SegmentPolicy{pol}, Namespaces: s.ns}
}

func (s *site) segcheckPods() []segcheck.Pod {
	var out []segcheck.Pod
	for _, p := range s.pods {
		out = append(out, segcheck.Pod{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels})
	}
	return out
}

// discoverJSONPB writes the builder's flows as `hubble observe -o jsonpb` and discovers them.
func discoverJSONPB(t *testing.T, devs []*v1alpha1.MedicalDevice, b *capture.Builder, extra string, opts discover.ProposeOptions) *discover.Proposal {
	t.Helper()
	var buf bytes.Buffer
	if err := capture.NewWriter(&buf).WriteFlows(b.Flows()); err != nil {
		t.Fatal(err)
	}
	buf.WriteString(extra)
	ix := discover.NewIndex(devs)
	agg := discover.NewAggregator(ix, discover.Options{})
	if err := agg.ReadJSONPB(&buf, "capture.jsonpb"); err != nil {
		t.Fatal(err)
	}
	return discover.Propose(agg.Result(), ix.Devices(), opts)
}

// TestDiscoveredFlowsOpenWhatWasSeenInCiliumsEngine: on random hospitals, the flows discovery
// proposes from traffic alone, once declared and enforced, open every connection that was
// seen (both hops, in Cilium's engine) and nothing else that was probed: the kubelet probes
// and the direct connections are not proposed, and the proposal names the same peers and
// ports as the real flows.
func TestDiscoveredFlowsOpenWhatWasSeenInCiliumsEngine(t *testing.T) {
	for seed := int64(1); seed <= 25; seed++ {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			s := randomSite(r)
			b := capture.NewBuilder(t0, 40*time.Millisecond)
			s.traffic(r, b)
			p := discoverJSONPB(t, s.devices, b, "", discover.ProposeOptions{})
			proposed := map[string][]v1alpha1.Flow{}
			for _, dp := range p.Devices {
				proposed[dp.Name] = dp.NewFlows()
				for _, row := range dp.Rows {
					if row.Status != discover.StatusNew {
						t.Errorf("%s: unexpected row %s %+v", dp.Name, row.Status, row.Flow)
					}
				}
				if len(dp.Bypass) > 0 || len(dp.Unpaired) > 0 {
					t.Errorf("%s: bypass %v unpaired %v", dp.Name, dp.Bypass, dp.Unpaired)
				}
			}
			for _, u := range p.Unattributed {
				if u.Peer != "reserved:host" {
					t.Errorf("unattributed gateway traffic %+v", u)
				}
			}
			// The proposal has exactly the real flows' (direction, protocol, ports, peer).
			for _, d := range s.devices {
				want := map[string]bool{}
				for _, f := range s.truth[d.Name] {
					want[flowKey(f, d.Namespace)] = true
				}
				got := map[string]bool{}
				for _, f := range proposed[d.Name] {
					for _, peer := range f.Peers {
						g := f
						g.Peers = []v1alpha1.Peer{peer}
						got[flowKey(g, d.Namespace)] = true
					}
				}
				for k := range want {
					if !got[k] {
						t.Errorf("%s: real flow %s not proposed; proposed %v", d.Name, k, keys(got))
					}
				}
				for k := range got {
					if !want[k] {
						t.Errorf("%s: proposed %s, not a real flow", d.Name, k)
					}
				}
			}
			w, err := segcheck.Rendered(s.hospital(proposed), s.segcheckPods(), nil, t0)
			if err != nil {
				t.Fatal(err)
			}
			checked := 0
			for _, d := range s.devices {
				addr := d.Spec.Network.Addresses[0]
				for _, f := range s.truth[d.Name] {
					for _, gw := range s.gateways(d) {
						for _, peer := range s.peers(d, f.Peers[0]) {
							name := segcheck.External
							if peer.Pod != nil {
								name = peer.Pod.Namespace + "/" + peer.Pod.Name
							}
							gwID, peerID, devID := w.Identity(gw.Namespace+"/"+gw.Name), w.Identity(name), w.Identity(addr)
							proto := string(f.Protocol)
							var hop1, hop2 bool
							if f.Direction == v1alpha1.DirectionToDevice {
								hop1, _ = w.Allowed(peerID, gwID, proto, f.GatewayPort, false)
								hop2, _ = w.Allowed(gwID, devID, proto, f.DevicePort, true)
							} else {
								hop1, _ = w.Allowed(devID, gwID, proto, f.GatewayPort, false)
								hop2, _ = w.Allowed(gwID, peerID, proto, f.PeerPort, peer.Pod == nil)
							}
							checked++
							if !hop1 || !hop2 {
								t.Errorf("%s flow %s via %s from %s: hop1 %v hop2 %v", d.Name, flowKey(f, d.Namespace), gw.Name, name, hop1, hop2)
							}
						}
					}
				}
				// What was not seen stays closed: the gateways' probe port, and a pod straight
				// to the device.
				for _, gw := range s.gateways(d) {
					if ok, _ := w.Allowed(w.Identity("clinical-apps/pacs-0"), w.Identity(gw.Namespace+"/"+gw.Name), "TCP", 8080, false); ok {
						t.Errorf("%s: pacs reaches gateway %s on the probe port", d.Name, gw.Name)
					}
				}
				if ok, _ := w.Allowed(w.Identity(d.Namespace+"/local-app-0"), w.Identity(addr), "TCP", 104, true); ok {
					t.Errorf("%s: a non-gateway pod reaches the device", d.Name)
				}
			}
			if checked == 0 {
				t.Fatal("no flow checked")
			}
		})
	}
}

func flowKey(f v1alpha1.Flow, own string) string {
	port := f.DevicePort
	if f.Direction == v1alpha1.DirectionFromDevice {
		port = f.PeerPort
	}
	peer := f.Peers[0].CIDR
	if peer != "" {
		if pfx, err := netip.ParsePrefix(peer); err == nil && pfx.Contains(netip.MustParseAddr(segcheck.External)) {
			peer = "external"
		}
	} else {
		ns := own
		if f.Peers[0].NamespaceSelector != nil {
			ns = f.Peers[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
		}
		peer = ns + "/" + f.Peers[0].PodSelector.MatchLabels["app"]
	}
	return fmt.Sprintf("%s/%s/%d/%d/%s", f.Direction, f.Protocol, f.GatewayPort, port, peer)
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
