// Package report builds the auditor's view of a hospital's segmentation from what medseg
// records in CRD status: a summary, zones (SegmentPolicies) and conduits (device flows through
// gateways), and one section per device. It writes the same content as JSON (for other tools),
// Markdown (for tickets and Git) and a single self-contained HTML file with an inline SVG
// diagram (for people, offline). The output is deterministic for the same input: everything is
// sorted, and the only clock is Input.Now.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/discover"
	"github.com/medseg/medseg/internal/render"
)

// Input is what a report of one cluster (a site) is built from: devices and policies with their
// status.
type Input struct {
	Devices  []v1alpha1.MedicalDevice
	Policies []v1alpha1.SegmentPolicy
	// Approvals are the SegmentExceptions and AccessGrants, with their status (offline: as the
	// plugin decided it).
	Approvals v1alpha1.Approvals
	// Now is when the report is made; it decides which exceptions and grants are active or
	// about to expire.
	Now time.Time
	// Source says where the objects came from, e.g. "live cluster" or "files: config/samples".
	Source string
	// Offline is true when statuses were computed from files rather than read from a cluster:
	// nothing is known about drift, flatness or what is applied.
	Offline bool
}

// SiteInput is one site (cluster) of a fleet report: its input, or why it could not be read.
type SiteInput struct {
	// Name is the site's name (the kubeconfig context).
	Name  string
	Input Input
	// Err is why the site could not be read: it is reported as unreachable, never dropped.
	Err error
}

// Soon is how far ahead the summary looks for exceptions and grants that end or start.
const Soon = 7 * 24 * time.Hour

// SchemaVersion names the JSON form's schema (docs/report.schema.json). It changes when a field
// is removed or changes meaning; fields may be added within a version.
const SchemaVersion = "medseg.io/report/v1"

// Report is the report's content; its JSON form is `report -o json`, the stable contract
// described by docs/report.schema.json.
type Report struct {
	// The schema this document follows, "medseg.io/report/v1". It changes when a field is
	// removed or changes meaning; fields may be added within a version.
	SchemaVersion string `json:"schemaVersion"`
	// The report's title: always "Medical device segmentation report".
	Title string `json:"title"`
	// When the report was made, RFC 3339 UTC time: the clock that decides which exceptions and
	// grants are active, expire soon or open soon.
	GeneratedAt string `json:"generatedAt"`
	// Where the objects came from, e.g. "the live cluster" or "files: config/samples"; in a
	// fleet report, "site: source" or "site (unreachable)" per site, joined by "; ".
	Source string `json:"source"`
	// True when statuses were computed from files rather than read from a cluster: nothing is
	// then known about drift, flatness, observed traffic or history.
	Offline bool `json:"offline"`
	// The clusters the report covers: one (with an empty `name`) for a single cluster, one per
	// site for a fleet, unreachable ones included.
	Sites []Site `json:"sites"`
	// The first screen: the auditor's questions, answered with counts and short lists.
	Summary Summary `json:"summary"`
	// The zones: one per SegmentPolicy, plus "(ungoverned)" for devices no SegmentPolicy
	// governs; by site, then name, "(ungoverned)" last.
	Zones []Zone `json:"zones"`
	// Every device, by site, zone ("(ungoverned)" last), priority (Immediate first), mode
	// (Quarantine first), then `ref`.
	Devices []Device `json:"devices"`
}

// Site is one cluster's line on the first screen.
type Site struct {
	// The site's name (its kubeconfig context); empty for a single-cluster report.
	Name string `json:"name"`
	// Where the site's objects came from, e.g. "server https://10.0.0.1:6443 (context east)";
	// empty for an unreachable site.
	Source string `json:"source"`
	// False when the site could not be read: `error` says why and its counts are zero.
	Reachable bool `json:"reachable"`
	// Why an unreachable site could not be read; omitted for a reachable site.
	Error string `json:"error,omitempty"`
	// How many devices the site has.
	Devices int `json:"devices"`
	// How many of its devices are segmented (enforced as declared).
	Segmented int `json:"segmented"`
	// How many are unenforced only because their SegmentPolicy is in Audit.
	InAudit int `json:"inAudit"`
	// How many are neither segmented nor in Audit; `segmented`, `inAudit` and `notSegmented`
	// add up to `devices`.
	NotSegmented int `json:"notSegmented"`
	// How many devices have priority Immediate.
	Immediate int `json:"immediate"`
	// How many devices have priority OutOfCycle.
	OutOfCycle int `json:"outOfCycle"`
	// How many SegmentPolicies the site has ("(ungoverned)" not counted).
	Zones int `json:"zones"`
}

// Count is a named count.
type Count struct {
	// The value counted: a mode (e.g. Quarantine) or a priority (e.g. Immediate).
	Name string `json:"name"`
	// How many devices have that value.
	Count int `json:"count"`
}

// Summary is the first screen: the auditor's questions, answered at any size.
type Summary struct {
	// How many devices the report covers (unreachable sites contribute none).
	Devices int `json:"devices"`
	// Devices enforced as declared: condition Segmented=True (offline: governed by a
	// SegmentPolicy in Enforce).
	Segmented int `json:"segmented"`
	// `segmented` as a percentage of `devices`, rounded down; 0 when there are no devices.
	SegmentedPercent int `json:"segmentedPercent"`
	// Devices governed by a SegmentPolicy in Audit and unenforced only because of it: a rollout
	// stage, not drift.
	InAudit int `json:"inAudit"`
	// Devices neither segmented nor in Audit; `notSegmentedByReason` says why.
	NotSegmented int `json:"notSegmented"`
	// Devices not commissioned: no commissioning approval, or flows changed since it.
	Onboarding int `json:"onboarding"`
	// Devices per priority: Immediate, OutOfCycle, Scheduled, Defer (always listed), then
	// Unknown (not assessed) when there are any.
	ByPriority []Count `json:"byPriority"`
	// Devices per mode: Quarantine, Restricted, Standard (always listed), then Unknown when
	// there are any.
	ByMode []Count `json:"byMode"`
	// The devices counted in `notSegmented`, grouped by their `segmentedReason`, largest group
	// first.
	NotSegmentedByReason []FindingGroup `json:"notSegmentedByReason"`
	// What each SegmentPolicy in Audit that has devices in Audit would do under Enforce; by
	// site, then policy.
	Audit []AuditZone `json:"audit"`
	// The Immediate and OutOfCycle devices: Immediate first, then not segmented before in Audit
	// before segmented, then strictest mode, then `ref`.
	Urgent []DeviceLine `json:"urgent"`
	// The exceptions that expire and the open access grants that close within 7 days,
	// soonest `ends` first.
	Ending []Ending `json:"ending"`
	// One line per SegmentPolicy, by site, then name.
	Policies []PolicySummary `json:"policies"`
	// Every active segment exception (at most one per device), in `devices` order.
	Exceptions []Exception `json:"exceptions"`
	// Every access grant open now or opening within 7 days (Ineffective ones aside), by
	// `notBefore`, then `name`.
	Grants []Grant `json:"grants"`
	// The SegmentExceptions and AccessGrants in phase Ineffective (they open nothing), grouped
	// by their status reason.
	IneffectiveApprovals []FindingGroup `json:"ineffectiveApprovals"`
	// The devices whose observed traffic (Hubble) has undeclared flows, drops or connections
	// that bypassed their gateway, in `devices` order; always empty offline.
	Traffic []Traffic `json:"traffic"`
}

