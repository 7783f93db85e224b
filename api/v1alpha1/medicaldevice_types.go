package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SafetyImpact is the SSVC safety impact of the device failing or being misused.
// +kubebuilder:validation:Enum=Negligible;Marginal;Critical;Catastrophic
type SafetyImpact string

// The safety impacts.
const (
	SafetyNegligible   SafetyImpact = "Negligible"
	SafetyMarginal     SafetyImpact = "Marginal"
	SafetyCritical     SafetyImpact = "Critical"
	SafetyCatastrophic SafetyImpact = "Catastrophic"
)

// MissionImpact is the SSVC mission impact: how much of the care area's mission essential
// functions (MEF) depend on the device.
// +kubebuilder:validation:Enum=Degraded;Crippled;MEFFailure;MissionFailure
type MissionImpact string

// The mission impacts.
const (
	MissionDegraded       MissionImpact = "Degraded"
	MissionCrippled       MissionImpact = "Crippled"
	MissionMEFFailure     MissionImpact = "MEFFailure"
	MissionMissionFailure MissionImpact = "MissionFailure"
)

// Direction says which side opens a flow.
// +kubebuilder:validation:Enum=ToDevice;FromDevice
type Direction string

// The flow directions.
const (
	// DirectionToDevice: peers connect to the gateway on gatewayPort; the gateway connects to the
	// device on devicePort.
	DirectionToDevice Direction = "ToDevice"
	// DirectionFromDevice: the device connects to the gateway on gatewayPort; the gateway connects
	// to the peers on peerPort.
	DirectionFromDevice Direction = "FromDevice"
)

// Protocol is the transport protocol of a flow.
// +kubebuilder:validation:Enum=TCP;UDP
type Protocol string

// The protocols.
const (
	ProtocolTCP Protocol = "TCP"
	ProtocolUDP Protocol = "UDP"
)

// Access says whether a flow stands open (whenever the mode allows its tier) or opens only inside
// an access grant.
// +kubebuilder:validation:Enum=Standing;Granted
type Access string

// The access kinds.
const (
	// AccessStanding: the flow is rendered whenever the mode allows its tier.
	AccessStanding Access = "Standing"
	// AccessGranted: the flow is rendered only inside an active access grant of the governing
	// SegmentPolicy (spec.accessGrants), e.g. vendor remote maintenance.
	AccessGranted Access = "Granted"
)

// Exploitation is the state of exploitation of a vulnerability, as SSVC defines it.
// +kubebuilder:validation:Enum=None;PoC;Active
type Exploitation string

// The exploitation states.
const (
	ExploitationNone   Exploitation = "None"
	ExploitationPoC    Exploitation = "PoC"
	ExploitationActive Exploitation = "Active"
)

// VulnerabilityStatus is the VEX status of a vulnerability on this device.
// +kubebuilder:validation:Enum=Affected;Fixed;NotAffected;UnderInvestigation
type VulnerabilityStatus string

// The VEX statuses.
const (
	VulnAffected           VulnerabilityStatus = "Affected"
	VulnFixed              VulnerabilityStatus = "Fixed"
	VulnNotAffected        VulnerabilityStatus = "NotAffected"
	VulnUnderInvestigation VulnerabilityStatus = "UnderInvestigation"
)

// DetectionStatus says whether a detection is still open.
// +kubebuilder:validation:Enum=Active;Resolved
type DetectionStatus string

// The detection statuses.
const (
	DetectionActive   DetectionStatus = "Active"
	DetectionResolved DetectionStatus = "Resolved"
)

