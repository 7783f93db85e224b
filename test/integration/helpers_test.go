package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/demo"
	"github.com/medseg/medseg/internal/manifest"
	"github.com/medseg/medseg/internal/operator"
	"github.com/medseg/medseg/internal/testenv"
)

// startOperator starts the real operator (operator.New) in-process against envtest and stops
// it when the test ends. It returns the write counter wrapping the operator's client.
func startOperator(t *testing.T) *testenv.Counter {
	t.Helper()
	counter, _ := runOperator(t)
	return counter
}

// startOperatorStoppable starts an operator and returns a function that stops it and waits.
func startOperatorStoppable(t *testing.T) func() {
	t.Helper()
	_, stop := runOperator(t)
	return stop
}

// runOperator starts an operator whose client counts its calls, and returns the counter and an
// idempotent stop, which also runs when the test ends.
func runOperator(t *testing.T) (*testenv.Counter, func()) {
	t.Helper()
	return runOperatorWith(t, nil)
}

// runOperatorWith is runOperator with the configuration changed by configure.
func runOperatorWith(t *testing.T, configure func(*operator.Config)) (*testenv.Counter, func()) {
	t.Helper()
	counter := testenv.NewCounter()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := operator.Config{
		MetricsAddr: "0", ProbeAddr: "0", DeviceWorkers: 4, PolicyWorkers: 2,
		NewClient: counter.NewClient, SkipNameValidation: true,
	}
	if configure != nil {
		configure(&cfg)
	}
	mgr, err := operator.New(ctx, env.Config, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("manager stopped with error: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("manager did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return counter, stop
}

// applySamples creates the objects of config/samples, namespaces and policies first, each
// namespace suffixed so tests do not collide. It returns the device keys.
func applySamples(t *testing.T, suffix string) []types.NamespacedName {
	t.Helper()
	return applyHospital(t, filepath.Join(testenv.RepoRoot(), "config", "samples"), suffix)
}

// applyHospital creates the objects of a sample hospital (a file or directory), as applySamples.
func applyHospital(t *testing.T, path, suffix string) []types.NamespacedName {
	t.Helper()
	objs, err := manifest.Read([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	order := map[string]int{"Namespace": 0, "SegmentPolicy": 1, "Pod": 2}
	sort.SliceStable(objs, func(i, j int) bool {
		oi, ok := order[objs[i].Object.GetKind()]
		if !ok {
			oi = 3
		}
		oj, ok := order[objs[j].Object.GetKind()]
		if !ok {
			oj = 3
		}
		return oi < oj
	})
	var devices []types.NamespacedName
	// Every test hospital uses the sample addresses: remove the devices when the test ends, or
	// the next hospital's devices would (rightly) report AddressConflict.
	t.Cleanup(func() {
		for _, k := range devices {
			d := &v1alpha1.MedicalDevice{}
			d.Namespace, d.Name = k.Namespace, k.Name
			_ = env.Client.Delete(context.Background(), d)
		}
	})
	for _, o := range objs {
		u := o.Object.DeepCopy()
		renameForTest(u.Object, suffix)
		if k := u.GetKind(); k == "SegmentException" || k == "AccessGrant" {
			// Cluster-scoped, named freely: each test hospital gets its own.
			u.SetName(u.GetName() + suffix)
			t.Cleanup(func() { _ = env.Client.Delete(context.Background(), u) })
		}
		demo.FreshenExceptions(u, time.Now())
		// Renaming namespaces changed the flows' peer selectors: approve the renamed flows, as
		// the hospital's commissioner would have.
		if err := demo.Recommission(u); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(context.Background(), u); err != nil {
			t.Fatalf("%s: %v", o.Source, err)
		}
		if u.GetKind() == "MedicalDevice" {
			devices = append(devices, types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()})
		}
	}
	return devices
}

var sampleNamespaces = []string{"icu", "nicu", "radiology", "lab", "clinical-apps", "integration"}

// renameForTest suffixes every sample namespace name (as object namespace, Namespace name, and
// label value or selector value) and every SegmentPolicy name, so each test has its own hospital.
func renameForTest(v any, suffix string) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && (k == "namespace" || k == "name" || k == "kubernetes.io/metadata.name" || k == "medseg.io/zone") {
				for _, ns := range append(sampleNamespaces, "critical-care", "diagnostics") {
					if s == ns {
						x[k] = s + suffix
					}
				}
				continue
			}
			if k == "values" {
				if arr, ok := val.([]any); ok {
					for i, e := range arr {
						for _, ns := range sampleNamespaces {
							if e == ns {
								arr[i] = ns + suffix
							}
						}
					}
				}
			}
			renameForTest(val, suffix)
		}
	case []any:
		for _, e := range x {
			renameForTest(e, suffix)
		}
	}
}

