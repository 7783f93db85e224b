package controllers

import (
	"time"

	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/drift"
	"github.com/medseg/medseg/internal/render"
)

func policyOf(t *testing.T, s *sample, name string) *v1alpha1.SegmentPolicy {
	t.Helper()
	for i := range s.in.Policies {
		if s.in.Policies[i].Name == name {
			p := s.in.Policies[i].DeepCopy()
			p.UID, p.Generation = "uid-"+p.UID, 4
			return p
		}
	}
	t.Fatalf("no policy %s", name)
	return nil
}

func TestDecideGuard(t *testing.T) {
	s := loadSample(t)
	pol := policyOf(t, s, "critical-care")
	members := []render.GatewayMember{{Namespace: "icu", Gateway: s.pump.Spec.Gateway.PodSelector, Addresses: []netip.Addr{netip.MustParseAddr("10.20.1.12")}}}
	if d := decideGuard(pol, members); d.Intent != guardApply || d.Guard == nil || d.Members != 1 {
		t.Errorf("an enforced policy applies its guard: %+v", d)
	}
	audit := pol.DeepCopy()
	audit.Spec.Enforcement = v1alpha1.EnforcementAudit
	if d := decideGuard(audit, nil); d.Intent != guardPrune || d.Guard.Name != "medseg-guard-critical-care" {
		t.Errorf("an Audit policy prunes its guard: %+v", d)
	}
	bad := pol.DeepCopy()
	bad.Spec.DeviceNetworks = []string{"0.0.0.0/0"}
	if d := decideGuard(bad, members); d.Intent != guardNone || d.Err == nil || !strings.Contains(d.Err.Error(), "deviceNetworks") {
		t.Errorf("a guard that cannot be rendered is not written: %+v", d)
	}
}

func TestCountDevices(t *testing.T) {
	s := loadSample(t)
	pol := policyOf(t, s, "critical-care")
	var governed []v1alpha1.MedicalDevice
	devices := map[v1alpha1.ObjectRef]*v1alpha1.MedicalDevice{}
	for i := range s.in.Devices {
		d := s.in.Devices[i].DeepCopy()
		seg := "critical-care"
		if d.Namespace == "radiology" || d.Namespace == "lab" {
			seg = "diagnostics"
		}
		d.Status.Segmentation = &v1alpha1.SegmentationStatus{Policy: seg, Mode: v1alpha1.ModeStandard}
		d.Status.Risk = &v1alpha1.RiskStatus{Priority: v1alpha1.PriorityScheduled}
		if d.Name == "nicu-camera-bay-3" {
			d.Status.Segmentation.Mode, d.Status.Risk.Priority = v1alpha1.ModeRestricted, v1alpha1.PriorityOutOfCycle
		}
		devices[v1alpha1.ObjectRef{Namespace: d.Namespace, Name: d.Name}] = d
		if seg == pol.Name {
			governed = append(governed, *d)
		}
	}
	c := countDevices(governed)
	if c.Devices != 3 || c.Modes.Standard != 2 || c.Modes.Restricted != 1 || c.Priorities.Scheduled != 2 || c.Priorities.OutOfCycle != 1 || len(c.Addresses) != 4 {
		t.Errorf("counts %+v", c)
	}

}

// TestLegacyApprovalsAreFlagged: a policy that still holds the old spec.exceptions or
// spec.accessGrants, which medseg no longer reads, says so in a condition; without them the
// condition goes.
func TestLegacyApprovalsAreFlagged(t *testing.T) {
	s := loadSample(t)
	pol := policyOf(t, s, "critical-care")
	pol.Spec.Exceptions = []v1alpha1.LegacyException{{Name: "old", Device: v1alpha1.ObjectRef{Namespace: "icu", Name: "infusion-pump-bed-12"}}}
	st := decidePolicyStatus(&v1alpha1.SegmentPolicyStatus{}, policyFacts{Policy: pol, Guard: decideGuard(pol, nil), GuardWrite: writeResult{Outcome: created}})
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionLegacyApprovals)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonNotMigrated || !strings.Contains(c.Message, "kubectl medseg migrate") {
		t.Fatalf("LegacyApprovals = %+v", c)
	}
	pol.Spec.Exceptions = nil
	st = decidePolicyStatus(st, policyFacts{Policy: pol, Guard: decideGuard(pol, nil), GuardWrite: writeResult{Outcome: created}})
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionLegacyApprovals); c != nil {
		t.Errorf("LegacyApprovals should go once the lists are empty: %+v", c)
	}
}

