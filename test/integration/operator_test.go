package integration

import (
	"context"
	"testing"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
)

const (
	timeout      = 30 * time.Second
	pollInterval = 100 * time.Millisecond
)

// TestSmallHospitalEndToEnd runs the operator against the sample hospital: policies and guards
// appear, a KEV entry applied by a scanner's field manager tightens the pump, an exception caps
// it and expires on its own, hand edits and deletions are repaired, Audit and Enforce switch,
// and a device without policy is reported.
func TestSmallHospitalEndToEnd(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const sfx = "-e2e"
	startOperator(t)
	devices := applySamples(t, sfx)
	createGateways(t, devices)
	icu, pump := "icu"+sfx, types.NamespacedName{Namespace: "icu" + sfx, Name: "infusion-pump-bed-12"}
	critical := "critical-care" + sfx

	// Every device converges: Ready, Segmented, kstatus Current, its CNP applied.
	for _, k := range devices {
		g.Eventually(func(g Gomega) {
			d := getDevice(g, k)
			g.Expect(condition(d, v1alpha1.ConditionReady)).NotTo(BeNil())
			g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonSegmented), "%s: %+v", k, d.Status.Conditions)
			g.Expect(kstatusOf(g, d)).To(Equal(status.CurrentStatus))
			// kstatus's abnormal-true conditions are present only while true.
			g.Expect(condition(d, v1alpha1.ConditionStalled)).To(BeNil())
			g.Expect(condition(d, v1alpha1.ConditionReconciling)).To(BeNil())
			g.Expect(d.Status.Segmentation.AppliedObjects).To(HaveLen(1))
		}, timeout, 100*time.Millisecond).Should(Succeed())
	}
	for _, pol := range []string{critical, "diagnostics" + sfx} {
		g.Eventually(func(g Gomega) {
			var ccnp ciliumv2.CiliumClusterwideNetworkPolicy
			g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "medseg-guard-" + pol}, &ccnp)).To(Succeed())
			// Ordinary pods, gateway-labelled pods outside gateway namespaces, gateways in other
			// namespaces, then per namespace and per gateway selector requirement.
			g.Expect(len(ccnp.Specs)).To(BeNumerically(">", 3))
			g.Expect(ccnp.Specs[2].EndpointSelector.MatchExpressions).NotTo(BeEmpty(), "gateways in namespaces without the policy's devices")
			var p v1alpha1.SegmentPolicy
			g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: pol}, &p)).To(Succeed())
			g.Expect(p.Status.Guard).NotTo(BeNil())
			g.Expect(kstatusOf(g, &p)).To(Equal(status.CurrentStatus))
		}, timeout, 100*time.Millisecond).Should(Succeed())
	}
	g.Eventually(func(g Gomega) {
		var p v1alpha1.SegmentPolicy
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: critical}, &p)).To(Succeed())
		g.Expect(p.Status.Devices).To(Equal(int32(3)))
		g.Expect(p.Status.Modes.Restricted).To(Equal(int32(1)), "the NICU camera is capped at Restricted by its exception")
	}, timeout, 100*time.Millisecond).Should(Succeed())

	d := getDevice(g, pump)
	g.Expect(d.Status.Risk.Priority).To(Equal(v1alpha1.PriorityScheduled))
	g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeStandard))
	cnp := getCNP(g, icu, "medseg-infusion-pump-bed-12")
	// The vendor flow (external peer) waits for an access grant.
	g.Expect(ports(cnp)).To(Equal("egress:2575/TCP egress:443/TCP ingress:2575/TCP ingress:8443/TCP"))
	g.Expect(cnp.OwnerReferences).To(HaveLen(1))
	g.Expect(cnp.OwnerReferences[0].UID).To(Equal(d.UID))
	g.Expect(*cnp.OwnerReferences[0].Controller).To(BeTrue())

	t.Run("a KEV entry applied by the scanner's field manager quarantines the pump", func(t *testing.T) {
		g := NewWithT(t)
		kev := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "medseg.io/v1alpha1", "kind": "MedicalDevice",
			"metadata": map[string]any{"name": pump.Name, "namespace": pump.Namespace},
			"spec": map[string]any{"vulnerabilities": []any{map[string]any{
				"id": "CVE-2025-55555", "cvss": "9.1", "knownExploited": true, "source": "cisa-kev"}}},
		}}
		g.Expect(env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(kev), client.FieldOwner("kev-feed"))).To(Succeed())
		g.Eventually(func(g Gomega) {
			d := getDevice(g, pump)
			g.Expect(d.Spec.Vulnerabilities).To(HaveLen(2), "server-side apply merges the scanner's entry")
			// Active, Controlled exposure (the vendor VPN is reachable only inside access grants),
			// not automatable, very high human impact: OutOfCycle, which critical care quarantines.
			g.Expect(d.Status.Risk.Priority).To(Equal(v1alpha1.PriorityOutOfCycle))
			g.Expect(d.Status.Risk.DecidingVulnerability).To(Equal("CVE-2025-55555"))
			g.Expect(d.Status.Risk.Exploitation.Source).To(Equal("CISA KEV"))
			g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeQuarantine))
			g.Expect(d.Status.History[0].Mode).To(Equal(v1alpha1.ModeQuarantine))
			g.Expect(ports(getCNP(g, icu, "medseg-infusion-pump-bed-12"))).To(Equal("egress:443/TCP ingress:8443/TCP"))
			g.Expect(eventReasons(g, icu, pump.Name)).To(ContainElements(v1alpha1.EventModeChanged, v1alpha1.EventPriorityChanged))
		}, timeout, 100*time.Millisecond).Should(Succeed())
		// The operator's cache strips managedFields, and its status writes are built from cached
		// objects: the API server must keep every manager's entries (the feed's ownership of
		// its vulnerability entry is what server-side apply merges by).
		managers := map[string]bool{}
		for _, mf := range getDevice(g, pump).ManagedFields {
			managers[mf.Manager+"/"+string(mf.Operation)+"/"+mf.Subresource] = true
		}
		g.Expect(managers).To(HaveKey("kev-feed/Apply/"), "%v", managers)
		g.Expect(managers).To(HaveKey(v1alpha1.FieldOwner+"/Update/status"), "%v", managers)
	})

	t.Run("an exception caps the mode and expires on its own", func(t *testing.T) {
		g := NewWithT(t)
		now := time.Now().UTC().Truncate(time.Second)
		e := &v1alpha1.SegmentException{ObjectMeta: metav1ObjectMeta("pump-emr-"+icu, ""), Spec: v1alpha1.SegmentExceptionSpec{
			MaxMode: v1alpha1.ModeRestricted, Approval: v1alpha1.Approval{
				Device: v1alpha1.ObjectRef{Namespace: icu, Name: pump.Name}, ApprovedBy: "Dr. B. Chen (ICU)", Ticket: "CAB-7", Justification: "EMR documentation during vendor fix",
				NotBefore: metav1Time(now.Add(-time.Minute)), NotAfter: metav1Time(now.Add(6 * time.Second))}}}
		g.Expect(env.Client.Create(context.Background(), e)).To(Succeed())
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), e) })
		g.Eventually(func(g Gomega) {
			d := getDevice(g, pump)
			g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeRestricted))
			g.Expect(d.Status.Segmentation.ActiveException).NotTo(BeNil())
			g.Expect(d.Status.Segmentation.ActiveException.ApprovedBy).To(Equal("Dr. B. Chen (ICU)"))
			g.Expect(ports(getCNP(g, icu, "medseg-infusion-pump-bed-12"))).To(ContainSubstring("egress:2575/TCP"))
		}, timeout, 100*time.Millisecond).Should(Succeed())
		// Nothing else changes: the requeue at notAfter alone must restore Quarantine.
		g.Eventually(func(g Gomega) {
			d := getDevice(g, pump)
			g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeQuarantine))
			g.Expect(d.Status.Segmentation.ActiveException).To(BeNil())
			g.Expect(eventReasons(g, icu, pump.Name)).To(ContainElement(v1alpha1.EventExceptionExpired))
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
	})

	t.Run("a hand edit and a deletion of the CNP are repaired", func(t *testing.T) {
		g := NewWithT(t)
		cnp := getCNP(g, icu, "medseg-infusion-pump-bed-12")
		cnp.Spec.Ingress = append(cnp.Spec.Ingress, policyapi.IngressRule{
			IngressCommonRule: policyapi.IngressCommonRule{FromCIDR: policyapi.CIDRSlice{"0.0.0.0/0"}}})
		g.Expect(env.Client.Update(ctx, cnp)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(ports(getCNP(g, icu, "medseg-infusion-pump-bed-12"))).To(Equal("egress:443/TCP ingress:8443/TCP"))
			g.Expect(getCNP(g, icu, "medseg-infusion-pump-bed-12").Spec.Ingress).To(HaveLen(1))
			d := getDevice(g, pump)
			g.Expect(d.Status.Drift).NotTo(BeNil())
			g.Expect(d.Status.Drift.Repairs).To(Equal(int64(1)))
			g.Expect(eventReasons(g, icu, pump.Name)).To(ContainElement(v1alpha1.EventDriftRepaired))
		}, timeout, 100*time.Millisecond).Should(Succeed())

		g.Expect(env.Client.Delete(ctx, getCNP(g, icu, "medseg-infusion-pump-bed-12"))).To(Succeed())
		g.Eventually(func(g Gomega) {
			getCNP(g, icu, "medseg-infusion-pump-bed-12")
			g.Expect(getDevice(g, pump).Status.Drift.Repairs).To(Equal(int64(2)))
		}, timeout, 100*time.Millisecond).Should(Succeed())

		var guard ciliumv2.CiliumClusterwideNetworkPolicy
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "medseg-guard-" + critical}, &guard)).To(Succeed())
		g.Expect(env.Client.Delete(ctx, &guard)).To(Succeed())
		g.Eventually(func(g Gomega) {
			var p v1alpha1.SegmentPolicy
			g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: critical}, &p)).To(Succeed())
			g.Expect(p.Status.GuardRepairs).To(Equal(int64(1)))
			g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "medseg-guard-" + critical}, &guard)).To(Succeed())
		}, timeout, 100*time.Millisecond).Should(Succeed())
	})

	t.Run("Audit removes what medseg wrote and Enforce puts it back", func(t *testing.T) {
		g := NewWithT(t)
		diag := "diagnostics" + sfx
		ct := types.NamespacedName{Namespace: "radiology" + sfx, Name: "ct-scanner-1"}
		setEnforcement(g, diag, v1alpha1.EnforcementAudit)
		g.Eventually(func(g Gomega) {
			var cnp ciliumv2.CiliumNetworkPolicy
			err := env.Client.Get(ctx, types.NamespacedName{Namespace: ct.Namespace, Name: "medseg-ct-scanner-1"}, &cnp)
			g.Expect(client.IgnoreNotFound(err)).To(Succeed())
			g.Expect(err).To(HaveOccurred(), "the CNP must be removed under Audit")
			var ccnp ciliumv2.CiliumClusterwideNetworkPolicy
			g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "medseg-guard-" + diag}, &ccnp)).NotTo(Succeed())
			d := getDevice(g, ct)
			seg := condition(d, v1alpha1.ConditionSegmented)
			g.Expect(seg.Reason).To(Equal(v1alpha1.ReasonAuditOnly))
			g.Expect(seg.Message).To(ContainSubstring("would enforce mode"))
			g.Expect(d.Status.Risk.Exposure.Value).To(Equal("Open"), "no enforcement means Open exposure")
			g.Expect(d.Status.Segmentation.AllowedFlows).To(ConsistOf("dicom-to-pacs", "modality-worklist"))
			g.Expect(eventReasons(g, ct.Namespace, ct.Name)).To(ContainElement(v1alpha1.EventEnforcementChange))
		}, timeout, 100*time.Millisecond).Should(Succeed())
		setEnforcement(g, diag, v1alpha1.EnforcementEnforce)
		g.Eventually(func(g Gomega) {
			getCNP(g, ct.Namespace, "medseg-ct-scanner-1")
			g.Expect(segReason(getDevice(g, ct))).To(Equal(v1alpha1.ReasonSegmented))
		}, timeout, 100*time.Millisecond).Should(Succeed())
	})

	t.Run("a device no policy selects is reported and nothing is written", func(t *testing.T) {
		g := NewWithT(t)
		orphan := getDevice(g, pump).DeepCopy()
		orphan.ObjectMeta = metav1ObjectMeta("orphan-pump", "default")
		orphan.Spec.Network.Addresses = []string{"10.20.77.1"}
		orphan.Spec.Vulnerabilities = nil
		orphan.Status = v1alpha1.MedicalDeviceStatus{}
		g.Expect(env.Client.Create(ctx, orphan)).To(Succeed())
		t.Cleanup(func() { _ = env.Client.Delete(ctx, orphan) })
		g.Eventually(func(g Gomega) {
			d := getDevice(g, types.NamespacedName{Namespace: "default", Name: "orphan-pump"})
			seg := condition(d, v1alpha1.ConditionSegmented)
			g.Expect(seg).NotTo(BeNil())
			g.Expect(seg.Reason).To(Equal(v1alpha1.ReasonNoSegmentPolicy))
			g.Expect(kstatusOf(g, d)).To(Equal(status.FailedStatus))
			g.Expect(string(condition(d, v1alpha1.ConditionStalled).Status)).To(Equal("True"))
			g.Expect(condition(d, v1alpha1.ConditionReconciling)).To(BeNil())
			g.Expect(d.Status.Risk.Exposure.Value).To(Equal("Open"))
			g.Expect(eventReasons(g, "default", "orphan-pump")).To(ContainElement(v1alpha1.EventNoSegmentPolicy))
		}, timeout, 100*time.Millisecond).Should(Succeed())
		var cnp ciliumv2.CiliumNetworkPolicy
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "medseg-orphan-pump"}, &cnp)).NotTo(Succeed())
	})

	t.Run("deleting a SegmentPolicy leaves its devices reported as ungoverned, their last policy in place", func(t *testing.T) {
		g := NewWithT(t)
		lab := types.NamespacedName{Namespace: "lab" + sfx, Name: "chemistry-analyser-2"}
		var p v1alpha1.SegmentPolicy
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "diagnostics" + sfx}, &p)).To(Succeed())
		g.Expect(env.Client.Delete(ctx, &p)).To(Succeed())
		g.Eventually(func(g Gomega) {
			d := getDevice(g, lab)
			g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonNoSegmentPolicy))
			g.Expect(condition(d, v1alpha1.ConditionSegmented).Message).To(ContainSubstring("kept in place"))
		}, timeout, 100*time.Millisecond).Should(Succeed())
		getCNP(g, lab.Namespace, "medseg-chemistry-analyser-2")
	})
}

