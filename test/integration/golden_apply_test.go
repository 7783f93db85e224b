package integration

import (
	"context"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
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
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "icu"}}); err != nil {
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
		kinds[u.GetKind()]++
		if err := env.Client.Create(ctx, u, client.DryRunAll); err != nil {
			t.Errorf("%s: %s %s rejected: %v", o.Source, u.GetKind(), u.GetName(), err)
		}
	}
	if kinds["CiliumNetworkPolicy"] < 10 || kinds["CiliumClusterwideNetworkPolicy"] < 1 {
		t.Fatalf("too few golden objects: %v", kinds)
	}
}