// Traffic is a device's observed traffic, as the operator summarised it from Hubble.
type Traffic struct {
	// The device's `ref`.
	Device string `json:"device"`
	// The enforcement of the device's SegmentPolicy, Enforce or Audit; Unknown when none is
	// recorded.
	Enforcement string `json:"enforcement"`
	// How far back the counts go, as a Go duration, e.g. "1h0m0s".
	Window string `json:"window"`
	// How many observed flows the device's declared flows do not cover: Enforce drops them.
	UndeclaredFlows int32 `json:"undeclaredFlows"`
	// How many connections those undeclared flows carried.
	UndeclaredConnections int64 `json:"undeclaredConnections"`
	// The undeclared flows with the most connections (at most 10), one line each: direction,
	// peer, gateway port, connections and when last seen (RFC 3339 UTC).
	Undeclared []string `json:"undeclared"`
	// Connections to or from the device (through its gateway or not) that Cilium dropped in
	// the window.
	Drops int64 `json:"drops"`
	// Connections between the device's addresses and pods other than its gateways: evidence
	// that its network is flat.
	BypassConnections int64 `json:"bypassConnections"`
}

// FindingGroup is one reason and the devices it applies to: repeated identical findings
// collapse into one line with a count.
type FindingGroup struct {
	// The reason: a device's `segmentedReason` (e.g. NoSegmentPolicy, GatewayNotFound), or an
	// approval's status reason (e.g. WindowTooLong, FlowNotFound).
	Reason string `json:"reason"`
	// How many devices (for approvals: how many approvals) have this reason.
	Count int `json:"count"`
	// The distinct explanations, most frequent first, at most 5, each with how many it
	// applies to.
	Details []Detail `json:"details"`
	// How many of `count` have an explanation beyond the 5 listed in `details`.
	OtherDetails int `json:"otherDetails"`
	// The `ref`s of the group's devices, sorted; for approvals, each approval's device
	// (repeated when a device has several).
	Devices []string `json:"devices"`
}

// Detail is one distinct explanation of a finding and how often it occurs.
type Detail struct {
	// The explanation: a device's `segmentedDetail`, or "SegmentException NAME: message" /
	// "AccessGrant NAME: message" for an approval.
	Text string `json:"text"`
	// How many devices (or approvals) of the group it applies to.
	Count int `json:"count"`
}

// MaxDetails bounds a FindingGroup's distinct details.
const MaxDetails = 5

// AuditZone is a SegmentPolicy in Audit: what Enforce would do.
type AuditZone struct {
	// The site's name; omitted in a single-cluster report.
	Site string `json:"site,omitempty"`
	// The SegmentPolicy's name.
	Policy string `json:"policy"`
	// How many of its devices are in Audit (`inAudit`): those the rest of this entry counts.
	Devices int `json:"devices"`
	// The zone's devices per mode, as in the zone's `byMode`: the modes Enforce would put them
	// in.
	ByMode []Count `json:"byMode"`
	// How many declared flows of those devices Enforce would block (by mode, ceiling or a
	// missing grant).
	BlockedFlows int `json:"blockedFlows"`
	// How many of those devices have at least one flow Enforce would block.
	DevicesWithBlockedFlows int `json:"devicesWithBlockedFlows"`
	// Observed flows (Hubble) no declared flow covers, summed over the devices: Enforce would
	// drop them. Always 0 offline.
	UndeclaredFlows int64 `json:"undeclaredFlows"`
	// How many connections those undeclared flows carried.
	UndeclaredConnections int64 `json:"undeclaredConnections"`
	// How many of the devices have undeclared flows.
	DevicesWithUndeclared int `json:"devicesWithUndeclared"`
	// How many of the devices share their gateway pods with enforced devices
	// (`segmentedReason` SharedGateway).
	SharedGateway int `json:"sharedGateway"`
}

// DeviceLine is a device in a first-screen list.
type DeviceLine struct {
	// The device's `ref`: "namespace/name", or "site:namespace/name" in a fleet report.
	Ref string `json:"ref"`
	// The site's name; omitted in a single-cluster report.
	Site string `json:"site,omitempty"`
	// The device's zone: its SegmentPolicy, or "(ungoverned)".
	Zone string `json:"zone"`
	// The device's priority: Immediate, OutOfCycle, Scheduled, Defer or Unknown (`urgent`
	// lists only the first two).
	Priority string `json:"priority"`
	// The device's mode: Standard, Restricted, Quarantine or Unknown.
	Mode string `json:"mode"`
	// Its SegmentPolicy's enforcement: Enforce or Audit; "-" for an ungoverned device.
	Enforcement string `json:"enforcement"`
	// Whether the device is enforced as declared.
	Segmented bool `json:"segmented"`
	// "Segmented", "In Audit", or the device's `segmentedReason` when it is neither.
	Status string `json:"status"`
	// The vulnerability (e.g. a CVE id) that set the priority; omitted when none did.
	Deciding string `json:"decidingVulnerability,omitempty"`
}

// Ending is an approval that ends soon: a segment exception that expires within 7 days, or an
// access grant open now.
type Ending struct {
	// SegmentException or AccessGrant.
	Kind string `json:"kind"`
	// The SegmentException's or AccessGrant's name.
	Name string `json:"name"`
	// The device's `ref`.
	Device string `json:"device"`
	// When it ends, RFC 3339 UTC time: the exception's `expiresAt` or the grant's `notAfter`.
	Ends string `json:"ends"`
	// What it does: "caps the mode at MODE" or "opens flow FLOW".
	What string `json:"what"`
}

// PolicySummary is one SegmentPolicy's line in the summary.
type PolicySummary struct {
	// The site's name; omitted in a single-cluster report.
	Site string `json:"site,omitempty"`
	// The SegmentPolicy's name.
	Name string `json:"name"`
	// The policy's enforcement: Enforce or Audit.
	Enforcement string `json:"enforcement"`
	// How many devices of the report it governs.
	Devices int `json:"devices"`
	// Whether pods other than gateways can reach its device networks: Isolated, Flat, "Not
	// evaluated" (live, no audit recorded yet) or "Unknown (offline)".
	Flatness string `json:"flatness"`
	// How many pods other than gateways could reach a device network (0 is the goal); null
	// when flatness was not evaluated.
	ReachableWorkloads *int32 `json:"reachableWorkloads"`
	// How many pods the flatness audit evaluated; null when flatness was not evaluated.
	EvaluatedWorkloads *int32 `json:"evaluatedWorkloads"`
	// When the flatness audit last ran with this result, RFC 3339 UTC time; empty when
	// unknown.
	EvaluatedAt string `json:"evaluatedAt"`
	// The first few pods that could reach a device network, as "namespace/pod → address (why)".
	Offenders []string `json:"offenders"`
	// The most loaded gateway pods of its devices (live only), as "namespace/pod: ENTRIES of
	// CAPACITY entries (P%), N devices": estimated Cilium policy map entries against its size.
	Gateways []string `json:"gateways"`
}

// Flatness values besides Isolated and Flat.
const (
	FlatnessNotEvaluated = "Not evaluated"
	FlatnessOffline      = "Unknown (offline)"
)

