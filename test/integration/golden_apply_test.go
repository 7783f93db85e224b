package integration

import (
	"context"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/internal/manifest"
	"github.com/medseg/medseg/internal/testenv"
)

// TestGoldenObjectsAreAcceptedByTheAPIServer creates every object of the renderer's golden
// files in a real API server with Cilium's CRDs, so the server's schema accepts what medseg
// writes.
func TestGoldenObjectsAreAcceptedByTheAPIServer(t *testing.T) {
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "render-golden"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	objs, err := manifest.Read([]string{filepath.Join(testenv.RepoRoot(), "internal", "render", "testdata")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		u := o.Object.DeepCopy()
		// Owner UIDs in golden files are fixtures; the server would garbage-collect dangling ones.
		u.SetOwnerReferences(nil)
		// Their own namespace and names, so they never meet the objects of other tests.
		if u.GetNamespace() != "" {
			u.SetNamespace("render-golden")
		} else {
			u.SetName("golden-" + u.GetName())
		}
		kinds[u.GetKind()]++
		if err := env.Client.Create(ctx, u, client.DryRunAll); err != nil {
			t.Errorf("%s: %s %s rejected: %v", o.Source, u.GetKind(), u.GetName(), err)
		}
	}
	if kinds["CiliumNetworkPolicy"] < 10 || kinds["CiliumClusterwideNetworkPolicy"] < 1 {
		t.Fatalf("too few golden objects: %v", kinds)
	}
}
