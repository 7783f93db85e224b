package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RiskResponse maps each SSVC priority to a segmentation mode.
type RiskResponse struct {
	// defer is the mode for devices whose priority is Defer.
	// +optional
	// +kubebuilder:default=Standard
	Defer Mode `json:"defer,omitempty"`
	// scheduled is the mode for devices whose priority is Scheduled.
	// +optional
	// +kubebuilder:default=Standard
	Scheduled Mode `json:"scheduled,omitempty"`
	// outOfCycle is the mode for devices whose priority is OutOfCycle.
	// +optional
	// +kubebuilder:default=Restricted
	OutOfCycle Mode `json:"outOfCycle,omitempty"`
	// immediate is the mode for devices whose priority is Immediate.
	// +optional
	// +kubebuilder:default=Quarantine
	Immediate Mode `json:"immediate,omitempty"`
}

// ModeFor returns the configured mode for a priority, falling back to the documented defaults
// for unset fields (objects read offline may not have been defaulted by an API server).
func (r RiskResponse) ModeFor(p Priority) Mode {
	pick := func(m, def Mode) Mode {
		if m == "" {
			return def
		}
		return m
	}
	switch p {
	case PriorityDefer:
		return pick(r.Defer, ModeStandard)
	case PriorityScheduled:
		return pick(r.Scheduled, ModeStandard)
	case PriorityOutOfCycle:
		return pick(r.OutOfCycle, ModeRestricted)
	default:
		return pick(r.Immediate, ModeQuarantine)
	}
}

// Quarantine tunes the Quarantine mode.
type Quarantine struct {
	// keepEssentialFlows keeps Essential (life-critical) flows open in Quarantine. Set it false
	// only where cutting the device off entirely is clinically acceptable.
	// +optional
	// +kubebuilder:default=true
	KeepEssentialFlows *bool `json:"keepEssentialFlows,omitempty"`
}

// KeepsEssential reports keepEssentialFlows with its default (true).
func (q *Quarantine) KeepsEssential() bool {
	return q == nil || q.KeepEssentialFlows == nil || *q.KeepEssentialFlows
}

// AllowedPeers are the ceilings on the peers a device's flows may name.
type AllowedPeers struct {
	// namespaceSelector: in-cluster peers must sit in namespaces it matches. Unset means any
	// namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// externalCIDRs: an external peer must lie inside one of them. Unset or empty means no
	// external peers are allowed.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="externalCIDRs entries must be networks in CIDR notation"
	// +kubebuilder:validation:items:XValidation:rule="!isCIDR(self) || cidr(self).prefixLength() > 0",message="externalCIDRs must not contain 0.0.0.0/0 or ::/0"
	ExternalCIDRs []string `json:"externalCIDRs,omitempty"`
	// externalRequiresGrant: every flow with an external peer opens only inside an active
	// AccessGrant, as if it had access: Granted. Default true.
	// +optional
	// +kubebuilder:default=true
	ExternalRequiresGrant *bool `json:"externalRequiresGrant,omitempty"`
}

// Onboarding says how devices run before they are commissioned.
type Onboarding struct {
	// required: a device must be commissioned (spec.commissioning matching its flows) to leave
	// the onboarding mode. Set false for a brownfield rollout, where devices already in clinical
	// use must not all drop to the onboarding mode on the day medseg is installed.
	// +optional
	// +kubebuilder:default=true
	Required *bool `json:"required,omitempty"`
	// mode for devices that are not commissioned; the risk response can still make it
	// stricter, never more open.
	// +optional
	// +kubebuilder:default=Restricted
	Mode Mode `json:"mode,omitempty"`
}

// VendorAccess bounds access grants.
type VendorAccess struct {
	// maxWindow bounds every AccessGrant of the policy's devices (notAfter - notBefore); a
	// longer one is Ineffective.
	// +optional
	// +kubebuilder:default="8h"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('720h')",message="vendorAccess.maxWindow must be positive and at most 720h"
	MaxWindow *metav1.Duration `json:"maxWindow,omitempty"`
}

// LegacyAccessGrant is the access grant as SegmentPolicy spec.accessGrants held it before
// AccessGrant became its own kind. Deprecated: medseg no longer reads it.
type LegacyAccessGrant struct {
	// name identifies the grant within the policy.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// device the grant applies to.
	// +required
	Device ObjectRef `json:"device"`
	// flow is the name of the device's flow the grant opens.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Flow string `json:"flow"`
	// notBefore is when the window opens (inclusive).
	// +required
	NotBefore metav1.Time `json:"notBefore"`
	// notAfter is when it closes (exclusive), at most vendorAccess.maxWindow after notBefore.
	// +required
	NotAfter metav1.Time `json:"notAfter"`
	// approvedBy names who approved the window.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	ApprovedBy string `json:"approvedBy"`
	// ticket is the change or vendor-support ticket.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Ticket string `json:"ticket"`
}

