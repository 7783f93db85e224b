package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"sigs.k8s.io/yaml"
)

// TestRelease inspects what `make release` built (MEDSEG_RELEASE_DIR, MEDSEG_RELEASE_VERSION):
// the image for each platform runs the manager as non-root, its one layer holds one static
// binary and no shell, its SBOM lists the Go modules, the chart's appVersion is the release's,
// the krew manifest has real checksums, and checksums.txt covers every file. `.ci/run` builds a
// reduced release (linux/amd64) and runs it; `make test` skips it.
func TestRelease(t *testing.T) {
	dir, version := os.Getenv("MEDSEG_RELEASE_DIR"), strings.TrimPrefix(os.Getenv("MEDSEG_RELEASE_VERSION"), "v")
	if dir == "" || version == "" {
		t.Skip("MEDSEG_RELEASE_DIR and MEDSEG_RELEASE_VERSION name a release to inspect (make release)")
	}
	p, err := layout.FromPath(filepath.Join(dir, "medseg-v"+version+".oci"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) == 0 {
		t.Fatal("the OCI layout holds no image")
	}
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		plat := desc.Platform.OS + "/" + desc.Platform.Architecture
		if cfg.OS+"/"+cfg.Architecture != plat {
			t.Errorf("%s: config says %s/%s", plat, cfg.OS, cfg.Architecture)
		}
		if u := cfg.Config.User; u == "" || u == "0" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root") {
			t.Errorf("%s: the image runs as %q, want a non-root user", plat, u)
		}
		if ep := cfg.Config.Entrypoint; len(ep) != 1 || ep[0] != "/manager" {
			t.Errorf("%s: entrypoint %v, want [/manager]", plat, ep)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		executables := 0
		for _, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				data, _ := io.ReadAll(tr)
				files[h.Name] = data
				if h.Mode&0o111 != 0 && h.Typeflag == tar.TypeReg {
					executables++
				}
			}
			_ = rc.Close()
		}
		for name := range files {
			if strings.HasSuffix(name, "/sh") || strings.HasSuffix(name, "/bash") || strings.HasSuffix(name, "/busybox") {
				t.Errorf("%s: the image holds a shell: %s", plat, name)
			}
		}
		if executables != 1 || files["manager"] == nil {
			t.Errorf("%s: want one executable, /manager; got %d executables in %v", plat, executables, keys(files))
		}
		f, err := elf.NewFile(bytes.NewReader(files["manager"]))
		if err != nil {
			t.Fatalf("%s: /manager is not an ELF binary: %v", plat, err)
		}
		libs, _ := f.ImportedLibraries()
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s: /manager asks for a dynamic loader", plat)
			}
		}
		if len(libs) > 0 {
			t.Errorf("%s: /manager links %v: not static", plat, libs)
		}
		if !strings.Contains(string(files["etc/passwd"]), "nonroot:x:65532:65532") {
			t.Errorf("%s: /etc/passwd lacks the non-root user", plat)
		}
		var bom struct {
			Metadata struct {
				Component struct{ Name, Version string }
			}
			Components []struct{ Name, Version, Purl string }
		}
		sbom := files[strings.TrimPrefix(cfg.Config.Labels["dev.medseg.sbom"], "/")]
		if err := json.Unmarshal(sbom, &bom); err != nil {
			t.Fatalf("%s: the SBOM named by the image's label: %v", plat, err)
		}
		mods := map[string]bool{}
		for _, c := range bom.Components {
			mods[c.Name] = strings.HasPrefix(c.Purl, "pkg:golang/")
		}
		for _, m := range []string{"sigs.k8s.io/controller-runtime", "github.com/cilium/cilium", "k8s.io/client-go"} {
			if !mods[m] {
				t.Errorf("%s: the SBOM does not list the Go module %s", plat, m)
			}
		}
		if bom.Metadata.Component.Version != "v"+version {
			t.Errorf("%s: the SBOM describes %q", plat, bom.Metadata.Component.Version)
		}
	}
	// The binaries say their version.
	for _, bin := range []struct{ path, args, want string }{
		{filepath.Join(dir, "bin", runtime.GOOS+"_"+runtime.GOARCH, "manager"), "--version", "medseg manager v" + version},
		{filepath.Join(dir, "bin", runtime.GOOS+"_"+runtime.GOARCH, "kubectl-medseg"), "version --client", "v" + version},
	} {
		if _, err := os.Stat(bin.path); err != nil {
			continue // not built for this machine's platform
		}
		out, err := exec.Command(bin.path, strings.Fields(bin.args)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), bin.want) {
			t.Errorf("%s %s: %q (%v), want %q", bin.path, bin.args, out, err, bin.want)
		}
	}
	// The chart: its version and appVersion are the release's.
	raw, err := os.ReadFile(filepath.Join(dir, "medseg-"+version+".tgz"))
	if err != nil {
		t.Fatal(err)
	}
	chart := untarFile(t, raw, "medseg/Chart.yaml")
	var meta struct{ Version, AppVersion string }
	if err := yaml.Unmarshal(chart, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Version != version || meta.AppVersion != version {
		t.Errorf("chart version %q, appVersion %q, want %q", meta.Version, meta.AppVersion, version)
	}
	// checksums.txt covers every file, and the krew manifest carries the archives' checksums.
	sums, err := os.ReadFile(filepath.Join(dir, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	krew, err := os.ReadFile(filepath.Join(dir, "medseg.krew.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	archives := 0
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, _ := strings.Cut(line, "  ")
		if strings.HasPrefix(name, "kubectl-medseg_") && strings.HasSuffix(name, ".tar.gz") {
			archives++
			if !strings.Contains(string(krew), sum) {
				t.Errorf("the krew manifest lacks the checksum of %s", name)
			}
		}
	}
	if archives == 0 || strings.Contains(string(krew), strings.Repeat("0", 64)) {
		t.Errorf("the krew manifest must carry the real checksums of %d archives:\n%s", archives, krew)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func untarFile(t *testing.T, tgz []byte, name string) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the archive: %v", name, err)
		}
		if h.Name == name {
			data, _ := io.ReadAll(tr)
			return data
		}
	}
}
