// Package bench measures medseg at hospital scale against a real API server: cold start against
// a plain server-side-apply baseline measured in the same run, writes during a resync of an
// unchanged cluster, a KEV update touching 10% of the devices, and heap per 1,000 devices.
//
// `make bench` runs it with MEDSEG_BENCH_N=1000 and 10000; `make test` runs a small smoke size so
// the harness cannot rot. Results are logged and written to test/output/bench-N.json.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/operator"
	"github.com/medseg/medseg/internal/render"
	"github.com/medseg/medseg/internal/testenv"
)

const workers = 8 // the operator's device workers, and the baseline's parallelism

// Result is what one run measured.
type Result struct {
	Devices              int     `json:"devices"`
	OperatorQPS          string  `json:"operatorQPS"`
	Namespaces           int     `json:"namespaces"`
	Policies             int     `json:"policies"`
	BaselineSeconds      float64 `json:"baselineApplySeconds"`
	ColdStartSeconds     float64 `json:"coldStartSeconds"`
	ColdStartRatio       float64 `json:"coldStartRatio"`
	ColdStartWrites      int     `json:"coldStartWrites"`
	ResyncWrites         int     `json:"resyncWrites"`
	KEVDevices           int     `json:"kevDevices"`
	KEVP50Seconds        float64 `json:"kevP50Seconds"`
	KEVP99Seconds        float64 `json:"kevP99Seconds"`
	KEVWritesPerDevice   float64 `json:"kevWritesPerChangedDevice"`
	HeapMiBPer1000       float64 `json:"heapMiBPer1000Devices"`
	HeapAfterConvergeMiB float64 `json:"heapAfterConvergeMiB"`
}