// DeviceIdentity says what the device is.
type DeviceIdentity struct {
	// manufacturer of the device, as on its label.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Manufacturer string `json:"manufacturer"`
	// model of the device.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Model string `json:"model"`
	// deviceType is a short kind of device, e.g. InfusionPump, PatientMonitor, CTScanner.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9-]*$`
	DeviceType string `json:"deviceType,omitempty"`
	// firmwareVersion running on the device.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	FirmwareVersion string `json:"firmwareVersion,omitempty"`
	// serialNumber of the device.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	SerialNumber string `json:"serialNumber,omitempty"`
	// udi is the FDA Unique Device Identifier.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	UDI string `json:"udi,omitempty"`
	// cpe is the device's CPE 2.3 formatted string, as the manufacturer's advisories name it,
	// e.g. cpe:2.3:h:acme_medical:infusion_pump_ip-200:3.1.0:*:*:*:*:*:*:*. VEX statements are
	// matched on it first.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^cpe:2\\\\.3:[aho\\\\*\\\\-](:[^:]+){10}$')",message="cpe must be a CPE 2.3 formatted string: cpe:2.3:part:vendor:product:version:update:edition:language:sw_edition:target_sw:target_hw:other"
	CPE string `json:"cpe,omitempty"`
	// purl is the device's package URL, e.g. pkg:generic/acme-medical/ip-200@3.1.0. VEX
	// statements are matched on it after the CPE.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^pkg:[A-Za-z.+-][A-Za-z0-9.+-]*/[^\\\\s]+$')",message="purl must be a package URL: pkg:type/namespace/name@version"
	PURL string `json:"purl,omitempty"`
}

// ClinicalImpact feeds the SSVC Human Impact decision.
type ClinicalImpact struct {
	// safetyImpact of the device failing or being misused: Negligible, Marginal, Critical or
	// Catastrophic (life-sustaining or therapy-delivering devices).
	// +required
	SafetyImpact SafetyImpact `json:"safetyImpact"`
	// missionImpact on the care area: Degraded, Crippled (MEF support crippled), MEFFailure or
	// MissionFailure.
	// +required
	MissionImpact MissionImpact `json:"missionImpact"`
	// careArea is where the device is used, e.g. ICU, NICU, Radiology.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	CareArea string `json:"careArea,omitempty"`
}

// DeviceNetwork lists the device's addresses.
type DeviceNetwork struct {
	// addresses of the device: single unicast hosts, IPv4 or canonical IPv6. Networks,
	// unspecified, loopback, link-local and multicast addresses are rejected.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=45
	// +kubebuilder:validation:items:XValidation:rule="isIP(self)",message="address must be a single IP address, not a network or a name"
	// +kubebuilder:validation:items:XValidation:rule="!isIP(self) || ip.isCanonical(self)",message="address must be in canonical form (e.g. 2001:db8::1, not 2001:0db8:0::1)"
	// +kubebuilder:validation:items:XValidation:rule="!isIP(self) || !ip(self).isUnspecified()",message="address must not be unspecified (0.0.0.0 or ::)"
	// +kubebuilder:validation:items:XValidation:rule="!isIP(self) || !ip(self).isLoopback()",message="address must not be a loopback address"
	// +kubebuilder:validation:items:XValidation:rule="!isIP(self) || !ip(self).isLinkLocalUnicast()",message="address must not be link-local"
	// +kubebuilder:validation:items:XValidation:rule="!isIP(self) || ip(self).isUnspecified() || ip(self).isLoopback() || ip(self).isLinkLocalUnicast() || ip(self).isGlobalUnicast()",message="address must be a unicast host address (not multicast or broadcast)"
	Addresses []string `json:"addresses"`
}

// GatewayRef selects the gateway pods that front the device.
type GatewayRef struct {
	// podSelector selects the gateway pods in the device's namespace. The pods must also carry
	// the label medseg.io/gateway: "true", and the namespace must be labelled
	// medseg.io/gateway-namespace: "true" by the platform team.
	// +required
	// +kubebuilder:validation:XValidation:rule="(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",message="gateway.podSelector must not be empty: it would select every pod in the namespace"
	PodSelector metav1.LabelSelector `json:"podSelector"`
}

