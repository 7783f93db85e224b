package integration

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/controllers"
	"github.com/medseg/medseg/internal/cli"
)

// adoptionHospital creates a gateway namespace, a SegmentPolicy governing it (vendor VPN
// allowed as an external peer, grants as given) and an infusion pump with an Essential, a
// Clinical and a vendor (Support, external) flow. It returns the pump's key.
func adoptionHospital(t *testing.T, ns string, grants []v1alpha1.AccessGrant, commissioned bool) types.NamespacedName {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{v1alpha1.LabelGatewayNamespace: "true", "medseg.io/zone": ns}}}))
	pol := &v1alpha1.SegmentPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: ns},
		Spec: v1alpha1.SegmentPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"medseg.io/zone": ns}},
			Enforcement:       v1alpha1.EnforcementEnforce,
			DeviceNetworks:    []string{"10.77.0.0/16"},
			AllowedPeers:      &v1alpha1.AllowedPeers{ExternalCIDRs: []string{"203.0.113.0/24"}},
		},
	}
	must(env.Client.Create(ctx, pol))
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pol) })
	for i := range grants {
		g := grants[i].DeepCopy()
		must(env.Client.Create(ctx, g))
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), g) })
	}
	pump := &v1alpha1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Name: "pump", Namespace: ns},
		Spec: v1alpha1.MedicalDeviceSpec{
			Identity: v1alpha1.DeviceIdentity{Manufacturer: "Acme Medical", Model: "InfuSafe 3000"},
			Clinical: v1alpha1.ClinicalImpact{SafetyImpact: v1alpha1.SafetyCatastrophic, MissionImpact: v1alpha1.MissionMEFFailure},
			Network:  v1alpha1.DeviceNetwork{Addresses: []string{"10.77.1.12"}},
			Gateway:  v1alpha1.GatewayRef{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "pump-gateway"}}},
			Flows: []v1alpha1.Flow{
				{Name: "therapy-orders", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierEssential, GatewayPort: 8443, DevicePort: 443,
					Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pump-server"}}}}},
				{Name: "emr", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierClinical, GatewayPort: 2575, PeerPort: 2575,
					Peers: []v1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "emr"}}}}},
				{Name: "vendor-maintenance", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierSupport, GatewayPort: 2222, DevicePort: 22,
					Peers: []v1alpha1.Peer{{CIDR: "203.0.113.0/28"}}},
			},
		},
	}
	if commissioned {
		pump.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: "biomed", ApprovedAt: metav1.Now(), Ticket: "CHG-1", FlowsHash: v1alpha1.FlowsHash(pump.Spec.Flows)}
	}
	must(env.Client.Create(ctx, pump))
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pump) })
	return types.NamespacedName{Namespace: ns, Name: pump.Name}
}

func blockedReasons(d *v1alpha1.MedicalDevice) map[string]v1alpha1.BlockReason {
	out := map[string]v1alpha1.BlockReason{}
	if d.Status.Segmentation != nil {
		for _, b := range d.Status.Segmentation.BlockedFlows {
			out[b.Name] = b.Reason
		}
	}
	return out
}