func TestBench(t *testing.T) {
	n := 60
	if v := os.Getenv("MEDSEG_BENCH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10 {
			t.Fatalf("MEDSEG_BENCH_N=%q: want an integer ≥ 10", v)
		}
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	c := env.Client
	r := Result{Devices: n, Namespaces: max(2, n/100), Policies: max(1, n/2000), OperatorQPS: os.Getenv("MEDSEG_BENCH_QPS")}
	if r.OperatorQPS == "" {
		r.OperatorQPS = "default (50, burst 100)"
	}

	// The hospital: namespaces spread over policies, one gateway pod per 10 devices.
	for i := range r.Namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ward-%03d", i), Labels: map[string]string{
			v1alpha1.LabelGatewayNamespace: "true", "bench/zone": fmt.Sprintf("z%d", i%r.Policies)}}}
		must(t, c.Create(ctx, ns))
	}
	for i := range r.Policies {
		must(t, c.Create(ctx, &v1alpha1.SegmentPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("zone-%d", i)},
			Spec: v1alpha1.SegmentPolicySpec{
				Enforcement:       v1alpha1.EnforcementEnforce,
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bench/zone": fmt.Sprintf("z%d", i)}},
				DeviceNetworks:    []string{"10.64.0.0/10"},
			},
		}))
	}
	devices := make([]types.NamespacedName, n)
	parallel(n, func(i int) {
		ns := fmt.Sprintf("ward-%03d", i%r.Namespaces)
		gw := fmt.Sprintf("gw-%d", (i/r.Namespaces)/10)
		d := benchDevice(fmt.Sprintf("dev-%05d", i), ns, gw, i)
		must(t, c.Create(ctx, d))
		devices[i] = types.NamespacedName{Namespace: ns, Name: d.Name}
		if (i/r.Namespaces)%10 == 0 {
			must(t, c.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: gw, Namespace: ns, Labels: map[string]string{"app": gw, v1alpha1.LabelGateway: "true"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "gw", Image: "gw:1"}}}}))
		}
	})

	// Baseline: a plain client server-side applies the same number of CNPs (what the operator
	// renders for these devices), with the operator's parallelism, then they are removed.
	var pol v1alpha1.SegmentPolicy
	must(t, c.Get(ctx, types.NamespacedName{Name: "zone-0"}, &pol))
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "baseline"}}))
	start := time.Now()
	parallel(n, func(i int) {
		var d v1alpha1.MedicalDevice
		must(t, c.Get(ctx, devices[i], &d))
		res, err := render.Device(render.Input{Device: &d, Policy: &pol, Priority: v1alpha1.PriorityScheduled, Now: time.Now()})
		must(t, err)
		res.CNP.Namespace, res.CNP.OwnerReferences, res.CNP.Labels = "baseline", nil, nil
		u, err := render.ToUnstructured(res.CNP)
		must(t, err)
		must(t, c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("baseline"), client.ForceOwnership))
	})
	r.BaselineSeconds = time.Since(start).Seconds()
	must(t, c.DeleteAllOf(ctx, &ciliumv2.CiliumNetworkPolicy{}, client.InNamespace("baseline")))

	// Cold start: operator start until every device is Ready.
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	counter := testenv.NewCounter()
	stop := startOperator(t, env, counter)
	start = time.Now()
	waitAll(t, c, n, func(d *v1alpha1.MedicalDevice) bool {
		cond := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ConditionReady)
		return cond != nil && cond.Status == metav1.ConditionTrue && d.Status.ObservedGeneration == d.Generation
	})
	r.ColdStartSeconds = time.Since(start).Seconds()
	r.ColdStartRatio = r.ColdStartSeconds / r.BaselineSeconds
	r.ColdStartWrites = counter.Writes()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	r.HeapAfterConvergeMiB = float64(after.HeapAlloc) / (1 << 20)
	r.HeapMiBPer1000 = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / (1 << 20) / (float64(n) / 1000)
	// Let the coalesced SegmentPolicy recounts land before stopping.
	waitPolicies(t, c, n)
	if os.Getenv("MEDSEG_BENCH_DEBUG") != "" {
		for k, v := range counter.Snapshot() {
			if v > 1 && len(k) > 20 {
				t.Logf("%s: %d", k, v)
			}
		}
	}
	stop()

	// Steady state: a new operator resyncs the unchanged cluster; it reads every device and writes nothing.
	counter = testenv.NewCounter()
	stop = startOperator(t, env, counter)
	deadline := time.Now().Add(time.Duration(n/50+60) * time.Second)
	for counter.Get("get MedicalDevice") < n {
		if time.Now().After(deadline) {
			t.Fatalf("the resync read only %d of %d devices", counter.Get("get MedicalDevice"), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // writes would follow the reads at once
	r.ResyncWrites = counter.Writes()

	// A KEV entry for 10% of the devices, applied by the feed's field manager.
	var changed []types.NamespacedName
	for i := 0; i < n; i += 10 {
		changed = append(changed, devices[i])
	}
	r.KEVDevices = len(changed)
	oldHash := map[types.NamespacedName]string{}
	for _, k := range changed {
		var cnp ciliumv2.CiliumNetworkPolicy
		must(t, c.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: "medseg-" + k.Name}, &cnp))
		oldHash[k] = cnp.Annotations[v1alpha1.AnnotationContentHash]
	}
	writesBefore := counter.Writes()
	appliedAt := make([]time.Time, len(changed))
	parallel(len(changed), func(i int) {
		k := changed[i]
		kev := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "medseg.io/v1alpha1", "kind": "MedicalDevice",
			"metadata": map[string]any{"name": k.Name, "namespace": k.Namespace},
			"spec":     map[string]any{"vulnerabilities": []any{map[string]any{"id": "CVE-2026-0001", "knownExploited": true}}},
		}}
		appliedAt[i] = time.Now()
		must(t, c.Apply(ctx, client.ApplyConfigurationFromUnstructured(kev), client.FieldOwner("kev-feed")))
	})
	latencies := make([]float64, len(changed))
	pending := map[int]bool{}
	for i := range changed {
		pending[i] = true
	}
	deadline = time.Now().Add(time.Duration(n/20+60) * time.Second)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d devices' policies were not updated after the KEV entry", len(pending))
		}
		var cnps ciliumv2.CiliumNetworkPolicyList
		must(t, c.List(ctx, &cnps))
		seen := time.Now()
		hashes := map[types.NamespacedName]string{}
		for _, p := range cnps.Items {
			hashes[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p.Annotations[v1alpha1.AnnotationContentHash]
		}
		for i := range pending {
			k := changed[i]
			if h := hashes[types.NamespacedName{Namespace: k.Namespace, Name: "medseg-" + k.Name}]; h != "" && h != oldHash[k] {
				latencies[i] = seen.Sub(appliedAt[i]).Seconds()
				delete(pending, i)
			}
		}
		time.Sleep(pollEvery(n) / 2)
	}
	waitAll(t, c, n, func(d *v1alpha1.MedicalDevice) bool { return d.Status.ObservedGeneration == d.Generation })
	time.Sleep(time.Second)
	r.KEVWritesPerDevice = float64(counter.Writes()-writesBefore) / float64(len(changed))
	sort.Float64s(latencies)
	r.KEVP50Seconds = latencies[len(latencies)/2]
	r.KEVP99Seconds = latencies[min(len(latencies)-1, len(latencies)*99/100)]
	stop()

	report(t, r)
	if r.ResyncWrites != 0 {
		t.Errorf("a resync of an unchanged cluster wrote %d times", r.ResyncWrites)
	}
	// One CNP write and one status write per changed device; allow a status write racing the CNP.
	if r.KEVWritesPerDevice > 3 {
		t.Errorf("the KEV update cost %.1f writes per changed device", r.KEVWritesPerDevice)
	}
}

