package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Approval is what every clinician or change-board approval carries: the device, the window,
// who approved it and why. approvedBy is checked by the API server (the medseg-approvals
// admission policy): it must be the requesting user, except for the configured GitOps
// identities, whose Git review is the approval.
type Approval struct {
	// device the approval applies to. Immutable: approve another device with another object.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="device is immutable: create another approval for another device"
	Device ObjectRef `json:"device"`
	// notBefore is when the approval starts applying (inclusive).
	// +required
	NotBefore metav1.Time `json:"notBefore"`
	// notAfter is when it stops applying (exclusive). The governing SegmentPolicy bounds
	// notAfter - notBefore (maxExceptionDuration, vendorAccess.maxWindow); a longer approval is
	// Ineffective.
	// +required
	NotAfter metav1.Time `json:"notAfter"`
	// approvedBy is who approved it: the user who creates or changes the object, as the API
	// server authenticated them (see the medseg-approvals admission policy).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	ApprovedBy string `json:"approvedBy"`
	// ticket is the change or support ticket.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Ticket string `json:"ticket"`
	// justification is the clinical or operational reason.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Justification string `json:"justification"`
}

// SegmentExceptionSpec caps how closed one device may become.
// +kubebuilder:validation:XValidation:rule="timestamp(self.notAfter) > timestamp(self.notBefore)",message="notAfter must be after notBefore"
// +kubebuilder:validation:XValidation:rule="timestamp(self.notAfter) - timestamp(self.notBefore) <= duration('8760h')",message="an exception may last at most 8760h (one year); the governing SegmentPolicy's maxExceptionDuration may be shorter"
type SegmentExceptionSpec struct {
	Approval `json:",inline"`
	// maxMode is the most closed mode the device may be put in while the exception is active,
	// e.g. Restricted keeps Clinical flows open when risk would quarantine the device.
	// +required
	MaxMode Mode `json:"maxMode"`
	// compensatingControls taken while the exception is active.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=256
	CompensatingControls []string `json:"compensatingControls,omitempty"`
}

// AccessGrantSpec opens one flow of one device for an approved window.
// +kubebuilder:validation:XValidation:rule="timestamp(self.notAfter) > timestamp(self.notBefore)",message="notAfter must be after notBefore"
// +kubebuilder:validation:XValidation:rule="timestamp(self.notAfter) - timestamp(self.notBefore) <= duration('720h')",message="an access grant may last at most 720h; the governing SegmentPolicy's vendorAccess.maxWindow (default 8h) may be shorter"
type AccessGrantSpec struct {
	Approval `json:",inline"`
	// flow is the name of the device's flow the grant opens: one with access: Granted, or with
	// an external peer when the policy requires grants for those. Immutable.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="flow is immutable: create another grant for another flow"
	Flow string `json:"flow"`
}

// ApprovalPhase is where an approval is in its life.
// +kubebuilder:validation:Enum=Pending;Active;Expired;Ineffective
type ApprovalPhase string

// The approval phases.
const (
	// ApprovalPending: the window has not opened yet.
	ApprovalPending ApprovalPhase = "Pending"
	// ApprovalActive: the window is open and the approval applies.
	ApprovalActive ApprovalPhase = "Active"
	// ApprovalExpired: the window has closed.
	ApprovalExpired ApprovalPhase = "Expired"
	// ApprovalIneffective: the approval cannot take effect (reason says why); nothing opens.
	ApprovalIneffective ApprovalPhase = "Ineffective"
)

// Reasons an approval is Ineffective (status.reason), and the reasons of the other phases.
const (
	ReasonApprovalWindowOpen    = "WindowOpen"
	ReasonApprovalWindowPending = "NotYetOpen"
	ReasonApprovalWindowClosed  = "WindowClosed"
	ReasonApprovalNoDevice      = "DeviceNotFound"
	ReasonApprovalUngoverned    = "NoSegmentPolicy"
	ReasonApprovalTooLong       = "WindowTooLong"
	ReasonApprovalNoFlow        = "FlowNotFound"
	ReasonApprovalStanding      = "FlowNeedsNoGrant"
	ReasonApprovalModeBlocks    = "ModeBlocksFlow"
	ReasonApprovalBlocked       = "FlowBlocked"
	ReasonApprovalNotCapping    = "DoesNotCap"
)

