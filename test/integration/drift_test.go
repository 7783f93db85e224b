package integration

import (
	"context"
	"testing"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	slimmetav1 "github.com/cilium/cilium/pkg/k8s/slim/k8s/apis/meta/v1"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/medseg/medseg/api/v1alpha1"
)

// TestForeignPolicyWidensAndIsReported: a hand-made allow rule that opens a gateway to the world
// is listed on the device, marks it ForeignPolicyWidens, makes exposure Open and raises the
// priority; a narrow metrics rule is only listed; removing the widening rule restores the device.
// medseg never deletes either policy.
func TestForeignPolicyWidensAndIsReported(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const sfx = "-drift"
	startOperator(t)
	devices := applySamples(t, sfx)
	createGateways(t, devices)
	icu := "icu" + sfx
	monitor := types.NamespacedName{Namespace: icu, Name: "patient-monitor-bed-12"}
	g.Eventually(func(g Gomega) {
		d := getDevice(g, monitor)
		g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonSegmented))
		g.Expect(d.Status.Risk.Priority).To(Equal(v1alpha1.PriorityScheduled))
		g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeStandard))
	}, timeout, pollInterval).Should(Succeed())

	metrics := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "scrape-gateways", Namespace: icu},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "monitor-gateway"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(9090))}},
			}},
		},
	}
	g.Expect(env.Client.Create(ctx, metrics)).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := getDevice(g, monitor)
		g.Expect(d.Status.Drift).NotTo(BeNil())
		g.Expect(d.Status.Drift.ForeignPolicies).To(ContainElement(v1alpha1.ForeignPolicy{
			Kind: "NetworkPolicy", Namespace: icu, Name: "scrape-gateways", Reason: "selects the gateway without widening access"}))
		g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonSegmented))
	}, timeout, pollInterval).Should(Succeed())

	open := &ciliumv2.CiliumNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "temporary-migration", Namespace: icu},
		Spec: &policyapi.Rule{
			EndpointSelector: policyapi.EndpointSelector{LabelSelector: &slimmetav1.LabelSelector{MatchLabels: map[string]string{"app": "monitor-gateway"}}},
			Ingress:          []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEntities: policyapi.EntitySlice{policyapi.EntityWorld}}}},
		},
	}
	g.Expect(env.Client.Create(ctx, open)).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := getDevice(g, monitor)
		seg := condition(d, v1alpha1.ConditionSegmented)
		g.Expect(seg.Reason).To(Equal(v1alpha1.ReasonForeignPolicyWidens))
		g.Expect(seg.Message).To(ContainSubstring("temporary-migration"))
		g.Expect(d.Status.Risk.Exposure.Value).To(Equal("Open"))
		g.Expect(d.Status.Risk.Priority).To(Equal(v1alpha1.PriorityOutOfCycle))
		g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeQuarantine))
		g.Expect(d.Status.Drift.ForeignPolicies).To(ContainElement(v1alpha1.ForeignPolicy{
			Kind: "CiliumNetworkPolicy", Namespace: icu, Name: "temporary-migration", Widens: true, Reason: "opens the gateway to world"}))
	}, timeout, pollInterval).Should(Succeed())
	// The pump in the same namespace is not affected: the rule selects only the monitor's gateway.
	g.Expect(segReason(getDevice(g, types.NamespacedName{Namespace: icu, Name: "infusion-pump-bed-12"}))).
		To(Equal(v1alpha1.ReasonSegmented))

	g.Expect(env.Client.Delete(ctx, open)).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := getDevice(g, monitor)
		g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonSegmented))
		g.Expect(d.Status.Risk.Priority).To(Equal(v1alpha1.PriorityScheduled))
		g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeStandard))
		g.Expect(d.Status.Drift.ForeignPolicies).To(HaveLen(1))
	}, timeout, pollInterval).Should(Succeed())
	// medseg deleted nothing it does not own.
	g.Expect(env.Client.Get(ctx, types.NamespacedName{Namespace: icu, Name: "scrape-gateways"}, &networkingv1.NetworkPolicy{})).To(Succeed())
	g.Expect(env.Client.Delete(ctx, metrics)).To(Succeed())
}
