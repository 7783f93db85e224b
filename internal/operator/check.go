package operator

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CRDs are the CustomResourceDefinitions medseg installs.
var CRDs = []string{"medicaldevices.medseg.io", "segmentpolicies.medseg.io", "segmentexceptions.medseg.io", "accessgrants.medseg.io"}

// CheckInstall is what the chart's `helm test` hook runs (`manager --check-install`): every
// medseg CRD is Established, and the manager Deployment has a ready replica for its current
// generation. It returns the first problem found, nil when the installation is ready.
func CheckInstall(ctx context.Context, c client.Reader, namespace, deployment string) error {
	for _, name := range CRDs {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, types.NamespacedName{Name: name}, &crd); err != nil {
			return fmt.Errorf("CRD %s: %w", name, err)
		}
		established := false
		for _, cond := range crd.Status.Conditions {
			established = established || cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue
		}
		if !established {
			return fmt.Errorf("CRD %s is not Established", name)
		}
	}
	var d appsv1.Deployment
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: deployment}, &d); err != nil {
		return fmt.Errorf("the manager Deployment %s/%s: %w", namespace, deployment, err)
	}
	if d.Status.ObservedGeneration < d.Generation {
		return fmt.Errorf("the manager Deployment %s/%s: generation %d not observed yet", namespace, deployment, d.Generation)
	}
	if d.Status.ReadyReplicas < 1 {
		return fmt.Errorf("the manager Deployment %s/%s: no ready replica (%d of %d)", namespace, deployment, d.Status.ReadyReplicas, d.Status.Replicas)
	}
	return nil
}

// CheckInstallUntil runs CheckInstall until it passes or the timeout ends, and returns its last
// result.
func CheckInstallUntil(ctx context.Context, cfg *rest.Config, namespace, deployment string, timeout time.Duration) error {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{apiextensionsv1.AddToScheme, appsv1.AddToScheme} {
		if err := add(s); err != nil {
			return err
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := CheckInstall(ctx, c, namespace, deployment)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}
