package integration

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/discover"
	"github.com/medseg/medseg/internal/discover/capture"
	"github.com/medseg/medseg/internal/operator"
	"github.com/medseg/medseg/internal/report"
)

// liveRelay is a real gRPC server implementing Hubble's Observer API on loopback: every
// GetFlows stream (follow) gets the flows pushed to it.
type liveRelay struct {
	observerpb.UnimplementedObserverServer
	mu      sync.Mutex
	streams []chan *flowpb.Flow
	reqs    int
}

func (r *liveRelay) GetFlows(req *observerpb.GetFlowsRequest, stream grpc.ServerStreamingServer[observerpb.GetFlowsResponse]) error {
	ch := make(chan *flowpb.Flow, 1<<16)
	r.mu.Lock()
	r.streams = append(r.streams, ch)
	r.reqs++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, c := range r.streams {
			if c == ch {
				r.streams = append(r.streams[:i], r.streams[i+1:]...)
				break
			}
		}
	}()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case f := <-ch:
			if err := stream.Send(capture.Response(f)); err != nil {
				return err
			}
		}
	}
}

func (r *liveRelay) push(flows []*flowpb.Flow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ch := range r.streams {
		for _, f := range flows {
			ch <- f
		}
	}
}

func (r *liveRelay) connected() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streams) > 0
}

