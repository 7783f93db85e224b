package reliability

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
)

// TestCrashMidRolloutThenRestart kills the operator while a few hundred devices converge and
// starts a new one: everything converges, each device has exactly one policy, and history has
// no duplicate entries.
func TestCrashMidRolloutThenRestart(t *testing.T) {
	keys := hospital(t, "crash", 300, 41)
	// The default graceful-shutdown period: stopping mid-rollout ends at once (the queue deadlock
	// that used to hold it for the whole period is gone, TestStopMidRolloutIsQuick).
	first := start(t, false)
	deadline := time.Now().Add(60 * time.Second)
	for len(cnps(t, "crash")) < 30 {
		if time.Now().After(deadline) {
			t.Fatal("the first operator wrote nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	first.stop(t) // mid-rollout
	partial := len(cnps(t, "crash"))
	t.Logf("killed the operator with %d of %d policies written", partial, len(keys))

	start(t, false)
	converged(t, keys, 3*time.Minute)
	policies := cnps(t, "crash")
	if len(policies) != len(keys) {
		t.Fatalf("%d policies for %d devices", len(policies), len(keys))
	}
	seen := map[string]bool{}
	for _, p := range policies {
		if seen[p.Name] {
			t.Fatalf("duplicate policy %s", p.Name)
		}
		seen[p.Name] = true
	}
	for _, k := range keys {
		var d v1alpha1.MedicalDevice
		must(t, env.Client.Get(context.Background(), k, &d))
		if len(d.Status.History) != 1 {
			t.Errorf("%s: history %+v, want one entry (the restart changed nothing)", k, d.Status.History)
		}
	}
}

// TestEnforcementOutlivesTheOperator: with the operator stopped, the policies it wrote stay, and
// a device change does not open anything until an operator runs again.
func TestEnforcementOutlivesTheOperator(t *testing.T) {
	keys := hospital(t, "outlive", 5, 42)
	op := start(t, false)
	converged(t, keys, time.Minute)
	before := cnps(t, "outlive")
	op.stop(t)
	time.Sleep(2 * time.Second)
	after := cnps(t, "outlive")
	if len(after) != len(before) {
		t.Fatalf("policies changed with the operator gone: %d → %d", len(before), len(after))
	}
	for i := range after {
		if after[i].ResourceVersion != before[i].ResourceVersion {
			t.Errorf("%s was modified with the operator gone", after[i].Name)
		}
	}
}

// TestConcurrentWritersDoNotFight: a GitOps tool applies device specs, a scanner applies
// vulnerabilities with its own field manager, and someone edits a managed CNP, all at once. No
// update is lost, the final state is the desired one, and medseg's writes stay bounded.
func TestConcurrentWritersDoNotFight(t *testing.T) {
	ctx := context.Background()
	keys := hospital(t, "writers", 20, 43)
	op := start(t, false)
	converged(t, keys, time.Minute)
	writesBefore := op.counter.Writes()
	done := make(chan struct{})
	go func() { // the scanner
		defer close(done)
		for i, k := range keys {
			v := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "medseg.io/v1alpha1", "kind": "MedicalDevice",
				"metadata": map[string]any{"name": k.Name, "namespace": k.Namespace},
				"spec":     map[string]any{"vulnerabilities": []any{map[string]any{"id": "CVE-2026-7777", "knownExploited": i%2 == 0}}},
			}}
			must(t, env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(v), client.FieldOwner("scanner")))
		}
	}()
	for i, k := range keys { // GitOps: the device owner's spec, applied with its own field manager
		d := device(k.Name, k.Namespace, "10.43.0."+itoa(i+1))
		d.Spec.Identity.FirmwareVersion = "2.0"
		u := toUnstructured(t, d)
		must(t, env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("argocd")))
		if i%5 == 0 { // someone edits a managed policy by hand
			var p = cnps(t, "writers")[i]
			p.Spec.Description = "edited by hand"
			_ = env.Client.Update(ctx, &p)
		}
	}
	<-done
	converged(t, keys, time.Minute)
	time.Sleep(3 * time.Second)
	for i, k := range keys {
		var d v1alpha1.MedicalDevice
		must(t, env.Client.Get(ctx, k, &d))
		if d.Spec.Identity.FirmwareVersion != "2.0" || len(d.Spec.Vulnerabilities) != 1 {
			t.Fatalf("%s: an update was lost: firmware %q, vulnerabilities %v", k, d.Spec.Identity.FirmwareVersion, d.Spec.Vulnerabilities)
		}
		want := v1alpha1.PriorityScheduled
		if i%2 == 0 {
			want = v1alpha1.PriorityOutOfCycle
		}
		if d.Status.Risk.Priority != want {
			t.Errorf("%s: priority %s, want %s", k, d.Status.Risk.Priority, want)
		}
	}
	for _, p := range cnps(t, "writers") {
		if p.Spec.Description == "edited by hand" {
			t.Errorf("%s: the hand edit was not repaired", p.Name)
		}
	}
	writes := op.counter.Writes() - writesBefore
	// Per device: a CNP and a status for the spec change, the same for the vulnerability, and a
	// repair for the edited ones. A fight would be unbounded.
	if limit := len(keys)*6 + 10; writes > limit {
		t.Errorf("%d writes for %d devices (limit %d): medseg is fighting another writer", writes, len(keys), limit)
	}
	t.Logf("%d medseg writes for %d devices under three concurrent writers", writes, len(keys))
}
