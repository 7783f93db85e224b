package controllers

import (
	"errors"
	"fmt"
	"strings"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/discover"
	"github.com/medseg/medseg/internal/drift"
	"github.com/medseg/medseg/internal/plan"
)

// This file is the device's status decision: a pure function of the previous status, the plan,
// what was observed around the device and what the write did. The reconciler only reads, plans,
// writes and stores what this decides; Events are derived from the difference between the old
// and the new status.

// deviceFacts is everything the status decision depends on besides the previous status.
type deviceFacts struct {
	Now    time.Time
	Device *v1alpha1.MedicalDevice
	// Plan is the pure decision (plan.Device); PlanErr an input it could not use.
	Plan    *plan.Plan
	PlanErr error
	Around  surroundings
	// Decision is what medseg set out to do with the device's policy, Write what happened.
	Decision plan.ObjectDecision
	Write    writeResult
	// Traffic is what Hubble observed for the device, nil when the operator does not follow
	// Hubble Relay.
	Traffic *TrafficSnapshot
}

// TrafficSnapshot is the traffic follower's view of one device.
type TrafficSnapshot struct {
	// Traffic observed in the window (empty when none was).
	Traffic discover.DeviceTraffic
	// Unavailable says why the follower cannot follow Relay now, "" when it can.
	Unavailable string
}

// surroundings is what the reconciler observed around the device.
type surroundings struct {
	// NamespaceIsGateway: the namespace carries medseg.io/gateway-namespace=true.
	NamespaceIsGateway bool
	// GatewayPods counts pods matching spec.gateway.podSelector, Unlabelled those among them
	// without medseg.io/gateway=true.
	GatewayPods, Unlabelled int
	// Conflicts name the device's addresses other devices claim too, as "addr (claimed by ns/name)".
	Conflicts []string
	// Foreign are the policies medseg does not own that concern the device; Widened explains
	// those that widen access, "" if none does.
	Foreign []drift.Finding
	Widened string
	// Gateway is the most loaded of the device's gateway pods, the device counted as planned;
	// nil when it has none or no capacity is configured.
	Gateway *gatewayLoad
}

// writeResult is what the write of the device's policy did.
type writeResult struct {
	// Live is medseg's policy for the device as it was before the write; nil when none existed.
	Live *v1alpha1.AppliedObject
	// Outcome of an Apply (unchanged when nothing was written).
	Outcome applyOutcome
	// Err is the failed write or delete, nil on success.
	Err error
	// rv is the resourceVersion the write produced ("" when nothing was written).
	rv string
	// Raced is true when another write of the object was seen while medseg's was in flight.
	Raced bool
}

// appliedObjectOf describes a policy medseg wrote, as status records it.
func appliedObjectOf(cnp *ciliumv2.CiliumNetworkPolicy) *v1alpha1.AppliedObject {
	if cnp == nil {
		return nil
	}
	return &v1alpha1.AppliedObject{Kind: ciliumv2.CNPKindDefinition, Namespace: cnp.Namespace, Name: cnp.Name, Hash: cnp.Annotations[v1alpha1.AnnotationContentHash]}
}

// decideDeviceStatus is the device's new status.
func decideDeviceStatus(old *v1alpha1.MedicalDeviceStatus, f deviceFacts) *v1alpha1.MedicalDeviceStatus {
	gen := f.Device.Generation
	s := &v1alpha1.MedicalDeviceStatus{ObservedGeneration: gen, Conditions: append([]metav1.Condition(nil), old.Conditions...)}
	setRisk(s, old, f)
	setCommissioned(s, f)
	o := setSegmented(s, old, f)
	setReadiness(&s.Conditions, gen, o)
	s.Segmentation = segmentationOf(old, f)
	s.Drift = driftOf(old, f)
	setTraffic(s, f)
	setGatewayCapacity(s, gen, f.Around.Gateway)
	mode, reason := v1alpha1.Mode(""), o.message
	if s.Segmentation != nil {
		mode, reason = s.Segmentation.Mode, s.Segmentation.ModeReason
	}
	s.History = pushHistory(old.History, v1alpha1.HistoryEntry{Time: metav1.NewTime(f.Now), Priority: s.Risk.Priority, Mode: mode, Reason: reason})
	return s
}

