package controllers

import (
	"time"

	"errors"
	"fmt"
	"net/netip"
	"sort"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/drift"
	"github.com/medseg/medseg/internal/render"
)

// This file is the SegmentPolicy's decisions, pure: what to do with its guard, what it counts,
// how flat its networks are, which approvals cannot take effect, and its new status and Events.
// The reconciler reads, calls these, writes the guard and the status.

// guardIntent is what to do with the policy's guard.
type guardIntent int

const (
	guardApply guardIntent = iota // write the rendered guard
	guardPrune                    // Audit: remove medseg's guard
	guardNone                     // the guard could not be rendered: nothing is written
)

// guardDecision is the guard to apply or prune, or why neither is possible.
type guardDecision struct {
	Intent guardIntent
	Guard  *ciliumv2.CiliumClusterwideNetworkPolicy
	Err    error
	// Members counts the devices whose gateways the guard lets reach their addresses.
	Members int
}

// decideGuard renders the guard of an enforced policy and prunes it in Audit.
func decideGuard(pol *v1alpha1.SegmentPolicy, members []render.GatewayMember) guardDecision {
	g, err := render.Guard(pol, members)
	switch {
	case err != nil:
		return guardDecision{Intent: guardNone, Err: err}
	case pol.Spec.Enforcement == v1alpha1.EnforcementEnforce:
		return guardDecision{Intent: guardApply, Guard: g, Members: len(members)}
	}
	return guardDecision{Intent: guardPrune, Guard: g}
}

// deviceCounts are the policy's device counts, and the addresses that probe its flatness.
type deviceCounts struct {
	Devices    int32
	Modes      v1alpha1.ModeCounts
	Priorities v1alpha1.PriorityCounts
	Addresses  []netip.Addr
	// Traffic aggregates the devices' observed traffic; nil when no device has any.
	Traffic *v1alpha1.PolicyTraffic
}

// countDevices counts the devices a policy governs (those whose status names it) by mode and
// priority.
func countDevices(devs []v1alpha1.MedicalDevice) deviceCounts {
	var c deviceCounts
	for _, d := range devs {
		c.Devices++
		for _, a := range d.Spec.Network.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				c.Addresses = append(c.Addresses, ip.Unmap())
			}
		}
		if seg := d.Status.Segmentation; seg != nil {
			switch seg.Mode {
			case v1alpha1.ModeStandard:
				c.Modes.Standard++
			case v1alpha1.ModeRestricted:
				c.Modes.Restricted++
			case v1alpha1.ModeQuarantine:
				c.Modes.Quarantine++
			}
		}
		if t := d.Status.Traffic; t != nil {
			if c.Traffic == nil {
				c.Traffic = &v1alpha1.PolicyTraffic{}
			}
			if t.UndeclaredFlows > 0 {
				c.Traffic.DevicesWithUndeclaredTraffic++
			}
			if t.BypassConnections > 0 {
				c.Traffic.DevicesWithBypass++
			}
			c.Traffic.UndeclaredFlows += t.UndeclaredFlows
			c.Traffic.Drops += t.Drops
		}
		if d.Status.Risk == nil {
			continue
		}
		switch d.Status.Risk.Priority {
		case v1alpha1.PriorityDefer:
			c.Priorities.Defer++
		case v1alpha1.PriorityScheduled:
			c.Priorities.Scheduled++
		case v1alpha1.PriorityOutOfCycle:
			c.Priorities.OutOfCycle++
		case v1alpha1.PriorityImmediate:
			c.Priorities.Immediate++
		}
	}
	return c
}

// setLegacyApprovals flags a policy that still holds the deprecated spec.exceptions or
// spec.accessGrants: medseg no longer reads them, and that must not pass unnoticed.
func setLegacyApprovals(st *v1alpha1.SegmentPolicyStatus, gen int64, pol *v1alpha1.SegmentPolicy) {
	n, m := len(pol.Spec.Exceptions), len(pol.Spec.AccessGrants)
	if n+m == 0 {
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionLegacyApprovals)
		return
	}
	setCondition(&st.Conditions, gen, v1alpha1.ConditionLegacyApprovals, true, v1alpha1.ReasonNotMigrated,
		fmt.Sprintf("spec.exceptions (%d) and spec.accessGrants (%d) are no longer read: they do not apply. Create them as SegmentExceptions and AccessGrants (kubectl medseg migrate prints them), then remove them from the policy", n, m))
}

// maxOffenders bounds the offenders listed in status.
const maxOffenders = 5

// policyFacts is everything the policy's status depends on besides the previous status.
type policyFacts struct {
	Policy *v1alpha1.SegmentPolicy
	Guard  guardDecision
	// GuardWrite is what writing (or pruning) the guard did.
	GuardWrite writeResult
	Counts     deviceCounts
	// Offenders are the workloads other than gateways that reach the device networks, of
	// Evaluated pods (drift.Flatness).
	Offenders []drift.Offender
	Evaluated int
	// Gateways are the loads of the gateway pods of the policy's devices (gatewayLoads), most
	// loaded first; Capacity the policy map size they are held against.
	Gateways []v1alpha1.GatewayLoad
	Capacity int
	// Now is when the facts were gathered: the flatness audit's time.
	Now time.Time
}

