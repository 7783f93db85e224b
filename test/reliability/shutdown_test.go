package reliability

import (
	"bytes"
	"context"
	"fmt"
	"runtime/pprof"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/internal/operator"
	"github.com/medseg/medseg/internal/testenv"
)

// TestStopMidRolloutIsQuick stops the operator 20 times while devices converge (a rolling
// upgrade of the Deployment does this every time) and requires each stop to end within 2s, with
// the default graceful-shutdown period of 30s. A stop that overstays dumps every goroutine, so
// a regression names the runnable that did not end.
func TestStopMidRolloutIsQuick(t *testing.T) {
	keys := hospital(t, "shutdown", 200, 49)
	ctx := context.Background()
	var slowest time.Duration
	defer func() { t.Logf("20 stops mid-rollout, the slowest took %s", slowest.Round(time.Millisecond)) }()
	for round := range 20 {
		counter := testenv.NewCounter()
		opCtx, cancel := context.WithCancel(ctx)
		mgr, err := operator.New(opCtx, env.Config, operator.Config{
			MetricsAddr: "0", ProbeAddr: "0", DeviceWorkers: 4, PolicyWorkers: 2, NewClient: counter.NewClient, SkipNameValidation: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- mgr.Start(opCtx) }()
		// Mid-rollout: the first round is a cold start; every later round a feed flips a KEV
		// entry on 100 devices, so the stop finds reconciles and writes in flight.
		if round > 0 {
			for _, k := range keys[:100] {
				u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "medseg.io/v1alpha1", "kind": "MedicalDevice",
					"metadata": map[string]any{"name": k.Name, "namespace": k.Namespace},
					"spec":     map[string]any{"vulnerabilities": []any{map[string]any{"id": "CVE-2026-0001", "knownExploited": round%2 == 1}}}}}
				must(t, env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("kev-feed"), client.ForceOwnership))
			}
		}
		waitWrites(t, counter, 5+round, 30*time.Second)
		begin := time.Now()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("round %d: the manager stopped with %v", round, err)
			}
			d := time.Since(begin)
			slowest = max(slowest, d)
			if d > 2*time.Second {
				t.Errorf("round %d: the manager took %s to stop\n%s", round, d, goroutines())
			}
		case <-time.After(2 * time.Second):
			t.Errorf("round %d: the manager did not stop within 2s; goroutines:\n%s", round, goroutines())
			if err := <-done; err != nil {
				t.Logf("round %d: the manager stopped with %v", round, err)
			}
		}
		if t.Failed() {
			return
		}
	}
	start(t, false)
	converged(t, keys, 2*time.Minute)
}

// waitWrites waits until the operator issued n writes.
func waitWrites(t *testing.T, c interface{ Writes() int }, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for c.Writes() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the operator issued %d writes, want %d", c.Writes(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func goroutines() string {
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		return fmt.Sprint(err)
	}
	return b.String()
}