// setRisk records the assessment, keeping assessedAt when nothing in it changed.
func setRisk(s, old *v1alpha1.MedicalDeviceStatus, f deviceFacts) {
	risk := f.Plan.Assessment.Status()
	risk.LastFeed = f.Device.LastFeed()
	if old.Risk != nil {
		prev := old.Risk.DeepCopy()
		prev.AssessedAt = risk.AssessedAt
		if equality.Semantic.DeepEqual(prev, risk) {
			risk.AssessedAt = old.Risk.AssessedAt
		}
	}
	s.Risk = risk
	setCondition(&s.Conditions, f.Device.Generation, v1alpha1.ConditionRiskAssessed, true, v1alpha1.ReasonAssessed, risk.Summary)
}

// setCommissioned compares spec.commissioning with spec.flows; it does not depend on a policy.
func setCommissioned(s *v1alpha1.MedicalDeviceStatus, f deviceFacts) {
	commission := f.Device.Spec.CommissioningState()
	s.FlowsHash = commission.FlowsHash
	msg := commission.Message
	if res := f.Plan.Render; f.PlanErr == nil && res != nil && !res.NoPolicy && !commission.Commissioned {
		if res.Onboarding {
			msg += fmt.Sprintf("; until then the device runs at least in onboarding mode %s of SegmentPolicy %s", f.Plan.Policy.Spec.OnboardingMode(), res.Policy)
		} else {
			msg += fmt.Sprintf("; SegmentPolicy %s does not require onboarding (onboarding.required=false), so its risk alone sets the mode", res.Policy)
		}
	}
	setCondition(&s.Conditions, f.Device.Generation, v1alpha1.ConditionCommissioned, commission.Commissioned, commission.Reason, msg)
}

// setSegmented sets the Segmented condition and returns the outcome Ready, Reconciling and
// Stalled are set from.
func setSegmented(s, old *v1alpha1.MedicalDeviceStatus, f deviceFacts) outcome {
	o := segmented(old, f)
	setCondition(&s.Conditions, f.Device.Generation, v1alpha1.ConditionSegmented, o.ok, o.reason, o.message)
	return o
}

