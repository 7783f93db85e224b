package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/controllers"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/discover"
	"github.com/medseg/medseg/internal/discover/capture"
	"github.com/medseg/medseg/internal/testenv"
)

// The discovery benchmarks. `make bench` sets MEDSEG_BENCH_RECORDS=1000000 and
// MEDSEG_BENCH_FLOW_DEVICES=1000; `make test` runs small sizes so the harness cannot rot. Nothing
// here asserts a time: the figures are logged and written to test/output/bench-discover.json.

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// flowHospital is a hospital for discovery: devices behind gateway pods (ten devices per
// gateway), each declaring two flows, and the pods that talk to them.
type flowHospital struct {
	devices []*v1alpha1.MedicalDevice
	gws     []*capture.Pod // gws[i/10] fronts devices[i]
	peers   []*capture.Pod
	rogue   *capture.Pod
}

func newFlowHospital(n int) *flowHospital {
	h := &flowHospital{}
	apps := map[string]string{"kubernetes.io/metadata.name": "clinical-apps"}
	for i, app := range []string{"pacs", "ris", "emr", "alarm-server", "lis", "billing", "telemetry", "backup"} {
		h.peers = append(h.peers, &capture.Pod{Namespace: "clinical-apps", Name: app + "-0", IP: fmt.Sprintf("10.244.200.%d", i+1),
			Node: "worker-b", NamespaceLabels: apps, Labels: map[string]string{"app": app}})
	}
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("area-%d", i/100)
		gw := fmt.Sprintf("gw-%d", i/10)
		if i%10 == 0 {
			h.gws = append(h.gws, &capture.Pod{Namespace: ns, Name: gw + "-7f9c6", IP: fmt.Sprintf("10.244.%d.%d", 1+i/10/250, 1+(i/10)%250),
				Node: fmt.Sprintf("worker-%d", i%3), NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": ns},
				Labels: map[string]string{"app": gw, v1alpha1.LabelGateway: "true"}})
		}
		d := benchDevice(fmt.Sprintf("dev-%d", i), ns, gw, i)
		d.Spec.Flows = []v1alpha1.Flow{
			{Name: "images", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierClinical, Protocol: v1alpha1.ProtocolTCP, GatewayPort: 11112, PeerPort: 104,
				Peers: []v1alpha1.Peer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: apps}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pacs"}}}}},
			{Name: "worklist", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierClinical, Protocol: v1alpha1.ProtocolTCP, GatewayPort: 11113, DevicePort: 4006,
				Peers: []v1alpha1.Peer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: apps}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "ris"}}}}},
		}
		d.Spec.Commissioning = nil
		h.devices = append(h.devices, d)
	}
	h.rogue = &capture.Pod{Namespace: "area-0", Name: "debug-shell", IP: "10.244.250.9", Node: "worker-0",
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "area-0"}, Labels: map[string]string{"app": "debug-shell"}}
	return h
}

// traffic builds connections until emit has seen records flow records: mostly declared flows,
// then undeclared peers and ports, the internet, drops, and pods that bypass the gateway.
func (h *flowHospital) traffic(records int, start time.Time, emit func(*flowpb.Flow)) {
	b := capture.NewBuilder(start, time.Millisecond)
	n := 0
	b.Emit = func(f *flowpb.Flow) { n++; emit(f) }
	r := rand.New(rand.NewPCG(1, 2))
	for n < records {
		i := r.IntN(len(h.devices))
		addr, gw := h.devices[i].Spec.Network.Addresses[0], h.gws[i/10]
		peer := h.peers[r.IntN(len(h.peers))]
		switch k := r.IntN(100); {
		case k < 40:
			b.Proxied(capture.PodEndpoint(h.peers[0]), gw, 11112, addr, 104, "TCP", false, capture.Forwarded)
		case k < 70:
			b.Proxied(capture.PodEndpoint(h.peers[1]), gw, 11113, addr, 4006, "TCP", true, capture.Forwarded)
		case k < 85:
			b.Proxied(capture.PodEndpoint(peer), gw, 2575, addr, 2575, "TCP", k%2 == 0, capture.Forwarded)
		case k < 90:
			b.Proxied(capture.External(fmt.Sprintf("203.0.113.%d", 1+r.IntN(20))), gw, 8443, addr, 443, "TCP", false, capture.Forwarded)
		case k < 95:
			b.Proxied(capture.PodEndpoint(peer), gw, 5000+uint32(r.IntN(5)), addr, 161, "UDP", true, capture.Dropped)
		default:
			b.Connection(capture.PodEndpoint(h.rogue), capture.External(addr), "TCP", 22, capture.Dropped)
		}
	}
}

