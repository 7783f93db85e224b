// Package reliability tests what must hold when things go wrong: operator crashes and restarts,
// several replicas, concurrent writers, the operator being removed, and least privilege.
package reliability

import (
	"fmt"
	"os"
	"testing"

	"github.com/medseg/medseg/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}
