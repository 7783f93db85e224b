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
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/operator"
	"github.com/medseg/medseg/internal/render"
	"github.com/medseg/medseg/internal/testenv"
)

const workers = 8 // the operator's device workers, and the baseline's parallelism

// Result is what one run measured.
type Result struct {
	Devices          int     `json:"devices"`
	OperatorQPS      string  `json:"operatorQPS"`
	Namespaces       int     `json:"namespaces"`
	Policies         int     `json:"policies"`
	BaselineSeconds  float64 `json:"baselineApplySeconds"`
	ColdStartSeconds float64 `json:"coldStartSeconds"`
	ColdStartRatio   float64 `json:"coldStartRatio"`
	// FirstReconcileSeconds is when the first device reconcile ran, after the informers synced.
	FirstReconcileSeconds float64 `json:"firstReconcileSeconds"`
	ColdStartWrites       int     `json:"coldStartWrites"`
	// ColdStartReconcilesPerDevice counts device reconciles (each reads its device once).
	ColdStartReconcilesPerDevice float64 `json:"coldStartReconcilesPerDevice"`
	// SameWritesSeconds is a second baseline: a plain client issues the writes the operator
	// issues per device (the CNP apply and the status medseg wrote), with no reading or
	// planning. ColdStartSameWritesRatio is therefore medseg's own overhead.
	SameWritesSeconds        float64 `json:"sameWritesBaselineSeconds"`
	ColdStartSameWritesRatio float64 `json:"coldStartSameWritesRatio"`
	// Machine CPU busy (all processes: API server, etcd, operator, harness) in each phase.
	BaselineBusyPercent   float64 `json:"baselineBusyPercent"`
	SameWritesBusyPercent float64 `json:"sameWritesBusyPercent"`
	ColdStartBusyPercent  float64 `json:"coldStartBusyPercent"`
	// DeviceBytes is one converged device as stored (JSON, managedFields included); StatusBytes
	// its status; CNPBytes its CiliumNetworkPolicy.
	DeviceBytes        int     `json:"deviceBytes"`
	StatusBytes        int     `json:"statusBytes"`
	CNPBytes           int     `json:"cnpBytes"`
	ResyncWrites       int     `json:"resyncWrites"`
	KEVDevices         int     `json:"kevDevices"`
	KEVP50Seconds      float64 `json:"kevP50Seconds"`
	KEVP99Seconds      float64 `json:"kevP99Seconds"`
	KEVWritesPerDevice float64 `json:"kevWritesPerChangedDevice"`
	HeapMiBPer1000     float64 `json:"heapMiBPer1000Devices"`
	// Guards: each enforced SegmentPolicy's CCNP. GuardBytes and GuardSpecs are the largest,
	// GuardWrites the guard writes of the cold start and of the KEV update (which changes no
	// address or gateway selector, so it must write no guard).
	GuardBytes           int     `json:"guardBytes"`
	GuardSpecs           int     `json:"guardSpecs"`
	GuardWrites          int     `json:"guardColdStartWrites"`
	GuardKEVWrites       int     `json:"guardKEVWrites"`
	HeapAfterConvergeMiB float64 `json:"heapAfterConvergeMiB"`
	// Approvals: grant churn and many exceptions at once, against the running operator.
	Approvals ApprovalResult `json:"approvals"`
}