// createGateways creates a labelled gateway pod for every device.
func createGateways(t *testing.T, devices []types.NamespacedName) {
	t.Helper()
	ctx := context.Background()
	for _, k := range devices {
		var d v1alpha1.MedicalDevice
		if err := env.Client.Get(ctx, k, &d); err != nil {
			t.Fatal(err)
		}
		lbls := map[string]string{v1alpha1.LabelGateway: "true"}
		for kk, vv := range d.Spec.Gateway.PodSelector.MatchLabels {
			lbls[kk] = vv
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "gw-" + d.Name, Namespace: d.Namespace, Labels: lbls},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "proxy", Image: "registry.local/gateway:1"}}},
		}
		if err := env.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
}

func getDevice(g gomega.Gomega, k types.NamespacedName) *v1alpha1.MedicalDevice {
	var d v1alpha1.MedicalDevice
	g.Expect(env.Client.Get(context.Background(), k, &d)).To(gomega.Succeed())
	return &d
}

func condition(d *v1alpha1.MedicalDevice, t string) *metav1.Condition {
	return meta.FindStatusCondition(d.Status.Conditions, t)
}

// kstatusOf computes the kstatus (what Flux and Argo's generic health read) of an object.
func kstatusOf(g gomega.Gomega, obj client.Object) status.Status {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	return res.Status
}

func getCNP(g gomega.Gomega, ns, name string) *ciliumv2.CiliumNetworkPolicy {
	var cnp ciliumv2.CiliumNetworkPolicy
	g.Expect(env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &cnp)).To(gomega.Succeed())
	return &cnp
}

// ports lists the ports a device policy opens, as "ingress:8443/TCP" and "egress:443/TCP",
// without its DNS rule.
func ports(cnp *ciliumv2.CiliumNetworkPolicy) string {
	var out []string
	for _, r := range cnp.Spec.Ingress {
		for _, pr := range r.ToPorts {
			for _, p := range pr.Ports {
				out = append(out, fmt.Sprintf("ingress:%s/%s", p.Port, p.Protocol))
			}
		}
	}
	for _, r := range cnp.Spec.Egress {
		if len(r.ToEndpoints) == 1 && r.ToEndpoints[0].MatchLabels["k8s:k8s-app"] == "kube-dns" {
			continue // name resolution, in every device policy
		}
		for _, pr := range r.ToPorts {
			for _, p := range pr.Ports {
				out = append(out, fmt.Sprintf("egress:%s/%s", p.Port, p.Protocol))
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func eventReasons(g gomega.Gomega, ns, name string) []string {
	var evs corev1.EventList
	g.Expect(env.Client.List(context.Background(), &evs, client.InNamespace(ns))).To(gomega.Succeed())
	var out []string
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

// segReason is the Segmented condition's reason, or "" before medseg wrote it.
func segReason(d *v1alpha1.MedicalDevice) string {
	if c := condition(d, v1alpha1.ConditionSegmented); c != nil {
		return c.Reason
	}
	return ""
}

// installProtectedInputs installs the protected-inputs admission policies (config/admission) for
// the rest of the test, and waits, once it is removed, until the API server no longer applies it.
func installProtectedInputs(t *testing.T, probe types.NamespacedName) {
	t.Helper()
	ctx := context.Background()
	objs, err := manifest.Read([]string{filepath.Join(testenv.RepoRoot(), "config", "admission", "protected-inputs.yaml")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o.Object); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, o := range objs {
			_ = env.Client.Delete(context.Background(), o.Object)
		}
		// The API server drops the policy from its admission chain a moment later; later tests
		// create commissioned devices as an admin who is no commissioner.
		d := getDevice(gomega.NewWithT(t), probe).DeepCopy()
		d.ObjectMeta = metav1.ObjectMeta{Name: "admission-probe", Namespace: probe.Namespace}
		d.Status = v1alpha1.MedicalDeviceStatus{}
		gomega.NewWithT(t).Eventually(func() error {
			if err := env.Client.Create(context.Background(), d.DeepCopy(), client.DryRunAll); err != nil {
				return err
			}
			// and the guard on deletes, or the tests' cleanups could not remove their devices
			victim := &v1alpha1.MedicalDevice{}
			victim.Namespace, victim.Name = probe.Namespace, probe.Name
			return env.Client.Delete(context.Background(), victim, client.DryRunAll)
		}, timeout, pollInterval).Should(gomega.Succeed())
	})
}
