// Package packaging tests how medseg installs: the Helm chart (rendering, schema, server-side
// dry-run, install/upgrade/uninstall against a real API server), the kustomize config and its
// agreement with the chart, and the Dockerfile's build command.
package packaging

import (
	"fmt"
	"os"
	"testing"

	"github.com/medseg/medseg/internal/testenv"
)

var (
	env       *testenv.Env
	helm      string
	kustomize string
)

func TestMain(m *testing.M) {
	var err error
	if helm, err = testenv.Tool("MEDSEG_HELM"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if kustomize, err = testenv.Tool("MEDSEG_KUSTOMIZE"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Without medseg's CRDs: the chart installs them, as on a real cluster.
	if env, err = testenv.StartWith(testenv.Options{MedsegCRDs: false}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}
