package integration

import (
	"context"
	"testing"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	slimmetav1 "github.com/cilium/cilium/pkg/k8s/slim/k8s/apis/meta/v1"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
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

// TestFlatnessAudit: with the guard in place no ordinary pod reaches the device networks
// (Isolated=True); under Audit there is no guard, so the ordinary pod is an offender
// (Isolated=False, FlatNetwork), and a foreign policy that denies it restores isolation.
func TestFlatnessAudit(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const sfx = "-flat"
	startOperator(t)
	devices := applySamples(t, sfx)
	createGateways(t, devices)
	billing := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: "clinical-apps" + sfx, Labels: map[string]string{"app": "billing"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.local/billing:1"}}}}
	g.Expect(env.Client.Create(ctx, billing)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, billing) })
	diag := "diagnostics" + sfx
	isolated := func(g Gomega, want metav1.ConditionStatus, reason string) *v1alpha1.SegmentPolicy {
		var p v1alpha1.SegmentPolicy
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: diag}, &p)).To(Succeed())
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionIsolated)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(want), c.Message)
		g.Expect(c.Reason).To(Equal(reason))
		return &p
	}
	g.Eventually(func(g Gomega) { isolated(g, metav1.ConditionTrue, v1alpha1.ReasonIsolated) }, timeout, pollInterval).Should(Succeed())

	// Other tests' guards also fence the sample networks; give this policy one of its own.
	updatePolicy(g, diag, func(p *v1alpha1.SegmentPolicy) {
		p.Spec.Enforcement = v1alpha1.EnforcementAudit
		p.Spec.DeviceNetworks = []string{"10.99.0.0/16"}
	})
	g.Eventually(func(g Gomega) {
		p := isolated(g, metav1.ConditionFalse, v1alpha1.ReasonFlatNetwork)
		g.Expect(p.Status.Flatness.Offenders).To(ContainElement(ContainSubstring("clinical-apps" + sfx + "/billing")))
	}, timeout, pollInterval).Should(Succeed())
	setEnforcement(g, diag, v1alpha1.EnforcementEnforce)
	g.Eventually(func(g Gomega) { isolated(g, metav1.ConditionTrue, v1alpha1.ReasonIsolated) }, timeout, pollInterval).Should(Succeed())
}
