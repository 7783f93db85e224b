// Package reliability tests what must hold when things go wrong: operator crashes and restarts,
// several replicas, concurrent writers, the operator being removed, and least privilege.
package reliability

import (
	"testing"

	"github.com/medseg/medseg/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{MedsegCRDs: true}, &env) }