// TestDeviceIsOnboardedUntilCommissioned: a new device runs in the policy's onboarding mode
// (Restricted) whatever its risk, with Commissioned=False; `kubectl medseg commission` (the same
// function) approves its flows and the device leaves onboarding; changing the flows afterwards
// puts it back, with Events for both transitions.
func TestDeviceIsOnboardedUntilCommissioned(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	startOperator(t)
	key := adoptionHospital(t, "adoption", nil, false)

	g.Eventually(func(g Gomega) {
		d := getDevice(g, key)
		c := condition(d, v1alpha1.ConditionCommissioned)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(v1alpha1.ReasonNotCommissioned))
		g.Expect(c.Message).To(ContainSubstring("onboarding mode Restricted"))
		g.Expect(d.Status.Risk.Priority).To(Equal(v1alpha1.PriorityDefer), "no vulnerabilities: risk alone would be Standard")
		g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeRestricted))
		g.Expect(d.Status.Segmentation.Onboarding).To(BeTrue())
		g.Expect(d.Status.Segmentation.ModeReason).To(ContainSubstring("onboarding: not commissioned"))
		g.Expect(blockedReasons(d)).To(HaveKeyWithValue("vendor-maintenance", v1alpha1.BlockMode))
		g.Expect(d.Status.FlowsHash).To(Equal(v1alpha1.FlowsHash(d.Spec.Flows)))
	}, timeout, pollInterval).Should(Succeed())

	var out bytes.Buffer
	g.Expect(cli.Commission(ctx, env.Client, &out, key, cli.CommissionOptions{Ticket: "CHG-2026-0999", ApprovedBy: "J. Rivera", Now: time.Now()})).To(Succeed())
	g.Expect(out.String()).To(ContainSubstring("flow vendor-maintenance (Support, TCP): peers [external 203.0.113.0/28] → gateway:2222 → device:22"))
	g.Expect(out.String()).To(ContainSubstring("commissioned: 3 flow(s) approved by J. Rivera, ticket CHG-2026-0999"))
	g.Eventually(func(g Gomega) {
		d := getDevice(g, key)
		c := condition(d, v1alpha1.ConditionCommissioned)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Message).To(ContainSubstring("J. Rivera (ticket CHG-2026-0999"))
		g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeStandard))
		g.Expect(d.Status.Segmentation.Onboarding).To(BeFalse())
		// Standard, but the vendor flow still waits for an access grant.
		g.Expect(blockedReasons(d)).To(HaveKeyWithValue("vendor-maintenance", v1alpha1.BlockGrant))
		g.Expect(eventReasons(g, key.Namespace, key.Name)).To(ContainElement(v1alpha1.EventCommissioned))
	}, timeout, pollInterval).Should(Succeed())

	// Commissioning again changes nothing.
	out.Reset()
	g.Expect(cli.Commission(ctx, env.Client, &out, key, cli.CommissionOptions{Ticket: "CHG-2", ApprovedBy: "someone", Now: time.Now()})).To(Succeed())
	g.Expect(out.String()).To(ContainSubstring("already commissioned by J. Rivera"))

	// A new flow nobody approved: back to onboarding.
	var d v1alpha1.MedicalDevice
	g.Expect(env.Client.Get(ctx, key, &d)).To(Succeed())
	d.Spec.Flows = append(d.Spec.Flows, v1alpha1.Flow{Name: "remote-desktop", Direction: v1alpha1.DirectionToDevice, Tier: v1alpha1.TierClinical,
		GatewayPort: 3389, DevicePort: 3389, Peers: []v1alpha1.Peer{{NamespaceSelector: &metav1.LabelSelector{}}}})
	g.Expect(env.Client.Update(ctx, &d)).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := getDevice(g, key)
		c := condition(d, v1alpha1.ConditionCommissioned)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(v1alpha1.ReasonFlowsChanged))
		g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeRestricted))
		g.Expect(d.Status.Segmentation.ModeReason).To(ContainSubstring("flows changed after commissioning"))
		g.Expect(eventReasons(g, key.Namespace, key.Name)).To(ContainElement(v1alpha1.EventFlowsChanged))
	}, timeout, pollInterval).Should(Succeed())
}