// ExploitationSettings tune how exploitation is derived.
type ExploitationSettings struct {
	// epssActiveThreshold: an EPSS at or above it counts as Active exploitation. A decimal
	// string from 0 to 1.
	// +optional
	// +kubebuilder:default="0.9"
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0(\\\\.[0-9]{1,6})?|1(\\\\.0{1,6})?)$')",message="epssActiveThreshold must be a decimal string from 0 to 1, e.g. \"0.9\""
	EPSSActiveThreshold string `json:"epssActiveThreshold,omitempty"`
}

// DefaultEPSSActiveThreshold is used when the policy does not set one.
const DefaultEPSSActiveThreshold = "0.9"

// LegacyException is the exception as SegmentPolicy spec.exceptions held it before
// SegmentException became its own kind. Deprecated: medseg no longer reads it.
type LegacyException struct {
	// name identifies the exception within the policy.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// device the exception applies to.
	// +required
	Device ObjectRef `json:"device"`
	// maxMode is the most closed mode the device may be put in while the exception is active,
	// e.g. Restricted keeps Clinical flows open when risk would quarantine the device.
	// +required
	MaxMode Mode `json:"maxMode"`
	// approvedBy names the approving clinician.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	ApprovedBy string `json:"approvedBy"`
	// justification is the clinical reason.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Justification string `json:"justification"`
	// compensatingControls taken while the exception is active.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=256
	CompensatingControls []string `json:"compensatingControls,omitempty"`
	// approvedAt is when the exception was approved; it starts applying then.
	// +required
	ApprovedAt metav1.Time `json:"approvedAt"`
	// expiresAt is when the exception stops applying, at most maxExceptionDuration after
	// approvedAt.
	// +required
	ExpiresAt metav1.Time `json:"expiresAt"`
}

// SegmentPolicySpec says how risk maps to segmentation for the devices it selects.
// +kubebuilder:validation:XValidation:rule="!has(self.exceptions) || self.exceptions.all(e, timestamp(e.expiresAt) > timestamp(e.approvedAt))",message="exceptions: expiresAt must be after approvedAt"
// +kubebuilder:validation:XValidation:rule="!has(self.exceptions) || self.exceptions.all(e, timestamp(e.expiresAt) - timestamp(e.approvedAt) <= duration(self.maxExceptionDuration))",message="exceptions: expiresAt may be at most maxExceptionDuration after approvedAt"
// +kubebuilder:validation:XValidation:rule="!has(self.accessGrants) || self.accessGrants.all(g, timestamp(g.notAfter) > timestamp(g.notBefore))",message="accessGrants: notAfter must be after notBefore"
// +kubebuilder:validation:XValidation:rule="!has(self.accessGrants) || self.accessGrants.all(g, timestamp(g.notAfter) - timestamp(g.notBefore) <= (has(self.vendorAccess) && has(self.vendorAccess.maxWindow) ? duration(self.vendorAccess.maxWindow) : duration('8h')))",message="accessGrants: notAfter may be at most vendorAccess.maxWindow (default 8h) after notBefore"
type SegmentPolicySpec struct {
	// deviceSelector selects MedicalDevices by label; unset or {} selects all.
	// +optional
	DeviceSelector *metav1.LabelSelector `json:"deviceSelector,omitempty"`
	// namespaceSelector selects the namespaces of the devices; unset or {} selects all.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// priority decides between policies that select the same device: highest wins, ties by name.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Priority int32 `json:"priority,omitempty"`
	// enforcement is Enforce (write Cilium policies) or Audit (compute and report only).
	// +required
	Enforcement Enforcement `json:"enforcement"`
	// riskResponse maps SSVC priority to mode.
	// +optional
	// +kubebuilder:default={}
	RiskResponse RiskResponse `json:"riskResponse,omitempty"`
	// quarantine tunes the Quarantine mode.
	// +optional
	// +kubebuilder:default={}
	Quarantine *Quarantine `json:"quarantine,omitempty"`
	// deviceNetworks are the clinical device subnets; the guard denies them to every pod but
	// the gateways.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="deviceNetworks entries must be networks in CIDR notation, e.g. 10.20.0.0/16"
	// +kubebuilder:validation:items:XValidation:rule="!isCIDR(self) || cidr(self).prefixLength() > 0",message="deviceNetworks must not contain 0.0.0.0/0 or ::/0: the guard would cut every pod off the network"
	// +kubebuilder:validation:items:XValidation:rule="!isCIDR(self) || cidr(self).masked() == cidr(self)",message="deviceNetworks entries must be canonical: host bits must be zero"
	DeviceNetworks []string `json:"deviceNetworks"`
	// allowedPeers are ceilings on flow peers.
	// +optional
	AllowedPeers *AllowedPeers `json:"allowedPeers,omitempty"`
	// exploitation tunes how exploitation is derived.
	// +optional
	// +kubebuilder:default={}
	Exploitation *ExploitationSettings `json:"exploitation,omitempty"`
	// maxExceptionDuration bounds every SegmentException of the policy's devices
	// (notAfter - notBefore); a longer one is Ineffective.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('8760h')",message="maxExceptionDuration must be positive and at most 8760h (one year)"
	MaxExceptionDuration *metav1.Duration `json:"maxExceptionDuration,omitempty"`
	// exceptions is deprecated and no longer read: exceptions are SegmentException objects.
	// A policy that still holds some carries the LegacyApprovals condition;
	// `kubectl medseg migrate` prints the SegmentExceptions to create from them.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Exceptions []LegacyException `json:"exceptions,omitempty"`
	// onboarding says how devices run before they are commissioned.
	// +optional
	// +kubebuilder:default={}
	Onboarding *Onboarding `json:"onboarding,omitempty"`
	// vendorAccess bounds access grants.
	// +optional
	// +kubebuilder:default={}
	VendorAccess *VendorAccess `json:"vendorAccess,omitempty"`
	// accessGrants is deprecated and no longer read: access grants are AccessGrant objects.
	// A policy that still holds some carries the LegacyApprovals condition;
	// `kubectl medseg migrate` prints the AccessGrants to create from them.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	AccessGrants []LegacyAccessGrant `json:"accessGrants,omitempty"`
}