func TestBench(t *testing.T) {
	n := 60
	if v := os.Getenv("MEDSEG_BENCH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10 {
			t.Fatalf("MEDSEG_BENCH_N=%q: want an integer ≥ 10", v)
		}
	}
	log.SetLogger(logr.Discard()) // the operator's logs would drown the figures
	env, err := testenv.StartWith(testenv.Options{MedsegCRDs: true, Profiling: os.Getenv("MEDSEG_BENCH_PROFILE") != ""})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	c := env.Client
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	must(t, err)
	r := Result{Devices: n, Namespaces: max(2, n/100), Policies: max(1, n/2000), OperatorQPS: os.Getenv("MEDSEG_BENCH_QPS")}
	if r.OperatorQPS == "" {
		r.OperatorQPS = fmt.Sprintf("default (%d, burst %d)", operator.DefaultQPS, operator.DefaultBurst)
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
	profiled := profileAPIServer(t, env, "baseline")
	cpu := busy()
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
	r.BaselineBusyPercent = busy().since(cpu)
	profiled()
	deleteAllCNPs(t, c, "baseline")

	// Cold start: operator start until every device is Ready.
	runtime.GC()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	counter := testenv.NewCounter()
	profiled = profileAPIServer(t, env, "cold-start")
	if dir := os.Getenv("MEDSEG_BENCH_PROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, "operator-cold-start.pprof"))
		must(t, err)
		must(t, pprof.StartCPUProfile(f))
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	stop := startOperator(t, env, counter)
	cpu = busy()
	start = time.Now()
	var progress []string // "count@seconds" at the first Ready device and every tenth
	ready := map[types.NamespacedName]bool{}
	waitAll(t, wc, n, func(d *v1alpha1.MedicalDevice) bool {
		cond := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ConditionReady)
		ok := cond != nil && cond.Status == metav1.ConditionTrue && d.Status.ObservedGeneration == d.Generation
		if k := client.ObjectKeyFromObject(d); ok && !ready[k] {
			ready[k] = true
			if len(ready) == 1 || len(ready)%max(1, n/10) == 0 {
				progress = append(progress, fmt.Sprintf("%d@%.1fs", len(ready), time.Since(start).Seconds()))
			}
		}
		return ok
	})
	r.ColdStartSeconds = time.Since(start).Seconds()
	r.FirstReconcileSeconds = counter.First().Sub(start).Seconds()
	t.Logf("cold start: Ready devices by seconds since the operator started: %s", strings.Join(progress, " "))
	r.ColdStartBusyPercent = busy().since(cpu)
	pprof.StopCPUProfile()
	profiled()
	r.ColdStartRatio = r.ColdStartSeconds / r.BaselineSeconds
	r.ColdStartWrites = counter.Writes()
	r.ColdStartReconcilesPerDevice = float64(counter.Get("get MedicalDevice")) / float64(n)
	// The heap of the converged operator: once its work has settled (no reconcile for 2 s), and
	// after two collections, so the garbage of the last reconciles is not counted as live.
	settle(counter)
	runtime.GC()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	r.HeapAfterConvergeMiB = float64(after.HeapAlloc) / (1 << 20)
	if dir := os.Getenv("MEDSEG_BENCH_PROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, "heap-after-converge.pprof"))
		must(t, err)
		must(t, pprof.WriteHeapProfile(f))
		_ = f.Close()
	}
	r.HeapMiBPer1000 = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / (1 << 20) / (float64(n) / 1000)
	// Let the coalesced SegmentPolicy recounts land before stopping.
	waitPolicies(t, c, n)
	var sample v1alpha1.MedicalDevice
	must(t, c.Get(ctx, devices[0], &sample))
	var sampleCNP ciliumv2.CiliumNetworkPolicy
	must(t, c.Get(ctx, types.NamespacedName{Namespace: sample.Namespace, Name: "medseg-" + sample.Name}, &sampleCNP))
	r.DeviceBytes, r.StatusBytes, r.CNPBytes = jsonSize(sample), jsonSize(sample.Status), jsonSize(sampleCNP)
	var guards ciliumv2.CiliumClusterwideNetworkPolicyList
	must(t, c.List(ctx, &guards))
	for _, g := range guards.Items {
		r.GuardBytes, r.GuardSpecs = max(r.GuardBytes, jsonSize(g)), max(r.GuardSpecs, len(g.Specs))
	}
	r.GuardWrites = counter.Get("apply CiliumClusterwideNetworkPolicy")
	if os.Getenv("MEDSEG_BENCH_DEBUG") != "" {
		raw, _ := json.MarshalIndent(sample, "", " ")
		t.Logf("device %d bytes, status %d, CNP %d:\n%s", r.DeviceBytes, r.StatusBytes, r.CNPBytes, raw)
		for k, v := range counter.Snapshot() {
			if v > 1 && len(k) > 20 {
				t.Logf("%s: %d", k, v)
			}
		}
	}
	stop()

	r.SameWritesSeconds, r.SameWritesBusyPercent = sameWritesBaseline(t, c, &pol, devices)
	r.ColdStartSameWritesRatio = r.ColdStartSeconds / r.SameWritesSeconds

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

	// A KEV entry for 10% of the devices (MEDSEG_BENCH_KEV_EVERY=100: 1%), applied by the feed's
	// field manager.
	kevEvery := 10
	if v := os.Getenv("MEDSEG_BENCH_KEV_EVERY"); v != "" {
		var err error
		if kevEvery, err = strconv.Atoi(v); err != nil || kevEvery < 1 {
			t.Fatalf("MEDSEG_BENCH_KEV_EVERY=%q: want a positive integer", v)
		}
	}
	var changed []types.NamespacedName
	for i := 0; i < n; i += kevEvery {
		changed = append(changed, devices[i])
	}
	r.KEVDevices = len(changed)
	oldHash := map[types.NamespacedName]string{}
	for _, k := range changed {
		var cnp ciliumv2.CiliumNetworkPolicy
		must(t, c.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: "medseg-" + k.Name}, &cnp))
		oldHash[k] = cnp.Annotations[v1alpha1.AnnotationContentHash]
	}
	writesBefore, guardsBefore := counter.Writes(), counter.Get("apply CiliumClusterwideNetworkPolicy")
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
	pending := map[types.NamespacedName]int{}
	for i, k := range changed {
		pending[types.NamespacedName{Namespace: k.Namespace, Name: "medseg-" + k.Name}] = i
	}
	watchUntil(t, wc, &ciliumv2.CiliumNetworkPolicyList{}, time.Now().Add(time.Duration(n/20+60)*time.Second), func(o client.Object, at time.Time) bool {
		key := client.ObjectKeyFromObject(o)
		if i, ok := pending[key]; ok && o.GetAnnotations()[v1alpha1.AnnotationContentHash] != oldHash[changed[i]] {
			latencies[i] = at.Sub(appliedAt[i]).Seconds()
			delete(pending, key)
		}
		return len(pending) == 0
	})
	waitAll(t, wc, n, func(d *v1alpha1.MedicalDevice) bool { return d.Status.ObservedGeneration == d.Generation })
	time.Sleep(time.Second)
	r.KEVWritesPerDevice = float64(counter.Writes()-writesBefore) / float64(len(changed))
	r.GuardKEVWrites = counter.Get("apply CiliumClusterwideNetworkPolicy") - guardsBefore
	sort.Float64s(latencies)
	r.KEVP50Seconds = latencies[len(latencies)/2]
	r.KEVP99Seconds = latencies[min(len(latencies)-1, len(latencies)*99/100)]

	// Approvals: 100 grants created, opened and expired within a minute; then 5,000 exceptions
	// (MEDSEG_BENCH_APPROVALS) at once, at most half the devices.
	var granted []types.NamespacedName
	for i := 5; i < n; i += 10 {
		granted = append(granted, devices[i])
	}
	many := min(5000, n/2)
	if v := os.Getenv("MEDSEG_BENCH_APPROVALS"); v != "" {
		var err error
		if many, err = strconv.Atoi(v); err != nil || many < 1 {
			t.Fatalf("MEDSEG_BENCH_APPROVALS=%q: want a positive integer", v)
		}
	}
	r.Approvals = benchApprovals(t, c, wc, counter, granted, devices, 100, many)
	stop()

	report(t, r)
	if r.ResyncWrites != 0 {
		t.Errorf("a resync of an unchanged cluster wrote %d times", r.ResyncWrites)
	}
	// The echo of medseg's own CNP write is dropped: without that every device is reconciled
	// twice; with it about 1.3 times (echoes that outrun the apply's response still pass).
	if r.ColdStartReconcilesPerDevice > 1.75 {
		t.Errorf("a cold start reconciled each device %.2f times: are medseg's own CNP events dropped?", r.ColdStartReconcilesPerDevice)
	}
	if a := r.Approvals; a.ReconcilesPerChange > 1.5 || a.DeviceWritesPerChange > 2 {
		t.Errorf("an approval change cost %.2f device reconciles and %.2f device writes", a.ReconcilesPerChange, a.DeviceWritesPerChange)
	}
	if r.GuardKEVWrites != 0 {
		t.Errorf("a KEV update (no address or gateway changed) rewrote guards %d times", r.GuardKEVWrites)
	}
	// One CNP write and one status write per changed device; allow a status write racing the CNP.
	if r.KEVWritesPerDevice > 3 {
		t.Errorf("the KEV update cost %.1f writes per changed device", r.KEVWritesPerDevice)
	}
}