// TestAccessGrantOpensVendorFlowOnlyBetweenItsEdges drives the device reconciler with an
// injected clock against the real API server: before the grant the vendor flow is blocked and
// the reconciler asks to come back exactly at notBefore; inside the window the flow is in the
// CiliumNetworkPolicy, status shows the grant and when it ends, and an AccessGranted Event is
// emitted; at notAfter it is gone again with AccessEnded, and nothing more is scheduled.
func TestAccessGrantOpensVendorFlowOnlyBetweenItsEdges(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t0 := time.Now().UTC().Truncate(time.Second)
	grant := accessGrant("acme-window", v1alpha1.ObjectRef{Namespace: "access", Name: "pump"}, "vendor-maintenance", t0.Add(time.Hour), 2*time.Hour)
	key := adoptionHospital(t, "access", []v1alpha1.AccessGrant{grant}, true)

	// A manager for its cache and indexes only: the test calls Reconcile itself.
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(controllers.SetupIndexes(ctx, mgr)).To(Succeed())
	go func() { _ = mgr.Start(ctx) }()
	g.Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	clock := clocktesting.NewFakePassiveClock(t0)
	recorder := events.NewFakeRecorder(100)
	r := &controllers.MedicalDeviceReconciler{Client: mgr.GetClient(), Recorder: recorder, Clock: clock, Metrics: controllers.NewMetrics(nil)}

	reconcileAt := func(at time.Time) (time.Duration, *v1alpha1.MedicalDevice) {
		t.Helper()
		clock.SetTime(at)
		// Let the cache catch up with the previous reconcile's own writes first.
		g.Eventually(func(g Gomega) {
			var cached v1alpha1.MedicalDevice
			g.Expect(mgr.GetClient().Get(ctx, key, &cached)).To(Succeed())
			g.Expect(cached.Status.ObservedGeneration).To(Equal(getDevice(g, key).Status.ObservedGeneration))
		}, timeout, pollInterval).Should(Succeed())
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key})
		g.Expect(err).NotTo(HaveOccurred())
		return res.RequeueAfter, getDevice(g, key)
	}
	vendorOpen := func(g Gomega) bool {
		cnp := getCNP(g, key.Namespace, "medseg-pump")
		for _, rule := range cnp.Spec.Ingress {
			for _, c := range rule.FromCIDR {
				if c == "203.0.113.0/28" {
					return true
				}
			}
		}
		return false
	}
	drain := func() []string {
		var out []string
		for {
			select {
			case e := <-recorder.Events:
				out = append(out, e)
			default:
				return out
			}
		}
	}
	near := func(d, want time.Duration) bool { return d >= want && d < want+time.Second }

	// Before the window.
	after, d := reconcileAt(t0)
	g.Expect(near(after, time.Hour)).To(BeTrue(), "requeue after %s, want notBefore (1h)", after)
	g.Expect(blockedReasons(d)).To(HaveKeyWithValue("vendor-maintenance", v1alpha1.BlockGrant))
	g.Expect(d.Status.Segmentation.BlockedFlows).To(ContainElement(HaveField("Message", ContainSubstring("AccessGrant acme-window (approved by m.chen@hospital.example, ticket VND-7781) opens at"))))
	g.Expect(d.Status.Segmentation.ActiveGrants).To(BeEmpty())
	g.Expect(vendorOpen(g)).To(BeFalse())
	g.Expect(d.Status.Risk.Exposure.Value).To(Equal("Controlled"), "an external peer behind grants is not Open exposure")
	drain()

	// One nanosecond before notBefore: still closed.
	after, d = reconcileAt(grant.Spec.NotBefore.Add(-time.Nanosecond))
	g.Expect(after).To(BeNumerically("<", time.Second))
	g.Expect(blockedReasons(d)).To(HaveKey("vendor-maintenance"))

	// Inside the window.
	after, d = reconcileAt(grant.Spec.NotBefore.Time)
	g.Expect(near(after, 2*time.Hour)).To(BeTrue(), "requeue after %s, want notAfter (2h)", after)
	g.Expect(d.Status.Segmentation.AllowedFlows).To(ContainElement("vendor-maintenance"))
	g.Expect(d.Status.Segmentation.ActiveGrants).To(HaveLen(1))
	ag := d.Status.Segmentation.ActiveGrants[0]
	g.Expect(ag.Name).To(Equal("acme-window"))
	g.Expect(ag.NotAfter.Time.Equal(grant.Spec.NotAfter.Time)).To(BeTrue())
	g.Expect(vendorOpen(g)).To(BeTrue())
	g.Expect(strings.Join(drain(), "\n")).To(ContainSubstring("AccessGranted AccessGrant acme-window (approved by m.chen@hospital.example, ticket VND-7781) opens flow vendor-maintenance until"))

	// At notAfter: closed again, nothing more scheduled.
	after, d = reconcileAt(grant.Spec.NotAfter.Time)
	g.Expect(after).To(BeZero())
	g.Expect(blockedReasons(d)).To(HaveKeyWithValue("vendor-maintenance", v1alpha1.BlockGrant))
	g.Expect(d.Status.Segmentation.ActiveGrants).To(BeEmpty())
	g.Expect(vendorOpen(g)).To(BeFalse())
	g.Expect(strings.Join(drain(), "\n")).To(ContainSubstring("AccessEnded AccessGrant acme-window no longer opens flow vendor-maintenance: the window ended at"))

	// An expired grant never reopens it.
	after, d = reconcileAt(grant.Spec.NotAfter.Add(time.Hour))
	g.Expect(after).To(BeZero())
	g.Expect(blockedReasons(d)).To(HaveKeyWithValue("vendor-maintenance", v1alpha1.BlockGrant))
	g.Expect(vendorOpen(g)).To(BeFalse())
}

