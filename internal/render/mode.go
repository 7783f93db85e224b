package render

import (
	"fmt"
	"sort"
	"time"

	"github.com/medseg/medseg/api/v1alpha1"
)

// ModeDecision is the mode a device runs in and why.
type ModeDecision struct {
	// RiskMode is the policy's riskResponse for the device's priority.
	RiskMode v1alpha1.Mode
	// Mode is RiskMode capped by an active exception.
	Mode v1alpha1.Mode
	// Reason explains Mode for people.
	Reason string
	// Exception is the active exception for the device, if any (capping or not).
	Exception *v1alpha1.SegmentException
	// Ignored lists exceptions for the device that never apply (longer than
	// maxExceptionDuration, or expiring before approval), with the reason.
	Ignored []string
	// Onboarding is true when the device is not commissioned and the policy requires it, so
	// the mode is at least the policy's onboarding mode.
	Onboarding bool
	// NextChange is the earliest future instant at which the decision changes on its own (an
	// exception or access grant starts or ends); zero when nothing is scheduled.
	NextChange time.Time
}

// schedule moves NextChange to t when t is a future instant earlier than the current one.
func (d *ModeDecision) schedule(t, now time.Time) {
	if t.After(now) && (d.NextChange.IsZero() || t.Before(d.NextChange)) {
		d.NextChange = t
	}
}

// DecideMode maps the priority through the policy's riskResponse and caps it with the device's
// active SegmentException (from approvals, which may hold other devices' too). An exception is
// active from notBefore (inclusive) to notAfter (exclusive), and never when it spans more than
// the policy's maxExceptionDuration. With several active
// exceptions, the most open maxMode wins (ties: later expiry, then name).
//
// A device that is not commissioned (commission.Commissioned false) while the policy requires
// onboarding runs at least in the onboarding mode: exceptions cap the risk response, never
// onboarding, because an exception approves keeping known flows, not flows nobody approved.
func DecideMode(p *v1alpha1.SegmentPolicy, approvals v1alpha1.Approvals, dev v1alpha1.ObjectRef, priority v1alpha1.Priority, commission v1alpha1.CommissioningState, now time.Time) ModeDecision {
	d := decideRiskMode(p, approvals.Exceptions, dev, priority, now)
	if commission.Commissioned || !p.Spec.OnboardingRequired() {
		return d
	}
	d.Onboarding = true
	why := "not commissioned"
	if commission.Reason == v1alpha1.ReasonFlowsChanged {
		why = "flows changed after commissioning"
	}
	if om := p.Spec.OnboardingMode(); om.Strictness() > d.Mode.Strictness() {
		d.Reason = fmt.Sprintf("onboarding: %s, so the device runs in onboarding mode %s until it is commissioned (%s)", why, om, d.Reason)
		d.Mode = om
	} else {
		d.Reason = fmt.Sprintf("%s; onboarding (%s) would be %s, no stricter", d.Reason, why, om)
	}
	return d
}

func decideRiskMode(p *v1alpha1.SegmentPolicy, exceptions []v1alpha1.SegmentException, dev v1alpha1.ObjectRef, priority v1alpha1.Priority, now time.Time) ModeDecision {
	d := ModeDecision{RiskMode: p.Spec.RiskResponse.ModeFor(priority)}
	d.Mode = d.RiskMode
	d.Reason = fmt.Sprintf("riskResponse maps %s to %s", priority, d.RiskMode)

	maxDur := p.Spec.MaxExceptionDurationOrDefault()
	var active []*v1alpha1.SegmentException
	for i := range exceptions {
		e := &exceptions[i]
		if e.Spec.Device != dev {
			continue
		}
		start, end := e.Spec.Window()
		if why := windowProblem("SegmentException "+e.Name, start, end, maxDur, "maxExceptionDuration"); why != "" {
			d.Ignored = append(d.Ignored, why)
			continue
		}
		d.schedule(start, now)
		d.schedule(end, now)
		if !now.Before(start) && now.Before(end) {
			active = append(active, e)
		}
	}
	if len(active) == 0 {
		return d
	}
	sort.Slice(active, func(i, j int) bool {
		a, b := active[i], active[j]
		if a.Spec.MaxMode.Strictness() != b.Spec.MaxMode.Strictness() {
			return a.Spec.MaxMode.Strictness() < b.Spec.MaxMode.Strictness()
		}
		if !a.Spec.NotAfter.Equal(&b.Spec.NotAfter) {
			return a.Spec.NotAfter.After(b.Spec.NotAfter.Time)
		}
		return a.Name < b.Name
	})
	e := active[0]
	d.Exception = e
	if d.RiskMode.Strictness() > e.Spec.MaxMode.Strictness() {
		d.Mode = e.Spec.MaxMode
		d.Reason = fmt.Sprintf("riskResponse maps %s to %s; SegmentException %s (approved by %s) caps it at %s until %s",
			priority, d.RiskMode, e.Name, e.Spec.ApprovedBy, e.Spec.MaxMode, e.Spec.NotAfter.UTC().Format(time.RFC3339))
	}
	return d
}