// Peer is one side of a flow: in-cluster pods (namespaceSelector and/or podSelector, with
// Kubernetes NetworkPolicy semantics) or an external network (cidr), never both.
// +kubebuilder:validation:XValidation:rule="has(self.cidr) != (has(self.namespaceSelector) || has(self.podSelector))",message="a peer is exactly one of: in-cluster selectors (namespaceSelector/podSelector) or cidr"
type Peer struct {
	// namespaceSelector selects the peer namespaces; {} means every namespace. Unset means the
	// device's own namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// podSelector selects the peer pods in the selected namespaces; unset or {} means all pods.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// cidr is an external network (outside the cluster), e.g. a vendor's VPN range. It must be
	// in canonical form and may not be 0.0.0.0/0 or ::/0.
	// +optional
	// +kubebuilder:validation:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr must be a network in CIDR notation, e.g. 203.0.113.0/24"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).prefixLength() > 0",message="cidr must not be 0.0.0.0/0 or ::/0: that is the whole internet"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).masked() == cidr(self)",message="cidr must be canonical: host bits must be zero"
	CIDR string `json:"cidr,omitempty"`
}

// IsExternal reports whether the peer is an external network.
func (p Peer) IsExternal() bool { return p.CIDR != "" }

// Flow is one network flow the device needs, through its gateway.
// +kubebuilder:validation:XValidation:rule="self.direction != 'ToDevice' || has(self.devicePort)",message="ToDevice flows need devicePort"
// +kubebuilder:validation:XValidation:rule="self.direction != 'FromDevice' || has(self.peerPort)",message="FromDevice flows need peerPort"
type Flow struct {
	// name identifies the flow; a DNS label, unique within the device.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// direction is ToDevice (peers → gateway:gatewayPort → device:devicePort) or FromDevice
	// (device → gateway:gatewayPort → peers:peerPort).
	// +required
	Direction Direction `json:"direction"`
	// tier is Essential (life-critical), Clinical or Support; the mode decides which tiers flow.
	// +required
	Tier Tier `json:"tier"`
	// protocol is TCP or UDP.
	// +optional
	// +kubebuilder:default=TCP
	Protocol Protocol `json:"protocol,omitempty"`
	// gatewayPort is the port the gateway listens on for this flow.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	GatewayPort int32 `json:"gatewayPort"`
	// devicePort is the device's port; required for ToDevice flows.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	DevicePort int32 `json:"devicePort,omitempty"`
	// peerPort is the peers' port; required for FromDevice flows.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	PeerPort int32 `json:"peerPort,omitempty"`
	// peers of the flow.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Peers []Peer `json:"peers"`
	// access is Standing (rendered whenever the mode allows the tier) or Granted (rendered only
	// inside an active access grant in the governing SegmentPolicy). Unset means Standing, but a
	// SegmentPolicy with allowedPeers.externalRequiresGrant (the default) requires a grant for
	// every flow with an external peer.
	// +optional
	Access Access `json:"access,omitempty"`
	// description says what the flow is for, for auditors.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Description string `json:"description,omitempty"`
}

// Commissioning records that the security team approved the device's flows for clinical use.
// Until it is set, and whenever spec.flows no longer hash to flowsHash, the device runs in the
// governing SegmentPolicy's onboarding mode whatever its risk.
type Commissioning struct {
	// approvedBy names who approved the flows.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	ApprovedBy string `json:"approvedBy"`
	// approvedAt is when the flows were approved.
	// +required
	ApprovedAt metav1.Time `json:"approvedAt"`
	// ticket is the change or commissioning ticket, e.g. CHG-2026-0412.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Ticket string `json:"ticket"`
	// flowsHash is the hash of spec.flows as approved ("sha256:" and 64 hex digits), as
	// `kubectl medseg commission` computes it and status.flowsHash reports it.
	// +required
	// +kubebuilder:validation:MaxLength=71
	// +kubebuilder:validation:Pattern=`^sha256:[0-9a-f]{64}$`
	FlowsHash string `json:"flowsHash"`
}

