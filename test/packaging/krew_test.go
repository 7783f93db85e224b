package packaging

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/version"
	"sigs.k8s.io/yaml"

	"github.com/medseg/medseg/internal/testenv"
)

// krewPlugin is krew's Plugin (sigs.k8s.io/krew/pkg/index v0.4.3; the module cannot be imported
// next to client-go v0.36, and its validation is internal, so the rules are restated here).
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Homepage         string `json:"homepage"`
		Platforms        []struct {
			URI      string                `json:"uri"`
			Sha256   string                `json:"sha256"`
			Selector *metav1.LabelSelector `json:"selector"`
			Files    []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
			Bin string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

var (
	krewName   = regexp.MustCompile(`^[\w-]+$`)
	krewSha256 = regexp.MustCompile(`^[a-f0-9]{64}$`)
	reserved   = regexp.MustCompile(`(?i)^(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])$`)
	licenses   = map[string]bool{"license": true, "license.txt": true, "license.md": true, "licenses": true, "licenses.txt": true, "licenses.md": true, "copying": true, "copying.txt": true}
)

// validateKrewManifest applies krew's ValidatePlugin rules and those of krew-index's CI
// (validate-krew-manifest): names, semver with a leading v, lowercase sha256, a bin, file
// operations, selectors on os/arch that each match a supported platform and never overlap, and a
// license among the installed files.
func validateKrewManifest(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if filepath.Ext(path) != ".yaml" {
		return fmt.Errorf("the manifest must be a .yaml file")
	}
	var p krewPlugin
	if err := yaml.UnmarshalStrict(raw, &p); err != nil {
		return err
	}
	name := strings.TrimSuffix(filepath.Base(path), ".yaml")
	switch {
	case p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin":
		return fmt.Errorf("apiVersion/kind %s/%s", p.APIVersion, p.Kind)
	case !krewName.MatchString(name) || reserved.MatchString(name):
		return fmt.Errorf("invalid plugin name %q", name)
	case p.Metadata.Name != name:
		return fmt.Errorf("metadata.name %q is not the file name %q", p.Metadata.Name, name)
	case p.Spec.ShortDescription == "" || strings.ContainsAny(p.Spec.ShortDescription, "\r\n"):
		return fmt.Errorf("shortDescription must be one non-empty line")
	case len(p.Spec.ShortDescription) > 60:
		return fmt.Errorf("shortDescription is %d characters: krew search shows a few words", len(p.Spec.ShortDescription))
	case len(p.Spec.Platforms) == 0:
		return fmt.Errorf("no platforms")
	case !strings.HasPrefix(p.Spec.Version, "v"):
		return fmt.Errorf("version %q must start with v", p.Spec.Version)
	}
	if _, err := version.ParseSemantic(p.Spec.Version); err != nil {
		return fmt.Errorf("version %q: %w", p.Spec.Version, err)
	}
	supported := []map[string]string{}
	for _, os := range []string{"linux", "darwin", "windows"} {
		for _, arch := range []string{"386", "amd64", "arm", "arm64"} {
			supported = append(supported, map[string]string{"os": os, "arch": arch})
		}
	}
	claimed := map[string]int{}
	for i, pl := range p.Spec.Platforms {
		switch {
		case pl.URI == "" || !strings.HasPrefix(pl.URI, "https://"):
			return fmt.Errorf("platform %d: uri %q must be an https URL", i, pl.URI)
		case !krewSha256.MatchString(pl.Sha256):
			return fmt.Errorf("platform %d: sha256 %q is not 64 lowercase hex digits", i, pl.Sha256)
		case pl.Bin == "" || strings.Contains(pl.Bin, "..") || filepath.IsAbs(pl.Bin):
			return fmt.Errorf("platform %d: bin %q must be a path inside the install directory", i, pl.Bin)
		case pl.Files != nil && len(pl.Files) == 0:
			return fmt.Errorf("platform %d: files is present but empty", i)
		case pl.Selector == nil || len(pl.Selector.MatchLabels) == 0 && len(pl.Selector.MatchExpressions) == 0:
			return fmt.Errorf("platform %d: a selector on os and arch is required", i)
		}
		hasLicense := false
		for _, f := range pl.Files {
			if f.From == "" || f.To == "" {
				return fmt.Errorf("platform %d: a file operation needs from and to", i)
			}
			hasLicense = hasLicense || licenses[strings.ToLower(filepath.Base(f.From))]
		}
		if !hasLicense {
			return fmt.Errorf("platform %d: krew-index requires a license file among the installed files", i)
		}
		for k := range pl.Selector.MatchLabels {
			if k != "os" && k != "arch" {
				return fmt.Errorf("platform %d: selector key %q (only os and arch)", i, k)
			}
		}
		sel, err := metav1.LabelSelectorAsSelector(pl.Selector)
		if err != nil {
			return fmt.Errorf("platform %d: %w", i, err)
		}
		matched := false
		for _, s := range supported {
			if sel.Matches(labels.Set(s)) {
				matched = true
				claimed[s["os"]+"/"+s["arch"]]++
			}
		}
		if !matched {
			return fmt.Errorf("platform %d: the selector matches no supported os/arch", i)
		}
	}
	for osArch, n := range claimed {
		if n > 1 {
			return fmt.Errorf("%s is matched by %d platforms", osArch, n)
		}
	}
	return nil
}

// TestKrewManifest validates the committed manifest, and checks the validation can fail.
func TestKrewManifest(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(), "plugins", "medseg.yaml")
	if err := validateKrewManifest(path); err != nil {
		t.Fatalf("plugins/medseg.yaml: %v", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, broken := range []struct{ from, to string }{
		{"version: v", "version: "},
		{`sha256: "0000`, `sha256: "ABCD`},
		{"name: medseg", "name: medseg-plugin"},
		{"os: darwin\n", "os: linux\n"},
		{"from: LICENSE", "from: NOTICE"},
		{"bin: kubectl-medseg", "bin: ../kubectl-medseg"},
	} {
		mutated := strings.Replace(string(raw), broken.from, broken.to, 1)
		if mutated == string(raw) {
			t.Fatalf("mutation %q did not apply", broken.from)
		}
		p := filepath.Join(t.TempDir(), "medseg.yaml")
		if err := os.WriteFile(p, []byte(mutated), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := validateKrewManifest(p); err == nil {
			t.Errorf("a manifest with %q → %q passed validation", broken.from, broken.to)
		}
	}
}
