package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Golden compares got with testdata/name, or rewrites the file when update is set.
func Golden(t *testing.T, name, got string, update bool) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file; rerun with -update if intended:\n%s", path, got)
	}
}

// Main is a TestMain for packages that share one API server: it starts envtest, stores it in
// *env, runs the tests and stops it.
func Main(m *testing.M, o Options, env **Env) {
	e, err := StartWith(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}