// DefaultMaxExceptionDuration is used when the policy does not set maxExceptionDuration.
const DefaultMaxExceptionDuration = 720 * time.Hour

// MaxExceptionDurationOrDefault returns maxExceptionDuration or its default.
func (s *SegmentPolicySpec) MaxExceptionDurationOrDefault() time.Duration {
	if s.MaxExceptionDuration == nil || s.MaxExceptionDuration.Duration <= 0 {
		return DefaultMaxExceptionDuration
	}
	return s.MaxExceptionDuration.Duration
}

// DefaultMaxGrantWindow is used when the policy does not set vendorAccess.maxWindow.
const DefaultMaxGrantWindow = 8 * time.Hour

// MaxGrantWindow returns vendorAccess.maxWindow or its default.
func (s *SegmentPolicySpec) MaxGrantWindow() time.Duration {
	if s.VendorAccess == nil || s.VendorAccess.MaxWindow == nil || s.VendorAccess.MaxWindow.Duration <= 0 {
		return DefaultMaxGrantWindow
	}
	return s.VendorAccess.MaxWindow.Duration
}

// OnboardingRequired reports onboarding.required with its default (true).
func (s *SegmentPolicySpec) OnboardingRequired() bool {
	return s.Onboarding == nil || s.Onboarding.Required == nil || *s.Onboarding.Required
}

// OnboardingMode returns onboarding.mode or its default (Restricted).
func (s *SegmentPolicySpec) OnboardingMode() Mode {
	if s.Onboarding == nil || s.Onboarding.Mode == "" {
		return ModeRestricted
	}
	return s.Onboarding.Mode
}

// ExternalRequiresGrant reports allowedPeers.externalRequiresGrant with its default (true).
func (s *SegmentPolicySpec) ExternalRequiresGrant() bool {
	return s.AllowedPeers == nil || s.AllowedPeers.ExternalRequiresGrant == nil || *s.AllowedPeers.ExternalRequiresGrant
}

// EPSSThreshold returns exploitation.epssActiveThreshold or its default.
func (s *SegmentPolicySpec) EPSSThreshold() string {
	if s.Exploitation == nil || s.Exploitation.EPSSActiveThreshold == "" {
		return DefaultEPSSActiveThreshold
	}
	return s.Exploitation.EPSSActiveThreshold
}

// ModeCounts counts devices by mode.
type ModeCounts struct {
	// standard devices.
	// +optional
	Standard int32 `json:"standard"`
	// restricted devices.
	// +optional
	Restricted int32 `json:"restricted"`
	// quarantine devices.
	// +optional
	Quarantine int32 `json:"quarantine"`
}

// PriorityCounts counts devices by SSVC priority.
type PriorityCounts struct {
	// defer devices.
	// +optional
	Defer int32 `json:"defer"`
	// scheduled devices.
	// +optional
	Scheduled int32 `json:"scheduled"`
	// outOfCycle devices.
	// +optional
	OutOfCycle int32 `json:"outOfCycle"`
	// immediate devices.
	// +optional
	Immediate int32 `json:"immediate"`
}