// decidePolicyStatus is the SegmentPolicy's new status.
func decidePolicyStatus(old *v1alpha1.SegmentPolicyStatus, f policyFacts) *v1alpha1.SegmentPolicyStatus {
	pol, gen := f.Policy, f.Policy.Generation
	st := old.DeepCopy()
	st.ObservedGeneration = gen
	st.Enforcement = pol.Spec.Enforcement
	st.Devices, st.Modes, st.Priorities = f.Counts.Devices, f.Counts.Modes, f.Counts.Priorities
	st.Traffic = f.Counts.Traffic
	setReadiness(&st.Conditions, gen, setGuard(st, f))
	setIsolated(st, gen, pol, f)
	setCapacity(st, gen, f)
	setLegacyApprovals(st, gen, pol)
	return st
}

// maxGateways bounds status.gateways (the schema's MaxItems).
const maxGateways = 10

// setCapacity records the most loaded gateways and the GatewayCapacity condition: a warning at
// 75% of the policy map (render.CapacityWarnRatio), before Cilium fails to regenerate the
// gateway's policy.
func setCapacity(st *v1alpha1.SegmentPolicyStatus, gen int64, f policyFacts) {
	st.Gateways = nil
	if len(f.Gateways) > 0 {
		st.Gateways = append([]v1alpha1.GatewayLoad(nil), f.Gateways[:min(len(f.Gateways), maxGateways)]...)
	}
	if f.Capacity <= 0 || len(f.Gateways) == 0 {
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionGatewayCapacity)
		return
	}
	top := f.Gateways[0]
	load := fmt.Sprintf("gateway %s/%s: %d of %d policy map entries (estimated) for %d devices", top.Namespace, top.Pod, top.Entries, top.Capacity, top.Devices)
	setCapacityCondition(&st.Conditions, gen, int(top.Entries), f.Capacity, load,
		"above Cilium's per-endpoint policy map, whose overflow stops the gateway's policy from regenerating; medseg adds no flows to it; split the devices over more gateway deployments",
		"most loaded "+load)
}

// gatewayLoads estimates each gateway pod's policy map: the policyMapEntries every device
// behind it reports (devices of any policy: the map is the pod's). Only pods fronting one of the
// policy's devices count. Most loaded first.
func gatewayLoads(governed []v1alpha1.MedicalDevice, neighbours []v1alpha1.MedicalDevice, pods []drift.Pod, capacity int) []v1alpha1.GatewayLoad {
	type gw struct{ ns, name string }
	byNS := map[string][]drift.Pod{}
	for _, p := range pods {
		if p.Labels[v1alpha1.LabelGateway] == "true" {
			byNS[p.Namespace] = append(byNS[p.Namespace], p)
		}
	}
	selectors := map[*v1alpha1.MedicalDevice]labels.Selector{} // parsed once per device
	selects := func(d *v1alpha1.MedicalDevice, p drift.Pod) bool {
		sel, ok := selectors[d]
		if !ok {
			var err error
			if sel, err = metav1.LabelSelectorAsSelector(&d.Spec.Gateway.PodSelector); err != nil || sel.Empty() {
				sel = labels.Nothing()
			}
			selectors[d] = sel
		}
		return sel.Matches(labels.Set(p.Labels))
	}
	ours := map[gw]bool{}
	for i := range governed {
		for _, p := range byNS[governed[i].Namespace] {
			if selects(&governed[i], p) {
				ours[gw{p.Namespace, p.Name}] = true
			}
		}
	}
	loads := map[gw]*v1alpha1.GatewayLoad{}
	for i := range neighbours {
		d := &neighbours[i]
		if d.Status.Segmentation == nil || d.Status.Segmentation.PolicyMapEntries == 0 {
			continue
		}
		for _, p := range byNS[d.Namespace] {
			k := gw{p.Namespace, p.Name}
			if !ours[k] || !selects(d, p) {
				continue
			}
			l := loads[k]
			if l == nil {
				l = &v1alpha1.GatewayLoad{Namespace: p.Namespace, Pod: p.Name, Capacity: int32(capacity)}
				loads[k] = l
			}
			l.Devices++
			l.Entries += d.Status.Segmentation.PolicyMapEntries
		}
	}
	out := make([]v1alpha1.GatewayLoad, 0, len(loads))
	for _, l := range loads {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Entries != out[j].Entries {
			return out[i].Entries > out[j].Entries
		}
		return out[i].Namespace+"/"+out[i].Pod < out[j].Namespace+"/"+out[j].Pod
	})
	return out
}