// segmented decides the Segmented condition. The order is the order of what a person must fix
// first.
func segmented(old *v1alpha1.MedicalDeviceStatus, f deviceFacts) outcome {
	stalled := func(reason, msg string) outcome { return outcome{stalled: true, reason: reason, message: msg} }
	if f.PlanErr != nil {
		return stalled(v1alpha1.ReasonInvalidInput, f.PlanErr.Error())
	}
	p, res, around := f.Plan, f.Plan.Render, f.Around
	shared := sharedNote(p)
	if res.NoPolicy {
		msg := "no SegmentPolicy selects this device: it is not governed"
		if f.Decision.Intent == plan.Keep && f.Write.Live != nil {
			msg += fmt.Sprintf("; the last enforced policy %s is kept in place", f.Write.Live.Name)
		}
		if len(p.Selection.Invalid) > 0 {
			msg += "; skipped: " + errorsString(p.Selection.Invalid)
		}
		return stalled(v1alpha1.ReasonNoSegmentPolicy, msg+shared)
	}
	summary := fmt.Sprintf("mode %s: %d of %d flows allowed", res.Mode, len(res.Allowed()), len(res.Flows))
	if len(around.Conflicts) > 0 {
		msg := "address also claimed by another MedicalDevice: " + strings.Join(around.Conflicts, ", ")
		if f.Decision.Why != "" {
			msg += "; " + f.Decision.Why
		}
		return stalled(v1alpha1.ReasonAddressConflict, msg)
	}
	if !p.Enforced {
		if len(p.SharedWith) > 0 {
			return outcome{ok: false, reason: v1alpha1.ReasonSharedGateway, message: fmt.Sprintf(
				"SegmentPolicy %s is in Audit: would enforce %s%s", res.Policy, summary, shared)}
		}
		return outcome{reason: v1alpha1.ReasonAuditOnly, message: fmt.Sprintf("SegmentPolicy %s is in Audit: would enforce %s; nothing is written", res.Policy, summary)}
	}
	switch {
	case errors.Is(f.Write.Err, errForeignObject):
		return stalled(v1alpha1.ReasonObjectConflict, f.Write.Err.Error())
	case f.Write.Err != nil:
		return outcome{progressing: true, reason: v1alpha1.ReasonApplyFailed, message: f.Write.Err.Error()}
	case around.Widened != "":
		return stalled(v1alpha1.ReasonForeignPolicyWidens, "a policy medseg does not own widens access: "+around.Widened+
			"; medseg does not delete it, remove or narrow it")
	case !around.NamespaceIsGateway:
		return stalled(v1alpha1.ReasonGatewayNamespaceNotLabelled, fmt.Sprintf(
			"namespace %s is not labelled %s=true: the guard cuts its gateways off the device networks; ask the platform team to label it",
			f.Device.Namespace, v1alpha1.LabelGatewayNamespace))
	case around.Unlabelled > 0:
		return stalled(v1alpha1.ReasonGatewayPodsNotLabelled, fmt.Sprintf(
			"%d of %d pods selected by spec.gateway.podSelector lack the label %s=true: the device policy does not select them and the guard cuts them off",
			around.Unlabelled, around.GatewayPods, v1alpha1.LabelGateway))
	case f.Decision.Intent == plan.Wait:
		return outcome{progressing: true, reason: v1alpha1.ReasonWaitingForSharedGateway, message: summary + " once applied; " + f.Decision.Why}
	case p.GatewayFull != "" && f.Decision.Intent != plan.Apply:
		return stalled(v1alpha1.ReasonOverCapacity, fmt.Sprintf("would enforce %s, but %s; split the devices over more gateway deployments", summary, f.Decision.Why))
	case len(res.AddressesOutsideDeviceNetworks) > 0:
		return stalled(v1alpha1.ReasonAddressOutsideDeviceNetworks, fmt.Sprintf(
			"addresses %s lie outside the deviceNetworks of SegmentPolicy %s: ordinary pods are not fenced from them",
			strings.Join(res.AddressesOutsideDeviceNetworks, ", "), res.Policy))
	case around.GatewayPods == 0:
		return outcome{ok: true, reason: v1alpha1.ReasonGatewayNotFound, message: summary + "; no pod matches spec.gateway.podSelector yet: the policy applies when the gateway starts" + shared}
	}
	return outcome{ok: true, reason: v1alpha1.ReasonSegmented, message: summary + fmt.Sprintf(" through %d gateway pod(s)", around.GatewayPods) + shared}
}

// sharedNote says which devices of another enforcement share the device's gateway pods.
func sharedNote(p *plan.Plan) string {
	if len(p.SharedWith) == 0 {
		return ""
	}
	names := make([]string, len(p.SharedWith))
	policies := map[string]bool{}
	var enforcing []string
	for i, n := range p.SharedWith {
		names[i] = n.String()
		if n.Enforced && !policies[n.Policy] {
			policies[n.Policy] = true
			enforcing = append(enforcing, n.Policy)
		}
	}
	if p.Enforced {
		return fmt.Sprintf("; its gateway pods can also front unenforced devices %s, whose declared flows stay open on them", strings.Join(names, ", "))
	}
	return fmt.Sprintf("; its gateway pods are shared with devices enforced by SegmentPolicy %s (%s), whose default deny they share: medseg keeps this device's declared flows open on them with an allow-only policy",
		strings.Join(enforcing, ", "), strings.Join(names, ", "))
}

