package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/operator"
	"github.com/medseg/medseg/internal/render"
)

// TestFullGatewayGetsNoMoreFlows runs the operator with a policy map sized for two devices
// behind one gateway pod (and one entry to spare): the second device carries NearCapacity naming the gateway and
// the numbers; the third is refused (no policy written, Segmented=False OverCapacity) rather
// than overflow Cilium's map; the first two stay enforced; and a new flow on an enforced device
// is not added while the gateway is full, while its existing enforcement stays.
func TestFullGatewayGetsNoMoreFlows(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const ns = "capacity"
	g.Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{v1alpha1.LabelGatewayNamespace: "true", "medseg.io/zone": ns}}})).To(Succeed())
	pol := &v1alpha1.SegmentPolicy{ObjectMeta: metav1.ObjectMeta{Name: ns}, Spec: v1alpha1.SegmentPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"medseg.io/zone": ns}},
		Enforcement:       v1alpha1.EnforcementEnforce, DeviceNetworks: []string{"10.78.0.0/16"},
		Onboarding: &v1alpha1.Onboarding{Required: ptr.To(false)}}}
	g.Expect(env.Client.Create(ctx, pol)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pol) })
	gw := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shared-gw", Namespace: ns, Labels: map[string]string{"app": "shared-gw", v1alpha1.LabelGateway: "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "proxy", Image: "registry.local/gateway:1"}}}}
	g.Expect(env.Client.Create(ctx, gw)).To(Succeed())
	monitor := func(i int) *v1alpha1.MedicalDevice {
		return &v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("monitor-%d", i), Namespace: ns},
			Spec: v1alpha1.MedicalDeviceSpec{
				Identity: v1alpha1.DeviceIdentity{Manufacturer: "Acme", Model: "Monitor"},
				Clinical: v1alpha1.ClinicalImpact{SafetyImpact: v1alpha1.SafetyMarginal, MissionImpact: v1alpha1.MissionDegraded},
				Network:  v1alpha1.DeviceNetwork{Addresses: []string{fmt.Sprintf("10.78.0.%d", i)}},
				Gateway:  v1alpha1.GatewayRef{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "shared-gw"}}},
				Flows: []v1alpha1.Flow{{Name: "alarms", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierEssential, GatewayPort: 2575, PeerPort: 2575,
					Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "central-station"}}}}}},
			}}
	}
	one, err := render.Device(render.Input{Device: monitor(1), Policy: pol, Priority: v1alpha1.PriorityDefer, Now: time.Now()})
	g.Expect(err).NotTo(HaveOccurred())
	entries := one.PolicyMapEntries
	g.Expect(entries).To(BeNumerically(">", 0))
	capacity := 2*entries + 1
	_, _ = runOperatorWith(t, func(c *operator.Config) { c.PolicyMapCapacity = capacity })

	key := func(i int) types.NamespacedName {
		return types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("monitor-%d", i)}
	}
	for i := 1; i <= 3; i++ {
		d := monitor(i)
		g.Expect(env.Client.Create(ctx, d)).To(Succeed())
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), d) })
		if i == 3 {
			break
		}
		g.Eventually(func(g Gomega) {
			g.Expect(segReason(getDevice(g, key(i)))).To(Equal(v1alpha1.ReasonSegmented))
		}, timeout, pollInterval).Should(Succeed())
	}
	g.Eventually(func(g Gomega) {
		c := condition(getDevice(g, key(2)), v1alpha1.ConditionGatewayCapacity)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(v1alpha1.ReasonNearCapacity))
		g.Expect(c.Message).To(ContainSubstring(fmt.Sprintf("gateway capacity/shared-gw would hold %d policy map entries (estimated) for 2 devices, against Cilium's %d", 2*entries, capacity)))

		third := getDevice(g, key(3))
		seg := condition(third, v1alpha1.ConditionSegmented)
		g.Expect(seg).NotTo(BeNil())
		g.Expect(seg.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(seg.Reason).To(Equal(v1alpha1.ReasonOverCapacity))
		g.Expect(seg.Message).To(ContainSubstring("medseg writes no policy that would add to it"))
		g.Expect(condition(third, v1alpha1.ConditionGatewayCapacity).Reason).To(Equal(v1alpha1.ReasonOverCapacity))
	}, timeout, pollInterval).Should(Succeed())
	err = env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: render.DeviceObjectName("monitor-3")}, &ciliumv2.CiliumNetworkPolicy{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no policy for the device that would overflow the gateway: %v", err)
	for i := 1; i <= 2; i++ {
		g.Expect(segReason(getDevice(g, key(i)))).To(Equal(v1alpha1.ReasonSegmented), "the devices already enforced stay enforced")
	}

	// A new flow on an enforced device would add entries: it is not added, the policy in place stays.
	before := getCNP(g, ns, render.DeviceObjectName("monitor-2")).Annotations[v1alpha1.AnnotationContentHash]
	updateDevice(g, key(2), func(d *v1alpha1.MedicalDevice) {
		d.Spec.Flows = append(d.Spec.Flows, v1alpha1.Flow{Name: "emr", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierClinical, GatewayPort: 2576, PeerPort: 2576,
			Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "emr"}}},
				{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "emr-standby"}}}, {PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "emr-archive"}}}}})
	})
	g.Eventually(func(g Gomega) {
		d := getDevice(g, key(2))
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonOverCapacity), "entries %d (one device %d, capacity %d), %+v, %+v", d.Status.Segmentation.PolicyMapEntries, entries, capacity,
			condition(d, v1alpha1.ConditionGatewayCapacity), d.Status.Segmentation.BlockedFlows)
		g.Expect(condition(d, v1alpha1.ConditionSegmented).Message).To(ContainSubstring("medseg adds no flows to it and keeps medseg-monitor-2 as it is"))
	}, timeout, pollInterval).Should(Succeed())
	g.Expect(getCNP(g, ns, render.DeviceObjectName("monitor-2")).Annotations[v1alpha1.AnnotationContentHash]).To(Equal(before))
}