// Vulnerability is one vulnerability that applies, or may apply, to the device. Several
// scanners may own entries through server-side apply (listType=map, key id).
type Vulnerability struct {
	// id is the CVE or vendor advisory id, e.g. CVE-2024-12345 or ICSMA-24-123-01.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._:-]*$`
	ID string `json:"id"`
	// cvss is the CVSS base score as a decimal string from "0.0" to "10.0".
	// +optional
	// +kubebuilder:validation:MaxLength=4
	// +kubebuilder:validation:XValidation:rule="self.matches('^(10(\\\\.0)?|[0-9](\\\\.[0-9])?)$')",message="cvss must be a decimal string from 0.0 to 10.0, e.g. \"9.8\""
	CVSS string `json:"cvss,omitempty"`
	// epss is the EPSS probability as a decimal string from "0" to "1", e.g. "0.93".
	// +optional
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0(\\\\.[0-9]{1,6})?|1(\\\\.0{1,6})?)$')",message="epss must be a decimal string from 0 to 1, e.g. \"0.93\""
	EPSS string `json:"epss,omitempty"`
	// knownExploited is true when the vulnerability is in CISA's Known Exploited
	// Vulnerabilities catalog; it makes exploitation Active.
	// +optional
	KnownExploited bool `json:"knownExploited,omitempty"`
	// exploitation is the SSVC exploitation state reported by the feed: None, PoC or Active.
	// +optional
	// +kubebuilder:default=None
	Exploitation Exploitation `json:"exploitation,omitempty"`
	// automatable is true when an attacker can reliably automate steps 1-4 of the kill chain
	// (SSVC Automatable=yes).
	// +optional
	Automatable bool `json:"automatable,omitempty"`
	// status is the VEX status on this device; Fixed and NotAffected are not assessed.
	// +optional
	// +kubebuilder:default=Affected
	Status VulnerabilityStatus `json:"status,omitempty"`
	// source names the scanner or feed that reported the entry.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Source string `json:"source,omitempty"`
	// justification says why the device is NotAffected, as the VEX statement gives it, e.g.
	// vulnerable_code_not_present (CSAF) or code_not_reachable (CycloneDX).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Justification string `json:"justification,omitempty"`
}

// ThreatIntel is what exploitation feeds say about one vulnerability of the device: CISA KEV
// and FIRST EPSS. It annotates an entry of spec.vulnerabilities with the same id and is ignored
// without one, so withdrawing a vulnerability never leaves a feed's annotation behind as a
// vulnerability of its own.
type ThreatIntel struct {
	// id is the vulnerability's id in spec.vulnerabilities.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._:-]*$`
	ID string `json:"id"`
	// knownExploited is true when the vulnerability is in CISA's Known Exploited
	// Vulnerabilities catalog; it makes exploitation Active.
	// +optional
	KnownExploited bool `json:"knownExploited,omitempty"`
	// knownExploitedSince is the date CISA added it to the catalog (YYYY-MM-DD).
	// +optional
	// +kubebuilder:validation:MaxLength=10
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`
	KnownExploitedSince string `json:"knownExploitedSince,omitempty"`
	// epss is FIRST's EPSS probability as a decimal string from "0" to "1"; it replaces the
	// entry's own epss.
	// +optional
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0(\\\\.[0-9]{1,6})?|1(\\\\.0{1,6})?)$')",message="epss must be a decimal string from 0 to 1, e.g. \"0.93\""
	EPSS string `json:"epss,omitempty"`
	// epssPercentile is the EPSS percentile, "0" to "1".
	// +optional
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0(\\\\.[0-9]{1,6})?|1(\\\\.0{1,6})?)$')",message="epssPercentile must be a decimal string from 0 to 1"
	EPSSPercentile string `json:"epssPercentile,omitempty"`
	// epssDate is the date of the EPSS scores (YYYY-MM-DD).
	// +optional
	// +kubebuilder:validation:MaxLength=10
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`
	EPSSDate string `json:"epssDate,omitempty"`
}

// Detection is evidence from monitoring or MDR that the device is being attacked. An active
// detection makes exploitation Active for every vulnerability of the device.
type Detection struct {
	// source names the monitoring system, e.g. the MDR or NDR product.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Source string `json:"source"`
	// type of the detection, e.g. ExploitAttempt, C2Beacon.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Type string `json:"type"`
	// observedAt is when the monitoring system saw it.
	// +required
	ObservedAt metav1.Time `json:"observedAt"`
	// status is Active until the monitoring system resolves it.
	// +optional
	// +kubebuilder:default=Active
	Status DetectionStatus `json:"status,omitempty"`
	// description of what was seen.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Description string `json:"description,omitempty"`
}