func report(t *testing.T, r Result) {
	t.Logf("devices %d in %d namespaces, %d policies", r.Devices, r.Namespaces, r.Policies)
	t.Logf("baseline SSA of %d CNPs: %.1fs (machine %.0f%% busy); same writes as medseg (CNP and status): %.1fs (%.0f%%)",
		r.Devices, r.BaselineSeconds, r.BaselineBusyPercent, r.SameWritesSeconds, r.SameWritesBusyPercent)
	t.Logf("cold start until all Ready: %.1fs (%.0f%%; first reconcile after %.1fs); ratio %.2f to the CNP baseline, %.2f to the same writes; cold-start writes %d, reconciles per device %.2f",
		r.ColdStartSeconds, r.ColdStartBusyPercent, r.FirstReconcileSeconds, r.ColdStartRatio, r.ColdStartSameWritesRatio, r.ColdStartWrites, r.ColdStartReconcilesPerDevice)
	t.Logf("device %d bytes as stored (status %d), CNP %d bytes", r.DeviceBytes, r.StatusBytes, r.CNPBytes)
	t.Logf("largest guard %d bytes, %d specs; guard writes: cold start %d, KEV update %d", r.GuardBytes, r.GuardSpecs, r.GuardWrites, r.GuardKEVWrites)
	t.Logf("resync writes: %d; KEV on %d devices: p50 %.2fs p99 %.2fs, %.2f writes per changed device",
		r.ResyncWrites, r.KEVDevices, r.KEVP50Seconds, r.KEVP99Seconds, r.KEVWritesPerDevice)
	t.Logf("heap after convergence %.1f MiB, %.1f MiB per 1,000 devices", r.HeapAfterConvergeMiB, r.HeapMiBPer1000)
	a := r.Approvals
	t.Logf("approval churn: %d grants created, opened %.0fs and expired %.0fs later (%d changes, %.0fs): per change %.2f device reconciles, %.2f device writes, %.2f approval status writes (%d other writes); notBefore to flow open p50 %.2fs p99 %.2fs, notAfter to closed p99 %.2fs",
		a.ChurnGrants, a.ChurnOpenAfter, a.ChurnCloseAfter, a.ChurnChanges, a.ChurnSeconds, a.ReconcilesPerChange, a.DeviceWritesPerChange, a.ApprovalStatusPerChange, a.OtherWrites,
		a.OpenP50Seconds, a.OpenP99Seconds, a.CloseP99Seconds)
	t.Logf("%d exceptions at once: all Active in %.1fs; per exception %.2f device reconciles, %.2f writes", a.ManyExceptions, a.ManySeconds, a.ManyReconcilesPerApproval, a.ManyWritesPerApproval)
	dir := filepath.Join(testenv.RepoRoot(), "test", "output")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		raw, _ := json.MarshalIndent(r, "", "  ")
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("bench-%d-qps-%s.json", r.Devices, strings.Fields(r.OperatorQPS)[0])), raw, 0o644)
	}
}

