package plan

import (
	"log/slog"
	"testing"
	"time"

	"github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2/validator"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/render"
	"github.com/medseg/medseg/internal/validate"
)

const baseDevice = `apiVersion: medseg.io/v1alpha1
kind: MedicalDevice
metadata: {name: pump, namespace: icu, uid: 0a1b}
spec:
  identity: {manufacturer: A, model: B}
  clinical: {safetyImpact: Catastrophic, missionImpact: MEFFailure}
  network: {addresses: ["10.20.0.5"]}
  gateway: {podSelector: {matchLabels: {app: gw}}}
  flows:
    - {name: therapy, direction: ToDevice, tier: Essential, gatewayPort: 8443, devicePort: 443, peers: [{podSelector: {matchLabels: {app: server}}}]}
    - {name: vendor, direction: ToDevice, tier: Support, gatewayPort: 2222, devicePort: 22, peers: [{cidr: "203.0.113.0/28"}]}
  vulnerabilities:
    - {id: CVE-1, cvss: "9.8", epss: "0.95"}
`

const basePolicy = `apiVersion: medseg.io/v1alpha1
kind: SegmentPolicy
metadata: {name: p, uid: 0c0d}
spec:
  enforcement: Enforce
  deviceNetworks: ["10.20.0.0/16"]
  allowedPeers: {externalCIDRs: ["203.0.113.0/24"]}
`

// FuzzAcceptedInputRendersValidPolicies mutates device fields to arbitrary values. Whatever the
// API's validation (the same schema and CEL, offline) accepts must plan without panicking, and
// every policy rendered from it must pass both of Cilium's validations. Rejected inputs never
// reach the operator.
func FuzzAcceptedInputRendersValidPolicies(f *testing.F) {
	v, err := validate.New()
	if err != nil {
		f.Fatal(err)
	}
	np, err := validator.NewNPValidator(slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"fd00:20::5", "app", "In", "NotIn", "Exists", "a/b", "UDP", "65535", "198.51.100.0/24", "kubernetes.io/metadata.name"} {
		for i := range uint8(8) {
			f.Add(i, s)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		dev := decode(t, baseDevice)
		pol := decode(t, basePolicy)
		flows := dev.Object["spec"].(map[string]any)["flows"].([]any)
		peer := flows[0].(map[string]any)["peers"].([]any)[0].(map[string]any)
		switch which % 8 {
		case 0:
			dev.Object["spec"].(map[string]any)["network"] = map[string]any{"addresses": []any{value}}
		case 1:
			peer["podSelector"] = map[string]any{"matchLabels": map[string]any{value: "x"}}
		case 2:
			peer["podSelector"] = map[string]any{"matchExpressions": []any{map[string]any{"key": "app", "operator": value, "values": []any{"a"}}}}
		case 3:
			peer["namespaceSelector"] = map[string]any{"matchLabels": map[string]any{value: value}}
		case 4:
			flows[1].(map[string]any)["peers"] = []any{map[string]any{"cidr": value}}
		case 5:
			flows[0].(map[string]any)["protocol"] = value
		case 6:
			dev.Object["spec"].(map[string]any)["gateway"] = map[string]any{"podSelector": map[string]any{"matchLabels": map[string]any{value: "gw"}}}
		case 7:
			pol.Object["spec"].(map[string]any)["deviceNetworks"] = []any{value}
		}
		if len(v.Validate(dev)) > 0 || len(v.Validate(pol)) > 0 {
			return // the API server would reject it
		}
		var d v1alpha1.MedicalDevice
		var p v1alpha1.SegmentPolicy
		if runtime.DefaultUnstructuredConverter.FromUnstructured(dev.Object, &d) != nil || runtime.DefaultUnstructuredConverter.FromUnstructured(pol.Object, &p) != nil {
			return
		}
		plan, err := Device(Input{Device: &d, Policies: []v1alpha1.SegmentPolicy{p}, Namespaces: map[string]map[string]string{"icu": {}}, Now: time.Unix(0, 0)})
		if err != nil {
			return // reported as InvalidInput; nothing is written
		}
		if plan.Render == nil || plan.Render.CNP == nil {
			t.Fatal("a governed device must render its policy")
		}
		if _, err := plan.Render.CNP.DeepCopy().Parse(slog.New(slog.DiscardHandler), ""); err != nil {
			t.Fatalf("accepted input %q rendered a policy Cilium rejects: %v", value, err)
		}
		u, err := render.ToUnstructured(plan.Render.CNP)
		if err != nil {
			t.Fatal(err)
		}
		if err := np.ValidateCNP(u); err != nil {
			t.Fatalf("accepted input %q rendered a policy Cilium's schema rejects: %v", value, err)
		}
		g, err := render.Guard(&p, GuardMembers(&p, Hospital{Devices: []*v1alpha1.MedicalDevice{&d}, Policies: []v1alpha1.SegmentPolicy{p}}))
		if err != nil {
			return
		}
		if _, err := g.DeepCopy().Parse(slog.New(slog.DiscardHandler), ""); err != nil {
			t.Fatalf("accepted policy rendered a guard Cilium rejects: %v", err)
		}
	})
}

func decode(t *testing.T, s string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(s), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}