// segmentationOf is status.segmentation: the plan's decision, what is applied now, and when
// medseg last wrote. appliedObjects come only from a write that succeeded or from what was
// already in place, never from what was merely desired.
func segmentationOf(old *v1alpha1.MedicalDeviceStatus, f deviceFacts) *v1alpha1.SegmentationStatus {
	if f.PlanErr != nil {
		return old.Segmentation
	}
	res := f.Plan.Render
	var seg *v1alpha1.SegmentationStatus
	if res.NoPolicy {
		seg = &v1alpha1.SegmentationStatus{}
		if f.Decision.Intent == plan.Keep && old.Segmentation != nil {
			// Keep what is still enforced, so auditors see it, but say no policy governs.
			seg.Mode = old.Segmentation.Mode
			seg.ModeReason = "no SegmentPolicy governs the device; the last enforced mode is kept"
		}
	} else {
		seg = res.SegmentationStatus()
	}
	for _, n := range f.Plan.SharedWith {
		seg.SharedWith = append(seg.SharedWith, n.String())
	}
	if a := appliedNow(f); a != nil {
		seg.AppliedObjects = []v1alpha1.AppliedObject{*a}
	}
	if old.Segmentation != nil {
		seg.LastAppliedAt = old.Segmentation.LastAppliedAt
	}
	if f.Write.Err == nil && f.Decision.Intent == plan.Apply && f.Write.Outcome != unchanged {
		now := metav1.NewTime(f.Now)
		seg.LastAppliedAt = &now
	}
	if res.NoPolicy && len(seg.AppliedObjects) == 0 && len(seg.SharedWith) == 0 {
		return nil
	}
	return seg
}

// appliedNow is the device's policy as it stands after the write.
func appliedNow(f deviceFacts) *v1alpha1.AppliedObject {
	switch f.Decision.Intent {
	case plan.Apply:
		if f.Write.Err == nil {
			return appliedObjectOf(f.Decision.Object)
		}
		return f.Write.Live
	case plan.Keep, plan.Wait:
		return f.Write.Live
	case plan.Prune:
		if f.Write.Err != nil {
			return f.Write.Live
		}
	}
	return nil
}

// driftOf counts repairs and lists the foreign policies.
func driftOf(old *v1alpha1.MedicalDeviceStatus, f deviceFacts) *v1alpha1.DriftStatus {
	ds := old.Drift.DeepCopy()
	if ds == nil {
		ds = &v1alpha1.DriftStatus{}
	}
	if f.Decision.Intent == plan.Apply && f.Write.Err == nil && f.Write.Outcome == repaired {
		ds.Repairs++
		now := metav1.NewTime(f.Now)
		ds.LastRepairAt = &now
	}
	ds.ForeignPolicies = nil
	for _, fp := range f.Around.Foreign {
		ds.ForeignPolicies = append(ds.ForeignPolicies, v1alpha1.ForeignPolicy{Kind: fp.Kind, Namespace: fp.Namespace, Name: fp.Name, Widens: fp.Widens, Reason: fp.Reason})
	}
	if ds.Repairs == 0 && len(ds.ForeignPolicies) == 0 {
		return nil
	}
	return ds
}

// statusEvent is one Event to emit, derived from a status transition.
type statusEvent struct {
	Type, Reason, Message string
}

