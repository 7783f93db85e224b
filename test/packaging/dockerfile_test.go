package packaging

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/medseg/medseg/internal/testenv"
)

// TestDockerfileBuildsStaticBinaries runs the Dockerfile's own go build commands (no container
// engine exists on the build machines) for this platform and checks the result is static, and
// that the final image is non-root distroless.
func TestDockerfileBuildsStaticBinaries(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(string(raw), "\\\n", " ")
	for _, want := range []string{"FROM gcr.io/distroless/static:nonroot", "USER 65532:65532", "FROM --platform=$BUILDPLATFORM"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	builds := regexp.MustCompile(`CGO_ENABLED=0 GOOS=\$TARGETOS GOARCH=\$TARGETARCH (go build [^&\n]+)`).FindAllStringSubmatch(df, -1)
	if len(builds) != 2 {
		t.Fatalf("want the manager and plugin builds in the Dockerfile, found %d", len(builds))
	}
	out := t.TempDir()
	for _, b := range builds {
		fields := strings.Fields(strings.ReplaceAll(b[1], `-ldflags="-s -w"`, "-ldflags=-s_-w"))
		for i, f := range fields {
			fields[i] = strings.ReplaceAll(f, "-ldflags=-s_-w", "-ldflags=-s -w")
			if strings.HasPrefix(f, "/out/") {
				fields[i] = filepath.Join(out, strings.TrimPrefix(f, "/out/"))
			}
		}
		cmd := exec.Command("go", fields[1:]...)
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", fields, err, o)
		}
	}
	for _, bin := range []string{"manager", "kubectl-medseg"} {
		f, err := elf.Open(filepath.Join(out, bin))
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", bin)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s imports %v", bin, libs)
		}
		_ = f.Close()
	}
}
