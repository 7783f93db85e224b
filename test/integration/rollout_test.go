package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/render"
	"github.com/medseg/medseg/internal/segcheck"
	"github.com/medseg/medseg/internal/testenv"
)

// stagedHospital is the staged-rollout sample in suffixed namespaces, with its pods.
type stagedHospital struct {
	sfx        string
	namespaces []string
	policies   []string
	pods       []segcheck.Pod
}

func startStagedHospital(t *testing.T, sfx string) *stagedHospital {
	t.Helper()
	ctx := context.Background()
	s := &stagedHospital{sfx: sfx, policies: []string{"critical-care" + sfx, "diagnostics" + sfx}}
	for _, ns := range []string{"icu", "integration", "radiology", "clinical-apps"} {
		s.namespaces = append(s.namespaces, ns+sfx)
	}
	applyHospital(t, filepath.Join(testenv.RepoRoot(), "config", "samples", "staged-rollout"), sfx)
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: segcheck.ScraperNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	gw := map[string]string{v1alpha1.LabelGateway: "true"}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	s.pods = []segcheck.Pod{
		{Name: "pump-gateway", Namespace: "icu" + sfx, Labels: with(gw, "app", "pump-gateway")},
		{Name: "pump-server", Namespace: "icu" + sfx, Labels: with(nil, "app", "pump-server")},
		{Name: "hl7-engine", Namespace: "integration" + sfx, Labels: with(gw, "app", "hl7-engine")},
		{Name: "poct-gateway", Namespace: "integration" + sfx, Labels: with(gw, "app", "poct-gateway")},
		{Name: "debug-proxy", Namespace: "integration" + sfx, Labels: with(gw, "app", "debug-proxy")},
		{Name: "dicom-gateway", Namespace: "radiology" + sfx, Labels: with(gw, "app", "dicom-gateway")},
		{Name: "emr-interface", Namespace: "clinical-apps" + sfx, Labels: with(nil, "app", "emr-interface")},
		{Name: "alarm-server", Namespace: "clinical-apps" + sfx, Labels: with(nil, "app", "alarm-server")},
		{Name: "lis", Namespace: "clinical-apps" + sfx, Labels: with(nil, "app", "lis")},
		{Name: "lis-qc", Namespace: "clinical-apps" + sfx, Labels: with(nil, "app", "lis-qc")},
		{Name: "pacs", Namespace: "clinical-apps" + sfx, Labels: with(nil, "app", "pacs")},
		{Name: "ris", Namespace: "clinical-apps" + sfx, Labels: with(nil, "app", "ris")},
		{Name: "billing", Namespace: "clinical-apps" + sfx, Labels: with(nil, "app", "billing")},
		{Name: segcheck.ScraperName + sfx, Namespace: segcheck.ScraperNamespace, Labels: with(nil, "app", "prometheus")},
	}
	for _, p := range s.pods {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.local/app:1"}}}}
		if err := env.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, p := range s.policies {
			_ = env.Client.Delete(context.Background(), &v1alpha1.SegmentPolicy{ObjectMeta: metav1.ObjectMeta{Name: p}})
		}
	})
	return s
}

// snapshot reads the hospital and every Cilium object medseg wrote for it from the API server.
type snapshot struct {
	h        plan.Hospital
	guards   []*ciliumv2.CiliumClusterwideNetworkPolicy
	policies []*ciliumv2.CiliumNetworkPolicy
}

func (s *stagedHospital) snapshot(g Gomega) snapshot {
	ctx := context.Background()
	var snap snapshot
	snap.h.Namespaces = map[string]map[string]string{}
	live := map[v1alpha1.ObjectRef]*ciliumv2.CiliumNetworkPolicy{}
	for _, ns := range s.namespaces {
		var n corev1.Namespace
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: ns}, &n)).To(Succeed())
		snap.h.Namespaces[ns] = n.Labels
		var devs v1alpha1.MedicalDeviceList
		g.Expect(env.Client.List(ctx, &devs, client.InNamespace(ns))).To(Succeed())
		snap.h.Devices = append(snap.h.Devices, plan.Devices(devs.Items)...)
		var cnps ciliumv2.CiliumNetworkPolicyList
		g.Expect(env.Client.List(ctx, &cnps, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue})).To(Succeed())
		for i := range cnps.Items {
			c := &cnps.Items[i]
			snap.policies = append(snap.policies, c)
			live[v1alpha1.ObjectRef{Namespace: ns, Name: c.Labels[v1alpha1.LabelDevice]}] = c
		}
	}
	snap.h.Live = func(r v1alpha1.ObjectRef) *ciliumv2.CiliumNetworkPolicy { return live[r] }
	for _, name := range s.policies {
		var p v1alpha1.SegmentPolicy
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: name}, &p)).To(Succeed())
		snap.h.Policies = append(snap.h.Policies, p)
		var ccnp ciliumv2.CiliumClusterwideNetworkPolicy
		if err := env.Client.Get(ctx, types.NamespacedName{Name: render.GuardObjectName(name)}, &ccnp); err == nil {
			snap.guards = append(snap.guards, &ccnp)
		} else {
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		}
	}
	return snap
}