// deviceEvents derives the Events of a reconcile from the old and the new status: transitions
// only, so a resync that changes nothing is silent.
func deviceEvents(old, cur *v1alpha1.MedicalDeviceStatus, now time.Time) []statusEvent {
	var out []statusEvent
	ev := func(typ, reason, format string, args ...any) {
		out = append(out, statusEvent{Type: typ, Reason: reason, Message: fmt.Sprintf(format, args...)})
	}
	if old.Risk != nil && cur.Risk != nil && old.Risk.Priority != cur.Risk.Priority {
		ev(corev1.EventTypeNormal, v1alpha1.EventPriorityChanged, "SSVC priority %s → %s: %s", old.Risk.Priority, cur.Risk.Priority, cur.Risk.Summary)
	}
	oldSeg, curSeg := old.Segmentation, cur.Segmentation
	if oldSeg != nil && curSeg != nil && oldSeg.Mode != "" && curSeg.Mode != "" && oldSeg.Mode != curSeg.Mode {
		ev(corev1.EventTypeNormal, v1alpha1.EventModeChanged, "mode %s → %s: %s", oldSeg.Mode, curSeg.Mode, curSeg.ModeReason)
	}
	if oldSeg != nil && curSeg != nil && oldSeg.Enforcement != "" && curSeg.Enforcement != "" && oldSeg.Enforcement != curSeg.Enforcement {
		ev(corev1.EventTypeNormal, v1alpha1.EventEnforcementChange, "enforcement %s → %s (policy %s)", oldSeg.Enforcement, curSeg.Enforcement, curSeg.Policy)
	}
	if oldSeg != nil && oldSeg.ActiveException != nil && (curSeg == nil || curSeg.ActiveException == nil || curSeg.ActiveException.Name != oldSeg.ActiveException.Name) &&
		!now.Before(oldSeg.ActiveException.ExpiresAt.Time) {
		ev(corev1.EventTypeNormal, v1alpha1.EventExceptionExpired, "SegmentException %s (approved by %s) expired at %s",
			oldSeg.ActiveException.Name, oldSeg.ActiveException.ApprovedBy, oldSeg.ActiveException.ExpiresAt.UTC().Format(time.RFC3339))
	}
	out = append(out, accessEvents(now, oldSeg, curSeg)...)
	oldComm := meta.FindStatusCondition(old.Conditions, v1alpha1.ConditionCommissioned)
	curComm := meta.FindStatusCondition(cur.Conditions, v1alpha1.ConditionCommissioned)
	if curComm != nil && (oldComm == nil || oldComm.Reason != curComm.Reason) {
		switch curComm.Reason {
		case v1alpha1.ReasonCommissioned:
			if oldComm != nil { // not on first sight: a device created commissioned did not change
				ev(corev1.EventTypeNormal, v1alpha1.EventCommissioned, "%s", curComm.Message)
			}
		case v1alpha1.ReasonFlowsChanged:
			ev(corev1.EventTypeWarning, v1alpha1.EventFlowsChanged, "%s", curComm.Message)
		}
	}
	if repairs(cur) > repairs(old) && curSeg != nil && len(curSeg.AppliedObjects) > 0 {
		ev(corev1.EventTypeWarning, v1alpha1.EventDriftRepaired, "CiliumNetworkPolicy %s was edited or deleted by hand; medseg put it back", curSeg.AppliedObjects[0].Name)
	}
	oldSegmented := meta.FindStatusCondition(old.Conditions, v1alpha1.ConditionSegmented)
	curSegmented := meta.FindStatusCondition(cur.Conditions, v1alpha1.ConditionSegmented)
	entered := func(reason string) bool {
		return curSegmented != nil && curSegmented.Reason == reason && (oldSegmented == nil || oldSegmented.Reason != reason)
	}
	if entered(v1alpha1.ReasonNoSegmentPolicy) {
		ev(corev1.EventTypeWarning, v1alpha1.EventNoSegmentPolicy, "%s", curSegmented.Message)
	}
	if entered(v1alpha1.ReasonAddressConflict) {
		ev(corev1.EventTypeWarning, v1alpha1.EventAddressConflict, "%s", curSegmented.Message)
	}
	return out
}

func repairs(s *v1alpha1.MedicalDeviceStatus) int64 {
	if s.Drift == nil {
		return 0
	}
	return s.Drift.Repairs
}

