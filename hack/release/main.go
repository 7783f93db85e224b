// Command release builds medseg's release artefacts offline into one directory (dist/):
//
//   - the manager for each linux platform and kubectl-medseg for each platform, version stamped;
//   - kubectl-medseg archives (kubectl-medseg and LICENSE) and the krew manifest with their real
//     checksums;
//   - the manager image for the linux platforms as one OCI image layout (an index, a manifest per
//     platform), built without Docker and without pulling a base image: an empty base, one layer
//     with the static binary, a non-root passwd entry and the CA certificates, and the image's
//     CycloneDX SBOM (also written beside the layout);
//   - the chart packaged with its version and appVersion (and so the image tag) set;
//   - checksums.txt (sha256) of every file.
//
// Usage: go run ./hack/release -version 0.3.0 [-out dist] [-platforms linux/amd64,linux/arm64]
// [-plugin-platforms linux/amd64,linux/arm64,darwin/amd64,darwin/arm64] [-helm bin/helm]
//
// Publishing (pushing the layout and the chart, signing) is a separate, documented step: no
// registry is reachable where this runs.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: the "nonroot" user of distroless images, which the chart's securityContext
// and the Dockerfile use too.
const (
	uid     = 65532
	sbomDir = "/usr/share/sbom"
)

// epoch stamps every file and the image config, so two builds of one commit are identical.
var epoch = time.Unix(0, 0).UTC()

func main() {
	var (
		version   = flag.String("version", "", "release version, e.g. 0.3.0 (required)")
		out       = flag.String("out", "dist", "output directory (emptied first)")
		platforms = flag.String("platforms", "linux/amd64,linux/arm64", "manager and image platforms")
		plugins   = flag.String("plugin-platforms", "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64", "kubectl-medseg platforms")
		helm      = flag.String("helm", "helm", "helm binary, for packaging the chart")
		certs     = flag.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "CA bundle for the image")
	)
	flag.Parse()
	if err := run(*version, *out, split(*platforms), split(*plugins), *helm, *certs); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func run(version, out string, platforms, plugins []string, helm, certs string) error {
	version = strings.TrimPrefix(version, "v")
	if version == "" {
		return fmt.Errorf("-version is required")
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	ldflags := "-s -w -X github.com/medseg/medseg/internal/version.Version=v" + version
	// kubectl-medseg: a binary and an archive per platform.
	for _, p := range plugins {
		goos, goarch, _ := strings.Cut(p, "/")
		bin := filepath.Join(out, "bin", goos+"_"+goarch, "kubectl-medseg")
		if err := build(bin, "./cmd/kubectl-medseg", goos, goarch, ldflags); err != nil {
			return err
		}
		archive := filepath.Join(out, fmt.Sprintf("kubectl-medseg_v%s_%s_%s.tar.gz", version, goos, goarch))
		if err := tarGz(archive, map[string]string{"kubectl-medseg": bin, "LICENSE": "LICENSE"}); err != nil {
			return err
		}
	}
	// The manager, its image per platform, one OCI layout.
	ca, err := os.ReadFile(certs)
	if err != nil {
		return fmt.Errorf("the image's CA certificates: %w", err)
	}
	oci, err := layout.Write(filepath.Join(out, fmt.Sprintf("medseg-v%s.oci", version)), empty.Index)
	if err != nil {
		return err
	}
	for _, p := range platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		bin := filepath.Join(out, "bin", goos+"_"+goarch, "manager")
		if err := build(bin, ".", goos, goarch, ldflags); err != nil {
			return err
		}
		sbom, err := sbomOf(bin, version)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, fmt.Sprintf("medseg-v%s_%s_%s.cdx.json", version, goos, goarch)), sbom, 0o644); err != nil {
			return err
		}
		img, err := image(bin, sbom, ca, version, goos, goarch)
		if err != nil {
			return err
		}
		if err := oci.AppendImage(img, layout.WithPlatform(v1.Platform{OS: goos, Architecture: goarch}),
			layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v" + version})); err != nil {
			return err
		}
	}
	// The chart, with its version and appVersion (the image tag) set to the release's.
	cmd := exec.Command(helm, "package", "charts/medseg", "--version", version, "--app-version", version, "-d", out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("helm package: %w", err)
	}
	if err := checksums(out); err != nil {
		return err
	}
	// The krew manifest, from the archives' real checksums.
	cmd = exec.Command("go", "run", "./hack/krewmanifest", "-version", version, "-checksums", filepath.Join(out, "checksums.txt"),
		"-platforms", strings.Join(plugins, ","), "-out", filepath.Join(out, "medseg.krew.yaml"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("krew manifest: %w", err)
	}
	return checksums(out)
}