// TestPolicyStatusDecision holds the SegmentPolicy's status to every readiness reason, the
// Isolated condition and the Events of its transitions.
func TestPolicyStatusDecision(t *testing.T) {
	s := loadSample(t)
	pol := policyOf(t, s, "critical-care")
	apply := decideGuard(pol, nil)
	hash := apply.Guard.Annotations[v1alpha1.AnnotationContentHash]
	live := appliedGuardOf(apply.Guard)
	live.Hash = "sha256:older"
	audit := pol.DeepCopy()
	audit.Spec.Enforcement = v1alpha1.EnforcementAudit
	applied := decidePolicyStatus(&v1alpha1.SegmentPolicyStatus{}, policyFacts{Policy: pol, Guard: apply, GuardWrite: writeResult{Outcome: created}, Evaluated: 10})
	offender := drift.Offender{Namespace: "guest", Pod: "laptop", Address: netip.MustParseAddr("10.20.1.12"), Reason: "allowed by CiliumNetworkPolicy guest/allow-all"}

	cases := []struct {
		name                             string
		old                              *v1alpha1.SegmentPolicyStatus
		facts                            policyFacts
		ready, stalled, reconciling, iso string
		guardHash                        string
		repairs                          int64
		events                           string
	}{
		{"enforced: the guard is applied", &v1alpha1.SegmentPolicyStatus{}, policyFacts{Policy: pol, Guard: apply, GuardWrite: writeResult{Outcome: created}, Evaluated: 10},
			"True/GuardApplied", "-", "-", "True/Isolated", hash, 0, ""},
		{"the guard was edited by hand: repaired and counted", applied, policyFacts{Policy: pol, Guard: apply, GuardWrite: writeResult{Live: live, Outcome: repaired}},
			"True/GuardApplied", "-", "-", "True/Isolated", hash, 1, v1alpha1.EventDriftRepaired},
		{"writing the guard failed: the guard in place stays recorded", applied, policyFacts{Policy: pol, Guard: apply, GuardWrite: writeResult{Live: live, Err: errors.New("timeout")}},
			"False/ApplyFailed", "-", "True/ApplyFailed", "True/Isolated", "sha256:older", 0, ""},
		{"a CCNP with the guard's name is not medseg's", &v1alpha1.SegmentPolicyStatus{}, policyFacts{Policy: pol, Guard: apply,
			GuardWrite: writeResult{Err: fmt.Errorf("%w: CiliumClusterwideNetworkPolicy medseg-guard-critical-care exists", errForeignObject)}},
			"False/ObjectConflict", "True/ObjectConflict", "-", "True/Isolated", "", 0, ""},
		{"Audit: the guard is pruned", applied, policyFacts{Policy: audit, Guard: decideGuard(audit, nil)},
			"True/AuditOnly", "-", "-", "True/Isolated", "", 0, v1alpha1.EventEnforcementChange},
		{"networks medseg cannot use", &v1alpha1.SegmentPolicyStatus{}, policyFacts{Policy: pol, Guard: guardDecision{Intent: guardNone, Err: errors.New("SegmentPolicy critical-care: spec.deviceNetworks: 0.0.0.0/0 would cover every address")}},
			"False/InvalidInput", "True/InvalidInput", "-", "True/Isolated", "", 0, ""},
		{"a workload reaches the device networks", applied, policyFacts{Policy: pol, Guard: apply, GuardWrite: writeResult{Live: appliedGuardOf(apply.Guard)}, Offenders: []drift.Offender{offender}, Evaluated: 10},
			"True/GuardApplied", "-", "-", "False/FlatNetwork", hash, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := decidePolicyStatus(c.old, c.facts)
			readiness := func(cond string) string {
				for _, x := range st.Conditions {
					if x.Type == cond {
						return string(x.Status) + "/" + x.Reason
					}
				}
				return "-"
			}
			guardHash := ""
			if st.Guard != nil {
				guardHash = st.Guard.Hash
			}
			got := []string{readiness(v1alpha1.ConditionReady), readiness(v1alpha1.ConditionStalled), readiness(v1alpha1.ConditionReconciling), readiness(v1alpha1.ConditionIsolated), guardHash, fmt.Sprint(st.GuardRepairs), eventReasons(policyEvents(c.old, st))}
			want := []string{c.ready, c.stalled, c.reconciling, c.iso, c.guardHash, fmt.Sprint(c.repairs), c.events}
			if strings.Join(got, " | ") != strings.Join(want, " | ") {
				t.Errorf("got  %s\nwant %s", strings.Join(got, " | "), strings.Join(want, " | "))
			}
			if st.ObservedGeneration != 4 || st.Enforcement != c.facts.Policy.Spec.Enforcement {
				t.Errorf("observedGeneration %d, enforcement %s", st.ObservedGeneration, st.Enforcement)
			}
		})
	}
	if !samePolicyStatus(applied, decidePolicyStatus(applied, policyFacts{Policy: pol, Guard: apply, GuardWrite: writeResult{Live: appliedGuardOf(apply.Guard)}, Evaluated: 10})) {
		t.Error("a resync of an unchanged policy must decide the same status")
	}
}

