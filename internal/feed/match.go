package feed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Mapping says which advisory product a device model is: a clinical engineer writes it once per
// model, so nothing is matched on a guess.
type Mapping struct {
	// Manufacturer and Model as in the devices' spec.identity.
	Manufacturer string `json:"manufacturer"`
	Model        string `json:"model"`
	// Vendor and Product as the advisories' product tree names them (CSAF vendor and
	// product_name branches; CycloneDX manufacturer or supplier and component name).
	Vendor  string `json:"vendor"`
	Product string `json:"product"`
}

type mappingFile struct {
	Products []Mapping `json:"products"`
}

// ReadMappings reads a --products file: products: [{manufacturer, model, vendor, product}].
func ReadMappings(path string) ([]Mapping, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("--products: %w", err)
	}
	var f mappingFile
	if err := yaml.UnmarshalStrict(raw, &f); err != nil {
		return nil, fmt.Errorf("--products %s: %w", path, err)
	}
	for i, m := range f.Products {
		if m.Manufacturer == "" || m.Model == "" || m.Vendor == "" || m.Product == "" {
			return nil, fmt.Errorf("--products %s: products[%d]: manufacturer, model, vendor and product are all required", path, i)
		}
	}
	return f.Products, nil
}

// match says whether the advisory product is the device: by CPE when both have one, else by
// package URL when both have one, else through a mapping of the device's manufacturer and model.
// A version-specific product matches only a device whose version is known and fits. how says
// on what it matched; unknown is set when the device could be the product but its version is
// not known.
func match(d *v1alpha1.MedicalDevice, p Product, mappings []Mapping) (ok bool, how, unknown string) {
	id := d.Spec.Identity
	version := id.FirmwareVersion
	if id.CPE != "" && p.CPE != "" {
		dc, pc := cpeParts(id.CPE), cpeParts(p.CPE)
		if len(dc) < 6 || len(pc) < 6 || !eq(dc[3], pc[3]) || !eq(dc[4], pc[4]) {
			return false, "", ""
		}
		if v := dc[5]; v != "*" && v != "-" {
			version = v
		}
		if v := pc[5]; v != "*" && v != "-" && p.Version == "" && p.Range == "" {
			p.Version = v
		}
		return versionFits(version, p, "CPE")
	}
	if id.PURL != "" && p.PURL != "" {
		dn, dv := purlParts(id.PURL)
		pn, pv := purlParts(p.PURL)
		if !eq(dn, pn) {
			return false, "", ""
		}
		if dv != "" {
			version = dv
		}
		if pv != "" && p.Version == "" && p.Range == "" {
			p.Version = pv
		}
		return versionFits(version, p, "package URL")
	}
	for _, m := range mappings {
		if eq(m.Manufacturer, id.Manufacturer) && eq(m.Model, id.Model) && eq(m.Vendor, p.Vendor) && eq(m.Product, p.Name) {
			return versionFits(version, p, "product mapping")
		}
	}
	return false, "", ""
}

func versionFits(version string, p Product, how string) (bool, string, string) {
	switch {
	case p.Version == "" && p.Range == "":
		return true, how, ""
	case version == "":
		return false, "", fmt.Sprintf("%s matches by %s, but the device's firmware version is not known (spec.identity.firmwareVersion)", p, how)
	case p.Version != "":
		if CompareVersions(version, p.Version) == 0 {
			return true, how + ", version " + p.Version, ""
		}
		return false, "", ""
	}
	r, err := ParseRange(p.Range)
	if err != nil {
		return false, "", fmt.Sprintf("%s matches by %s, but its range cannot be read: %v", p, how, err)
	}
	if r.Contains(version) {
		return true, how + ", version " + version + " in " + p.Range, ""
	}
	return false, "", ""
}

func eq(a, b string) bool { return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b)) }

// cpeParts splits a CPE 2.3 formatted string at its unescaped colons.
func cpeParts(s string) []string {
	var out []string
	var b strings.Builder
	esc := false
	for _, r := range s {
		switch {
		case esc:
			b.WriteRune(r)
			esc = false
		case r == '\\':
			b.WriteRune(r)
			esc = true
		case r == ':':
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteRune(r)
		}
	}
	return append(out, b.String())
}

// purlParts returns a package URL's type/namespace/name and its version.
func purlParts(s string) (string, string) {
	s = strings.TrimPrefix(s, "pkg:")
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	name, version, _ := strings.Cut(s, "@")
	return strings.Trim(name, "/"), version
}
