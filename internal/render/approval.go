package render

import (
	"fmt"
	"time"

	"github.com/medseg/medseg/api/v1alpha1"
)

// ApprovalState is the phase of one SegmentException or AccessGrant and why: the status medseg
// writes on the approval, decided from the device it names, the policy governing that device,
// and the time.
type ApprovalState struct {
	Phase   v1alpha1.ApprovalPhase
	Reason  string
	Message string
	// Policy governs the device; "" when none does or the device does not exist.
	Policy string
	// NextChange is when the phase changes on its own (the window opens or closes); zero when
	// nothing is scheduled.
	NextChange time.Time
}

// windowState decides the time part shared by both kinds: Expired once the window closed,
// Ineffective when the device or its policy is missing or the window is longer than the policy
// allows, else Pending or Active. ok is false when the state is final (the caller adds nothing).
func windowState(a *v1alpha1.Approval, kind string, dev *v1alpha1.MedicalDevice, pol *v1alpha1.SegmentPolicy, limit func(*v1alpha1.SegmentPolicySpec) time.Duration, limitName string, now time.Time) (ApprovalState, bool) {
	start, end := a.Window()
	var s ApprovalState
	if pol != nil {
		s.Policy = pol.Name
	}
	switch {
	case !now.Before(end):
		s.Phase, s.Reason = v1alpha1.ApprovalExpired, v1alpha1.ReasonApprovalWindowClosed
		s.Message = fmt.Sprintf("the window closed at %s", end.UTC().Format(time.RFC3339))
		return s, false
	case dev == nil:
		s.Phase, s.Reason = v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalNoDevice
		s.Message = fmt.Sprintf("MedicalDevice %s does not exist", a.Device)
	case pol == nil:
		s.Phase, s.Reason = v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalUngoverned
		s.Message = fmt.Sprintf("no SegmentPolicy governs MedicalDevice %s, so there is nothing for the %s to relax", a.Device, kind)
	default:
		if why := windowProblem(kind, start, end, limit(&pol.Spec), limitName+" of SegmentPolicy "+pol.Name); why != "" {
			s.Phase, s.Reason, s.Message = v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalTooLong, why
		}
	}
	// A missing device may appear and a long window is still bounded: close it on time.
	if now.Before(start) {
		s.NextChange = start
	} else {
		s.NextChange = end
	}
	if s.Phase != "" {
		return s, false
	}
	if now.Before(start) {
		s.Phase, s.Reason = v1alpha1.ApprovalPending, v1alpha1.ReasonApprovalWindowPending
		s.Message = fmt.Sprintf("opens at %s", start.UTC().Format(time.RFC3339))
		return s, true
	}
	s.Phase, s.Reason = v1alpha1.ApprovalActive, v1alpha1.ReasonApprovalWindowOpen
	return s, true
}

// ExceptionState decides a SegmentException's phase. dev is the device it names (nil: not
// found), pol the SegmentPolicy governing it (nil: none).
func ExceptionState(e *v1alpha1.SegmentException, dev *v1alpha1.MedicalDevice, pol *v1alpha1.SegmentPolicy, now time.Time) ApprovalState {
	s, open := windowState(&e.Spec.Approval, "SegmentException "+e.Name, dev, pol,
		(*v1alpha1.SegmentPolicySpec).MaxExceptionDurationOrDefault, "maxExceptionDuration", now)
	if !open {
		return s
	}
	if s.Phase == v1alpha1.ApprovalActive {
		s.Message = fmt.Sprintf("MedicalDevice %s runs at most in %s until %s", e.Spec.Device, e.Spec.MaxMode, e.Spec.NotAfter.UTC().Format(time.RFC3339))
		if seg := dev.Status.Segmentation; seg != nil && seg.ActiveException != nil && seg.ActiveException.Name != e.Name {
			s.Message += fmt.Sprintf("; SegmentException %s is more open and applies instead", seg.ActiveException.Name)
		}
	}
	return s
}

// GrantState decides an AccessGrant's phase. Besides the window, the device must declare the
// flow, the flow must need a grant (NeedsGrant), and while the window is open nothing else may
// block it: a grant opens a flow the mode allows, it does not override the mode or a ceiling.
// That last check reads the device's status, the decision medseg recorded for it.
func GrantState(g *v1alpha1.AccessGrant, dev *v1alpha1.MedicalDevice, pol *v1alpha1.SegmentPolicy, now time.Time) ApprovalState {
	s, open := windowState(&g.Spec.Approval, "AccessGrant "+g.Name, dev, pol,
		(*v1alpha1.SegmentPolicySpec).MaxGrantWindow, "vendorAccess.maxWindow", now)
	if !open {
		return s
	}
	var flow *v1alpha1.Flow
	for i := range dev.Spec.Flows {
		if dev.Spec.Flows[i].Name == g.Spec.Flow {
			flow = &dev.Spec.Flows[i]
		}
	}
	switch {
	case flow == nil:
		s.Phase, s.Reason = v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalNoFlow
		s.Message = fmt.Sprintf("MedicalDevice %s declares no flow %s", g.Spec.Device, g.Spec.Flow)
		return s
	case !NeedsGrant(pol, *flow):
		s.Phase, s.Reason = v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalStanding
		s.Message = fmt.Sprintf("flow %s of %s is standing (no access: Granted, no external peer under allowedPeers.externalRequiresGrant): the grant changes nothing", g.Spec.Flow, g.Spec.Device)
		return s
	}
	if s.Phase != v1alpha1.ApprovalActive {
		return s
	}
	s.Message = fmt.Sprintf("opens flow %s of MedicalDevice %s until %s", g.Spec.Flow, g.Spec.Device, g.Spec.NotAfter.UTC().Format(time.RFC3339))
	if seg := dev.Status.Segmentation; seg != nil && seg.Policy == pol.Name {
		for _, b := range seg.BlockedFlows {
			if b.Name != g.Spec.Flow || b.Reason == v1alpha1.BlockGrant {
				continue
			}
			s.Phase, s.Reason = v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalBlocked
			if b.Reason == v1alpha1.BlockMode {
				s.Reason = v1alpha1.ReasonApprovalModeBlocks
			}
			s.Message = fmt.Sprintf("flow %s of %s stays blocked: %s", g.Spec.Flow, g.Spec.Device, b.Message)
		}
	}
	return s
}