// setGuard records the guard in place and returns the readiness outcome it implies.
func setGuard(st *v1alpha1.SegmentPolicyStatus, f policyFacts) outcome {
	d, w := f.Guard, f.GuardWrite
	switch {
	case d.Intent == guardNone:
		return outcome{stalled: true, reason: v1alpha1.ReasonInvalidInput, message: d.Err.Error()}
	case errors.Is(w.Err, errForeignObject):
		st.Guard = nil
		return outcome{stalled: true, reason: v1alpha1.ReasonObjectConflict, message: w.Err.Error()}
	case w.Err != nil:
		st.Guard = w.Live // what is in place, not what failed
		return outcome{progressing: true, reason: v1alpha1.ReasonApplyFailed, message: w.Err.Error()}
	case d.Intent == guardPrune:
		st.Guard = nil
		return outcome{reason: v1alpha1.ReasonAuditOnly, message: "Audit: devices are assessed and reported; nothing is enforced (only the allow-only policies of shared gateways are written)"}
	}
	st.Guard = &v1alpha1.AppliedObject{Kind: ciliumv2.CCNPKindDefinition, Name: d.Guard.Name, Hash: d.Guard.Annotations[v1alpha1.AnnotationContentHash]}
	if w.Outcome == repaired {
		st.GuardRepairs++
	}
	return outcome{reason: v1alpha1.ReasonGuardApplied, message: fmt.Sprintf("guard %s denies %v to every pod but the gateways of the %d devices enforced there", d.Guard.Name, f.Policy.Spec.DeviceNetworks, d.Members)}
}

// setIsolated records the flatness audit and the Isolated condition.
func setIsolated(st *v1alpha1.SegmentPolicyStatus, gen int64, pol *v1alpha1.SegmentPolicy, f policyFacts) {
	old := st.Flatness
	st.Flatness = &v1alpha1.FlatnessStatus{
		ReachableWorkloads: int32(len(f.Offenders)), EvaluatedWorkloads: int32(f.Evaluated),
		Offenders: drift.Summary(f.Offenders, maxOffenders),
	}
	st.Flatness.EvaluatedAt = flatnessEvaluatedAt(old, st.Flatness, f.Now)
	if len(f.Offenders) == 0 {
		setCondition(&st.Conditions, gen, v1alpha1.ConditionIsolated, true, v1alpha1.ReasonIsolated,
			fmt.Sprintf("no workload other than gateways can reach %v (%d pods evaluated)", pol.Spec.DeviceNetworks, f.Evaluated))
		return
	}
	setCondition(&st.Conditions, gen, v1alpha1.ConditionIsolated, false, v1alpha1.ReasonFlatNetwork,
		fmt.Sprintf("%d workloads other than gateways can reach the device networks, e.g. %s", len(f.Offenders), f.Offenders[0]))
}

// FlatnessRefresh is how stale status.flatness.evaluatedAt may grow while the audit's result
// stays the same: refreshing it on every reconcile would write status on every resync. The
// policy reconciler requeues itself at this period, so the audit runs at least this often.
const FlatnessRefresh = time.Hour

// flatnessEvaluatedAt is the audit's evaluatedAt: the previous one while the result is the
// same and younger than FlatnessRefresh, else now.
func flatnessEvaluatedAt(old, cur *v1alpha1.FlatnessStatus, now time.Time) *metav1.Time {
	if now.IsZero() {
		return nil
	}
	if old != nil && old.EvaluatedAt != nil && now.Sub(old.EvaluatedAt.Time) < FlatnessRefresh {
		o, c := *old, *cur
		o.EvaluatedAt, c.EvaluatedAt = nil, nil
		if equality.Semantic.DeepEqual(o, c) {
			return old.EvaluatedAt
		}
	}
	t := metav1.NewTime(now.UTC().Truncate(time.Second))
	return &t
}

// policyEvents derives the policy's Events from the old and the new status.
func policyEvents(old, cur *v1alpha1.SegmentPolicyStatus) []statusEvent {
	var out []statusEvent
	if old.Enforcement != "" && old.Enforcement != cur.Enforcement {
		out = append(out, statusEvent{corev1.EventTypeNormal, v1alpha1.EventEnforcementChange, fmt.Sprintf("enforcement %s → %s", old.Enforcement, cur.Enforcement)})
	}
	if cur.GuardRepairs > old.GuardRepairs && cur.Guard != nil {
		out = append(out, statusEvent{corev1.EventTypeWarning, v1alpha1.EventDriftRepaired, fmt.Sprintf("guard %s was edited or deleted by hand; medseg put it back", cur.Guard.Name)})
	}
	return out
}

// samePolicyStatus reports whether two policy statuses say the same thing (transition times of
// unchanged conditions aside).
func samePolicyStatus(a, b *v1alpha1.SegmentPolicyStatus) bool {
	ac, bc := a.DeepCopy(), b.DeepCopy()
	ac.Conditions, bc.Conditions = nil, nil
	return sameConditions(a.Conditions, b.Conditions) && equality.Semantic.DeepEqual(ac, bc)
}

// appliedGuardOf describes a guard in place, as status records it.
func appliedGuardOf(g *ciliumv2.CiliumClusterwideNetworkPolicy) *v1alpha1.AppliedObject {
	if g == nil {
		return nil
	}
	return &v1alpha1.AppliedObject{Kind: ciliumv2.CCNPKindDefinition, Name: g.Name, Hash: g.Annotations[v1alpha1.AnnotationContentHash]}
}