// discoverResult is what one child process measured.
type discoverResult struct {
	Mode    string  `json:"mode"`
	Records int64   `json:"records"`
	Seconds float64 `json:"seconds"`
	MaxRSS  int64   `json:"peakRSSBytes"`
}

// TestBenchDiscover streams MEDSEG_BENCH_RECORDS records of `hubble observe -o jsonpb` through
// MEDSEG_BENCH_FLOW_DEVICES devices with kubectl-medseg discover, in a child process whose peak
// RSS the kernel reports, against a baseline child that only decodes the same records with
// protojson.
func TestBenchDiscover(t *testing.T) {
	if os.Getenv("MEDSEG_BENCH_CHILD") != "" {
		t.Skip("child process")
	}
	records := envInt(t, "MEDSEG_BENCH_RECORDS", 20000)
	devices := envInt(t, "MEDSEG_BENCH_FLOW_DEVICES", 100)
	dir := t.TempDir()
	h := newFlowHospital(devices)

	devFile := filepath.Join(dir, "devices.yaml")
	var docs bytes.Buffer
	for _, d := range h.devices {
		d.APIVersion, d.Kind = v1alpha1.GroupVersion.String(), "MedicalDevice"
		raw, err := yaml.Marshal(d)
		must(t, err)
		docs.WriteString("---\n")
		docs.Write(raw)
	}
	must(t, os.WriteFile(devFile, docs.Bytes(), 0o600))

	flowFile := filepath.Join(dir, "flows.jsonpb")
	f, err := os.Create(flowFile)
	must(t, err)
	bw := bufio.NewWriterSize(f, 1<<20)
	w := capture.NewWriter(bw)
	genStart := time.Now()
	h.traffic(records, time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC), func(fl *flowpb.Flow) { must(t, w.Write(capture.Response(fl))) })
	must(t, bw.Flush())
	must(t, f.Close())
	st, err := os.Stat(flowFile)
	must(t, err)
	t.Logf("wrote %d records (%.0f MiB) for %d devices in %.1fs", records, float64(st.Size())/(1<<20), devices, time.Since(genStart).Seconds())

	// Baseline first, then discover, then the baseline again: the page cache is warm for both and
	// the baseline is the faster of its two runs, so the ratio is not flattered.
	base1 := runChild(t, "decode", flowFile, devFile)
	disc := runChild(t, "discover", flowFile, devFile)
	base2 := runChild(t, "decode", flowFile, devFile)
	base := base1
	if base2.Seconds < base.Seconds {
		base = base2
	}
	if disc.Records != int64(records) || base.Records != int64(records) {
		t.Fatalf("discover read %d records and the baseline %d, want %d", disc.Records, base.Records, records)
	}
	ratio := disc.Seconds / base.Seconds
	t.Logf("decode-only baseline: %.2fs (%.0f records/s), peak RSS %.1f MiB", base.Seconds, float64(records)/base.Seconds, float64(base.MaxRSS)/(1<<20))
	t.Logf("discover:             %.2fs (%.0f records/s), peak RSS %.1f MiB; time ratio to the baseline %.2f",
		disc.Seconds, float64(records)/disc.Seconds, float64(disc.MaxRSS)/(1<<20), ratio)
	writeJSON(t, "bench-discover.json", map[string]any{
		"records": records, "devices": devices, "fileBytes": st.Size(), "baseline": base, "baselineRuns": []discoverResult{base1, base2},
		"discover": disc, "ratio": ratio, "discoverRecordsPerSecond": float64(records) / disc.Seconds,
	})
}