// recorder watches the Cilium objects of the hospital from one resourceVersion on.
type recorder struct {
	start  snapshot
	stopCh chan struct{}
	done   chan []watch.Event
}

// record snapshots the hospital and starts watching its CNPs and CCNPs from that point.
func (s *stagedHospital) record(t *testing.T) *recorder {
	t.Helper()
	g := NewWithT(t)
	sch, err := testenv.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: sch})
	g.Expect(err).NotTo(HaveOccurred())
	ctx := context.Background()
	var cnps ciliumv2.CiliumNetworkPolicyList
	g.Expect(wc.List(ctx, &cnps)).To(Succeed())
	var ccnps ciliumv2.CiliumClusterwideNetworkPolicyList
	g.Expect(wc.List(ctx, &ccnps)).To(Succeed())
	r := &recorder{start: s.snapshot(g), stopCh: make(chan struct{}), done: make(chan []watch.Event)}
	w1, err := wc.Watch(ctx, &ciliumv2.CiliumNetworkPolicyList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: cnps.ResourceVersion}})
	g.Expect(err).NotTo(HaveOccurred())
	w2, err := wc.Watch(ctx, &ciliumv2.CiliumClusterwideNetworkPolicyList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: ccnps.ResourceVersion}})
	g.Expect(err).NotTo(HaveOccurred())
	go func() {
		var events []watch.Event
		defer func() { w1.Stop(); w2.Stop(); r.done <- events }()
		for {
			select {
			case e := <-w1.ResultChan():
				events = append(events, e)
			case e := <-w2.ResultChan():
				events = append(events, e)
			case <-r.stopCh:
				// Drain what already arrived.
				for {
					select {
					case e := <-w1.ResultChan():
						events = append(events, e)
					case e := <-w2.ResultChan():
						events = append(events, e)
					case <-time.After(200 * time.Millisecond):
						return
					}
				}
			}
		}
	}()
	return r
}

// stop ends the recording and returns every state the hospital's objects went through, in
// resourceVersion order (etcd's revision orders changes across both kinds), starting from the
// first snapshot; devices, policies and namespaces are those of the final snapshot.
func (r *recorder) stop(final snapshot) []snapshot {
	close(r.stopCh)
	events := <-r.done
	rv := func(e watch.Event) int64 {
		o, ok := e.Object.(client.Object)
		if !ok {
			return 0
		}
		n, _ := strconv.ParseInt(o.GetResourceVersion(), 10, 64)
		return n
	}
	sort.SliceStable(events, func(i, j int) bool { return rv(events[i]) < rv(events[j]) })
	guards := map[string]*ciliumv2.CiliumClusterwideNetworkPolicy{}
	for _, x := range r.start.guards {
		guards[x.Name] = x
	}
	cnps := map[string]*ciliumv2.CiliumNetworkPolicy{}
	for _, x := range r.start.policies {
		cnps[x.Namespace+"/"+x.Name] = x
	}
	ours := map[string]bool{}
	for ns := range final.h.Namespaces {
		ours[ns] = true
	}
	ourGuards := map[string]bool{}
	for _, p := range final.h.Policies {
		ourGuards[render.GuardObjectName(p.Name)] = true
	}
	state := func() snapshot {
		snap := final
		snap.guards, snap.policies = nil, nil
		for _, x := range guards {
			snap.guards = append(snap.guards, x)
		}
		for _, x := range cnps {
			snap.policies = append(snap.policies, x)
		}
		live := map[v1alpha1.ObjectRef]*ciliumv2.CiliumNetworkPolicy{}
		for _, c := range snap.policies {
			live[v1alpha1.ObjectRef{Namespace: c.Namespace, Name: c.Labels[v1alpha1.LabelDevice]}] = c
		}
		snap.h.Live = func(r v1alpha1.ObjectRef) *ciliumv2.CiliumNetworkPolicy { return live[r] }
		return snap
	}
	states := []snapshot{state()}
	for _, e := range events {
		switch o := e.Object.(type) {
		case *ciliumv2.CiliumNetworkPolicy:
			if !ours[o.Namespace] || o.Labels[v1alpha1.LabelManagedBy] != v1alpha1.ManagedByValue {
				continue
			}
			if e.Type == watch.Deleted {
				delete(cnps, o.Namespace+"/"+o.Name)
			} else {
				cnps[o.Namespace+"/"+o.Name] = o
			}
		case *ciliumv2.CiliumClusterwideNetworkPolicy:
			if !ourGuards[o.Name] {
				continue
			}
			if e.Type == watch.Deleted {
				delete(guards, o.Name)
			} else {
				guards[o.Name] = o
			}
		default:
			continue
		}
		states = append(states, state())
	}
	return states
}