// MedicalDeviceSpec describes one networked device outside the cluster and the flows it needs.
type MedicalDeviceSpec struct {
	// identity says what the device is.
	// +required
	Identity DeviceIdentity `json:"identity"`
	// clinical is the device's clinical impact, the Human Impact input of the risk decision.
	// +required
	Clinical ClinicalImpact `json:"clinical"`
	// network holds the device's addresses.
	// +required
	Network DeviceNetwork `json:"network"`
	// gateway selects the gateway pods in this namespace that front the device.
	// +required
	Gateway GatewayRef `json:"gateway"`
	// flows the device needs. A device with no flow is isolated.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Flows []Flow `json:"flows,omitempty"`
	// vulnerabilities reported for the device, merged from several scanners by id.
	// +optional
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=512
	Vulnerabilities []Vulnerability `json:"vulnerabilities,omitempty"`
	// threatIntel annotates vulnerabilities with exploitation feeds (CISA KEV, FIRST EPSS), by
	// id; each feed owns its fields under its own field manager. An entry whose id is not in
	// vulnerabilities is ignored.
	// +optional
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=512
	ThreatIntel []ThreatIntel `json:"threatIntel,omitempty"`
	// detections from monitoring, merged by source and type.
	// +optional
	// +listType=map
	// +listMapKey=source
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Detections []Detection `json:"detections,omitempty"`
	// commissioning records the approval of the device's flows for clinical use.
	// +optional
	Commissioning *Commissioning `json:"commissioning,omitempty"`
}

// SSVCInput is one input of the SSVC decision with where its value came from.
type SSVCInput struct {
	// value of the input, e.g. Active, Controlled, Yes, VeryHigh.
	// +required
	Value string `json:"value"`
	// source explains the value, e.g. "CISA KEV" or "Safety=Catastrophic, Mission=MEFFailure".
	// +optional
	Source string `json:"source,omitempty"`
}

// String renders the input as "Value (source)".
func (i *SSVCInput) String() string {
	if i == nil {
		return ""
	}
	if i.Source == "" {
		return i.Value
	}
	return i.Value + " (" + i.Source + ")"
}

// RiskStatus is the device's SSVC assessment with its explanation.
type RiskStatus struct {
	// priority is the highest SSVC deployer priority over the device's assessed
	// vulnerabilities: Defer, Scheduled, OutOfCycle or Immediate. Defer when there are none.
	// +optional
	Priority Priority `json:"priority,omitempty"`
	// decidingVulnerability is the id of the vulnerability that set the priority; empty when no
	// vulnerability is assessed.
	// +optional
	DecidingVulnerability string `json:"decidingVulnerability,omitempty"`
	// exploitation of the deciding vulnerability (None, PoC, Active) and why.
	// +optional
	Exploitation *SSVCInput `json:"exploitation,omitempty"`
	// exposure of the device (Small, Controlled, Open) from its enforced baseline segmentation.
	// +optional
	Exposure *SSVCInput `json:"exposure,omitempty"`
	// automatable (Yes, No) of the deciding vulnerability.
	// +optional
	Automatable *SSVCInput `json:"automatable,omitempty"`
	// humanImpact (Low, Medium, High, VeryHigh) from safety and mission impact.
	// +optional
	HumanImpact *SSVCInput `json:"humanImpact,omitempty"`
	// assessedVulnerabilities counts the vulnerabilities with status Affected or
	// UnderInvestigation; ignoredVulnerabilities those Fixed or NotAffected.
	// +optional
	AssessedVulnerabilities int32 `json:"assessedVulnerabilities,omitempty"`
	// ignoredVulnerabilities counts vulnerabilities not assessed because VEX says Fixed or NotAffected.
	// +optional
	IgnoredVulnerabilities int32 `json:"ignoredVulnerabilities,omitempty"`
	// summary is a one-line explanation.
	// +optional
	Summary string `json:"summary,omitempty"`
	// assessedAt is when the assessment last changed.
	// +optional
	AssessedAt *metav1.Time `json:"assessedAt,omitempty"`
	// lastFeed is the feed that last changed the device's risk inputs (kubectl medseg feed, which
	// stamps the device when it writes), and when.
	// +optional
	LastFeed *FeedChange `json:"lastFeed,omitempty"`
}