// NeedsGrant reports whether a flow opens only inside an access grant: it says access: Granted,
// or it has an external peer and the policy requires grants for those
// (allowedPeers.externalRequiresGrant, default true).
func NeedsGrant(p *v1alpha1.SegmentPolicy, f v1alpha1.Flow) bool {
	if f.Access == v1alpha1.AccessGranted {
		return true
	}
	if p == nil || !p.Spec.ExternalRequiresGrant() {
		return false
	}
	for _, peer := range f.Peers {
		if peer.IsExternal() {
			return true
		}
	}
	return false
}

// GrantDecision is the access grant state of one flow that needs a grant.
type GrantDecision struct {
	// Active is the grant open now (latest notAfter wins), nil when none is.
	Active *v1alpha1.AccessGrant
	// Next is the next grant to open, nil when none is scheduled.
	Next *v1alpha1.AccessGrant
	// Ignored lists grants for the flow that never open (too long, or ending before they start).
	Ignored []string
}

// decideGrant finds the device flow's AccessGrants among grants. A grant is open from
// notBefore (inclusive) to notAfter (exclusive), and never when it spans more than
// vendorAccess.maxWindow (the API rejects that; objects read offline may not have been
// validated). Both edges of every valid grant are scheduled on d, so the reconciler comes back
// exactly when access opens and when it ends.
func decideGrant(p *v1alpha1.SegmentPolicy, grants []v1alpha1.AccessGrant, dev v1alpha1.ObjectRef, flow string, now time.Time, d *ModeDecision) GrantDecision {
	var g GrantDecision
	maxWindow := p.Spec.MaxGrantWindow()
	for i := range grants {
		a := &grants[i]
		if a.Spec.Device != dev || a.Spec.Flow != flow {
			continue
		}
		start, end := a.Spec.Window()
		if why := windowProblem("AccessGrant "+a.Name, start, end, maxWindow, "vendorAccess.maxWindow"); why != "" {
			g.Ignored = append(g.Ignored, why)
			continue
		}
		d.schedule(start, now)
		d.schedule(end, now)
		switch {
		case !now.Before(start) && now.Before(end):
			if g.Active == nil || end.After(g.Active.Spec.NotAfter.Time) || (end.Equal(g.Active.Spec.NotAfter.Time) && a.Name < g.Active.Name) {
				g.Active = a
			}
		case now.Before(start):
			if g.Next == nil || start.Before(g.Next.Spec.NotBefore.Time) || (start.Equal(g.Next.Spec.NotBefore.Time) && a.Name < g.Next.Name) {
				g.Next = a
			}
		}
	}
	return g
}

// windowProblem says why a time-boxed approval [start, end) never applies: it ends before it
// starts, or it is longer than the policy allows (limitName). "" when it is valid.
func windowProblem(what string, start, end time.Time, limit time.Duration, limitName string) string {
	switch {
	case !end.After(start):
		return what + " ends before it starts"
	case end.Sub(start) > limit:
		return fmt.Sprintf("%s spans %s, more than %s %s", what, end.Sub(start), limitName, limit)
	}
	return ""
}