// TestAuditShowsWhatEnforceWouldDrop: an operator following Hubble Relay (a real gRPC Observer
// server on loopback, the production client) records on a device in Audit the observed traffic
// its flows do not cover, aggregates it on the SegmentPolicy, writes the device's status at most
// once per interval however fast flows arrive, and clears the finding once a flow covers it.
func TestAuditShowsWhatEnforceWouldDrop(t *testing.T) {
	const sfx = "-traffic"
	relay := &liveRelay{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	observerpb.RegisterObserverServer(gs, relay)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	const interval = 2 * time.Second
	counter, _ := runOperatorWith(t, func(c *operator.Config) {
		c.HubbleRelay = discover.RelayOptions{Address: lis.Addr().String()}
		c.TrafficInterval, c.TrafficTick, c.TrafficWindow = interval, 200*time.Millisecond, time.Hour
	})
	devices := applySamples(t, sfx)
	createGateways(t, devices)
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(60 * time.Second)
	setEnforcement(g, "diagnostics"+sfx, v1alpha1.EnforcementAudit)
	ct := types.NamespacedName{Namespace: "radiology" + sfx, Name: "ct-scanner-1"}
	g.Eventually(func(g Gomega) {
		g.Expect(segReason(getDevice(g, ct))).To(Equal(v1alpha1.ReasonAuditOnly))
	}).Should(Succeed())
	g.Eventually(relay.connected).Should(BeTrue())

	gw := &capture.Pod{Namespace: "radiology" + sfx, Name: "gw-ct-scanner-1", IP: "10.244.1.10",
		Labels: map[string]string{"app": "dicom-gateway", v1alpha1.LabelGateway: "true"}}
	ris := &capture.Pod{Namespace: "clinical-apps" + sfx, Name: "ris-0", IP: "10.244.2.11", Labels: map[string]string{"app": "ris"}}
	billing := &capture.Pod{Namespace: "clinical-apps" + sfx, Name: "billing-0", IP: "10.244.2.12", Labels: map[string]string{"app": "billing"}}
	b := capture.NewBuilder(time.Now().Add(-time.Minute), time.Millisecond)
	burst := func(declared, undeclared int) {
		for i := 0; i < max(declared, undeclared); i++ {
			if i < declared {
				b.Proxied(capture.PodEndpoint(ris), gw, 11113, "10.30.1.10", 4006, "TCP", true, capture.Forwarded)
			}
			if i < undeclared {
				b.Proxied(capture.PodEndpoint(billing), gw, 11113, "10.30.1.10", 4006, "TCP", true, capture.Forwarded)
			}
		}
		relay.push(b.Flows())
		*b = *capture.NewBuilder(b.Now(), time.Millisecond)
	}
	burst(4, 12)

	peer := "clinical-apps" + sfx + "/app=billing"
	g.Eventually(func(g Gomega) {
		d := getDevice(g, ct)
		c := condition(d, v1alpha1.ConditionTrafficDeclared)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Message).To(Equal("Enforce would drop 1 observed flow (top: " + peer + " → 4006/TCP, 12 times)"))
		g.Expect(d.Status.Traffic.UndeclaredFlows).To(Equal(int32(1)))
		g.Expect(d.Status.Traffic.Undeclared[0].Peer).To(Equal(peer))
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		var pol v1alpha1.SegmentPolicy
		g.Expect(env.Client.Get(context.Background(), types.NamespacedName{Name: "diagnostics" + sfx}, &pol)).To(Succeed())
		g.Expect(pol.Status.Traffic).NotTo(BeNil())
		g.Expect(pol.Status.Traffic.DevicesWithUndeclaredTraffic).To(Equal(int32(1)))
	}).Should(Succeed())

	// The change board's evidence: audit, explain and the report show it.
	audit, err := cli.ReadAudit(context.Background(), env.Client, ct.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := cli.WriteAudit(&text, audit, "table"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"UNDECLARED", "radiology" + sfx + "/ct-scanner-1: 1 flows, 12 connections", "ToDevice " + peer + " → 4006/TCP via gateway port 11113, 12 connections"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("audit lacks %q:\n%s", want, text.String())
		}
	}
	text.Reset()
	cli.WriteExplain(&text, getDevice(g, ct))
	if want := "1 flows its flows do not cover (12 connections): Enforce would drop them"; !strings.Contains(text.String(), want) {
		t.Errorf("explain lacks %q:\n%s", want, text.String())
	}
	var devs v1alpha1.MedicalDeviceList
	g.Expect(env.Client.List(context.Background(), &devs)).To(Succeed())
	rep := report.Build(report.Input{Devices: devs.Items, Now: time.Now(), Source: "live cluster"})
	text.Reset()
	g.Expect(report.Write(&text, rep, "markdown")).To(Succeed())
	if want := "| radiology" + sfx + "/ct-scanner-1 | Audit | 1 | 12 | ToDevice " + peer; !strings.Contains(text.String(), strings.ReplaceAll(want, "_", "\\_")) {
		t.Errorf("report lacks %q:\n%s", want, text.String())
	}

	// A sustained stream: status writes stay at most one per interval.
	key := "status MedicalDevice " + ct.String()
	before, start := counter.Get(key), time.Now()
	const period = 7 * time.Second
	for time.Since(start) < period {
		burst(20, 50)
		time.Sleep(50 * time.Millisecond)
	}
	writes := counter.Get(key) - before
	limit := int(period/interval) + 2
	t.Logf("%d status writes of the CT scanner in %s of continuous traffic (interval %s)", writes, period, interval)
	if writes > limit {
		t.Errorf("%d status writes in %s, want at most %d", writes, period, limit)
	}
	if writes == 0 {
		t.Error("the counts of a busy device were never updated")
	}

	// Declaring the billing flow (Clinical: the onboarding mode the changed flows put the scanner
	// in blocks Support flows, which would still be dropped) covers the traffic.
	updateDevice(g, ct, func(d *v1alpha1.MedicalDevice) {
		d.Spec.Flows = append(d.Spec.Flows, v1alpha1.Flow{Name: "billing-worklist", Direction: v1alpha1.DirectionToDevice,
			Tier: v1alpha1.TierClinical, Protocol: v1alpha1.ProtocolTCP, GatewayPort: 11113, DevicePort: 4006,
			Peers: []v1alpha1.Peer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "clinical-apps" + sfx}},
				PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "billing"}}}}})
	})
	g.Eventually(func(g Gomega) {
		c := condition(getDevice(g, ct), v1alpha1.ConditionTrafficDeclared)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(v1alpha1.ReasonTrafficDeclared), c.Message)
	}).Should(Succeed())
	// Devices with no traffic say so, and the enforced zone has no condition.
	pump := types.NamespacedName{Namespace: "icu" + sfx, Name: "infusion-pump-bed-12"}
	d := getDevice(g, pump)
	if c := condition(d, v1alpha1.ConditionTrafficDeclared); c != nil {
		t.Errorf("an enforced, commissioned device has %s", c.Reason)
	}
	if d.Status.Traffic == nil || d.Status.Traffic.UndeclaredFlows != 0 {
		t.Errorf("pump traffic: %+v", d.Status.Traffic)
	}
}