// FeedChange is a feed's write of a device's risk inputs.
type FeedChange struct {
	// feed is kev, epss or vex.
	// +required
	// +kubebuilder:validation:MaxLength=16
	Feed string `json:"feed"`
	// source is what the feed read, e.g. "CISA KEV 2026.12.01" or the VEX advisories.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Source string `json:"source,omitempty"`
	// at is when it wrote.
	// +required
	At metav1.Time `json:"at"`
}

// BlockReason says why a flow is not rendered.
// +kubebuilder:validation:Enum=Mode;Ceiling;Grant
type BlockReason string

// The block reasons.
const (
	// BlockMode: the current mode does not allow the flow's tier.
	BlockMode BlockReason = "Mode"
	// BlockCeiling: a peer lies outside the policy's allowedPeers.
	BlockCeiling BlockReason = "Ceiling"
	// BlockGrant: the flow needs an access grant and none is active.
	BlockGrant BlockReason = "Grant"
)

// BlockedFlow is a declared flow that is not rendered, and why.
type BlockedFlow struct {
	// name of the flow.
	// +required
	Name string `json:"name"`
	// reason is Mode or Ceiling.
	// +required
	Reason BlockReason `json:"reason"`
	// message explains the reason for people.
	// +optional
	Message string `json:"message,omitempty"`
}

// ActiveException is the exception that currently caps the device's mode.
type ActiveException struct {
	// name of the SegmentException.
	// +required
	Name string `json:"name"`
	// maxMode is the most closed mode the exception allows.
	// +required
	MaxMode Mode `json:"maxMode"`
	// approvedBy is the approving clinician.
	// +required
	ApprovedBy string `json:"approvedBy"`
	// expiresAt is when it stops applying.
	// +required
	ExpiresAt metav1.Time `json:"expiresAt"`
}

// ActiveGrant is an access grant that is open now for one of the device's flows.
type ActiveGrant struct {
	// name of the AccessGrant.
	// +required
	Name string `json:"name"`
	// flow the grant opens.
	// +required
	Flow string `json:"flow"`
	// approvedBy approved the grant.
	// +required
	ApprovedBy string `json:"approvedBy"`
	// ticket of the grant.
	// +optional
	Ticket string `json:"ticket,omitempty"`
	// notBefore is when the grant opened.
	// +required
	NotBefore metav1.Time `json:"notBefore"`
	// notAfter is when it ends.
	// +required
	NotAfter metav1.Time `json:"notAfter"`
}

// ActiveGrantsOrEmpty returns the active grants, or nil for a nil status.
func (s *SegmentationStatus) ActiveGrantsOrEmpty() []ActiveGrant {
	if s == nil {
		return nil
	}
	return s.ActiveGrants
}

// AppliedObject is a Cilium object medseg applied for the device.
type AppliedObject struct {
	// kind of the object.
	// +required
	Kind string `json:"kind"`
	// namespace of the object; empty for cluster-scoped objects.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// name of the object.
	// +required
	Name string `json:"name"`
	// hash is the content hash of the applied spec (annotation medseg.io/content-hash).
	// +required
	Hash string `json:"hash"`
}