// sameWritesBaseline times a plain client issuing, per device, the two writes the operator
// issues on a cold start: the server-side apply of the device's CNP and a status update carrying
// the status medseg wrote. It runs on copies of the converged devices in namespace "baseline"
// (created and removed outside the clock) while no operator runs. It returns the seconds and how
// busy the machine was.
// settle waits until the operator has not reconciled a device for 2 s (at most a minute).
func settle(counter *testenv.Counter) {
	last, quiet := counter.Get("get MedicalDevice"), time.Now()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if n := counter.Get("get MedicalDevice"); n != last {
			last, quiet = n, time.Now()
		} else if time.Since(quiet) >= 2*time.Second {
			return
		}
	}
}

func sameWritesBaseline(t *testing.T, c client.Client, pol *v1alpha1.SegmentPolicy, devices []types.NamespacedName) (float64, float64) {
	ctx := context.Background()
	n := len(devices)
	copies := make([]*v1alpha1.MedicalDevice, n)
	statuses := make([]v1alpha1.MedicalDeviceStatus, n)
	cnps := make([]*unstructured.Unstructured, n)
	parallel(n, func(i int) {
		var d v1alpha1.MedicalDevice
		must(t, c.Get(ctx, devices[i], &d))
		res, err := render.Device(render.Input{Device: &d, Policy: pol, Priority: v1alpha1.PriorityScheduled, Now: time.Now()})
		must(t, err)
		res.CNP.Namespace, res.CNP.OwnerReferences = "baseline", nil
		cnps[i], err = render.ToUnstructured(res.CNP)
		must(t, err)
		statuses[i] = *d.Status.DeepCopy()
		cp := &v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: "baseline"}, Spec: *d.Spec.DeepCopy()}
		must(t, c.Create(ctx, cp))
		cp.ManagedFields = nil // as the operator's cache strips them: the API server keeps its own
		copies[i] = cp
	})
	cpu := busy()
	start := time.Now()
	parallel(n, func(i int) {
		must(t, c.Apply(ctx, client.ApplyConfigurationFromUnstructured(cnps[i]), client.FieldOwner("baseline"), client.ForceOwnership))
		copies[i].Status = statuses[i]
		must(t, c.Status().Update(ctx, copies[i], client.FieldOwner("baseline")))
	})
	secs, busyPct := time.Since(start).Seconds(), busy().since(cpu)
	// One delete per object: a delete collection of 10,000 devices ends, at times, in an HTTP/2
	// stream reset of its 60 MB response.
	parallel(n, func(i int) {
		must(t, client.IgnoreNotFound(c.Delete(ctx, copies[i])))
		must(t, client.IgnoreNotFound(c.Delete(ctx, &ciliumv2.CiliumNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: cnps[i].GetName(), Namespace: "baseline"}})))
	})
	return secs, busyPct
}

