package integration

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/internal/operator"
)

func metav1Time(t time.Time) metav1.Time { return metav1.NewTime(t) }

func metav1ObjectMeta(name, ns string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns}
}

// startOperatorStoppable starts an operator and returns a function that stops it and waits.
func startOperatorStoppable(t *testing.T) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := operator.New(ctx, env.Config, operator.Config{MetricsAddr: "0", ProbeAddr: "0", SkipNameValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager stopped with error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("manager did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}
