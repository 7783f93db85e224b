package v1alpha1

// Condition types. Ready, Reconciling and Stalled follow kstatus: Ready is always present,
// Reconciling and Stalled (abnormal-true) only while true. RiskAssessed, Segmented, Isolated and
// Commissioned are medseg's own.
const (
	ConditionReady        = "Ready"
	ConditionReconciling  = "Reconciling"
	ConditionStalled      = "Stalled"
	ConditionRiskAssessed = "RiskAssessed"
	ConditionSegmented    = "Segmented"
	// ConditionIsolated (SegmentPolicy): no workload other than gateways can reach its device
	// networks.
	ConditionIsolated = "Isolated"
	// ConditionGatewayCapacity (SegmentPolicy, and MedicalDevice with gateway pods): the gateways
	// of its devices (its own) have room in Cilium's per-endpoint policy map
	// (bpf-policy-map-max), by medseg's estimate.
	ConditionGatewayCapacity = "GatewayCapacity"
	// ConditionLegacyApprovals (SegmentPolicy): it still holds the deprecated spec.exceptions or
	// spec.accessGrants, which medseg no longer reads.
	ConditionLegacyApprovals = "LegacyApprovals"
	// ConditionCommissioned (MedicalDevice): spec.commissioning approves the current flows.
	ConditionCommissioned = "Commissioned"
	// ConditionTrafficDeclared (MedicalDevice, in Audit or onboarding, when the operator follows
	// Hubble Relay): the flows the device would be enforced with cover the traffic observed.
	ConditionTrafficDeclared = "TrafficDeclared"
)

// Condition reasons: the whole vocabulary medseg writes, in one place. UpperCamelCase.
const (
	// ReasonSegmented: the device's CiliumNetworkPolicy is applied and matches the desired state.
	ReasonSegmented = "Segmented"
	// ReasonAuditOnly: the governing policy is in Audit; nothing is enforced.
	ReasonAuditOnly = "AuditOnly"
	// ReasonSharedGateway: the governing policy is in Audit (or none governs the device), and
	// its gateway pods are also gateways of devices an enforced policy puts in default deny;
	// medseg keeps the device's declared flows open on them with an allow-only policy.
	ReasonSharedGateway = "SharedGateway"
	// ReasonWaitingForSharedGateway: the device is about to be enforced, and unenforced devices
	// sharing its gateway pods lack their allow-only policies; medseg waits so their flows are
	// not cut.
	ReasonWaitingForSharedGateway = "WaitingForSharedGateway"
	// ReasonNoSegmentPolicy: no SegmentPolicy selects the device; it is not protected.
	ReasonNoSegmentPolicy = "NoSegmentPolicy"
	// ReasonGatewayNamespaceNotLabelled: the device's namespace lacks medseg.io/gateway-namespace.
	ReasonGatewayNamespaceNotLabelled = "GatewayNamespaceNotLabelled"
	// ReasonGatewayPodsNotLabelled: pods selected by the gateway selector lack medseg.io/gateway.
	ReasonGatewayPodsNotLabelled = "GatewayPodsNotLabelled"
	// ReasonGatewayNotFound: no pod matches the gateway selector yet; policies are written and
	// apply when the gateway starts.
	ReasonGatewayNotFound = "GatewayNotFound"
	// ReasonAddressConflict: another device claims one of this device's addresses.
	ReasonAddressConflict = "AddressConflict"
	// ReasonForeignPolicyWidens: a policy medseg does not own widens access to the device.
	ReasonForeignPolicyWidens = "ForeignPolicyWidens"
	// ReasonApplyFailed: writing a Cilium object failed; medseg retries with back-off.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonAssessed: the SSVC assessment succeeded.
	ReasonAssessed = "Assessed"
	// ReasonInvalidInput: an input could not be used (e.g. an unparsable policy field).
	ReasonInvalidInput = "InvalidInput"
	// ReasonAddressOutsideDeviceNetworks: a device address lies outside the governing policy's
	// deviceNetworks, so the guard does not fence it from ordinary pods.
	ReasonAddressOutsideDeviceNetworks = "AddressOutsideDeviceNetworks"
	// ReasonObjectConflict: an object medseg must write exists and is not managed by medseg.
	ReasonObjectConflict = "ObjectConflict"
	// ReasonGuardApplied: the SegmentPolicy's guard is applied.
	ReasonGuardApplied = "GuardApplied"
	// ReasonIsolated: no workload other than gateways can reach the device networks.
	ReasonIsolated = "Isolated"
	// ReasonFlatNetwork: some workloads other than gateways can reach the device networks.
	ReasonFlatNetwork = "FlatNetwork"
	// ReasonWithinCapacity: every gateway of the policy's devices is below 75% of the policy map.
	ReasonWithinCapacity = "WithinCapacity"
	// ReasonNearCapacity: a gateway is at 75% of its policy map or more.
	ReasonNearCapacity = "NearCapacity"
	// ReasonOverCapacity: a gateway's estimated entries exceed its policy map.
	ReasonOverCapacity = "OverCapacity"
	// ReasonNotMigrated: legacy approvals are still in the SegmentPolicy.
	ReasonNotMigrated = "NotMigrated"
	// ReasonCommissioned: spec.commissioning.flowsHash matches the current flows.
	ReasonCommissioned = "Commissioned"
	// ReasonNotCommissioned: the device has no spec.commissioning.
	ReasonNotCommissioned = "NotCommissioned"
	// ReasonFlowsChanged: spec.flows changed after commissioning; the approval no longer covers them.
	ReasonFlowsChanged = "FlowsChanged"
	// ReasonTrafficDeclared: every flow observed through the gateway is covered.
	ReasonTrafficDeclared = "TrafficDeclared"
	// ReasonUndeclaredTraffic: observed flows are not covered: enforcement would drop them.
	ReasonUndeclaredTraffic = "UndeclaredTraffic"
	// ReasonNoTrafficObserved: Hubble observed no flow of the device in the window.
	ReasonNoTrafficObserved = "NoTrafficObserved"
	// ReasonHubbleUnavailable: the operator cannot follow Hubble Relay.
	ReasonHubbleUnavailable = "HubbleUnavailable"
)

// Event reasons, emitted on transitions only.
const (
	EventModeChanged       = "ModeChanged"
	EventPriorityChanged   = "PriorityChanged"
	EventDriftRepaired     = "DriftRepaired"
	EventExceptionExpired  = "ExceptionExpired"
	EventEnforcementChange = "EnforcementChanged"
	EventNoSegmentPolicy   = "NoSegmentPolicy"
	EventCommissioned      = "Commissioned"
	EventFlowsChanged      = "FlowsChanged"
	EventAccessGranted     = "AccessGranted"
	EventAccessEnded       = "AccessEnded"
	EventAddressConflict   = "AddressConflict"
)

// Labels and annotations medseg reads or writes.
const (
	LabelManagedBy        = "app.kubernetes.io/managed-by"
	ManagedByValue        = "medseg"
	LabelDevice           = "medseg.io/device"
	LabelPolicy           = "medseg.io/segment-policy"
	LabelGateway          = "medseg.io/gateway"
	LabelGatewayNamespace = "medseg.io/gateway-namespace"
	AnnotationContentHash = "medseg.io/content-hash"
	FieldOwner            = "medseg"
)