func jsonSize(v any) int {
	raw, _ := json.Marshal(v)
	return len(raw)
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
	if i%10 == 5 { // vendor access only inside an AccessGrant (the approval churn)
		d.Spec.Flows[2].Access = v1alpha1.AccessGranted
	}
	// A hospital in clinical use: its devices are commissioned, so risk alone sets their mode.
	d.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: "biomed", ApprovedAt: metav1.NewTime(time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)),
		Ticket: "CHG-1", FlowsHash: v1alpha1.FlowsHash(d.Spec.Flows)}
	return d
}

func startOperator(t *testing.T, env *testenv.Env, counter *testenv.Counter) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := workers
	if v := os.Getenv("MEDSEG_BENCH_WORKERS"); v != "" { // the operator's --device-workers
		var err error
		if w, err = strconv.Atoi(v); err != nil || w < 1 {
			t.Fatalf("MEDSEG_BENCH_WORKERS=%q: want a positive integer", v)
		}
	}
	cfg := operator.Config{MetricsAddr: "0", ProbeAddr: "0", DeviceWorkers: w, PolicyWorkers: 2,
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

// waitAll waits until ok holds for all n devices. It lists once and then watches: polling a
// list of every device every few hundred milliseconds would load the API server the operator
// is measured against (it cost 13% of the API server's CPU during a 1,000-device cold start).
func waitAll(t *testing.T, wc client.WithWatch, n int, ok func(*v1alpha1.MedicalDevice) bool) {
	t.Helper()
	good := map[types.NamespacedName]bool{}
	watchUntil(t, wc, &v1alpha1.MedicalDeviceList{}, time.Now().Add(time.Duration(n/10+120)*time.Second), func(o client.Object, _ time.Time) bool {
		good[client.ObjectKeyFromObject(o)] = ok(o.(*v1alpha1.MedicalDevice))
		done := 0
		for _, g := range good {
			if g {
				done++
			}
		}
		return done == n
	})
}

// watchUntil lists a kind, then watches it from that list's resourceVersion (listing again if
// the watch ends), and calls seen with every object and when it was seen, until seen says
// done. It fails the test at the deadline.
func watchUntil(t *testing.T, wc client.WithWatch, list client.ObjectList, deadline time.Time, seen func(client.Object, time.Time) bool) {
	t.Helper()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for {
		l := list.DeepCopyObject().(client.ObjectList)
		must(t, wc.List(ctx, l))
		items, err := meta.ExtractList(l)
		must(t, err)
		now := time.Now()
		for _, it := range items {
			if seen(it.(client.Object), now) {
				return
			}
		}
		w, err := wc.Watch(ctx, list.DeepCopyObject().(client.ObjectList), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: l.GetResourceVersion()}})
		must(t, err)
		for ev := range w.ResultChan() {
			if o, ok := ev.Object.(client.Object); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) && seen(o, time.Now()) {
				w.Stop()
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("timed out waiting for %T", list)
		}
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

// deleteAllCNPs removes every CNP of a namespace. At 50,000 a single delete-collection outlives
// the API server's request timeout; each call deletes part, so it is repeated until none is left.
func deleteAllCNPs(t *testing.T, c client.Client, ns string) {
	t.Helper()
	ctx := context.Background()
	for attempt := 0; ; attempt++ {
		err := c.DeleteAllOf(ctx, &ciliumv2.CiliumNetworkPolicy{}, client.InNamespace(ns))
		var left ciliumv2.CiliumNetworkPolicyList
		must(t, c.List(ctx, &left, client.InNamespace(ns), client.Limit(1)))
		if len(left.Items) == 0 {
			return
		}
		if attempt == 20 {
			t.Fatalf("CNPs of namespace %s still there after 20 delete-collections (last: %v)", ns, err)
		}
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

// profileAPIServer records the API server's CPU profile while a phase runs, when
// MEDSEG_BENCH_PROFILE names a directory (kube-apiserver serves /debug/pprof by default); the
// returned function waits for it. etcd runs in its own process and is not in the profile.
func profileAPIServer(t *testing.T, env *testenv.Env, phase string) func() {
	dir := os.Getenv("MEDSEG_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	seconds := os.Getenv("MEDSEG_BENCH_PROFILE_SECONDS")
	if seconds == "" {
		seconds = "10"
	}
	hc, err := rest.HTTPClientFor(env.Config)
	must(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := hc.Get(strings.TrimSuffix(env.Config.Host, "/") + "/debug/pprof/profile?seconds=" + seconds)
		if err != nil {
			t.Logf("apiserver profile: %v", err)
			return
		}
		defer func() { _ = resp.Body.Close() }()
		raw, _ := io.ReadAll(resp.Body)
		path := filepath.Join(dir, "apiserver-"+phase+".pprof")
		if err := os.WriteFile(path, raw, 0o644); err == nil {
			t.Logf("apiserver CPU profile of %s: %s (%s)", phase, path, resp.Status)
		}
	}()
	return func() { <-done }
}

// cpuSample is the machine's CPU time from /proc/stat: busy (everything but idle and iowait)
// and total, in clock ticks.
type cpuSample struct{ busy, total float64 }

func busy() cpuSample {
	var c cpuSample
	raw, err := os.ReadFile("/proc/stat")
	f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])
	if err != nil || len(f) < 5 || f[0] != "cpu" {
		return c // not Linux: busy figures read 0
	}
	for i, v := range f[1:min(len(f), 9)] { // guest time is already counted as user time
		x, _ := strconv.ParseFloat(v, 64)
		c.total += x
		if i != 3 && i != 4 {
			c.busy += x
		}
	}
	return c
}

// since is the percentage of the machine's CPU that was busy between o and c.
func (c cpuSample) since(o cpuSample) float64 {
	if c.total <= o.total {
		return 0
	}
	return 100 * (c.busy - o.busy) / (c.total - o.total)
}
