// Package integration holds tests that need a real kube-apiserver and etcd (envtest) with the
// medseg and Cilium CRDs installed.
package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/medseg/medseg/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}