// ApprovalStatus is written by medseg.
type ApprovalStatus struct {
	// phase is Pending, Active, Expired or Ineffective.
	// +optional
	Phase ApprovalPhase `json:"phase,omitempty"`
	// reason is a CamelCase reason for the phase, e.g. WindowTooLong or FlowNotFound.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`
	// message explains the phase for people.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// policy is the SegmentPolicy that governs the device, whose limits the approval is held to.
	// +optional
	Policy string `json:"policy,omitempty"`
	// since is when the approval entered its phase.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// SegmentException is a clinician-approved cap on how closed one device may become, for a
// window. Cluster-scoped, so the device's owner cannot approve their own; created by the
// medseg:approvers role, separate from who may edit SegmentPolicies.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=segex,categories=medseg
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.device.namespace`
// +kubebuilder:printcolumn:name="Device",type=string,JSONPath=`.spec.device.name`
// +kubebuilder:printcolumn:name="MaxMode",type=string,JSONPath=`.spec.maxMode`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`
// +kubebuilder:printcolumn:name="Approved-By",type=string,JSONPath=`.spec.approvedBy`
// +kubebuilder:printcolumn:name="Not-After",type=date,JSONPath=`.spec.notAfter`
type SegmentException struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec SegmentExceptionSpec `json:"spec"`
	// +optional
	Status ApprovalStatus `json:"status,omitempty"`
}

// SegmentExceptionList is a list of SegmentExceptions.
// +kubebuilder:object:root=true
type SegmentExceptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SegmentException `json:"items"`
}

// AccessGrant opens one flow of one device (vendor remote access, an external peer) for an
// approved window. Cluster-scoped, created by the medseg:approvers role.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=grant,categories=medseg
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.device.namespace`
// +kubebuilder:printcolumn:name="Device",type=string,JSONPath=`.spec.device.name`
// +kubebuilder:printcolumn:name="Flow",type=string,JSONPath=`.spec.flow`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`
// +kubebuilder:printcolumn:name="Approved-By",type=string,JSONPath=`.spec.approvedBy`
// +kubebuilder:printcolumn:name="Not-After",type=date,JSONPath=`.spec.notAfter`
type AccessGrant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AccessGrantSpec `json:"spec"`
	// +optional
	Status ApprovalStatus `json:"status,omitempty"`
}

// AccessGrantList is a list of AccessGrants.
// +kubebuilder:object:root=true
type AccessGrantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessGrant `json:"items"`
}

// Window returns [notBefore, notAfter).
func (a *Approval) Window() (time.Time, time.Time) { return a.NotBefore.Time, a.NotAfter.Time }

// OpenAt reports whether the window holds t.
func (a *Approval) OpenAt(t time.Time) bool {
	return !t.Before(a.NotBefore.Time) && t.Before(a.NotAfter.Time)
}

// Approvals are the SegmentExceptions and AccessGrants that name one device (or, offline, any
// set of them: the decisions filter by device).
type Approvals struct {
	Exceptions []SegmentException
	Grants     []AccessGrant
}

// GetApproval returns the common approval fields.
func (e *SegmentException) GetApproval() *Approval { return &e.Spec.Approval }

// GetApprovalStatus returns the status.
func (e *SegmentException) GetApprovalStatus() *ApprovalStatus { return &e.Status }

// GetApproval returns the common approval fields.
func (g *AccessGrant) GetApproval() *Approval { return &g.Spec.Approval }

// GetApprovalStatus returns the status.
func (g *AccessGrant) GetApprovalStatus() *ApprovalStatus { return &g.Status }

// ByDevice groups the approvals by the device they name.
func (a Approvals) ByDevice() map[ObjectRef]Approvals {
	out := map[ObjectRef]Approvals{}
	for _, e := range a.Exceptions {
		x := out[e.Spec.Device]
		x.Exceptions = append(x.Exceptions, e)
		out[e.Spec.Device] = x
	}
	for _, g := range a.Grants {
		x := out[g.Spec.Device]
		x.Grants = append(x.Grants, g)
		out[g.Spec.Device] = x
	}
	return out
}