// accessEvents reports access grants that opened a flow (AccessGranted) and flows whose grant
// no longer opens them (AccessEnded: the window closed, the grant was withdrawn or the mode
// tightened).
func accessEvents(now time.Time, oldSeg, curSeg *v1alpha1.SegmentationStatus) []statusEvent {
	var out []statusEvent
	grants := func(s *v1alpha1.SegmentationStatus) map[string]bool {
		m := map[string]bool{}
		for _, g := range s.ActiveGrantsOrEmpty() {
			m[g.Name+"/"+g.Flow] = true
		}
		return m
	}
	before, after := grants(oldSeg), grants(curSeg)
	for _, g := range curSeg.ActiveGrantsOrEmpty() {
		if !before[g.Name+"/"+g.Flow] {
			out = append(out, statusEvent{corev1.EventTypeNormal, v1alpha1.EventAccessGranted, fmt.Sprintf(
				"AccessGrant %s (approved by %s, ticket %s) opens flow %s until %s", g.Name, g.ApprovedBy, g.Ticket, g.Flow, g.NotAfter.UTC().Format(time.RFC3339))})
		}
	}
	for _, g := range oldSeg.ActiveGrantsOrEmpty() {
		if after[g.Name+"/"+g.Flow] {
			continue
		}
		why := "the grant was withdrawn or the mode no longer allows the flow"
		if !now.Before(g.NotAfter.Time) {
			why = "the window ended at " + g.NotAfter.UTC().Format(time.RFC3339)
		}
		out = append(out, statusEvent{corev1.EventTypeNormal, v1alpha1.EventAccessEnded, fmt.Sprintf("AccessGrant %s no longer opens flow %s: %s", g.Name, g.Flow, why)})
	}
	return out
}

// setTraffic records what Hubble observed, and for a device in Audit or onboarding whether the
// flows it would be enforced with cover it: the answer to "what will enforcement break?".
func setTraffic(s *v1alpha1.MedicalDeviceStatus, f deviceFacts) {
	if f.Traffic == nil {
		s.Traffic = nil
		meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionTrafficDeclared)
		return
	}
	seg := s.Segmentation
	var flows []v1alpha1.Flow
	if seg != nil {
		allowed := map[string]bool{}
		for _, n := range seg.AllowedFlows {
			allowed[n] = true
		}
		for _, fl := range f.Device.Spec.Flows {
			if allowed[fl.Name] {
				flows = append(flows, fl)
			}
		}
	}
	t := discover.Summarize(&f.Traffic.Traffic, f.Device.Namespace, flows)
	s.Traffic = t
	if seg == nil || seg.Policy == "" || (seg.Enforcement != v1alpha1.EnforcementAudit && !seg.Onboarding) {
		meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionTrafficDeclared)
		return
	}
	window := t.Window.Duration.String()
	cond := metav1.Condition{Type: v1alpha1.ConditionTrafficDeclared, ObservedGeneration: f.Device.Generation}
	observed := len(f.Traffic.Traffic.Observations)
	switch {
	case observed == 0 && f.Traffic.Unavailable != "":
		cond.Status, cond.Reason, cond.Message = metav1.ConditionUnknown, v1alpha1.ReasonHubbleUnavailable, f.Traffic.Unavailable
	case observed == 0:
		cond.Status, cond.Reason = metav1.ConditionUnknown, v1alpha1.ReasonNoTrafficObserved
		cond.Message = "Hubble observed no flow through the device's gateways in the last " + window
	case t.UndeclaredFlows == 0:
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.ReasonTrafficDeclared
		cond.Message = fmt.Sprintf("the flows the device would be enforced with cover all %d flows observed in the last %s", observed, window)
	default:
		top := t.Undeclared[0]
		what := fmt.Sprintf("%d observed flows", t.UndeclaredFlows)
		if t.UndeclaredFlows == 1 {
			what = "1 observed flow"
		}
		detail := fmt.Sprintf("(top: %s, %s times)", discover.Arrow(top), discover.Thousands(top.Connections))
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonUndeclaredTraffic
		if seg.Enforcement == v1alpha1.EnforcementAudit {
			cond.Message = fmt.Sprintf("Enforce would drop %s %s", what, detail)
		} else {
			cond.Message = fmt.Sprintf("enforcement drops %s the onboarding mode does not allow %s", what, detail)
		}
	}
	if f.Traffic.Unavailable != "" && observed > 0 {
		cond.Message += "; " + f.Traffic.Unavailable
	}
	meta.SetStatusCondition(&s.Conditions, cond)
}
