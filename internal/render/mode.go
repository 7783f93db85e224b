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
	Exception *v1alpha1.Exception
	// Ignored lists exceptions for the device that never apply (longer than
	// maxExceptionDuration, or expiring before approval), with the reason.
	Ignored []string
	// NextChange is the earliest future instant at which the decision changes on its own (an
	// exception starts or ends); zero when nothing is scheduled.
	NextChange time.Time
}

// DecideMode maps the priority through the policy's riskResponse and caps it with the device's
// active exception. An exception is active from approvedAt (inclusive) to expiresAt
// (exclusive), and never when it spans more than maxExceptionDuration. With several active
// exceptions, the most open maxMode wins (ties: later expiry, then name).
func DecideMode(p *v1alpha1.SegmentPolicy, dev v1alpha1.ObjectRef, priority v1alpha1.Priority, now time.Time) ModeDecision {
	d := ModeDecision{RiskMode: p.Spec.RiskResponse.ModeFor(priority)}
	d.Mode = d.RiskMode
	d.Reason = fmt.Sprintf("riskResponse maps %s to %s", priority, d.RiskMode)

	maxDur := p.Spec.MaxExceptionDurationOrDefault()
	var active []*v1alpha1.Exception
	for i := range p.Spec.Exceptions {
		e := &p.Spec.Exceptions[i]
		if e.Device != dev {
			continue
		}
		start, end := e.ApprovedAt.Time, e.ExpiresAt.Time
		switch {
		case !end.After(start):
			d.Ignored = append(d.Ignored, fmt.Sprintf("exception %s expires before it is approved", e.Name))
			continue
		case end.Sub(start) > maxDur:
			d.Ignored = append(d.Ignored, fmt.Sprintf("exception %s spans %s, more than maxExceptionDuration %s", e.Name, end.Sub(start), maxDur))
			continue
		}
		for _, edge := range []time.Time{start, end} {
			if edge.After(now) && (d.NextChange.IsZero() || edge.Before(d.NextChange)) {
				d.NextChange = edge
			}
		}
		if !now.Before(start) && now.Before(end) {
			active = append(active, e)
		}
	}
	if len(active) == 0 {
		return d
	}
	sort.Slice(active, func(i, j int) bool {
		a, b := active[i], active[j]
		if a.MaxMode.Strictness() != b.MaxMode.Strictness() {
			return a.MaxMode.Strictness() < b.MaxMode.Strictness()
		}
		if !a.ExpiresAt.Equal(&b.ExpiresAt) {
			return a.ExpiresAt.After(b.ExpiresAt.Time)
		}
		return a.Name < b.Name
	})
	e := active[0]
	d.Exception = e
	if d.RiskMode.Strictness() > e.MaxMode.Strictness() {
		d.Mode = e.MaxMode
		d.Reason = fmt.Sprintf("riskResponse maps %s to %s; exception %s (approved by %s) caps it at %s until %s",
			priority, d.RiskMode, e.Name, e.ApprovedBy, e.MaxMode, e.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return d
}
