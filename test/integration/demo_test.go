package integration

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/demo"
	"github.com/medseg/medseg/internal/testenv"
)

// TestDemoStory runs the story of `make demo` (same samples, same steps, same checks) against
// the test API server with the operator running, so the demo cannot rot.
func TestDemoStory(t *testing.T) {
	startOperator(t)
	// The demo's hospital uses the sample addresses; remove its devices afterwards so the next
	// test's hospital does not (rightly) report address conflicts.
	t.Cleanup(func() {
		for _, ns := range []string{"icu", "nicu", "radiology", "lab"} {
			_ = env.Client.DeleteAllOf(context.Background(), &v1alpha1.MedicalDevice{}, client.InNamespace(ns))
		}
	})
	var out bytes.Buffer
	err := demo.Run(context.Background(), demo.Options{
		Out: &out, Client: env.Client, Samples: filepath.Join(testenv.RepoRoot(), "config", "samples"),
		Timeout: timeout, ExceptionWindow: 4 * time.Second, GrantWindow: 4 * time.Second,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
	for _, want := range []string{"Step 10/10", "added to radiology/ultrasound-3: ", "ALLOW DICOM gateway → PACS :104 (discovered", "DENY  debug shell → ultrasound :22", "ALLOW DICOM gateway → PACS :104", "every rule holds", "Commissioned=False NotCommissioned", "commissioned: 2 flow(s) approved", "AccessGranted", "AccessEnded", "ModeChanged", "ForeignPolicyWidens", "DriftRepaired", "ExceptionExpired"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