// Exception is a clinician-approved cap on a device's mode (a SegmentException).
type Exception struct {
	// The SegmentPolicy that governs the device.
	Policy string `json:"policy"`
	// The change or support ticket; empty when the SegmentException itself was not read.
	Ticket string `json:"ticket"`
	// The SegmentException's name.
	Name string `json:"name"`
	// The device's `ref`.
	Device string `json:"device"`
	// The most closed mode the device may be put in: Standard, Restricted or Quarantine.
	MaxMode string `json:"maxMode"`
	// Who approved the exception.
	ApprovedBy string `json:"approvedBy"`
	// The clinical or operational reason; empty when the SegmentException itself was not read.
	Justification string `json:"justification"`
	// When the exception stops applying, RFC 3339 UTC time.
	ExpiresAt string `json:"expiresAt"`
	// Active, or "Expires soon" when `expiresAt` is within 7 days of `generatedAt`.
	State string `json:"state"`
}

// Grant is a time-boxed vendor access grant (an AccessGrant).
type Grant struct {
	// The SegmentPolicy that governs the device.
	Policy string `json:"policy"`
	// The AccessGrant's name.
	Name string `json:"name"`
	// The device's `ref`.
	Device string `json:"device"`
	// The name of the device's flow the grant opens (see the device's `flows`).
	Flow string `json:"flow"`
	// Who approved the grant.
	ApprovedBy string `json:"approvedBy"`
	// The change or support ticket.
	Ticket string `json:"ticket"`
	// When the window opens (inclusive), RFC 3339 UTC time.
	NotBefore string `json:"notBefore"`
	// When the window closes (exclusive), RFC 3339 UTC time.
	NotAfter string `json:"notAfter"`
	// Open (the window contains `generatedAt`) or Upcoming (it opens within 7 days).
	State string `json:"state"`
}

// Zone is a SegmentPolicy, or "(ungoverned)" for devices no policy governs.
type Zone struct {
	// The site's name; omitted in a single-cluster report.
	Site string `json:"site,omitempty"`
	// The SegmentPolicy's name, or "(ungoverned)" for the devices no SegmentPolicy governs.
	Name string `json:"name"`
	// The policy's enforcement: Enforce or Audit; "-" for "(ungoverned)".
	Enforcement string `json:"enforcement"`
	// The policy's clinical device subnets (CIDRs), sorted; empty for "(ungoverned)".
	DeviceNetworks []string `json:"deviceNetworks"`
	// The `ref`s of the zone's devices, most urgent first (priority, then mode, then `ref`).
	Devices []string `json:"devices"`
	// The zone's devices per mode: Quarantine, Restricted, Standard (always listed), then
	// Unknown when there are any.
	ByMode []Count `json:"byMode"`
	// The zone's devices grouped by device type (else care area), with their flows by peer,
	// largest group first: the diagram of a large hospital.
	Groups []DeviceGroup `json:"groups"`
}

// DeviceGroup is the devices of one type (or care area) in a zone.
type DeviceGroup struct {
	// The devices' type (e.g. InfusionPump), else "care area AREA", else "other devices".
	Name string `json:"name"`
	// How many devices the group has.
	Devices int `json:"devices"`
	// The strictest mode among them (Quarantine, Restricted, Standard); Unknown when none is
	// known.
	Mode string `json:"mode"`
	// The group's devices per mode, listed as in the zone's `byMode`.
	ByMode []Count `json:"byMode"`
	// The group's declared flows, one entry per peer, most flows first.
	Conduits []ConduitGroup `json:"conduits"`
}

// ConduitGroup is the declared flows of a device group to one peer.
type ConduitGroup struct {
	// The peer as the diagram names it: "NAMESPACE: SELECTOR" (e.g. "icu: app=pump-server")
	// for pods, "external CIDR" for an external network.
	Peer string `json:"peer"`
	// True when the peer is an external network (a CIDR outside the cluster).
	External bool `json:"external"`
	// How many device flows go to the peer.
	Flows int `json:"flows"`
	// How many distinct devices those flows belong to.
	Devices int `json:"devices"`
	// How many of the flows are allowed.
	Allowed int `json:"allowed"`
	// How many of the flows are blocked (by mode, ceiling or a missing grant).
	Blocked int `json:"blocked"`
	// How many of the flows belong to devices medseg has no decision for (`reason` Unknown):
	// nothing is enforced on them.
	Undecided int `json:"undecided"`
	// The most critical tier among the flows: Essential, Clinical or Support.
	Tier string `json:"tier"`
	// The distinct gateway ports, as "PORT/PROTOCOL" (e.g. "8443/TCP"), sorted.
	Ports []string `json:"ports"`
}

// Ungoverned names the zone of devices no SegmentPolicy governs.
const Ungoverned = "(ungoverned)"

// Conduit is one declared flow of a device, through its gateway.
type Conduit struct {
	// The flow's name, unique within the device.
	Name string `json:"name"`
	// ToDevice or FromDevice.
	Direction string `json:"direction"`
	// Essential (life-critical), Clinical or Support: the mode decides which tiers flow.
	Tier string `json:"tier"`
	// TCP (the default) or UDP.
	Protocol string `json:"protocol"`
	// The path with its ports: "peers → gateway:G → device:D" (ToDevice) or
	// "device → gateway:G → peers:P" (FromDevice).
	Ports string `json:"ports"`
	// The peers, for people: "external CIDR", or "pods SELECTOR in namespaces SELECTOR" (or
	// "all pods", "own namespace").
	Peers []string `json:"peers"`
	// True when a peer is an external network.
	External bool `json:"external"`
	// Standing, Granted, or "Granted (external peer)" when the policy requires a grant for its
	// external peer.
	Access string `json:"access"`
	// Whether the flow is let through (or would be, under Audit).
	Allowed bool `json:"allowed"`
	// Why a blocked flow is blocked: Mode, Ceiling, Grant, or Unknown when no decision is
	// recorded; omitted when allowed.
	Reason string `json:"reason,omitempty"`
	// More about `reason`, for people; omitted when allowed.
	Detail string `json:"detail,omitempty"`
	// What the flow is for, as declared; omitted when not declared.
	Description string `json:"description,omitempty"`
	// nodes name the peers as the diagram draws them: in-cluster peers with their namespace
	// resolved ("icu: app=pump-server"), external ones as "external CIDR".
	nodes []string
}

// HistoryItem is one priority or mode change.
type HistoryItem struct {
	// When the change happened, RFC 3339 UTC time.
	Time string `json:"time"`
	// The priority after the change; empty when not recorded.
	Priority string `json:"priority"`
	// The mode after the change; empty when not recorded.
	Mode string `json:"mode"`
	// Why it changed.
	Reason string `json:"reason"`
}

