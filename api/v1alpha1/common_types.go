package v1alpha1

// Mode is how tightly a device is segmented. Modes are ordered from open to closed:
// Standard < Restricted < Quarantine.
// +kubebuilder:validation:Enum=Standard;Restricted;Quarantine
type Mode string

// The segmentation modes.
const (
	// ModeStandard allows every declared flow (Essential, Clinical and Support).
	ModeStandard Mode = "Standard"
	// ModeRestricted allows Essential and Clinical flows; Support flows (vendor, telemetry) are blocked.
	ModeRestricted Mode = "Restricted"
	// ModeQuarantine allows Essential flows only, or nothing when quarantine.keepEssentialFlows is false.
	ModeQuarantine Mode = "Quarantine"
)

// Strictness orders modes: a larger value is more closed. Unknown modes count as the strictest,
// so a corrupt value can never open a device.
func (m Mode) Strictness() int {
	switch m {
	case ModeStandard:
		return 0
	case ModeRestricted:
		return 1
	default:
		return 2
	}
}

// Allows reports whether a flow of the given tier may be rendered in this mode. keepEssential
// is the policy's quarantine.keepEssentialFlows.
func (m Mode) Allows(t Tier, keepEssential bool) bool {
	switch m {
	case ModeStandard:
		return t == TierEssential || t == TierClinical || t == TierSupport
	case ModeRestricted:
		return t == TierEssential || t == TierClinical
	case ModeQuarantine:
		return t == TierEssential && keepEssential
	default:
		return false
	}
}

// Tier is the clinical importance of a flow.
// +kubebuilder:validation:Enum=Essential;Clinical;Support
type Tier string

// The flow tiers.
const (
	// TierEssential is life-critical traffic: alarms, therapy delivery. Kept in every mode unless
	// the policy explicitly quarantines without essential flows.
	TierEssential Tier = "Essential"
	// TierClinical is clinical data exchange: EMR, PACS, lab results.
	TierClinical Tier = "Clinical"
	// TierSupport is vendor maintenance, telemetry and updates: the first to go when risk rises.
	TierSupport Tier = "Support"
)

// Priority is the SSVC deployer decision (patch application priority), ordered
// Defer < Scheduled < OutOfCycle < Immediate.
// +kubebuilder:validation:Enum=Defer;Scheduled;OutOfCycle;Immediate
type Priority string

// The SSVC deployer priorities.
const (
	PriorityDefer      Priority = "Defer"
	PriorityScheduled  Priority = "Scheduled"
	PriorityOutOfCycle Priority = "OutOfCycle"
	PriorityImmediate  Priority = "Immediate"
)

// Rank orders priorities; unknown values rank highest so they are never under-treated.
func (p Priority) Rank() int {
	switch p {
	case PriorityDefer:
		return 0
	case PriorityScheduled:
		return 1
	case PriorityOutOfCycle:
		return 2
	default:
		return 3
	}
}

// Enforcement says whether a SegmentPolicy writes Cilium objects.
// +kubebuilder:validation:Enum=Enforce;Audit
type Enforcement string

// The enforcement settings.
const (
	// EnforcementEnforce renders and applies Cilium policies.
	EnforcementEnforce Enforcement = "Enforce"
	// EnforcementAudit computes everything and reports it in status but writes no Cilium objects.
	EnforcementAudit Enforcement = "Audit"
)

// ObjectRef names a namespaced object.
type ObjectRef struct {
	// namespace of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`
	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
}

// String renders the reference as namespace/name.
func (r ObjectRef) String() string { return Qualified(r.Namespace, r.Name) }

// Qualified names an object as kubectl does: namespace/name, or name alone when it is
// cluster-scoped (no namespace).
func Qualified(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