// runChild runs this test binary again as a child doing one mode, and reads its peak RSS from
// the kernel's accounting of the exited process.
func runChild(t *testing.T, mode, flows, devices string) discoverResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchDiscoverChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MEDSEG_BENCH_CHILD="+mode, "MEDSEG_BENCH_FLOWS="+flows, "MEDSEG_BENCH_DEVICES="+devices)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("child %s: %v\n%s\n%s", mode, err, out.String(), errOut.String())
	}
	var r discoverResult
	for _, l := range strings.Split(out.String(), "\n") {
		if j, ok := strings.CutPrefix(l, "RESULT "); ok {
			must(t, json.Unmarshal([]byte(j), &r))
		}
	}
	if r.Mode != mode {
		t.Fatalf("child %s printed no result:\n%s\n%s", mode, out.String(), errOut.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSS = ru.Maxrss * 1024 // Linux reports KiB
	}
	return r
}

// TestBenchDiscoverChild is the child: it does nothing unless MEDSEG_BENCH_CHILD names a mode.
func TestBenchDiscoverChild(t *testing.T) {
	mode := os.Getenv("MEDSEG_BENCH_CHILD")
	if mode == "" {
		t.Skip("run by TestBenchDiscover")
	}
	flows, devices := os.Getenv("MEDSEG_BENCH_FLOWS"), os.Getenv("MEDSEG_BENCH_DEVICES")
	var records int64
	start := time.Now()
	switch mode {
	case "decode":
		// The least any reader of these files must do: split lines, decode each with protojson.
		f, err := os.Open(flows)
		must(t, err)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		var res observerpb.GetFlowsResponse
		opts := protojson.UnmarshalOptions{DiscardUnknown: true}
		for sc.Scan() {
			must(t, opts.Unmarshal(sc.Bytes(), &res))
			records++
		}
		must(t, sc.Err())
		must(t, f.Close())
	case "discover":
		var out, errOut bytes.Buffer
		code := cli.Run([]string{"discover", "--flows", flows, "-f", devices, "-A", "-o", "json"}, nil, &out, &errOut)
		if code != 0 {
			t.Fatalf("discover: exit %d: %s", code, errOut.String())
		}
		var p struct {
			Stats discover.Stats `json:"stats"`
		}
		must(t, json.Unmarshal(out.Bytes(), &p))
		records = int64(p.Stats.Records)
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	raw, err := json.Marshal(discoverResult{Mode: mode, Records: records, Seconds: time.Since(start).Seconds()})
	must(t, err)
	fmt.Printf("RESULT %s\n", raw)
}

// streamRelay is Hubble Relay on loopback, sending one recorded cycle of flows over and over as
// fast as the client takes them, each cycle shifted forward in time.
type streamRelay struct {
	observerpb.UnimplementedObserverServer
	flows []*flowpb.Flow
	times []time.Time
	span  time.Duration
}

func (r *streamRelay) GetFlows(_ *observerpb.GetFlowsRequest, s grpc.ServerStreamingServer[observerpb.GetFlowsResponse]) error {
	res := &observerpb.GetFlowsResponse{}
	for cycle := 0; ; cycle++ {
		shift := time.Duration(cycle) * r.span
		for i, f := range r.flows {
			// Send marshals before it returns, so the one message can be reused.
			f.Time = timestamppb.New(r.times[i].Add(shift))
			res.ResponseTypes = &observerpb.GetFlowsResponse_Flow{Flow: f}
			res.Time = f.Time
			if err := s.Send(res); err != nil {
				return err
			}
		}
	}
}

// deviceLister is the follower's view of the devices (the manager's cache in the operator).
type deviceLister struct {
	client.Reader
	devices []*v1alpha1.MedicalDevice
}

func (l deviceLister) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	dl, ok := list.(*v1alpha1.MedicalDeviceList)
	if !ok {
		return fmt.Errorf("unexpected list %T", list)
	}
	dl.Items = dl.Items[:0]
	for _, d := range l.devices {
		dl.Items = append(dl.Items, *d)
	}
	return nil
}