// TestCommissionNeverApprovesFlowsItDidNotShow: commission retries when only the
// resourceVersion moved (medseg wrote status meanwhile), and approves nothing when the flows
// changed between reading and writing.
func TestCommissionNeverApprovesFlowsItDidNotShow(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	key := adoptionHospital(t, "commission-race", nil, false)
	base, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	// meddle runs once, just before the first write, as another writer would.
	racing := func(meddle func(d *v1alpha1.MedicalDevice) error) client.Client {
		done := false
		return interceptor.NewClient(base, interceptor.Funcs{
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				if !done {
					done = true
					var cur v1alpha1.MedicalDevice
					if err := c.Get(ctx, key, &cur); err != nil {
						return err
					}
					if err := meddle(&cur); err != nil {
						return err
					}
				}
				return c.Patch(ctx, obj, patch, opts...)
			},
		})
	}
	var out bytes.Buffer
	flowsChanged := racing(func(d *v1alpha1.MedicalDevice) error {
		d.Spec.Flows[0].GatewayPort = 9443
		return base.Update(ctx, d)
	})
	err = cli.Commission(ctx, flowsChanged, &out, key, cli.CommissionOptions{Ticket: "CHG-1", ApprovedBy: "J. Rivera", Now: time.Now()})
	g.Expect(err).To(MatchError(ContainSubstring("changed while you were approving them")))
	g.Expect(getDevice(g, key).Spec.Commissioning).To(BeNil())

	statusWritten := racing(func(d *v1alpha1.MedicalDevice) error {
		d.Status.FlowsHash = "sha256:meanwhile"
		return base.Status().Update(ctx, d)
	})
	out.Reset()
	g.Expect(cli.Commission(ctx, statusWritten, &out, key, cli.CommissionOptions{Ticket: "CHG-2", ApprovedBy: "J. Rivera", Now: time.Now()})).To(Succeed())
	d := getDevice(g, key)
	g.Expect(d.Spec.Commissioning).NotTo(BeNil())
	g.Expect(d.Spec.Commissioning.FlowsHash).To(Equal(v1alpha1.FlowsHash(d.Spec.Flows)))
	g.Expect(d.Spec.Flows[0].GatewayPort).To(Equal(int32(9443)), "the approved flows are the changed ones, shown on the second run")
}

// accessGrant is an AccessGrant for a window of d from notBefore.
func accessGrant(name string, dev v1alpha1.ObjectRef, flow string, notBefore time.Time, d time.Duration) v1alpha1.AccessGrant {
	return v1alpha1.AccessGrant{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.AccessGrantSpec{Flow: flow,
		Approval: v1alpha1.Approval{Device: dev, NotBefore: metav1.NewTime(notBefore), NotAfter: metav1.NewTime(notBefore.Add(d)),
			ApprovedBy: "m.chen@hospital.example", Ticket: "VND-7781", Justification: "firmware check"}}}
}

