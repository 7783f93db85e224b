// Package integration holds tests that need a real kube-apiserver and etcd (envtest) with the
// medseg and Cilium CRDs installed.
package integration

import (
	"testing"

	"github.com/medseg/medseg/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{MedsegCRDs: true}, &env) }
