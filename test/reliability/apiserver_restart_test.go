package reliability

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/operator"
	"github.com/medseg/medseg/internal/testenv"
)

// TestAPIServerRestart stops kube-apiserver under a running operator and starts it again over the
// same etcd: the operator reconnects by itself and converges a device created after the restart.
func TestAPIServerRestart(t *testing.T) {
	own, err := testenv.StartWith(testenv.Options{MedsegCRDs: true, CertDir: t.TempDir()})
	must(t, err)
	defer func() { _ = own.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := operator.New(ctx, own.Config, operator.Config{MetricsAddr: "0", ProbeAddr: "0", SkipNameValidation: true})
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()

	saved := env
	env = own // the hospital helpers write through the package's env
	defer func() { env = saved }()
	first := hospital(t, "restart", 3, 47)
	converged(t, first, time.Minute)

	apiserver := own.Env.ControlPlane.APIServer
	if err := apiserver.Stop(); err != nil {
		t.Logf("kube-apiserver did not stop gracefully and was killed: %v", err)
	}
	time.Sleep(3 * time.Second) // the operator's watches and requests fail meanwhile
	must(t, apiserver.Start())

	d := device("after-restart", "restart", "10.47.9.9")
	deadline := time.Now().Add(time.Minute)
	for own.Client.Create(context.Background(), d) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the restarted API server does not accept writes")
		}
		time.Sleep(500 * time.Millisecond)
	}
	key := types.NamespacedName{Namespace: "restart", Name: "after-restart"}
	deadline = time.Now().Add(90 * time.Second)
	for {
		var got v1alpha1.MedicalDevice
		if own.Client.Get(context.Background(), key, &got) == nil {
			if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the operator exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the operator did not reconcile a device created after the API server restart")
		}
		time.Sleep(500 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("operator: %v", err)
	}
}