// Device is one device's section.
type Device struct {
	// How the report refers to the device: "namespace/name", or "site:namespace/name" in a
	// fleet report.
	Ref string `json:"ref"`
	// The site's name; omitted in a single-cluster report.
	Site string `json:"site,omitempty"`
	// The MedicalDevice's namespace.
	Namespace string `json:"namespace"`
	// The MedicalDevice's name.
	Name string `json:"name"`
	// The manufacturer, as on the device's label.
	Manufacturer string `json:"manufacturer"`
	// The device's model.
	Model string `json:"model"`
	// A short kind of device, e.g. InfusionPump; omitted when not declared.
	DeviceType string `json:"deviceType,omitempty"`
	// The firmware version running on the device; omitted when not declared.
	Firmware string `json:"firmwareVersion,omitempty"`
	// The device's serial number; omitted when not declared.
	SerialNumber string `json:"serialNumber,omitempty"`
	// Where the device is used, e.g. ICU; omitted when not declared.
	CareArea string `json:"careArea,omitempty"`
	// Safety impact of the device failing: Negligible, Marginal, Critical or Catastrophic.
	SafetyImpact string `json:"safetyImpact"`
	// Impact on the care area: Degraded, Crippled, MEFFailure or MissionFailure.
	MissionImpact string `json:"missionImpact"`
	// The device's IP addresses, sorted.
	Addresses []string `json:"addresses"`
	// The SegmentPolicy that governs the device, or "(ungoverned)" when none does.
	Zone string `json:"zone"`
	// Its SegmentPolicy's enforcement: Enforce or Audit; "-" for an ungoverned device.
	Enforcement string `json:"enforcement"`
	// The SSVC priority: Immediate, OutOfCycle, Scheduled, Defer, or Unknown (not assessed).
	Priority string `json:"priority"`
	// The vulnerability (e.g. a CVE id) that set the priority; omitted when none did.
	Deciding string `json:"decidingVulnerability,omitempty"`
	// The SSVC inputs recorded, as "NAME = VALUE (source)", in the order Exploitation,
	// Exposure, Automatable, Human impact.
	SSVC []string `json:"ssvc"`
	// A one-line explanation of the risk assessment; omitted when none is recorded.
	RiskSummary string `json:"riskSummary,omitempty"`
	// The feed that last changed the risk inputs, as "FEED (source) at TIME" (RFC 3339 UTC);
	// omitted when none did.
	LastFeed string `json:"lastFeed,omitempty"`
	// The mode the device is in (or would be in, under Audit): Standard, Restricted,
	// Quarantine or Unknown.
	Mode string `json:"mode"`
	// Why the device is in that mode, e.g. "riskResponse Immediate → Quarantine"; omitted when
	// not recorded.
	ModeReason string `json:"modeReason,omitempty"`
	// Whether the device is enforced as declared: condition Segmented=True (offline: governed
	// by a SegmentPolicy in Enforce).
	Segmented bool `json:"segmented"`
	// Whether the device is unenforced only because its SegmentPolicy is in Audit.
	InAudit bool `json:"inAudit"`
	// The Segmented condition's reason (e.g. Segmented, AuditOnly, NoSegmentPolicy); live
	// without a condition, NotReconciled; offline, Planned when it would be enforced.
	SegmentedReason string `json:"segmentedReason"`
	// What `segmentedReason` means for this device, for people; omitted when empty.
	SegmentedDetail string `json:"segmentedDetail,omitempty"`
	// Whether the security team's commissioning approval covers the device's current flows.
	Commissioned bool `json:"commissioned"`
	// The commissioning as a sentence: "Commissioned by …", "Flows changed after …" (onboarding
	// again) or "Not commissioned".
	Commissioning string `json:"commissioning"`
	// The device's declared flows, by name, with what medseg decided for each.
	Flows []Conduit `json:"flows"`
	// The active segment exception that caps the device's mode; omitted when none.
	Exception *Exception `json:"exception,omitempty"`
	// The device's access grants open now or opening within 7 days; empty when ungoverned.
	Grants []Grant `json:"grants"`
	// Policies medseg does not own that select the device's gateway, as "WIDENS ACCESS KIND
	// namespace/name: reason" or "listed KIND namespace/name: reason".
	ForeignPolicies []string `json:"foreignPolicies"`
	// The priority and mode changes, newest first, at most 10; empty offline.
	History []HistoryItem `json:"history"`
	// The traffic Hubble observed for the device; omitted offline or when none was summarised.
	Traffic *Traffic `json:"traffic,omitempty"`
}

var (
	priorities = []v1alpha1.Priority{v1alpha1.PriorityImmediate, v1alpha1.PriorityOutOfCycle, v1alpha1.PriorityScheduled, v1alpha1.PriorityDefer}
	modes      = []v1alpha1.Mode{v1alpha1.ModeQuarantine, v1alpha1.ModeRestricted, v1alpha1.ModeStandard}
)

// Unknown stands for a value medseg has not recorded yet.
const Unknown = "Unknown"

// StatusInAudit is a DeviceLine's status for a device in an Audit zone.
const StatusInAudit = "In Audit"

func ts(t metav1.Time) string { return t.UTC().Format(time.RFC3339) }

// Build makes the report of one cluster.
func Build(in Input) *Report {
	r := BuildFleet([]SiteInput{{Input: in}}, in.Now)
	r.Source = in.Source
	return r
}

// BuildFleet makes one report of several sites (clusters). A site with a Name prefixes its
// devices' references and zones with it ("site:ns/name"); a site that could not be read is
// listed as unreachable.
func BuildFleet(sites []SiteInput, now time.Time) *Report {
	now = now.UTC()
	r := &Report{
		SchemaVersion: SchemaVersion,
		Title:         "Medical device segmentation report",
		GeneratedAt:   now.Format(time.RFC3339),
		Sites:         []Site{},
		Zones:         []Zone{},
		Devices:       []Device{},
	}
	var sources []string
	var policies []PolicySummary
	var ineffectives []Finding
	offline := len(sites) > 0
	for _, si := range sites {
		site := Site{Name: si.Name, Source: si.Input.Source, Reachable: si.Err == nil}
		if si.Err != nil {
			site.Error = si.Err.Error()
			r.Sites = append(r.Sites, site)
			sources = append(sources, si.Name+" (unreachable)")
			continue
		}
		offline = offline && si.Input.Offline
		sources = append(sources, strings.TrimPrefix(si.Name+": ", ": ")+si.Input.Source)
		devs, zones, pols := buildSite(si, now)
		r.Devices = append(r.Devices, devs...)
		r.Zones = append(r.Zones, zones...)
		policies = append(policies, pols...)
		ineffectives = append(ineffectives, ineffective(si.Name, si.Input.Approvals)...)
		site.Zones = len(pols)
		r.Sites = append(r.Sites, site)
	}
	r.Offline = offline
	r.Source = strings.Join(sources, "; ")
	sortDevices(r.Devices)
	for i := range r.Zones {
		finishZone(&r.Zones[i], r.Devices)
	}
	sort.SliceStable(r.Zones, func(i, j int) bool {
		a, b := r.Zones[i], r.Zones[j]
		if a.Site != b.Site {
			return a.Site < b.Site
		}
		if (a.Name == Ungoverned) != (b.Name == Ungoverned) {
			return b.Name == Ungoverned
		}
		return a.Name < b.Name
	})
	r.Summary = summarize(r.Devices, r.Zones, policies, ineffectives, now)
	for i := range r.Sites {
		countSite(&r.Sites[i], r.Devices)
	}
	return r
}

// byRef indexes the report's devices by reference (zones list theirs by reference).
func (r *Report) byRef() map[string]*Device {
	devs := make(map[string]*Device, len(r.Devices))
	for i := range r.Devices {
		devs[r.Devices[i].Ref] = &r.Devices[i]
	}
	return devs
}

