package reliability

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/operator"
	"github.com/medseg/medseg/internal/testenv"
)

type running struct {
	counter *testenv.Counter
	cancel  context.CancelFunc
	done    chan error
	elected <-chan struct{}
	once    sync.Once
}

// stop cancels the operator and waits for it, once.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		begin := time.Now()
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("operator: %v", err)
			}
			if d := time.Since(begin); d > 5*time.Second {
				t.Logf("the operator took %s to shut down", d.Round(time.Second))
			}
		case <-time.After(90 * time.Second):
			t.Error("operator did not stop within 90s")
		}
	})
}

func start(t *testing.T, leaderElection bool, tweaks ...func(*operator.Config)) *running {
	t.Helper()
	counter := testenv.NewCounter()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := operator.Config{
		MetricsAddr: "0", ProbeAddr: "0", DeviceWorkers: 4, PolicyWorkers: 2, NewClient: counter.NewClient, SkipNameValidation: true,
		LeaderElection: leaderElection, LeaderElectionNamespace: "default", LeaderElectionID: "medseg-reliability",
	}
	for _, tw := range tweaks {
		tw(&cfg)
	}
	mgr, err := operator.New(ctx, env.Config, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{counter: counter, cancel: cancel, done: make(chan error, 1), elected: mgr.Elected()}
	go func() { r.done <- mgr.Start(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// hospital creates n devices in namespace ns (labelled a gateway namespace), one gateway pod and
// a policy, and returns the device keys.
func hospital(t *testing.T, ns string, n int, subnet int) []types.NamespacedName {
	t.Helper()
	ctx := context.Background()
	c := env.Client
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		v1alpha1.LabelGatewayNamespace: "true", "reliability/ward": ns}}}))
	must(t, c.Create(ctx, &v1alpha1.SegmentPolicy{ObjectMeta: metav1.ObjectMeta{Name: "policy-" + ns},
		Spec: v1alpha1.SegmentPolicySpec{Enforcement: v1alpha1.EnforcementEnforce,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"reliability/ward": ns}},
			DeviceNetworks:    []string{fmt.Sprintf("10.%d.0.0/16", subnet)}}}))
	must(t, c.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: ns, Labels: map[string]string{"app": "gw", v1alpha1.LabelGateway: "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "gw", Image: "gw:1"}}}}))
	keys := make([]types.NamespacedName, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d := device(fmt.Sprintf("dev-%04d", i), ns, fmt.Sprintf("10.%d.%d.%d", subnet, i/250, i%250+1))
			must(t, c.Create(ctx, d))
			keys[i] = types.NamespacedName{Namespace: ns, Name: d.Name}
		}()
	}
	wg.Wait()
	return keys
}

func device(name, ns, addr string) *v1alpha1.MedicalDevice {
	return &v1alpha1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.MedicalDeviceSpec{
			Identity: v1alpha1.DeviceIdentity{Manufacturer: "Acme", Model: "Pump"},
			Clinical: v1alpha1.ClinicalImpact{SafetyImpact: v1alpha1.SafetyCritical, MissionImpact: v1alpha1.MissionMEFFailure},
			Network:  v1alpha1.DeviceNetwork{Addresses: []string{addr}},
			Gateway:  v1alpha1.GatewayRef{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "gw"}}},
			Flows: []v1alpha1.Flow{
				{Name: "alarms", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierEssential, GatewayPort: 7000, PeerPort: 7000,
					Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "alarm-server"}}}}},
				{Name: "emr", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierClinical, GatewayPort: 2575, PeerPort: 2575,
					Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "emr"}}}}},
			},
		},
	}
}

// converged waits until every device is Ready and its CNP exists; it fails the test on timeout.
func converged(t *testing.T, keys []types.NamespacedName, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ready := 0
		var waiting []string
		for _, k := range keys {
			var d v1alpha1.MedicalDevice
			if env.Client.Get(context.Background(), k, &d) != nil {
				continue
			}
			c := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ConditionReady)
			if c != nil && c.Status == metav1.ConditionTrue && d.Status.ObservedGeneration == d.Generation {
				ready++
			} else if len(waiting) < 3 {
				waiting = append(waiting, fmt.Sprintf("%s (generation %d, observed %d, Ready %+v)", k, d.Generation, d.Status.ObservedGeneration, c))
			}
		}
		if ready == len(keys) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d devices converged; e.g. %s", ready, len(keys), strings.Join(waiting, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func cnps(t *testing.T, ns string) []ciliumv2.CiliumNetworkPolicy {
	t.Helper()
	var l ciliumv2.CiliumNetworkPolicyList
	must(t, env.Client.List(context.Background(), &l, client.InNamespace(ns)))
	return l.Items
}

func must(t *testing.T, err error) {
	if err != nil {
		panic(fmt.Sprintf("%s: %v", t.Name(), err))
	}
}