// converged reports whether the objects in the cluster are exactly what medseg would write for
// the hospital as it is (same names, same content hashes).
func (snap snapshot) converged(g Gomega) (bool, string) {
	d, err := plan.HospitalObjects(snap.h, time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	hashes := func(guards []*ciliumv2.CiliumClusterwideNetworkPolicy, cnps []*ciliumv2.CiliumNetworkPolicy) map[string]string {
		out := map[string]string{}
		for _, x := range guards {
			out[x.Name] = x.Annotations[v1alpha1.AnnotationContentHash]
		}
		for _, x := range cnps {
			out[x.Namespace+"/"+x.Name] = x.Annotations[v1alpha1.AnnotationContentHash]
		}
		return out
	}
	want, got := hashes(d.Guards, d.Policies), hashes(snap.guards, snap.policies)
	for k, v := range want {
		if got[k] != v {
			return false, fmt.Sprintf("%s: have %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			return false, k + " should not exist"
		}
	}
	return true, ""
}

// judge loads the cluster's objects into Cilium's engine and returns the rules' report and the
// open/closed verdict of every declared flow of the devices outside the given zone.
func (s *stagedHospital) judge(g Gomega, snap snapshot, switched string) (segcheck.Report, map[string]bool) {
	d, err := plan.HospitalObjects(snap.h, time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	w, err := segcheck.Load(snap.h, s.podsFor(), nil, d.Plans, snap.guards, snap.policies)
	g.Expect(err).NotTo(HaveOccurred())
	outside := map[string]bool{}
	for i, dev := range snap.h.Devices {
		if p := d.Plans[i].Policy; p != nil && p.Name == switched {
			continue
		}
		for _, f := range dev.Spec.Flows {
			for _, gw := range w.GatewaysOf(dev) {
				for _, peer := range w.PeersOf(dev, f) {
					open, err := w.FlowOpen(f, gw, peer, dev.Spec.Network.Addresses[0])
					g.Expect(err).NotTo(HaveOccurred())
					outside[dev.Name+"/"+f.Name+" via "+gw.Name+" peer "+peer.Name] = open
				}
			}
		}
	}
	rep, err := w.Check(nil)
	g.Expect(err).NotTo(HaveOccurred())
	return rep, outside
}

// podsFor is the pods as segcheck knows the scraper (fixed namespace and name).
func (s *stagedHospital) podsFor() []segcheck.Pod {
	out := append([]segcheck.Pod(nil), s.pods...)
	for i := range out {
		if out[i].Namespace == segcheck.ScraperNamespace {
			out[i].Name = segcheck.ScraperName
		}
	}
	return out
}

func (s *stagedHospital) setEnforcement(g Gomega, policy string, e v1alpha1.Enforcement) {
	updatePolicy(g, policy, func(p *v1alpha1.SegmentPolicy) { p.Spec.Enforcement = e })
}

// TestStagedRolloutOnALiveCluster switches diagnostics Audit → Enforce → Audit on a live API
// server with the real operator. Cilium's engine judges the objects in the cluster after each
// step and at every poll while the operator converges: no flow of critical care or of the
// ungoverned analyser is ever closed, every rule holds once converged, and going back to Audit
// restores every verdict.
func TestStagedRolloutOnALiveCluster(t *testing.T) {
	g := NewWithT(t)
	startOperator(t)
	s := startStagedHospital(t, "-rollout")
	diagnostics := "diagnostics" + s.sfx

	// waitConverged records every change of a Cilium object the API server makes (a watch from
	// the current resourceVersion), until the cluster holds exactly what medseg would write.
	// Then it replays the changes in resourceVersion order and judges every intermediate state
	// with Cilium's engine: flows outside the switched zone must never close, in any state the
	// cluster was in. The final state must meet every rule.
	waitConverged := func(step, switched string, change func()) (segcheck.Report, map[string]bool) {
		rec := s.record(t)
		if change != nil {
			change()
		}
		var final snapshot
		g.Eventually(func(g Gomega) {
			final = s.snapshot(g)
			ok, why := final.converged(g)
			g.Expect(ok).To(BeTrue(), why)
		}, timeout, 20*time.Millisecond).Should(Succeed())
		states := rec.stop(final)
		for i, snap := range states {
			_, open := s.judge(g, snap, switched)
			for k, v := range open {
				if !v {
					t.Errorf("%s, state %d of %d: %s is closed", step, i+1, len(states), k)
				}
			}
		}
		rep, outside := s.judge(g, final, switched)
		g.Expect(rep.Violations).To(BeEmpty(), "%s: %s", step, strings.Join(rep.Violations, "\n"))
		t.Logf("%s: %d states judged, %d verdicts in the last", step, len(states), rep.Verdicts)
		return rep, outside
	}

	_, audit := waitConverged("diagnostics in Audit", diagnostics, nil)
	analyser := types.NamespacedName{Namespace: "integration" + s.sfx, Name: "chemistry-analyser-7"}
	g.Eventually(func(g Gomega) {
		d := getDevice(g, analyser)
		g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonSharedGateway))
		g.Expect(condition(d, v1alpha1.ConditionSegmented).Message).To(ContainSubstring("critical-care" + s.sfx))
		g.Expect(d.Status.Segmentation.SharedWith).To(ConsistOf("patient-monitor-bed-4 (critical-care" + s.sfx + ")"))
		g.Expect(d.Status.Segmentation.AppliedObjects).To(HaveLen(1), "the allow-only policy is in place")
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// Diagnostics: Audit → Enforce → Audit. Critical care's and the ungoverned analyser's
	// flows never change.
	_, enforced := waitConverged("diagnostics enforced", diagnostics, func() { s.setEnforcement(g, diagnostics, v1alpha1.EnforcementEnforce) })
	g.Expect(enforced).To(Equal(audit), "enforcing diagnostics changed a flow outside it")
	g.Eventually(func(g Gomega) {
		g.Expect(segReason(getDevice(g, analyser))).To(Equal(v1alpha1.ReasonSegmented))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	_, back := waitConverged("diagnostics back in Audit", diagnostics, func() { s.setEnforcement(g, diagnostics, v1alpha1.EnforcementAudit) })
	g.Expect(back).To(Equal(audit), "going back to Audit restores every verdict")
	g.Eventually(func(g Gomega) {
		g.Expect(segReason(getDevice(g, analyser))).To(Equal(v1alpha1.ReasonSharedGateway))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// Critical care: Enforce → Audit → Enforce. Diagnostics' (in Audit) and the ungoverned
	// analyser's flows never change, also while the ICU monitor's policy is put back on the HL7
	// engine the Audit analyser shares: medseg waits for the analyser's allow-only policy.
	critical := "critical-care" + s.sfx
	_, before := waitConverged("critical care enforced", critical, nil)
	_, relaxed := waitConverged("critical care in Audit", critical, func() { s.setEnforcement(g, critical, v1alpha1.EnforcementAudit) })
	g.Expect(relaxed).To(Equal(before), "putting critical care in Audit changed a flow outside it")
	_, again := waitConverged("critical care enforced again", critical, func() { s.setEnforcement(g, critical, v1alpha1.EnforcementEnforce) })
	g.Expect(again).To(Equal(before), "enforcing critical care again changed a flow outside it")
}

// TestAddressConflictOnALiveCluster: a new device claims the quarantined pump's address and
// selects the pump's gateway. Both are reported; the newcomer gets no policy; the pump's
// blocked flows stay blocked and its Essential flow open, also when its risk falls during the
// conflict; when the newcomer goes, the pump is governed normally again.
func TestAddressConflictOnALiveCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	startOperator(t)
	s := startStagedHospital(t, "-dupaddr")
	icu := "icu" + s.sfx
	pump := types.NamespacedName{Namespace: icu, Name: "infusion-pump-bed-4"}
	setVulns := func(vulns []any) {
		u := map[string]any{"apiVersion": "medseg.io/v1alpha1", "kind": "MedicalDevice",
			"metadata": map[string]any{"name": pump.Name, "namespace": pump.Namespace},
			"spec":     map[string]any{"vulnerabilities": vulns}}
		g.Expect(env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: u}), client.FieldOwner("kev-feed"), client.ForceOwnership)).To(Succeed())
	}
	setVulns([]any{map[string]any{"id": "CVE-2026-1111", "knownExploited": true, "automatable": true}})
	var quarantined string
	g.Eventually(func(g Gomega) {
		d := getDevice(g, pump)
		g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeQuarantine))
		g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonSegmented))
		quarantined = d.Status.Segmentation.AppliedObjects[0].Hash
		g.Expect(getCNP(g, icu, "medseg-"+pump.Name).Annotations[v1alpha1.AnnotationContentHash]).To(Equal(quarantined))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	judgePump := func(g Gomega, step string) {
		snap := s.snapshot(g)
		d, err := plan.HospitalObjects(snap.h, time.Now())
		g.Expect(err).NotTo(HaveOccurred())
		w, err := segcheck.Load(snap.h, s.podsFor(), nil, d.Plans, snap.guards, snap.policies)
		g.Expect(err).NotTo(HaveOccurred())
		var dev *v1alpha1.MedicalDevice
		for _, x := range snap.h.Devices {
			if x.Namespace == pump.Namespace && x.Name == pump.Name {
				dev = x
			}
		}
		for _, f := range dev.Spec.Flows {
			want := f.Tier == v1alpha1.TierEssential
			for _, gw := range w.GatewaysOf(dev) {
				for _, peer := range w.PeersOf(dev, f) {
					open, err := w.FlowOpen(f, gw, peer, "10.20.1.4")
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(open).To(Equal(want), "%s: pump flow %s via %s", step, f.Name, gw.Name)
				}
			}
		}
	}
	judgePump(g, "quarantined")

	dup := &v1alpha1.MedicalDevice{}
	g.Expect(env.Client.Get(ctx, pump, dup)).To(Succeed())
	dup = &v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Name: "dup-addr", Namespace: icu, Labels: dup.Labels}, Spec: dup.Spec}
	dup.Spec.Commissioning, dup.Spec.Vulnerabilities = nil, nil
	g.Expect(env.Client.Create(ctx, dup)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), dup) })
	dupKey := types.NamespacedName{Namespace: icu, Name: "dup-addr"}
	g.Eventually(func(g Gomega) {
		for _, k := range []types.NamespacedName{pump, dupKey} {
			d := getDevice(g, k)
			g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonAddressConflict), "%s", k)
		}
		g.Expect(condition(getDevice(g, dupKey), v1alpha1.ConditionSegmented).Message).To(ContainSubstring("writes no policy"))
		var cnp ciliumv2.CiliumNetworkPolicy
		err := env.Client.Get(ctx, types.NamespacedName{Namespace: icu, Name: "medseg-dup-addr"}, &cnp)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the newcomer must get no policy: %v", err)
		g.Expect(eventReasons(g, icu, "dup-addr")).To(ContainElement(v1alpha1.EventAddressConflict))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	judgePump(g, "during the conflict")

	// The pump's risk falls during the conflict: its policy stays as it was.
	setVulns([]any{})
	g.Eventually(func(g Gomega) {
		d := getDevice(g, pump)
		g.Expect(d.Status.Risk.Priority).NotTo(Equal(v1alpha1.PriorityOutOfCycle))
		g.Expect(condition(d, v1alpha1.ConditionSegmented).Message).To(ContainSubstring("opens nothing new"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(getCNP(g, icu, "medseg-"+pump.Name).Annotations[v1alpha1.AnnotationContentHash]).To(Equal(quarantined))
		judgePump(g, "less risky during the conflict")
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())

	// The conflict ends: the pump is governed by its risk again.
	g.Expect(env.Client.Delete(ctx, dup)).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := getDevice(g, pump)
		g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonSegmented))
		g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeStandard))
		g.Expect(getCNP(g, icu, "medseg-"+pump.Name).Annotations[v1alpha1.AnnotationContentHash]).NotTo(Equal(quarantined))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}