// buildSite builds one site's devices, zones and policy lines.
func buildSite(si SiteInput, now time.Time) ([]Device, []Zone, []PolicySummary) {
	in := si.Input
	pols := append([]v1alpha1.SegmentPolicy(nil), in.Policies...)
	sort.Slice(pols, func(i, j int) bool { return pols[i].Name < pols[j].Name })
	byDevice := in.Approvals.ByDevice()
	devs := make([]Device, 0, len(in.Devices))
	for i := range in.Devices {
		d := &in.Devices[i]
		approvals := byDevice[v1alpha1.ObjectRef{Namespace: d.Namespace, Name: d.Name}]
		dev := buildDevice(d, pols, approvals, now, in.Offline)
		if si.Name != "" {
			dev.Site = si.Name
			dev.Ref = si.Name + ":" + dev.Ref
			if dev.Exception != nil {
				dev.Exception.Device = dev.Ref
			}
			for j := range dev.Grants {
				dev.Grants[j].Device = dev.Ref
			}
			if dev.Traffic != nil {
				dev.Traffic.Device = dev.Ref
			}
		}
		devs = append(devs, dev)
	}
	zones := map[string]*Zone{}
	var out []Zone
	for _, p := range pols {
		nets := append([]string{}, p.Spec.DeviceNetworks...)
		sort.Strings(nets)
		zones[p.Name] = &Zone{Site: si.Name, Name: p.Name, Enforcement: string(p.Spec.Enforcement), DeviceNetworks: nets}
	}
	perZone := map[string]int{}
	for _, d := range devs {
		perZone[d.Zone]++
		if _, ok := zones[d.Zone]; !ok {
			zones[d.Zone] = &Zone{Site: si.Name, Name: d.Zone, Enforcement: "-", DeviceNetworks: []string{}}
		}
	}
	for _, z := range zones {
		out = append(out, *z)
	}
	summaries := make([]PolicySummary, 0, len(pols))
	for _, p := range pols {
		summaries = append(summaries, policySummary(si.Name, &p, perZone[p.Name], in.Offline))
	}
	return devs, out, summaries
}

// policySummary is a policy's flatness and load line.
func policySummary(site string, p *v1alpha1.SegmentPolicy, devices int, offline bool) PolicySummary {
	ps := PolicySummary{Site: site, Name: p.Name, Enforcement: string(p.Spec.Enforcement), Devices: devices, Flatness: FlatnessNotEvaluated,
		Offenders: []string{}, Gateways: []string{}}
	if offline {
		ps.Flatness = FlatnessOffline
		return ps
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionIsolated); c != nil {
		ps.Flatness = "Flat"
		if c.Status == metav1.ConditionTrue {
			ps.Flatness = "Isolated"
		}
		if f := p.Status.Flatness; f != nil {
			reach, evaluated := f.ReachableWorkloads, f.EvaluatedWorkloads
			ps.ReachableWorkloads, ps.EvaluatedWorkloads = &reach, &evaluated
			ps.Offenders = append(ps.Offenders, f.Offenders...)
			if f.EvaluatedAt != nil {
				ps.EvaluatedAt = ts(*f.EvaluatedAt)
			}
		}
	}
	for _, g := range p.Status.Gateways {
		ps.Gateways = append(ps.Gateways, fmt.Sprintf("%s/%s: %s of %s entries (%d%%), %d devices", g.Namespace, g.Pod,
			discover.Thousands(int64(g.Entries)), discover.Thousands(int64(g.Capacity)), int64(g.Entries)*100/max(int64(g.Capacity), 1), g.Devices))
	}
	return ps
}

// rank orders values most urgent first: a value not in order sorts last.
func rank[T ~string](order []T, v string) int {
	for i, o := range order {
		if string(o) == v {
			return i
		}
	}
	return len(order)
}

// sortDevices orders devices by site, zone, priority (Immediate first), mode (Quarantine
// first), then reference.
func sortDevices(ds []Device) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := &ds[i], &ds[j]
		if a.Site != b.Site {
			return a.Site < b.Site
		}
		if a.Zone != b.Zone {
			if (a.Zone == Ungoverned) != (b.Zone == Ungoverned) {
				return b.Zone == Ungoverned
			}
			return a.Zone < b.Zone
		}
		if pa, pb := rank(priorities, a.Priority), rank(priorities, b.Priority); pa != pb {
			return pa < pb
		}
		if ma, mb := rank(modes, a.Mode), rank(modes, b.Mode); ma != mb {
			return ma < mb
		}
		return a.Ref < b.Ref
	})
}

// groupName is the diagram's grouping of a device: its type, else its care area.
func groupName(d *Device) string {
	switch {
	case d.DeviceType != "":
		return d.DeviceType
	case d.CareArea != "":
		return "care area " + d.CareArea
	}
	return "other devices"
}

// tierRank orders tiers most critical first.
var tierOrder = []string{"Essential", "Clinical", "Support"}

// finishZone fills a zone's devices (in the devices' order), mode counts and groups.
func finishZone(z *Zone, devs []Device) {
	z.Devices, z.Groups = []string{}, []DeviceGroup{}
	byMode := map[string]int{}
	type peerKey struct{ group, peer string }
	groups := map[string]*DeviceGroup{}
	groupModes := map[string]map[string]int{}
	conduits := map[peerKey]*ConduitGroup{}
	conduitDevs := map[peerKey]map[string]bool{}
	conduitPorts := map[peerKey]map[string]bool{}
	for i := range devs {
		d := &devs[i]
		if d.Zone != z.Name || d.Site != z.Site {
			continue
		}
		z.Devices = append(z.Devices, d.Ref)
		byMode[d.Mode]++
		gn := groupName(d)
		g := groups[gn]
		if g == nil {
			g = &DeviceGroup{Name: gn, Mode: d.Mode, Conduits: []ConduitGroup{}}
			groups[gn], groupModes[gn] = g, map[string]int{}
		}
		g.Devices++
		groupModes[gn][d.Mode]++
		if rank(modes, d.Mode) < rank(modes, g.Mode) {
			g.Mode = d.Mode
		}
		for _, c := range d.Flows {
			for _, n := range c.nodes {
				k := peerKey{gn, n}
				cg := conduits[k]
				if cg == nil {
					cg = &ConduitGroup{Peer: n, External: strings.HasPrefix(n, "external "), Tier: c.Tier}
					conduits[k], conduitDevs[k], conduitPorts[k] = cg, map[string]bool{}, map[string]bool{}
				}
				cg.Flows++
				switch {
				case c.Allowed:
					cg.Allowed++
				case c.Reason == Unknown:
					cg.Undecided++
				default:
					cg.Blocked++
				}
				if rank(tierOrder, c.Tier) < rank(tierOrder, cg.Tier) {
					cg.Tier = c.Tier
				}
				conduitDevs[k][d.Ref] = true
				conduitPorts[k][portOf(c)] = true
			}
		}
	}
	z.ByMode = modeCounts(byMode)
	for k, cg := range conduits {
		cg.Devices = len(conduitDevs[k])
		cg.Ports = sortedKeys(conduitPorts[k])
		groups[k.group].Conduits = append(groups[k.group].Conduits, *cg)
	}
	for gn, g := range groups {
		g.ByMode = modeCounts(groupModes[gn])
		sort.Slice(g.Conduits, func(i, j int) bool {
			a, b := g.Conduits[i], g.Conduits[j]
			if a.Flows != b.Flows {
				return a.Flows > b.Flows
			}
			return a.Peer < b.Peer
		})
		z.Groups = append(z.Groups, *g)
	}
	sort.Slice(z.Groups, func(i, j int) bool {
		a, b := z.Groups[i], z.Groups[j]
		if a.Devices != b.Devices {
			return a.Devices > b.Devices
		}
		return a.Name < b.Name
	})
}