// SegmentationStatus says how the device is segmented and why.
type SegmentationStatus struct {
	// policy is the SegmentPolicy that governs the device; empty when none does.
	// +optional
	Policy string `json:"policy,omitempty"`
	// enforcement of that policy: Enforce or Audit.
	// +optional
	Enforcement Enforcement `json:"enforcement,omitempty"`
	// mode the device is in (or would be in, under Audit).
	// +optional
	Mode Mode `json:"mode,omitempty"`
	// modeReason explains the mode, e.g. "riskResponse Immediate → Quarantine".
	// +optional
	ModeReason string `json:"modeReason,omitempty"`
	// allowedFlows are the names of the flows rendered (or that would be, under Audit).
	// +optional
	// +listType=atomic
	AllowedFlows []string `json:"allowedFlows,omitempty"`
	// blockedFlows are the declared flows not rendered, with the reason.
	// +optional
	// +listType=atomic
	BlockedFlows []BlockedFlow `json:"blockedFlows,omitempty"`
	// activeException is the exception capping the mode, if any.
	// +optional
	ActiveException *ActiveException `json:"activeException,omitempty"`
	// onboarding is true while the device runs in the policy's onboarding mode because it is
	// not commissioned or its flows changed after commissioning.
	// +optional
	Onboarding bool `json:"onboarding,omitempty"`
	// activeGrants are the access grants open now for the device's flows, with when they end.
	// +optional
	// +listType=atomic
	ActiveGrants []ActiveGrant `json:"activeGrants,omitempty"`
	// sharedWith names the devices in the same namespace whose gateway selectors can select
	// the same gateway pods as this device's and whose enforcement differs, with their
	// SegmentPolicy: for an unenforced device the enforced devices whose default deny its
	// gateways share, for an enforced device the unenforced devices whose declared flows stay
	// open on its gateways.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	SharedWith []string `json:"sharedWith,omitempty"`
	// appliedObjects are the Cilium objects in place for the device, with hashes: only what a
	// write that succeeded produced or what was already there, never what was merely desired.
	// +optional
	// +listType=atomic
	AppliedObjects []AppliedObject `json:"appliedObjects,omitempty"`
	// lastAppliedAt is when medseg last wrote a Cilium object for the device.
	// +optional
	LastAppliedAt *metav1.Time `json:"lastAppliedAt,omitempty"`
	// policyMapEntries estimates the Cilium policy map entries this device adds to each of its
	// gateway pods.
	// +optional
	PolicyMapEntries int32 `json:"policyMapEntries,omitempty"`
}