func build(out, pkg, goos, goarch, ldflags string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s/%s: %w", pkg, goos, goarch, err)
	}
	return nil
}

// image is the manager image for one platform: an empty base and one layer.
func image(bin string, sbom, ca []byte, version, goos, goarch string) (v1.Image, error) {
	manager, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"etc/passwd", 0o644, []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, uid))},
		{"etc/group", 0o644, []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", uid))},
		{"etc/ssl/certs/ca-certificates.crt", 0o644, ca},
		{strings.TrimPrefix(sbomDir, "/") + "/medseg.cdx.json", 0o644, sbom},
		{"manager", 0o755, manager},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), l)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = goos, goarch, v1.Time{Time: epoch}
	cfg.Config.User = fmt.Sprintf("%d:%d", uid, uid)
	cfg.Config.Entrypoint = []string{"/manager"}
	cfg.Config.Env = []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    "medseg",
		"org.opencontainers.image.version":  "v" + version,
		"org.opencontainers.image.source":   "https://github.com/medseg/medseg",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"dev.medseg.sbom":                   sbomDir + "/medseg.cdx.json",
	}
	return mutate.ConfigFile(img, cfg)
}

// sbomOf is the CycloneDX SBOM of a Go binary: the main module and every module it was built
// with, from the build information the binary carries.
func sbomOf(bin, version string) ([]byte, error) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("build information of %s: %w", bin, err)
	}
	bom := cdx.NewBOM()
	bom.SerialNumber = ""
	bom.Metadata = &cdx.Metadata{
		Timestamp: epoch.Format(time.RFC3339),
		Component: &cdx.Component{Type: cdx.ComponentTypeApplication, Name: "medseg", Version: "v" + version,
			PackageURL: fmt.Sprintf("pkg:golang/%s@v%s", bi.Main.Path, version), BOMRef: "medseg"},
		Properties: &[]cdx.Property{{Name: "go.version", Value: bi.GoVersion}},
	}
	var comps []cdx.Component
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		comps = append(comps, cdx.Component{Type: cdx.ComponentTypeLibrary, Name: m.Path, Version: m.Version,
			PackageURL: fmt.Sprintf("pkg:golang/%s@%s", m.Path, m.Version), BOMRef: m.Path + "@" + m.Version,
			Properties: &[]cdx.Property{{Name: "go.sum", Value: m.Sum}}})
	}
	sort.Slice(comps, func(i, j int) bool { return comps[i].Name < comps[j].Name })
	bom.Components = &comps
	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	if err := enc.Encode(bom); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func tarGz(out string, files map[string]string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data, err := os.ReadFile(files[n])
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if n == "kubectl-medseg" {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// checksums writes checksums.txt: the sha256 of every regular file below out except itself, in
// sha256sum's format, by path relative to out.
func checksums(out string) error {
	var lines []string
	err := filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || filepath.Base(p) == "checksums.txt" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		sum := sha256.Sum256(data)
		lines = append(lines, hex.EncodeToString(sum[:])+"  "+filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(lines)
	return os.WriteFile(filepath.Join(out, "checksums.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}