// modeCounts lists counts by mode, strictest first, Unknown last when there are any.
func modeCounts(by map[string]int) []Count {
	out := []Count{}
	for _, m := range modes {
		out = append(out, Count{Name: string(m), Count: by[string(m)]})
	}
	if n := by[Unknown]; n > 0 {
		out = append(out, Count{Name: Unknown, Count: n})
	}
	return out
}

// summarize answers the first screen's questions from the devices.
func summarize(devs []Device, zones []Zone, policies []PolicySummary, ineffectives []Finding, now time.Time) Summary {
	s := Summary{Policies: policies, Exceptions: []Exception{}, Grants: []Grant{}, Traffic: []Traffic{}, Urgent: []DeviceLine{},
		Ending: []Ending{}, Audit: []AuditZone{}}
	if s.Policies == nil {
		s.Policies = []PolicySummary{}
	}
	var notSegmented []Finding
	byPriority, byMode := map[string]int{}, map[string]int{}
	audit := map[string]*AuditZone{}
	var auditOrder []string
	for i := range devs {
		d := &devs[i]
		s.Devices++
		switch {
		case d.Segmented:
			s.Segmented++
		case d.InAudit:
			s.InAudit++
			k := d.Site + "\x00" + d.Zone
			a := audit[k]
			if a == nil {
				a = &AuditZone{Site: d.Site, Policy: d.Zone}
				audit[k] = a
				auditOrder = append(auditOrder, k)
			}
			auditDevice(a, d)
		default:
			s.NotSegmented++
			notSegmented = append(notSegmented, Finding{Device: d.Ref, Reason: d.SegmentedReason, Detail: d.SegmentedDetail})
		}
		if !d.Commissioned {
			s.Onboarding++
		}
		byPriority[d.Priority]++
		byMode[d.Mode]++
		if d.Priority == string(v1alpha1.PriorityImmediate) || d.Priority == string(v1alpha1.PriorityOutOfCycle) {
			s.Urgent = append(s.Urgent, lineOf(d))
		}
		if e := d.Exception; e != nil {
			s.Exceptions = append(s.Exceptions, *e)
			if e.State == "Expires soon" {
				s.Ending = append(s.Ending, Ending{Kind: "SegmentException", Name: e.Name, Device: e.Device, Ends: e.ExpiresAt, What: "caps the mode at " + e.MaxMode})
			}
		}
		for _, g := range d.Grants {
			s.Grants = append(s.Grants, g)
			if ends, err := time.Parse(time.RFC3339, g.NotAfter); err == nil && g.State == "Open" && ends.Sub(now) <= Soon {
				s.Ending = append(s.Ending, Ending{Kind: "AccessGrant", Name: g.Name, Device: g.Device, Ends: g.NotAfter, What: "opens flow " + g.Flow})
			}
		}
		if t := d.Traffic; t != nil && (t.UndeclaredFlows > 0 || t.Drops > 0 || t.BypassConnections > 0) {
			s.Traffic = append(s.Traffic, *t)
		}
	}
	if s.Devices > 0 {
		s.SegmentedPercent = s.Segmented * 100 / s.Devices
	}
	for _, p := range priorities {
		s.ByPriority = append(s.ByPriority, Count{Name: string(p), Count: byPriority[string(p)]})
	}
	if n := byPriority[Unknown]; n > 0 {
		s.ByPriority = append(s.ByPriority, Count{Name: Unknown, Count: n})
	}
	s.ByMode = modeCounts(byMode)
	s.NotSegmentedByReason = groupFindings(notSegmented)
	s.IneffectiveApprovals = groupFindings(ineffectives)
	for _, k := range auditOrder {
		s.Audit = append(s.Audit, *audit[k])
	}
	for i := range s.Audit {
		for _, z := range zones {
			if z.Site == s.Audit[i].Site && z.Name == s.Audit[i].Policy {
				s.Audit[i].ByMode = z.ByMode
			}
		}
	}
	sortGrants(s.Grants)
	sort.SliceStable(s.Ending, func(i, j int) bool {
		if s.Ending[i].Ends != s.Ending[j].Ends {
			return s.Ending[i].Ends < s.Ending[j].Ends
		}
		return s.Ending[i].Name < s.Ending[j].Name
	})
	// Urgent: Immediate before OutOfCycle; then not segmented, in Audit, segmented; then mode.
	exposure := func(l DeviceLine) int {
		switch {
		case l.Segmented:
			return 2
		case l.Status == StatusInAudit:
			return 1
		}
		return 0
	}
	sort.SliceStable(s.Urgent, func(i, j int) bool {
		a, b := s.Urgent[i], s.Urgent[j]
		if pa, pb := rank(priorities, a.Priority), rank(priorities, b.Priority); pa != pb {
			return pa < pb
		}
		if ea, eb := exposure(a), exposure(b); ea != eb {
			return ea < eb
		}
		if ma, mb := rank(modes, a.Mode), rank(modes, b.Mode); ma != mb {
			return ma < mb
		}
		return a.Ref < b.Ref
	})
	return s
}

// auditDevice adds a device of an Audit zone to what Enforce would do there.
func auditDevice(a *AuditZone, d *Device) {
	a.Devices++
	blocked := 0
	for _, c := range d.Flows {
		if !c.Allowed {
			blocked++
		}
	}
	a.BlockedFlows += blocked
	if blocked > 0 {
		a.DevicesWithBlockedFlows++
	}
	if t := d.Traffic; t != nil && t.UndeclaredFlows > 0 {
		a.UndeclaredFlows += int64(t.UndeclaredFlows)
		a.UndeclaredConnections += t.UndeclaredConnections
		a.DevicesWithUndeclared++
	}
	if d.SegmentedReason == v1alpha1.ReasonSharedGateway {
		a.SharedGateway++
	}
}

// lineOf is a device's line in a first-screen list.
func lineOf(d *Device) DeviceLine {
	l := DeviceLine{Ref: d.Ref, Site: d.Site, Zone: d.Zone, Priority: d.Priority, Mode: d.Mode, Enforcement: d.Enforcement,
		Segmented: d.Segmented, Status: d.SegmentedReason, Deciding: d.Deciding}
	switch {
	case d.Segmented:
		l.Status = "Segmented"
	case d.InAudit:
		l.Status = StatusInAudit
	}
	return l
}

