package plan_test

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/segcheck"
)

// TestPolicyMapEstimateAgainstCilium compares medseg's estimate of the policy map entries a
// gateway carries (the sum of its devices' policyMapEntries) with the map Cilium's engine
// computes for that gateway endpoint, for a gateway fronting 50 and 500 devices. The estimate
// must not be below Cilium's count by more than 10%: it is what would warn before Cilium's
// per-endpoint map overflows.
func TestPolicyMapEstimateAgainstCilium(t *testing.T) {
	for _, n := range []int{50, 500} {
		h := plan.Hospital{Namespaces: map[string]map[string]string{
			"ward":     {"kubernetes.io/metadata.name": "ward", v1alpha1.LabelGatewayNamespace: "true"},
			"clinical": {"kubernetes.io/metadata.name": "clinical"},
		}}
		h.Policies = []v1alpha1.SegmentPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "zone", UID: "uid-zone"},
			Spec: v1alpha1.SegmentPolicySpec{Enforcement: v1alpha1.EnforcementEnforce, DeviceNetworks: []string{"10.64.0.0/16"},
				AllowedPeers: &v1alpha1.AllowedPeers{ExternalCIDRs: []string{"203.0.113.0/24"}, ExternalRequiresGrant: new(bool)}}}}
		pods := []segcheck.Pod{{Name: "gw", Namespace: "ward", Labels: map[string]string{"app": "gw", v1alpha1.LabelGateway: "true"}}}
		for _, app := range []string{"pump-server", "emr", "pacs", "billing"} {
			pods = append(pods, segcheck.Pod{Name: app, Namespace: "clinical", Labels: map[string]string{"app": app}})
		}
		pods = append(pods, segcheck.Pod{Name: "pump-server", Namespace: "ward", Labels: map[string]string{"app": "pump-server"}})
		for i := range n {
			d := &v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("dev-%d", i), Namespace: "ward", UID: types.UID(fmt.Sprintf("uid-%d", i))}}
			d.Spec.Identity = v1alpha1.DeviceIdentity{Manufacturer: "M", Model: "X"}
			d.Spec.Clinical = v1alpha1.ClinicalImpact{SafetyImpact: v1alpha1.SafetyCritical, MissionImpact: v1alpha1.MissionMEFFailure}
			d.Spec.Gateway.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "gw"}}
			d.Spec.Network.Addresses = []string{fmt.Sprintf("10.64.%d.%d", i/250, 1+i%250)}
			clinical := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "clinical"}}
			d.Spec.Flows = []v1alpha1.Flow{
				{Name: "therapy", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierEssential, Protocol: v1alpha1.ProtocolTCP, GatewayPort: 8443, DevicePort: 443,
					Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pump-server"}}}}},
				{Name: "emr", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierClinical, Protocol: v1alpha1.ProtocolTCP, GatewayPort: 2575, PeerPort: 2575,
					Peers: []v1alpha1.Peer{{NamespaceSelector: clinical, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "emr"}}}}},
				{Name: "images", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierClinical, Protocol: v1alpha1.ProtocolTCP, GatewayPort: 11112 + int32(i%4), PeerPort: 104,
					Peers: []v1alpha1.Peer{{NamespaceSelector: clinical, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pacs"}}}}},
				{Name: "vendor", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierSupport, Protocol: v1alpha1.ProtocolTCP, GatewayPort: 2222, DevicePort: 22,
					Peers: []v1alpha1.Peer{{CIDR: "203.0.113.0/28"}}},
			}
			d.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: "x", ApprovedAt: metav1.NewTime(testNow.Add(-1)), Ticket: "T", FlowsHash: v1alpha1.FlowsHash(d.Spec.Flows)}
			h.Devices = append(h.Devices, d)
		}
		w, err := segcheck.Rendered(h, pods, nil, testNow)
		if err != nil {
			t.Fatal(err)
		}
		estimate := 0
		for _, p := range w.Plans {
			estimate += p.Render.PolicyMapEntries
		}
		cilium, err := w.PolicyMapEntries("ward/gw")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d devices behind one gateway: estimate %d entries, Cilium's engine %d (estimate/Cilium %.2f)", n, estimate, cilium, float64(estimate)/float64(cilium))
		if float64(estimate) < 0.9*float64(cilium) {
			t.Errorf("%d devices: the estimate %d is more than 10%% below Cilium's %d entries: the capacity warning would come too late", n, estimate, cilium)
		}
	}
}
