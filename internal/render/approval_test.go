package render

import (
	"strings"
	"testing"
	"time"

	"github.com/medseg/medseg/api/v1alpha1"
)

// TestApprovalStates decides the phase of approvals against the device they name and its
// governing policy: every phase and every reason an approval is Ineffective.
func TestApprovalStates(t *testing.T) {
	pol := criticalCare()
	dev := commissioned(pump())
	blockedByMode := dev.DeepCopy()
	blockedByMode.Status.Segmentation = &v1alpha1.SegmentationStatus{Policy: pol.Name, Mode: v1alpha1.ModeRestricted,
		BlockedFlows: []v1alpha1.BlockedFlow{{Name: "vendor-maintenance", Reason: v1alpha1.BlockMode, Message: "mode Restricted does not allow Support flows"}}}
	waitingForGrant := dev.DeepCopy()
	waitingForGrant.Status.Segmentation = &v1alpha1.SegmentationStatus{Policy: pol.Name, Mode: v1alpha1.ModeStandard,
		BlockedFlows: []v1alpha1.BlockedFlow{{Name: "vendor-maintenance", Reason: v1alpha1.BlockGrant, Message: "no grant open"}}}

	cases := []struct {
		name   string
		state  func() ApprovalState
		phase  v1alpha1.ApprovalPhase
		reason string
		next   time.Time
		says   string
	}{
		{"grant active", func() ApprovalState {
			g := grant("vendor-maintenance", now.Add(-time.Hour), 2*time.Hour)
			return GrantState(&g, waitingForGrant, pol, now)
		}, v1alpha1.ApprovalActive, v1alpha1.ReasonApprovalWindowOpen, now.Add(time.Hour), "opens flow vendor-maintenance"},
		{"grant pending", func() ApprovalState {
			g := grant("vendor-maintenance", now.Add(time.Hour), 2*time.Hour)
			return GrantState(&g, dev, pol, now)
		}, v1alpha1.ApprovalPending, v1alpha1.ReasonApprovalWindowPending, now.Add(time.Hour), "opens at"},
		{"grant expired", func() ApprovalState {
			g := grant("vendor-maintenance", now.Add(-3*time.Hour), 2*time.Hour)
			return GrantState(&g, nil, nil, now)
		}, v1alpha1.ApprovalExpired, v1alpha1.ReasonApprovalWindowClosed, time.Time{}, "closed"},
		{"grant for a missing device", func() ApprovalState {
			g := grant("vendor-maintenance", now.Add(-time.Hour), 2*time.Hour)
			return GrantState(&g, nil, nil, now)
		}, v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalNoDevice, now.Add(time.Hour), "does not exist"},
		{"grant for an ungoverned device", func() ApprovalState {
			g := grant("vendor-maintenance", now.Add(-time.Hour), 2*time.Hour)
			return GrantState(&g, dev, nil, now)
		}, v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalUngoverned, now.Add(time.Hour), "no SegmentPolicy governs"},
		{"grant longer than the policy's window", func() ApprovalState {
			g := grant("vendor-maintenance", now.Add(-time.Hour), 9*time.Hour)
			return GrantState(&g, dev, pol, now)
		}, v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalTooLong, now.Add(8 * time.Hour), "vendorAccess.maxWindow"},
		{"grant for an undeclared flow", func() ApprovalState {
			g := grant("telnet", now.Add(-time.Hour), 2*time.Hour)
			return GrantState(&g, dev, pol, now)
		}, v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalNoFlow, now.Add(time.Hour), "declares no flow telnet"},
		{"grant for a standing flow", func() ApprovalState {
			g := grant("therapy-orders", now.Add(-time.Hour), 2*time.Hour)
			return GrantState(&g, dev, pol, now)
		}, v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalStanding, now.Add(time.Hour), "changes nothing"},
		{"grant whose flow the mode blocks", func() ApprovalState {
			g := grant("vendor-maintenance", now.Add(-time.Hour), 2*time.Hour)
			return GrantState(&g, blockedByMode, pol, now)
		}, v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalModeBlocks, now.Add(time.Hour), "does not allow Support flows"},
		{"exception active", func() ApprovalState {
			e := exception(dev.Name, now.Add(-time.Hour), 24*time.Hour)
			return ExceptionState(&e, dev, pol, now)
		}, v1alpha1.ApprovalActive, v1alpha1.ReasonApprovalWindowOpen, now.Add(23 * time.Hour), "runs at most in Restricted"},
		{"exception longer than maxExceptionDuration", func() ApprovalState {
			e := exception(dev.Name, now.Add(-time.Hour), 800*time.Hour)
			return ExceptionState(&e, dev, pol, now)
		}, v1alpha1.ApprovalIneffective, v1alpha1.ReasonApprovalTooLong, now.Add(799 * time.Hour), "maxExceptionDuration"},
		{"exception ends exactly now", func() ApprovalState {
			e := exception(dev.Name, now.Add(-time.Hour), time.Hour)
			return ExceptionState(&e, dev, pol, now)
		}, v1alpha1.ApprovalExpired, v1alpha1.ReasonApprovalWindowClosed, time.Time{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.state()
			if s.Phase != tc.phase || s.Reason != tc.reason || !s.NextChange.Equal(tc.next) || !strings.Contains(s.Message, tc.says) {
				t.Errorf("got %s/%s next %s: %q; want %s/%s next %s, saying %q", s.Phase, s.Reason, s.NextChange, s.Message, tc.phase, tc.reason, tc.next, tc.says)
			}
		})
	}
}
