package v1alpha1_test

import (
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/manifest"
	"github.com/medseg/medseg/internal/testenv"
)

func hashFlows() []v1alpha1.Flow {
	return []v1alpha1.Flow{
		{Name: "therapy-orders", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierEssential, GatewayPort: 8443, DevicePort: 443,
			Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pump-server"}}}}},
		{Name: "vendor", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierSupport, GatewayPort: 2222, DevicePort: 22,
			Peers: []v1alpha1.Peer{{CIDR: "203.0.113.0/28"}, {NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "zone", Operator: metav1.LabelSelectorOpIn, Values: []string{"b", "a"}}}}}}},
	}
}

// TestFlowsHashIsStable pins the hash of a fixed flow list. If it changes, every commissioned
// device in every cluster falls back to onboarding on upgrade: change the canonical form only
// by adding fields that are omitted when unset.
func TestFlowsHashIsStable(t *testing.T) {
	const want = "sha256:003debad015a9903b89c20b2a4ba033ac5c27d46cfadb42cd4e3b7b9752711dd"
	if got := v1alpha1.FlowsHash(hashFlows()); got != want {
		t.Errorf("FlowsHash changed:\n got %s\nwant %s", got, want)
	}
}

func TestFlowsHashCoversWhatChangesAccess(t *testing.T) {
	base := v1alpha1.FlowsHash(hashFlows())
	same := map[string]func([]v1alpha1.Flow) []v1alpha1.Flow{
		"flows in another order": func(f []v1alpha1.Flow) []v1alpha1.Flow { return []v1alpha1.Flow{f[1], f[0]} },
		"peers in another order": func(f []v1alpha1.Flow) []v1alpha1.Flow {
			f[1].Peers[0], f[1].Peers[1] = f[1].Peers[1], f[1].Peers[0]
			return f
		},
		"selector values in another order": func(f []v1alpha1.Flow) []v1alpha1.Flow {
			f[1].Peers[1].NamespaceSelector.MatchExpressions[0].Values = []string{"a", "b"}
			return f
		},
		"defaults written out (TCP, Standing)": func(f []v1alpha1.Flow) []v1alpha1.Flow {
			f[0].Protocol, f[0].Access = v1alpha1.ProtocolTCP, v1alpha1.AccessStanding
			return f
		},
		"a new description": func(f []v1alpha1.Flow) []v1alpha1.Flow { f[0].Description = "orders"; return f },
	}
	for name, mutate := range same {
		if got := v1alpha1.FlowsHash(mutate(hashFlows())); got != base {
			t.Errorf("%s changed the hash; it does not change what the network allows", name)
		}
	}
	differ := map[string]func([]v1alpha1.Flow) []v1alpha1.Flow{
		"a gateway port":  func(f []v1alpha1.Flow) []v1alpha1.Flow { f[0].GatewayPort = 8444; return f },
		"a device port":   func(f []v1alpha1.Flow) []v1alpha1.Flow { f[0].DevicePort = 444; return f },
		"the protocol":    func(f []v1alpha1.Flow) []v1alpha1.Flow { f[0].Protocol = v1alpha1.ProtocolUDP; return f },
		"the tier":        func(f []v1alpha1.Flow) []v1alpha1.Flow { f[1].Tier = v1alpha1.TierEssential; return f },
		"the access":      func(f []v1alpha1.Flow) []v1alpha1.Flow { f[1].Access = v1alpha1.AccessGranted; return f },
		"the direction":   func(f []v1alpha1.Flow) []v1alpha1.Flow { f[0].Direction = v1alpha1.DirectionFromDevice; return f },
		"a wider cidr":    func(f []v1alpha1.Flow) []v1alpha1.Flow { f[1].Peers[0].CIDR = "203.0.113.0/24"; return f },
		"a peer selector": func(f []v1alpha1.Flow) []v1alpha1.Flow { f[0].Peers[0].PodSelector.MatchLabels["app"] = "x"; return f },
		"an added peer": func(f []v1alpha1.Flow) []v1alpha1.Flow {
			f[0].Peers = append(f[0].Peers, v1alpha1.Peer{CIDR: "198.51.100.0/24"})
			return f
		},
		"own namespace → every namespace": func(f []v1alpha1.Flow) []v1alpha1.Flow {
			f[0].Peers[0].NamespaceSelector = &metav1.LabelSelector{}
			return f
		},
		"an added flow":  func(f []v1alpha1.Flow) []v1alpha1.Flow { return append(f, v1alpha1.Flow{Name: "x", GatewayPort: 1}) },
		"a removed flow": func(f []v1alpha1.Flow) []v1alpha1.Flow { return f[:1] },
	}
	for name, mutate := range differ {
		if got := v1alpha1.FlowsHash(mutate(hashFlows())); got == base {
			t.Errorf("changing %s kept the hash: a changed flow would stay commissioned", name)
		}
	}
}

// TestSampleDevicesAreCommissioned keeps the samples' commissioning in step with their flows.
func TestSampleDevicesAreCommissioned(t *testing.T) {
	objs, err := manifest.Read([]string{filepath.Join(testenv.RepoRoot(), "config", "samples", "devices.yaml"),
		filepath.Join(testenv.RepoRoot(), "config", "samples", "staged-rollout", "hospital.yaml")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.Object.GetKind() != "MedicalDevice" || o.Object.Object["spec"].(map[string]any)["commissioning"] == nil {
			continue
		}
		var d v1alpha1.MedicalDevice
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object.Object, &d); err != nil {
			t.Fatal(err)
		}
		if st := d.Spec.CommissioningState(); !st.Commissioned {
			t.Errorf("%s: %s (flowsHash should be %s)", d.Name, st.Message, st.FlowsHash)
		}
	}
}