// TestBenchFollower measures the operator's traffic follower on a loopback gRPC stream from
// Relay: flows per second taken in, and the heap after each quarter of the run.
func TestBenchFollower(t *testing.T) {
	if os.Getenv("MEDSEG_BENCH_CHILD") != "" {
		t.Skip("child process")
	}
	devices := envInt(t, "MEDSEG_BENCH_FLOW_DEVICES", 100)
	seconds := envInt(t, "MEDSEG_BENCH_FOLLOW_SECONDS", 3)
	h := newFlowHospital(devices)
	relay := &streamRelay{}
	start := time.Now().Add(-time.Hour)
	h.traffic(20000, start, func(f *flowpb.Flow) {
		relay.flows = append(relay.flows, f)
		relay.times = append(relay.times, f.GetTime().AsTime())
	})
	relay.span = relay.times[len(relay.times)-1].Sub(start) + time.Second

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := float64(ms.HeapAlloc) / (1 << 20)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	gs := grpc.NewServer()
	observerpb.RegisterObserverServer(gs, relay)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	f := controllers.NewTrafficFollower(controllers.TrafficConfig{
		Relay:  discover.RelayOptions{Address: lis.Addr().String()},
		Reader: deviceLister{devices: h.devices}, Window: time.Hour, Interval: time.Minute, Tick: time.Second, Log: logr.Discard(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for range f.Events() { // the device reconciler's queue
		}
	}()
	done := make(chan struct{})
	go func() { _ = f.Start(ctx); close(done) }()
	for f.Flows() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	begin, base := time.Now(), f.Flows()
	var heaps []float64
	quarter := time.Duration(seconds) * time.Second / 4
	for q := 0; q < 4; q++ {
		time.Sleep(quarter)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heaps = append(heaps, float64(ms.HeapAlloc)/(1<<20)-before)
		if path := os.Getenv("MEDSEG_BENCH_HEAP_PROFILE"); path != "" && q == 0 {
			pf, err := os.Create(path + ".q1")
			must(t, err)
			must(t, pprof.WriteHeapProfile(pf))
			must(t, pf.Close())
		}
	}
	flows := f.Flows() - base
	elapsed := time.Since(begin).Seconds()
	if path := os.Getenv("MEDSEG_BENCH_HEAP_PROFILE"); path != "" { // the follower's heap, while it runs
		pf, err := os.Create(path)
		must(t, err)
		must(t, pprof.WriteHeapProfile(pf))
		must(t, pf.Close())
	}
	cancel()
	gs.Stop()
	<-done
	if flows == 0 {
		t.Fatal("the follower took no flows")
	}
	rate := float64(flows) / elapsed
	t.Logf("follower: %d flows in %.1fs = %.0f flows/s through %d devices; heap growth after each quarter of the run %.1f MiB (over %.1f MiB before it started)", flows, elapsed, rate, devices, heaps, before)
	writeJSON(t, "bench-follower.json", map[string]any{"devices": devices, "flows": flows, "seconds": elapsed, "flowsPerSecond": rate, "heapGrowthMiBByQuarter": heaps, "heapBeforeMiB": before})
}

func writeJSON(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := json.MarshalIndent(v, "", "  ")
	must(t, err)
	dir := filepath.Join(testenv.RepoRoot(), "test", "output")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, name), append(raw, '\n'), 0o600))
}