// TestApprovalPhases: each approval carries its own phase, with the reason it cannot take
// effect (a flow the device lacks, a standing flow, a missing device, a window longer than the
// zone allows), an Event on every change, and the fix of the device clears its line without
// anyone touching the approval. The approval's status is the only thing written about it.
func TestApprovalPhases(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	startOperator(t)
	now := time.Now().UTC().Truncate(time.Second)
	pump := v1alpha1.ObjectRef{Namespace: "approvals", Name: "pump"}
	key := adoptionHospital(t, "approvals", []v1alpha1.AccessGrant{
		accessGrant("approvals-typo", pump, "vendor-maint", now, time.Hour),
		accessGrant("approvals-standing", pump, "emr", now, time.Hour),
		accessGrant("approvals-elsewhere", v1alpha1.ObjectRef{Namespace: "other-ward", Name: "pump"}, "vendor-maintenance", now, time.Hour),
		accessGrant("approvals-fine", pump, "vendor-maintenance", now, time.Hour),
		accessGrant("approvals-too-long", pump, "vendor-maintenance", now, 9*time.Hour),
		accessGrant("approvals-later", pump, "vendor-maintenance", now.Add(time.Hour), time.Hour),
	}, true)
	ghost := &v1alpha1.SegmentException{ObjectMeta: metav1.ObjectMeta{Name: "approvals-ghost"}, Spec: v1alpha1.SegmentExceptionSpec{MaxMode: v1alpha1.ModeRestricted,
		Approval: v1alpha1.Approval{Device: v1alpha1.ObjectRef{Namespace: "approvals", Name: "ghost"}, ApprovedBy: "dr.b", Ticket: "CAB-1", Justification: "test",
			NotBefore: metav1.NewTime(now), NotAfter: metav1.NewTime(now.Add(time.Hour))}}}
	g.Expect(env.Client.Create(ctx, ghost)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ghost) })
	phase := func(g Gomega, name string) string {
		var a v1alpha1.AccessGrant
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: name}, &a)).To(Succeed())
		return string(a.Status.Phase) + "/" + a.Status.Reason
	}
	g.Eventually(func(g Gomega) {
		g.Expect(phase(g, "approvals-typo")).To(Equal("Ineffective/FlowNotFound"))
		g.Expect(phase(g, "approvals-standing")).To(Equal("Ineffective/FlowNeedsNoGrant"))
		g.Expect(phase(g, "approvals-elsewhere")).To(Equal("Ineffective/DeviceNotFound"))
		g.Expect(phase(g, "approvals-fine")).To(Equal("Active/WindowOpen"))
		g.Expect(phase(g, "approvals-too-long")).To(Equal("Ineffective/WindowTooLong"))
		g.Expect(phase(g, "approvals-later")).To(Equal("Pending/NotYetOpen"))
		var e v1alpha1.SegmentException
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "approvals-ghost"}, &e)).To(Succeed())
		g.Expect(string(e.Status.Phase) + "/" + e.Status.Reason).To(Equal("Ineffective/DeviceNotFound"))
		g.Expect(e.Status.Message).To(ContainSubstring("MedicalDevice approvals/ghost does not exist"))
		g.Expect(getDevice(g, key).Status.Segmentation.AllowedFlows).To(ContainElement("vendor-maintenance"))
	}, timeout, pollInterval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		var evs corev1.EventList // a cluster-scoped object's Events are in namespace default
		g.Expect(env.Client.List(ctx, &evs, client.InNamespace("default"))).To(Succeed())
		g.Expect(evs.Items).To(ContainElement(And(HaveField("InvolvedObject.Name", "approvals-typo"), HaveField("Type", "Warning"), HaveField("Reason", "FlowNotFound"),
			HaveField("Message", ContainSubstring("AccessGrant approvals-typo is Ineffective: MedicalDevice approvals/pump declares no flow vendor-maint")))))
	}, timeout, pollInterval).Should(Succeed())
	// The device grows the flow the grant named: the grant notices without being touched. The
	// changed flows put the pump back in onboarding (Restricted), which does not allow the new
	// Support flow: the grant is open but opens nothing, and says why.
	updateDevice(g, key, func(d *v1alpha1.MedicalDevice) {
		f := d.Spec.Flows[2]
		f.Name = "vendor-maint"
		d.Spec.Flows = append(d.Spec.Flows, f)
	})
	g.Eventually(func(g Gomega) {
		g.Expect(phase(g, "approvals-typo")).To(Equal("Ineffective/ModeBlocksFlow"))
		var a v1alpha1.AccessGrant
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "approvals-typo"}, &a)).To(Succeed())
		g.Expect(a.Status.Message).To(ContainSubstring("mode Restricted does not allow Support flows"))
	}, timeout, pollInterval).Should(Succeed())
}