// TestGatewayCapacity: a gateway's load is the policyMapEntries of every device behind it,
// whatever its policy, counted only for gateways of the policy's own devices; the condition
// warns at 75% and says over capacity above 100%.
func TestGatewayCapacity(t *testing.T) {
	dev := func(ns, name, app string, entries int32) v1alpha1.MedicalDevice {
		d := v1alpha1.MedicalDevice{}
		d.Namespace, d.Name = ns, name
		d.Spec.Gateway.PodSelector.MatchLabels = map[string]string{"app": app}
		d.Status.Segmentation = &v1alpha1.SegmentationStatus{PolicyMapEntries: entries}
		return d
	}
	gw := func(ns, name, app string) drift.Pod {
		return drift.Pod{Name: name, Workload: drift.Workload{Namespace: ns, Labels: map[string]string{"app": app, v1alpha1.LabelGateway: "true"}}}
	}
	governed := []v1alpha1.MedicalDevice{dev("icu", "a", "gw", 300), dev("icu", "b", "gw", 300)}
	neighbours := append(governed, dev("icu", "c", "gw", 250), dev("icu", "d", "other", 900))
	pods := []drift.Pod{gw("icu", "gw-0", "gw"), gw("icu", "other-0", "other"),
		{Name: "gw-lookalike", Workload: drift.Workload{Namespace: "icu", Labels: map[string]string{"app": "gw"}}}}
	loads := gatewayLoads(governed, neighbours, pods, 1000)
	if len(loads) != 1 || loads[0] != (v1alpha1.GatewayLoad{Namespace: "icu", Pod: "gw-0", Devices: 3, Entries: 850, Capacity: 1000}) {
		t.Fatalf("loads %+v", loads)
	}
	pol := &v1alpha1.SegmentPolicy{}
	for _, c := range []struct {
		capacity int
		reason   string
		status   metav1.ConditionStatus
	}{{2000, v1alpha1.ReasonWithinCapacity, metav1.ConditionTrue}, {1000, v1alpha1.ReasonNearCapacity, metav1.ConditionFalse}, {800, v1alpha1.ReasonOverCapacity, metav1.ConditionFalse}} {
		ls := gatewayLoads(governed, neighbours, pods, c.capacity)
		st := &v1alpha1.SegmentPolicyStatus{}
		setCapacity(st, 1, policyFacts{Policy: pol, Gateways: ls, Capacity: c.capacity})
		cond := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionGatewayCapacity)
		if cond == nil || cond.Reason != c.reason || cond.Status != c.status || !strings.Contains(cond.Message, "gateway icu/gw-0: 850 of") {
			t.Errorf("capacity %d: %+v", c.capacity, cond)
		}
		if len(st.Gateways) != 1 {
			t.Errorf("status.gateways %+v", st.Gateways)
		}
	}
	// No gateway, no condition.
	st := &v1alpha1.SegmentPolicyStatus{Conditions: []metav1.Condition{{Type: v1alpha1.ConditionGatewayCapacity}}}
	setCapacity(st, 1, policyFacts{Policy: pol, Capacity: 1000})
	if meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionGatewayCapacity) != nil {
		t.Error("a policy without gateways keeps a capacity condition")
	}
}

// TestFlatnessEvaluatedAt holds status.flatness.evaluatedAt: kept while the result is the same
// and younger than FlatnessRefresh (no status write per resync), refreshed when the result
// changes or it grows older.
func TestFlatnessEvaluatedAt(t *testing.T) {
	s := loadSample(t)
	pol := policyOf(t, s, "critical-care")
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	facts := func(now time.Time, offenders ...drift.Offender) policyFacts {
		return policyFacts{Policy: pol, Guard: decideGuard(pol, nil), GuardWrite: writeResult{Outcome: created}, Evaluated: 10, Offenders: offenders, Now: now}
	}
	st := decidePolicyStatus(&v1alpha1.SegmentPolicyStatus{}, facts(t0))
	if at := st.Flatness.EvaluatedAt; at == nil || !at.Time.Equal(t0) {
		t.Fatalf("first audit: evaluatedAt %v, want %v", at, t0)
	}
	same := decidePolicyStatus(st, facts(t0.Add(59*time.Minute)))
	if !samePolicyStatus(st, same) {
		t.Errorf("the same result within the hour changed the status: %v → %v", st.Flatness.EvaluatedAt, same.Flatness.EvaluatedAt)
	}
	if later := decidePolicyStatus(st, facts(t0.Add(FlatnessRefresh))); !later.Flatness.EvaluatedAt.Time.Equal(t0.Add(FlatnessRefresh)) {
		t.Errorf("after FlatnessRefresh evaluatedAt stayed %v", later.Flatness.EvaluatedAt)
	}
	offender := drift.Offender{Namespace: "guest", Pod: "laptop", Address: netip.MustParseAddr("10.20.1.12"), Reason: "allowed by CiliumNetworkPolicy guest/allow-all"}
	if flat := decidePolicyStatus(st, facts(t0.Add(time.Minute), offender)); !flat.Flatness.EvaluatedAt.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("a changed result kept evaluatedAt %v", flat.Flatness.EvaluatedAt)
	}
}
