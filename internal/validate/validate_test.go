package validate

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const device = `apiVersion: medseg.io/v1alpha1
kind: MedicalDevice
metadata: {name: pump, namespace: icu}
spec:
  identity: {manufacturer: A, model: B}
  clinical: {safetyImpact: Critical, missionImpact: Degraded}
  network: {addresses: ["10.0.0.5"]}
  gateway: {podSelector: {matchLabels: {app: gw}}}
  flows:
    - {name: f, direction: ToDevice, tier: Essential, gatewayPort: 1, devicePort: 2, peers: [{cidr: "203.0.113.0/24"}]}
  vulnerabilities:
    - {id: CVE-1, cvss: "9.8", epss: "0.5"}
`

// FuzzValidate mutates one field of a valid device to arbitrary text: validation never panics,
// and a rejection always names a field under spec or metadata.
func FuzzValidate(f *testing.F) {
	v, err := New()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"0.0.0.0", "::", "10.0.0.0/8", "fe80::1", "", "x", "999.1.1.1", "0.0.0.0/0", "-1", "11.0", "NaN"} {
		f.Add(uint8(0), s)
		f.Add(uint8(3), s)
	}
	paths := [][]string{
		{"spec", "network", "addresses"}, {"spec", "clinical", "safetyImpact"}, {"spec", "identity", "model"},
		{"spec", "flows", "0", "peers", "0", "cidr"}, {"spec", "vulnerabilities", "0", "cvss"}, {"spec", "vulnerabilities", "0", "epss"},
		{"metadata", "name"}, {"spec", "flows", "0", "name"}, {"spec", "flows", "0", "direction"},
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(device), &u.Object); err != nil {
			t.Fatal(err)
		}
		if errs := v.Validate(u.DeepCopy()); len(errs) != 0 {
			t.Fatalf("the valid base is rejected: %v", errs)
		}
		p := paths[int(which)%len(paths)]
		set(u.Object, p, value)
		for _, e := range v.Validate(u) {
			if !strings.HasPrefix(e.Field, "spec") && !strings.HasPrefix(e.Field, "metadata") && e.Field != "<nil>" && e.Field != "" {
				t.Fatalf("rejection names no field of the object: %v", e)
			}
		}
	})
}

func set(obj map[string]any, path []string, value string) {
	var cur any = obj
	for i, k := range path {
		last := i == len(path)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if k == "addresses" {
					c[k] = []any{value}
				} else {
					c[k] = value
				}
				return
			}
			cur = c[k]
		case []any:
			idx := 0
			if len(c) == 0 {
				return
			}
			if k != "0" {
				return
			}
			if last {
				c[idx] = value
				return
			}
			cur = c[idx]
		}
	}
}

// TestFloatNumbersFromYAMLDecoders: found by FuzzValidate, a device decoded with float64 numbers
// (as some YAML decoders produce) must validate like the server's int64 decoding.
func TestFloatNumbersFromYAMLDecoders(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(device), &u.Object); err != nil {
		t.Fatal(err)
	}
	if errs := v.Validate(u); len(errs) != 0 {
		t.Fatalf("rejected: %v", errs)
	}
}