// FlatnessStatus is the result of the flatness audit: which workloads other than gateways could
// reach the policy's device networks given every policy in the cluster.
type FlatnessStatus struct {
	// reachableWorkloads counts the pods (other than gateways in gateway namespaces) that could
	// reach a device network. Zero is the goal.
	// +optional
	ReachableWorkloads int32 `json:"reachableWorkloads"`
	// evaluatedWorkloads counts the pods evaluated.
	// +optional
	EvaluatedWorkloads int32 `json:"evaluatedWorkloads"`
	// offenders are the first few, as "namespace/pod → address (why)".
	// +optional
	// +listType=atomic
	Offenders []string `json:"offenders,omitempty"`
	// evaluatedAt is when the audit last ran with this result: it is refreshed when the
	// result changes and at least every hour (the policy is re-audited hourly and on every
	// change of pods or network policies).
	// +optional
	EvaluatedAt *metav1.Time `json:"evaluatedAt,omitempty"`
}

// SegmentPolicyStatus reports what the policy governs.
type SegmentPolicyStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready and Isolated; Reconciling and Stalled only while true (kstatus).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// devices is the number of devices this policy governs (it selects them and wins).
	// +optional
	Devices int32 `json:"devices"`
	// modes counts governed devices by mode.
	// +optional
	Modes ModeCounts `json:"modes,omitempty"`
	// priorities counts governed devices by SSVC priority.
	// +optional
	Priorities PriorityCounts `json:"priorities,omitempty"`
	// enforcement is the enforcement medseg last acted on; a change is the staged-rollout
	// step (Audit → Enforce) and emits an Event.
	// +optional
	Enforcement Enforcement `json:"enforcement,omitempty"`
	// guard is the cluster-wide guard policy applied for this policy.
	// +optional
	Guard *AppliedObject `json:"guard,omitempty"`
	// guardRepairs counts how often medseg put back the guard after a hand edit or deletion.
	// +optional
	GuardRepairs int64 `json:"guardRepairs,omitempty"`
	// flatness is the reachability audit of the device networks.
	// +optional
	Flatness *FlatnessStatus `json:"flatness,omitempty"`
	// traffic aggregates the governed devices' observed traffic, when the operator follows
	// Hubble Relay.
	// +optional
	Traffic *PolicyTraffic `json:"traffic,omitempty"`
	// gateways are the gateway pods of the policy's devices with the largest policy maps, by
	// medseg's estimate (the policyMapEntries of every device behind the pod, whatever its
	// policy), most loaded first, at most 10.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	Gateways []GatewayLoad `json:"gateways,omitempty"`
}

// GatewayLoad is a gateway pod's estimated policy map.
type GatewayLoad struct {
	// namespace and pod name the gateway pod.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Pod string `json:"pod"`
	// +required
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// devices behind the pod.
	// +required
	Devices int32 `json:"devices"`
	// entries estimates the policy map entries of the pod: the sum of its devices'
	// policyMapEntries. It is above what Cilium computes (peers shared by several devices are
	// counted for each), so warnings come early, not late.
	// +required
	Entries int32 `json:"entries"`
	// capacity is the per-endpoint policy map size medseg was configured with
	// (--policy-map-capacity, Cilium's bpf-policy-map-max).
	// +required
	Capacity int32 `json:"capacity"`
}

// PolicyTraffic aggregates what Hubble observed for a SegmentPolicy's devices.
type PolicyTraffic struct {
	// devicesWithUndeclaredTraffic counts devices whose observed traffic their flows do not cover.
	// +optional
	DevicesWithUndeclaredTraffic int32 `json:"devicesWithUndeclaredTraffic"`
	// undeclaredFlows sums the devices' undeclared flows.
	// +optional
	UndeclaredFlows int32 `json:"undeclaredFlows"`
	// drops sums the devices' dropped connections in the window.
	// +optional
	Drops int64 `json:"drops"`
	// devicesWithBypass counts devices reached without their gateway.
	// +optional
	DevicesWithBypass int32 `json:"devicesWithBypass"`
}

// SegmentPolicy maps device risk to segmentation. Cluster-scoped and owned by the security team.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=segpol,categories=medseg
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.spec.enforcement`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Devices",type=integer,JSONPath=`.status.devices`
// +kubebuilder:printcolumn:name="Isolated",type=string,JSONPath=`.status.conditions[?(@.type=="Isolated")].status`
// +kubebuilder:printcolumn:name="Reachable",type=integer,JSONPath=`.status.flatness.reachableWorkloads`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label (at most 63 lowercase letters, digits and '-'): it names the guard policy and labels"
type SegmentPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is written by the security team.
	// +required
	Spec SegmentPolicySpec `json:"spec"`
	// status is written by medseg.
	// +optional
	Status SegmentPolicyStatus `json:"status,omitempty"`
}

// SegmentPolicyList is a list of SegmentPolicies.
// +kubebuilder:object:root=true
type SegmentPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SegmentPolicy `json:"items"`
}