// ForeignPolicy is a policy medseg does not own that selects the device's gateway.
type ForeignPolicy struct {
	// kind is CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or NetworkPolicy.
	// +required
	Kind string `json:"kind"`
	// namespace of the policy; empty for cluster-scoped ones.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// name of the policy.
	// +required
	Name string `json:"name"`
	// widens is true when the policy widens access to the device or its gateway.
	// +optional
	Widens bool `json:"widens,omitempty"`
	// reason explains what the policy opens.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// DriftStatus records repairs and foreign policies.
type DriftStatus struct {
	// repairs counts how often medseg put back an owned policy edited or deleted by hand.
	// +optional
	Repairs int64 `json:"repairs,omitempty"`
	// lastRepairAt is when the last repair happened.
	// +optional
	LastRepairAt *metav1.Time `json:"lastRepairAt,omitempty"`
	// foreignPolicies select the device's gateway without being managed by medseg.
	// +optional
	// +listType=atomic
	ForeignPolicies []ForeignPolicy `json:"foreignPolicies,omitempty"`
}

// HistoryEntry is one change of the device's priority or mode.
type HistoryEntry struct {
	// time of the change.
	// +required
	Time metav1.Time `json:"time"`
	// priority after the change.
	// +optional
	Priority Priority `json:"priority,omitempty"`
	// mode after the change.
	// +optional
	Mode Mode `json:"mode,omitempty"`
	// reason for the change.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// MaxHistory bounds status.history.
const MaxHistory = 10

// MedicalDeviceStatus is the device's audit trail.
type MedicalDeviceStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready, RiskAssessed, Segmented, Commissioned; Reconciling and Stalled only
	// while true (kstatus).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// flowsHash is the hash of the current spec.flows; spec.commissioning.flowsHash must equal it
	// for the device to count as commissioned.
	// +optional
	FlowsHash string `json:"flowsHash,omitempty"`
	// risk is the SSVC assessment.
	// +optional
	Risk *RiskStatus `json:"risk,omitempty"`
	// segmentation is how the device is segmented.
	// +optional
	Segmentation *SegmentationStatus `json:"segmentation,omitempty"`
	// drift records repairs and foreign policies.
	// +optional
	Drift *DriftStatus `json:"drift,omitempty"`
	// traffic summarises what Hubble observed through the device's gateways and at its
	// addresses, when the operator follows Hubble Relay (chart value hubble.relay.address).
	// +optional
	Traffic *TrafficStatus `json:"traffic,omitempty"`
	// history of priority and mode changes, newest first, at most 10 entries.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	History []HistoryEntry `json:"history,omitempty"`
}

// TrafficStatus is a bounded summary of the traffic Hubble observed for a device in a recent
// window: what its declared flows would not let through (the answer to "what will enforcement
// break?" in Audit and onboarding), policy drops and traffic that bypassed its gateway. It is
// evidence for the change board, not risk input.
type TrafficStatus struct {
	// window is how far back the counts go.
	// +optional
	Window metav1.Duration `json:"window,omitempty"`
	// observedAt is when medseg summarised the traffic.
	// +optional
	ObservedAt *metav1.Time `json:"observedAt,omitempty"`
	// undeclared are the observed flows through the gateway that the flows the device would be
	// enforced with do not cover, most connections first, at most 10.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	Undeclared []ObservedFlow `json:"undeclared,omitempty"`
	// undeclaredFlows counts every such flow, not only the 10 listed.
	// +optional
	UndeclaredFlows int32 `json:"undeclaredFlows,omitempty"`
	// undeclaredConnections counts their connections.
	// +optional
	UndeclaredConnections int64 `json:"undeclaredConnections,omitempty"`
	// drops counts connections to or from the device (through its gateway or not) that Cilium
	// dropped in the window.
	// +optional
	Drops int64 `json:"drops,omitempty"`
	// lastDrop is when the latest of them was seen.
	// +optional
	LastDrop *metav1.Time `json:"lastDrop,omitempty"`
	// bypassConnections counts connections between the device's addresses and pods other
	// than its gateways: evidence that its network is flat.
	// +optional
	BypassConnections int64 `json:"bypassConnections,omitempty"`
}

// ObservedFlow is one flow Hubble observed through a device's gateway.
type ObservedFlow struct {
	// direction of the flow.
	// +required
	Direction Direction `json:"direction"`
	// peer names the other side: namespace/labels of a pod, or an address outside the cluster.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Peer string `json:"peer"`
	// protocol of the flow.
	// +required
	Protocol Protocol `json:"protocol"`
	// gatewayPort is the gateway's port.
	// +required
	GatewayPort int32 `json:"gatewayPort"`
	// port is the device port (ToDevice) or the peer port (FromDevice).
	// +required
	Port int32 `json:"port"`
	// connections observed in the window.
	// +required
	Connections int64 `json:"connections"`
	// lastSeen is when the latest connection was observed.
	// +required
	LastSeen metav1.Time `json:"lastSeen"`
}

// MedicalDevice is one networked medical device outside the cluster, fronted by gateway pods.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mdev,categories=medseg
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.identity.deviceType`
// +kubebuilder:printcolumn:name="Priority",type=string,JSONPath=`.status.risk.priority`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.status.segmentation.mode`
// +kubebuilder:printcolumn:name="Segmented",type=string,JSONPath=`.status.conditions[?(@.type=="Segmented")].status`
// +kubebuilder:printcolumn:name="Commissioned",type=string,JSONPath=`.status.conditions[?(@.type=="Commissioned")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label (at most 63 lowercase letters, digits and '-'): it names the device's policy and labels"
type MedicalDevice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the device.
	// +required
	Spec MedicalDeviceSpec `json:"spec"`
	// status is written by medseg.
	// +optional
	Status MedicalDeviceStatus `json:"status,omitempty"`
}

// MedicalDeviceList is a list of MedicalDevices.
// +kubebuilder:object:root=true
type MedicalDeviceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MedicalDevice `json:"items"`
}