// TestAddressConflictIsReportedOnBothDevices checks the AddressConflict condition both ways and
// that it clears when one device moves.
func TestAddressConflictIsReportedOnBothDevices(t *testing.T) {
	g := NewWithT(t)
	const sfx = "-conflict"
	startOperator(t)
	devices := applySamples(t, sfx)
	createGateways(t, devices)
	pump := types.NamespacedName{Namespace: "icu" + sfx, Name: "infusion-pump-bed-12"}
	monitor := types.NamespacedName{Namespace: "icu" + sfx, Name: "patient-monitor-bed-12"}
	updateDevice(g, monitor, func(m *v1alpha1.MedicalDevice) { m.Spec.Network.Addresses = []string{"10.20.1.12"} }) // the pump's
	for _, k := range []types.NamespacedName{pump, monitor} {
		g.Eventually(func(g Gomega) {
			g.Expect(segReason(getDevice(g, k))).To(Equal(v1alpha1.ReasonAddressConflict))
		}, timeout, 100*time.Millisecond).Should(Succeed(), k.String())
	}
	updateDevice(g, monitor, func(m *v1alpha1.MedicalDevice) { m.Spec.Network.Addresses = []string{"10.20.2.12"} })
	for _, k := range []types.NamespacedName{pump, monitor} {
		g.Eventually(func(g Gomega) {
			g.Expect(segReason(getDevice(g, k))).To(Equal(v1alpha1.ReasonSegmented))
		}, timeout, 100*time.Millisecond).Should(Succeed(), k.String())
	}
}