func report(t *testing.T, r Result) {
	t.Logf("devices %d in %d namespaces, %d policies", r.Devices, r.Namespaces, r.Policies)
	t.Logf("baseline SSA of %d CNPs: %.1fs; cold start until all Ready: %.1fs; ratio %.2f; cold-start writes %d",
		r.Devices, r.BaselineSeconds, r.ColdStartSeconds, r.ColdStartRatio, r.ColdStartWrites)
	t.Logf("resync writes: %d; KEV on %d devices: p50 %.2fs p99 %.2fs, %.2f writes per changed device",
		r.ResyncWrites, r.KEVDevices, r.KEVP50Seconds, r.KEVP99Seconds, r.KEVWritesPerDevice)
	t.Logf("heap after convergence %.1f MiB, %.1f MiB per 1,000 devices", r.HeapAfterConvergeMiB, r.HeapMiBPer1000)
	dir := filepath.Join(testenv.RepoRoot(), "test", "output")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		raw, _ := json.MarshalIndent(r, "", "  ")
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("bench-%d-qps-%s.json", r.Devices, strings.Fields(r.OperatorQPS)[0])), raw, 0o644)
	}
}

func benchDevice(name, ns, gw string, i int) *v1alpha1.MedicalDevice {
	addr := fmt.Sprintf("10.%d.%d.%d", 64+i/65025, (i/255)%255, i%255+1)
	d := &v1alpha1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.MedicalDeviceSpec{
			Identity: v1alpha1.DeviceIdentity{Manufacturer: "Acme", Model: "Pump", DeviceType: "InfusionPump"},
			Clinical: v1alpha1.ClinicalImpact{SafetyImpact: v1alpha1.SafetyCatastrophic, MissionImpact: v1alpha1.MissionMEFFailure},
			Network:  v1alpha1.DeviceNetwork{Addresses: []string{addr}},
			Gateway:  v1alpha1.GatewayRef{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": gw}}},
			Flows: []v1alpha1.Flow{
				{Name: "therapy", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierEssential, GatewayPort: 8443, DevicePort: 443,
					Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pump-server"}}}}},
				{Name: "emr", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierClinical, GatewayPort: 2575, PeerPort: 2575,
					Peers: []v1alpha1.Peer{{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "emr"}}}}},
				{Name: "vendor", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierSupport, GatewayPort: 2222, DevicePort: 22,
					Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "vendor-tools"}}}}},
			},
			Vulnerabilities: []v1alpha1.Vulnerability{{ID: "CVE-2025-1000", CVSS: "7.5", EPSS: "0.02"}},
		},
	}
	// A hospital in clinical use: its devices are commissioned, so risk alone sets their mode.
	d.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: "biomed", ApprovedAt: metav1.NewTime(time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)),
		Ticket: "CHG-1", FlowsHash: v1alpha1.FlowsHash(d.Spec.Flows)}
	return d
}

func startOperator(t *testing.T, env *testenv.Env, counter *testenv.Counter) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := operator.Config{MetricsAddr: "0", ProbeAddr: "0", DeviceWorkers: workers, PolicyWorkers: 2,
		NewClient: counter.NewClient, SkipNameValidation: true}
	if v := os.Getenv("MEDSEG_BENCH_QPS"); v != "" { // the operator's --kube-api-qps (burst twice that)
		q, err := strconv.ParseFloat(v, 32)
		if err != nil {
			t.Fatalf("MEDSEG_BENCH_QPS=%q", v)
		}
		cfg.QPS, cfg.Burst = float32(q), int(2*q)
	}
	mgr, err := operator.New(ctx, env.Config, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	}
}

// pollEvery keeps the harness's own lists from loading the API server it measures: listing
// 10,000 devices is tens of megabytes.
func pollEvery(n int) time.Duration {
	return max(250*time.Millisecond, time.Duration(n/10)*time.Millisecond)
}

func waitAll(t *testing.T, c client.Client, n int, ok func(*v1alpha1.MedicalDevice) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Duration(n/10+120) * time.Second)
	for {
		var devs v1alpha1.MedicalDeviceList
		must(t, c.List(context.Background(), &devs))
		done := 0
		for i := range devs.Items {
			if ok(&devs.Items[i]) {
				done++
			}
		}
		if done == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d devices converged", done, n)
		}
		time.Sleep(pollEvery(n))
	}
}

func waitPolicies(t *testing.T, c client.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var pols v1alpha1.SegmentPolicyList
		must(t, c.List(context.Background(), &pols))
		total := 0
		for _, p := range pols.Items {
			total += int(p.Status.Devices)
		}
		if total == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SegmentPolicies count %d of %d devices", total, n)
		}
		time.Sleep(time.Second)
	}
}

func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

func must(t *testing.T, err error) {
	if err != nil {
		t.Helper()
		panic(err) // called from worker goroutines too, where t.Fatal must not be used
	}
}