// groupFindings collapses findings by reason: the largest group first, each with its distinct
// details, most frequent first.
func groupFindings(fs []Finding) []FindingGroup {
	groups := map[string]*FindingGroup{}
	details := map[string]map[string]int{}
	for _, f := range fs {
		g := groups[f.Reason]
		if g == nil {
			g = &FindingGroup{Reason: f.Reason, Devices: []string{}, Details: []Detail{}}
			groups[f.Reason], details[f.Reason] = g, map[string]int{}
		}
		g.Count++
		g.Devices = append(g.Devices, f.Device)
		details[f.Reason][f.Detail]++
	}
	out := make([]FindingGroup, 0, len(groups))
	for reason, g := range groups {
		for text, n := range details[reason] {
			g.Details = append(g.Details, Detail{Text: text, Count: n})
		}
		sort.Slice(g.Details, func(i, j int) bool {
			if g.Details[i].Count != g.Details[j].Count {
				return g.Details[i].Count > g.Details[j].Count
			}
			return g.Details[i].Text < g.Details[j].Text
		})
		if len(g.Details) > MaxDetails {
			for _, d := range g.Details[MaxDetails:] {
				g.OtherDetails += d.Count
			}
			g.Details = g.Details[:MaxDetails]
		}
		sort.Strings(g.Devices)
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// countSite fills a site's counts from the fleet's devices.
func countSite(s *Site, devs []Device) {
	if !s.Reachable {
		return
	}
	for i := range devs {
		d := &devs[i]
		if d.Site != s.Name {
			continue
		}
		s.Devices++
		switch {
		case d.Segmented:
			s.Segmented++
		case d.InAudit:
			s.InAudit++
		default:
			s.NotSegmented++
		}
		switch d.Priority {
		case string(v1alpha1.PriorityImmediate):
			s.Immediate++
		case string(v1alpha1.PriorityOutOfCycle):
			s.OutOfCycle++
		}
	}
}

// Finding is a device (or approval) that is not as declared, and why.
type Finding struct {
	Device string
	Reason string
	Detail string
}

// ineffective lists the approvals in phase Ineffective, by device then name.
func ineffective(site string, a v1alpha1.Approvals) []Finding {
	out := []Finding{}
	ref := func(r v1alpha1.ObjectRef) string {
		if site != "" {
			return site + ":" + r.String()
		}
		return r.String()
	}
	for _, e := range a.Exceptions {
		if e.Status.Phase == v1alpha1.ApprovalIneffective {
			out = append(out, Finding{Device: ref(e.Spec.Device), Reason: e.Status.Reason, Detail: "SegmentException " + e.Name + ": " + e.Status.Message})
		}
	}
	for _, g := range a.Grants {
		if g.Status.Phase == v1alpha1.ApprovalIneffective {
			out = append(out, Finding{Device: ref(g.Spec.Device), Reason: g.Status.Reason, Detail: "AccessGrant " + g.Name + ": " + g.Status.Message})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Device != out[j].Device {
			return out[i].Device < out[j].Device
		}
		return out[i].Detail < out[j].Detail
	})
	return out
}

// grantsOf lists the device's grants that are open now or open within Soon.
func grantsOf(grants []v1alpha1.AccessGrant, policy string, now time.Time) []Grant {
	out := []Grant{}
	for _, g := range grants {
		state := ""
		switch {
		case g.Status.Phase == v1alpha1.ApprovalIneffective:
			continue
		case g.Spec.OpenAt(now):
			state = "Open"
		case now.Before(g.Spec.NotBefore.Time) && g.Spec.NotBefore.Sub(now) <= Soon:
			state = "Upcoming"
		default:
			continue
		}
		out = append(out, Grant{Policy: policy, Name: g.Name, Device: g.Spec.Device.String(), Flow: g.Spec.Flow, ApprovedBy: g.Spec.ApprovedBy, Ticket: g.Spec.Ticket,
			NotBefore: ts(g.Spec.NotBefore), NotAfter: ts(g.Spec.NotAfter), State: state})
	}
	sortGrants(out)
	return out
}

func sortGrants(out []Grant) {
	sort.Slice(out, func(i, j int) bool {
		if out[i].NotBefore != out[j].NotBefore {
			return out[i].NotBefore < out[j].NotBefore
		}
		return out[i].Name < out[j].Name
	})
}

func buildDevice(d *v1alpha1.MedicalDevice, pols []v1alpha1.SegmentPolicy, approvals v1alpha1.Approvals, now time.Time, offline bool) Device {
	st := d.Status
	out := Device{
		Ref: v1alpha1.Qualified(d.Namespace, d.Name), Namespace: d.Namespace, Name: d.Name,
		Manufacturer: d.Spec.Identity.Manufacturer, Model: d.Spec.Identity.Model, DeviceType: d.Spec.Identity.DeviceType,
		Firmware: d.Spec.Identity.FirmwareVersion, SerialNumber: d.Spec.Identity.SerialNumber, CareArea: d.Spec.Clinical.CareArea,
		SafetyImpact: string(d.Spec.Clinical.SafetyImpact), MissionImpact: string(d.Spec.Clinical.MissionImpact),
		Addresses: append([]string{}, d.Spec.Network.Addresses...),
		Zone:      Ungoverned, Enforcement: "-", Priority: Unknown, Mode: Unknown, SSVC: []string{},
		Flows: []Conduit{}, Grants: []Grant{}, ForeignPolicies: []string{}, History: []HistoryItem{},
	}
	sort.Strings(out.Addresses)
	if r := st.Risk; r != nil {
		out.Priority = orUnknown(string(r.Priority))
		out.Deciding = r.DecidingVulnerability
		out.RiskSummary = r.Summary
		if lf := r.LastFeed; lf != nil {
			out.LastFeed = fmt.Sprintf("%s (%s) at %s", lf.Feed, lf.Source, ts(lf.At))
		}
		for _, in := range []struct {
			name string
			v    *v1alpha1.SSVCInput
		}{{"Exploitation", r.Exploitation}, {"Exposure", r.Exposure}, {"Automatable", r.Automatable}, {"Human impact", r.HumanImpact}} {
			if in.v != nil {
				out.SSVC = append(out.SSVC, in.name+" = "+in.v.String())
			}
		}
	}
	seg := st.Segmentation
	// The governing policy (the zone), found once: its grant rules.
	var governing *v1alpha1.SegmentPolicy
	if seg != nil && seg.Policy != "" {
		out.Zone = seg.Policy
		for i := range pols {
			if pols[i].Name == seg.Policy {
				governing = &pols[i]
			}
		}
	}
	if seg != nil {
		out.Mode = orUnknown(string(seg.Mode))
		out.ModeReason = seg.ModeReason
		if e := seg.ActiveException; e != nil {
			out.Exception = &Exception{Policy: seg.Policy, Name: e.Name, Device: out.Ref, MaxMode: string(e.MaxMode), ApprovedBy: e.ApprovedBy,
				ExpiresAt: ts(e.ExpiresAt), State: "Active"}
			if e.ExpiresAt.Sub(now) <= Soon {
				out.Exception.State = "Expires soon"
			}
			for _, x := range approvals.Exceptions {
				if x.Name == e.Name {
					out.Exception.Justification, out.Exception.Ticket = x.Spec.Justification, x.Spec.Ticket
				}
			}
		}
	}
	if seg != nil && seg.Policy != "" {
		out.Grants = grantsOf(approvals.Grants, seg.Policy, now)
	}
	// Segmented: from the condition medseg wrote; offline, a governed device in Enforce is
	// what would be enforced.
	switch c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionSegmented); {
	case c != nil:
		out.Segmented = c.Status == metav1.ConditionTrue
		out.SegmentedReason, out.SegmentedDetail = c.Reason, c.Message
	case !offline:
		out.SegmentedReason, out.SegmentedDetail = "NotReconciled", "medseg has not recorded a decision for this device"
	case seg != nil && seg.Enforcement == v1alpha1.EnforcementEnforce:
		out.Segmented, out.SegmentedReason = true, "Planned"
		out.SegmentedDetail = "computed offline: this is what medseg would enforce"
	case seg != nil && seg.Policy != "" && len(seg.SharedWith) > 0:
		out.SegmentedReason = v1alpha1.ReasonSharedGateway
		out.SegmentedDetail = fmt.Sprintf("SegmentPolicy %s is in Audit; its gateway pods are shared with enforced devices %s: medseg would keep its declared flows open on them",
			seg.Policy, strings.Join(seg.SharedWith, ", "))
	case seg != nil && seg.Policy != "":
		out.SegmentedReason = v1alpha1.ReasonAuditOnly
		out.SegmentedDetail = fmt.Sprintf("SegmentPolicy %s is in Audit: nothing would be enforced", seg.Policy)
	default:
		out.SegmentedReason = v1alpha1.ReasonNoSegmentPolicy
		out.SegmentedDetail = "no SegmentPolicy selects this device: it is not governed"
	}
	if seg != nil && seg.Policy != "" {
		out.Enforcement = orUnknown(string(seg.Enforcement))
		// Audit is a rollout stage, not drift: a governed device in Audit that is unenforced
		// only because of it.
		out.InAudit = !out.Segmented && seg.Enforcement == v1alpha1.EnforcementAudit &&
			(out.SegmentedReason == v1alpha1.ReasonAuditOnly || out.SegmentedReason == v1alpha1.ReasonSharedGateway)
	}
	cs := d.Spec.CommissioningState()
	out.Commissioned = cs.Commissioned
	out.Commissioning = "Not commissioned"
	switch c := d.Spec.Commissioning; {
	case cs.Commissioned:
		out.Commissioning = fmt.Sprintf("Commissioned by %s (ticket %s, %s)", c.ApprovedBy, c.Ticket, ts(c.ApprovedAt))
	case c != nil:
		out.Commissioning = fmt.Sprintf("Flows changed after %s commissioned them (ticket %s, %s): in onboarding until commissioned again", c.ApprovedBy, c.Ticket, ts(c.ApprovedAt))
	}
	blocked := map[string]v1alpha1.BlockedFlow{}
	allowed := map[string]bool{}
	if seg != nil {
		for _, b := range seg.BlockedFlows {
			blocked[b.Name] = b
		}
		for _, a := range seg.AllowedFlows {
			allowed[a] = true
		}
	}
	flows := append([]v1alpha1.Flow(nil), d.Spec.Flows...)
	sort.SliceStable(flows, func(i, j int) bool { return flows[i].Name < flows[j].Name })
	for _, f := range flows {
		c := conduit(f, allowed[f.Name], blocked[f.Name], seg != nil)
		for _, p := range f.Peers {
			c.nodes = append(c.nodes, peerNode(p, d.Namespace))
		}
		if f.Access != v1alpha1.AccessGranted && render.NeedsGrant(governing, f) {
			c.Access = "Granted (external peer)"
		}
		out.Flows = append(out.Flows, c)
	}
	if dr := st.Drift; dr != nil {
		for _, f := range dr.ForeignPolicies {
			verdict := "listed"
			if f.Widens {
				verdict = "WIDENS ACCESS"
			}
			out.ForeignPolicies = append(out.ForeignPolicies, fmt.Sprintf("%s %s %s: %s", verdict, f.Kind, v1alpha1.Qualified(f.Namespace, f.Name), f.Reason))
		}
	}
	for _, h := range st.History {
		out.History = append(out.History, HistoryItem{Time: ts(h.Time), Priority: string(h.Priority), Mode: string(h.Mode), Reason: h.Reason})
	}
	if t := st.Traffic; t != nil && !offline {
		out.Traffic = &Traffic{Device: out.Ref, Enforcement: Unknown, Window: t.Window.Duration.String(),
			UndeclaredFlows: t.UndeclaredFlows, UndeclaredConnections: t.UndeclaredConnections, Undeclared: []string{},
			Drops: t.Drops, BypassConnections: t.BypassConnections}
		if seg != nil && seg.Enforcement != "" {
			out.Traffic.Enforcement = string(seg.Enforcement)
		}
		for _, f := range t.Undeclared {
			out.Traffic.Undeclared = append(out.Traffic.Undeclared, discover.FlowText(f))
		}
	}
	return out
}

func conduit(f v1alpha1.Flow, allowed bool, b v1alpha1.BlockedFlow, decided bool) Conduit {
	proto := string(f.Protocol)
	if proto == "" {
		proto = string(v1alpha1.ProtocolTCP)
	}
	access := string(f.Access)
	if access == "" {
		access = string(v1alpha1.AccessStanding)
	}
	c := Conduit{Name: f.Name, Direction: string(f.Direction), Tier: string(f.Tier), Protocol: proto, Access: access,
		Allowed: allowed, Peers: []string{}, Description: f.Description}
	if f.Direction == v1alpha1.DirectionFromDevice {
		c.Ports = fmt.Sprintf("device → gateway:%d → peers:%d", f.GatewayPort, f.PeerPort)
	} else {
		c.Ports = fmt.Sprintf("peers → gateway:%d → device:%d", f.GatewayPort, f.DevicePort)
	}
	for _, p := range f.Peers {
		c.Peers = append(c.Peers, PeerLabel(p))
		if p.IsExternal() {
			c.External = true
		}
	}
	switch {
	case allowed:
	case !decided:
		c.Reason, c.Detail = Unknown, "no decision recorded"
	default:
		c.Reason, c.Detail = string(b.Reason), b.Message
	}
	return c
}

// PeerLabel names a peer for people: "external 203.0.113.0/28" or "pods app=x in namespaces y".
func PeerLabel(p v1alpha1.Peer) string {
	if p.IsExternal() {
		return "external " + p.CIDR
	}
	ns := "own namespace"
	if p.NamespaceSelector != nil {
		ns = "namespaces " + selector(p.NamespaceSelector)
	}
	pods := "all pods"
	if p.PodSelector != nil {
		pods = "pods " + selector(p.PodSelector)
	}
	return pods + " in " + ns
}

// peerNode is a peer's short name in the diagram: the same peer of two devices is one node,
// and a pod selector alone means the device's own namespace.
func peerNode(p v1alpha1.Peer, ns string) string {
	if p.IsExternal() {
		return "external " + p.CIDR
	}
	if p.NamespaceSelector != nil {
		ns = selector(p.NamespaceSelector)
		if l := p.NamespaceSelector.MatchLabels; len(l) == 1 && len(p.NamespaceSelector.MatchExpressions) == 0 && l["kubernetes.io/metadata.name"] != "" {
			ns = l["kubernetes.io/metadata.name"]
		} else if ns == "(all)" {
			ns = "every namespace"
		} else {
			ns = "namespaces " + ns
		}
	}
	pods := "all pods"
	if p.PodSelector != nil {
		pods = selector(p.PodSelector)
		if pods == "(all)" {
			pods = "all pods"
		}
	}
	return ns + ": " + pods
}

func selector(s *metav1.LabelSelector) string {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return "(invalid selector)"
	}
	if sel.Empty() {
		return "(all)"
	}
	return sel.String()
}

func orUnknown(s string) string {
	if strings.TrimSpace(s) == "" {
		return Unknown
	}
	return s
}

// JSON writes the report as indented JSON.
func JSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// Write writes the report in a format: html, md or json.
func Write(w io.Writer, r *Report, format string) error {
	switch format {
	case "html":
		return HTML(w, r)
	case "md", "markdown":
		return Markdown(w, r)
	case "json":
		return JSON(w, r)
	}
	return fmt.Errorf("unknown output format %q: use html, md or json", format)
}