// TestResyncOfAnUnchangedClusterWritesNothing restarts the operator on a converged cluster: the
// new operator reconciles every object and must not write a single one.
func TestResyncOfAnUnchangedClusterWritesNothing(t *testing.T) {
	g := NewWithT(t)
	const sfx = "-resync"
	stopFirst := startOperatorStoppable(t)
	devices := applySamples(t, sfx)
	createGateways(t, devices)
	for _, k := range devices {
		g.Eventually(func(g Gomega) {
			g.Expect(kstatusOf(g, getDevice(g, k))).To(Equal(status.CurrentStatus))
		}, timeout, 100*time.Millisecond).Should(Succeed())
	}
	// Not only converged devices: an Audit policy, an ungoverned device and an address conflict
	// must be just as stable across a restart.
	ctx := context.Background()
	setEnforcement(g, "diagnostics"+sfx, v1alpha1.EnforcementAudit)
	pump := getDevice(g, types.NamespacedName{Namespace: "icu" + sfx, Name: "infusion-pump-bed-12"})
	twin := pump.DeepCopy()
	twin.ObjectMeta = metav1ObjectMeta("pump-twin", pump.Namespace)
	twin.Status = v1alpha1.MedicalDeviceStatus{}
	orphan := pump.DeepCopy()
	orphan.ObjectMeta = metav1ObjectMeta("orphan-resync", "default")
	orphan.Spec.Network.Addresses = []string{"10.20.88.1"}
	orphan.Status = v1alpha1.MedicalDeviceStatus{}
	for _, d := range []*v1alpha1.MedicalDevice{twin, orphan} {
		g.Expect(env.Client.Create(ctx, d)).To(Succeed())
		t.Cleanup(func() { _ = env.Client.Delete(ctx, d) })
	}
	wantReason := map[types.NamespacedName]string{
		{Namespace: "radiology" + sfx, Name: "ct-scanner-1"}: v1alpha1.ReasonAuditOnly,
		{Namespace: "default", Name: "orphan-resync"}:        v1alpha1.ReasonNoSegmentPolicy,
		{Namespace: pump.Namespace, Name: "pump-twin"}:       v1alpha1.ReasonAddressConflict,
		{Namespace: pump.Namespace, Name: pump.Name}:         v1alpha1.ReasonAddressConflict,
	}
	for k, reason := range wantReason {
		g.Eventually(func(g Gomega) {
			c := condition(getDevice(g, k), v1alpha1.ConditionSegmented)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(reason))
		}, timeout, 100*time.Millisecond).Should(Succeed(), k.String())
	}
	// Let the last status writes land before the restart, including the SegmentPolicy recounts,
	// which are coalesced over 2 seconds: wait that window out, then for the counts to match.
	time.Sleep(3 * time.Second)
	g.Eventually(func(g Gomega) {
		var p v1alpha1.SegmentPolicy
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "diagnostics" + sfx}, &p)).To(Succeed())
		g.Expect(p.Status.Guard).To(BeNil())
		var devs v1alpha1.MedicalDeviceList
		g.Expect(env.Client.List(ctx, &devs)).To(Succeed())
		for _, name := range []string{"critical-care" + sfx, "diagnostics" + sfx} {
			want := int32(0)
			for _, d := range devs.Items {
				if d.Status.Segmentation != nil && d.Status.Segmentation.Policy == name {
					want++
				}
			}
			g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: name}, &p)).To(Succeed())
			g.Expect(p.Status.Devices).To(Equal(want), name)
		}
	}, timeout, 100*time.Millisecond).Should(Succeed())
	stopFirst()

	counter := startOperator(t)
	// Every device and policy of the cluster is read by a reconcile...
	var all v1alpha1.MedicalDeviceList
	g.Expect(env.Client.List(context.Background(), &all)).To(Succeed())
	var pols v1alpha1.SegmentPolicyList
	g.Expect(env.Client.List(context.Background(), &pols)).To(Succeed())
	g.Eventually(func() bool {
		return counter.Get("get MedicalDevice") >= len(all.Items) && counter.Get("get SegmentPolicy") >= len(pols.Items)
	}, timeout, 100*time.Millisecond).Should(BeTrue(), "the restarted operator did not reconcile everything: %v", counter.Snapshot())
	// ...and nothing is written.
	g.Consistently(counter.Writes, 3*time.Second, 100*time.Millisecond).Should(BeZero(), "writes: %v", counter.Snapshot())
	t.Logf("resync of %d devices and %d policies: %v", len(all.Items), len(pols.Items), counter.Snapshot())
}

func setEnforcement(g Gomega, policy string, e v1alpha1.Enforcement) {
	updatePolicy(g, policy, func(p *v1alpha1.SegmentPolicy) { p.Spec.Enforcement = e })
}

// updatePolicy and updateDevice retry on conflicts with the operator's status writes.
func updatePolicy(g Gomega, name string, mutate func(*v1alpha1.SegmentPolicy)) {
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p v1alpha1.SegmentPolicy
		if err := env.Client.Get(context.Background(), types.NamespacedName{Name: name}, &p); err != nil {
			return err
		}
		mutate(&p)
		return env.Client.Update(context.Background(), &p)
	})).To(Succeed())
}

func updateDevice(g Gomega, k types.NamespacedName, mutate func(*v1alpha1.MedicalDevice)) {
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var d v1alpha1.MedicalDevice
		if err := env.Client.Get(context.Background(), k, &d); err != nil {
			return err
		}
		mutate(&d)
		return env.Client.Update(context.Background(), &d)
	})).To(Succeed())
}
