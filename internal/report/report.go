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

// Input is what a report is built from: devices and policies with their status.
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

// Soon is how far ahead the summary looks for exceptions and grants that end or start.
const Soon = 7 * 24 * time.Hour

// Report is the report's content; its JSON form is `report -o json`.
type Report struct {
	Title       string   `json:"title"`
	GeneratedAt string   `json:"generatedAt"`
	Source      string   `json:"source"`
	Offline     bool     `json:"offline"`
	Summary     Summary  `json:"summary"`
	Zones       []Zone   `json:"zones"`
	Devices     []Device `json:"devices"`
}

// Count is a named count.
type Count struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// Summary is the first page.
type Summary struct {
	Devices          int             `json:"devices"`
	Segmented        int             `json:"segmented"`
	SegmentedPercent int             `json:"segmentedPercent"`
	Onboarding       int             `json:"onboarding"`
	ByPriority       []Count         `json:"byPriority"`
	ByMode           []Count         `json:"byMode"`
	Policies         []PolicySummary `json:"policies"`
	OpenDrift        []Finding       `json:"openDrift"`
	Exceptions       []Exception     `json:"exceptions"`
	Grants           []Grant         `json:"grants"`
	// IneffectiveApprovals are the SegmentExceptions and AccessGrants in phase Ineffective:
	// Device is the device they name, Reason the status reason, Detail names the approval and
	// says why.
	IneffectiveApprovals []Finding `json:"ineffectiveApprovals"`
	// Traffic lists the devices whose observed traffic (Hubble) has flows their declared flows
	// do not cover, drops, or connections that bypassed their gateway.
	Traffic []Traffic `json:"traffic"`
}

// Traffic is a device's observed traffic, as the operator summarised it from Hubble.
type Traffic struct {
	Device      string `json:"device"`
	Enforcement string `json:"enforcement"`
	Window      string `json:"window"`
	// UndeclaredFlows are observed flows the device's flows do not cover: Enforce drops them.
	UndeclaredFlows       int32    `json:"undeclaredFlows"`
	UndeclaredConnections int64    `json:"undeclaredConnections"`
	Undeclared            []string `json:"undeclared"`
	Drops                 int64    `json:"drops"`
	BypassConnections     int64    `json:"bypassConnections"`
}

// PolicySummary is one SegmentPolicy's line in the summary.
type PolicySummary struct {
	Name        string `json:"name"`
	Enforcement string `json:"enforcement"`
	Devices     int    `json:"devices"`
	// Flatness is Isolated, Flat or Unknown (offline, or not yet audited).
	Flatness           string   `json:"flatness"`
	ReachableWorkloads int32    `json:"reachableWorkloads"`
	Offenders          []string `json:"offenders"`
	// Gateways are the most loaded gateway pods of its devices: estimated policy map entries
	// against Cilium's per-endpoint map (live only).
	Gateways []string `json:"gateways"`
}

// Finding is a device that is not segmented as declared, and why.
type Finding struct {
	Device string `json:"device"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// Exception is a clinician-approved cap on a device's mode (a SegmentException).
type Exception struct {
	Policy        string `json:"policy"`
	Ticket        string `json:"ticket"`
	Name          string `json:"name"`
	Device        string `json:"device"`
	MaxMode       string `json:"maxMode"`
	ApprovedBy    string `json:"approvedBy"`
	Justification string `json:"justification"`
	ExpiresAt     string `json:"expiresAt"`
	// State is Active, or "Expires soon" within Soon.
	State string `json:"state"`
}

// Grant is a time-boxed vendor access grant (an AccessGrant).
type Grant struct {
	Policy     string `json:"policy"`
	Name       string `json:"name"`
	Device     string `json:"device"`
	Flow       string `json:"flow"`
	ApprovedBy string `json:"approvedBy"`
	Ticket     string `json:"ticket"`
	NotBefore  string `json:"notBefore"`
	NotAfter   string `json:"notAfter"`
	// State is Open or Upcoming (opens within Soon).
	State string `json:"state"`
}

// Zone is a SegmentPolicy, or "(ungoverned)" for devices no policy governs.
type Zone struct {
	Name           string   `json:"name"`
	Enforcement    string   `json:"enforcement"`
	DeviceNetworks []string `json:"deviceNetworks"`
	Devices        []string `json:"devices"`
}

// Ungoverned names the zone of devices no SegmentPolicy governs.
const Ungoverned = "(ungoverned)"

// Conduit is one declared flow of a device, through its gateway.
type Conduit struct {
	Name      string   `json:"name"`
	Direction string   `json:"direction"`
	Tier      string   `json:"tier"`
	Protocol  string   `json:"protocol"`
	Ports     string   `json:"ports"`
	Peers     []string `json:"peers"`
	External  bool     `json:"external"`
	Access    string   `json:"access"`
	Allowed   bool     `json:"allowed"`
	// Reason is why a blocked flow is blocked (Mode, Ceiling, Grant); Detail says more.
	Reason      string `json:"reason,omitempty"`
	Detail      string `json:"detail,omitempty"`
	Description string `json:"description,omitempty"`
	// nodes name the peers as the diagram draws them: in-cluster peers with their namespace
	// resolved ("icu: app=pump-server"), external ones as "external CIDR".
	nodes []string
}

// HistoryItem is one priority or mode change.
type HistoryItem struct {
	Time     string `json:"time"`
	Priority string `json:"priority"`
	Mode     string `json:"mode"`
	Reason   string `json:"reason"`
}

// Device is one device's section.
type Device struct {
	Ref             string        `json:"ref"`
	Namespace       string        `json:"namespace"`
	Name            string        `json:"name"`
	Manufacturer    string        `json:"manufacturer"`
	Model           string        `json:"model"`
	DeviceType      string        `json:"deviceType,omitempty"`
	Firmware        string        `json:"firmwareVersion,omitempty"`
	SerialNumber    string        `json:"serialNumber,omitempty"`
	CareArea        string        `json:"careArea,omitempty"`
	SafetyImpact    string        `json:"safetyImpact"`
	MissionImpact   string        `json:"missionImpact"`
	Addresses       []string      `json:"addresses"`
	Zone            string        `json:"zone"`
	Priority        string        `json:"priority"`
	Deciding        string        `json:"decidingVulnerability,omitempty"`
	SSVC            []string      `json:"ssvc"`
	RiskSummary     string        `json:"riskSummary,omitempty"`
	LastFeed        string        `json:"lastFeed,omitempty"`
	Mode            string        `json:"mode"`
	ModeReason      string        `json:"modeReason,omitempty"`
	Segmented       bool          `json:"segmented"`
	SegmentedReason string        `json:"segmentedReason"`
	SegmentedDetail string        `json:"segmentedDetail,omitempty"`
	Commissioned    bool          `json:"commissioned"`
	Commissioning   string        `json:"commissioning"`
	Flows           []Conduit     `json:"flows"`
	Exception       *Exception    `json:"exception,omitempty"`
	Grants          []Grant       `json:"grants"`
	ForeignPolicies []string      `json:"foreignPolicies"`
	History         []HistoryItem `json:"history"`
	Traffic         *Traffic      `json:"traffic,omitempty"`
}

var (
	priorities = []v1alpha1.Priority{v1alpha1.PriorityImmediate, v1alpha1.PriorityOutOfCycle, v1alpha1.PriorityScheduled, v1alpha1.PriorityDefer}
	modes      = []v1alpha1.Mode{v1alpha1.ModeQuarantine, v1alpha1.ModeRestricted, v1alpha1.ModeStandard}
)

// Unknown stands for a value medseg has not recorded yet.
const Unknown = "Unknown"

func ts(t metav1.Time) string { return t.UTC().Format(time.RFC3339) }

// Build makes the report.
func Build(in Input) *Report {
	now := in.Now.UTC()
	r := &Report{
		Title:       "Medical device segmentation report",
		GeneratedAt: now.Format(time.RFC3339),
		Source:      in.Source,
		Offline:     in.Offline,
		Zones:       []Zone{},
		Devices:     []Device{},
	}
	devs := append([]v1alpha1.MedicalDevice(nil), in.Devices...)
	sort.Slice(devs, func(i, j int) bool {
		return v1alpha1.Qualified(devs[i].Namespace, devs[i].Name) < v1alpha1.Qualified(devs[j].Namespace, devs[j].Name)
	})
	pols := append([]v1alpha1.SegmentPolicy(nil), in.Policies...)
	sort.Slice(pols, func(i, j int) bool { return pols[i].Name < pols[j].Name })

	zones := map[string]*Zone{}
	for _, p := range pols {
		nets := append([]string{}, p.Spec.DeviceNetworks...)
		sort.Strings(nets)
		zones[p.Name] = &Zone{Name: p.Name, Enforcement: string(p.Spec.Enforcement), DeviceNetworks: nets, Devices: []string{}}
	}
	s := &r.Summary
	s.Policies, s.OpenDrift, s.Exceptions, s.Grants, s.Traffic = []PolicySummary{}, []Finding{}, []Exception{}, []Grant{}, []Traffic{}
	s.IneffectiveApprovals = ineffective(in.Approvals)
	byDevice := in.Approvals.ByDevice()
	byPriority, byMode := map[string]int{}, map[string]int{}
	for i := range devs {
		approvals := byDevice[v1alpha1.ObjectRef{Namespace: devs[i].Namespace, Name: devs[i].Name}]
		d := buildDevice(&devs[i], pols, approvals, now, in.Offline)
		r.Devices = append(r.Devices, d)
		s.Devices++
		if d.Segmented {
			s.Segmented++
		} else {
			s.OpenDrift = append(s.OpenDrift, Finding{Device: d.Ref, Reason: d.SegmentedReason, Detail: d.SegmentedDetail})
		}
		if !d.Commissioned {
			s.Onboarding++
		}
		byPriority[d.Priority]++
		byMode[d.Mode]++
		z, ok := zones[d.Zone]
		if !ok {
			z = &Zone{Name: d.Zone, Enforcement: "-", DeviceNetworks: []string{}, Devices: []string{}}
			zones[d.Zone] = z
		}
		z.Devices = append(z.Devices, d.Ref)
		if d.Exception != nil {
			s.Exceptions = append(s.Exceptions, *d.Exception)
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
	for _, m := range modes {
		s.ByMode = append(s.ByMode, Count{Name: string(m), Count: byMode[string(m)]})
	}
	if n := byMode[Unknown]; n > 0 {
		s.ByMode = append(s.ByMode, Count{Name: Unknown, Count: n})
	}
	for _, p := range pols {
		ps := PolicySummary{Name: p.Name, Enforcement: string(p.Spec.Enforcement), Devices: len(zones[p.Name].Devices), Flatness: Unknown,
			Offenders: []string{}}
		if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionIsolated); c != nil && !in.Offline {
			ps.Flatness = "Flat"
			if c.Status == metav1.ConditionTrue {
				ps.Flatness = "Isolated"
			}
		}
		if f := p.Status.Flatness; f != nil && !in.Offline {
			ps.ReachableWorkloads = f.ReachableWorkloads
			ps.Offenders = append(ps.Offenders, f.Offenders...)
		}
		ps.Gateways = []string{}
		if !in.Offline {
			for _, g := range p.Status.Gateways {
				ps.Gateways = append(ps.Gateways, fmt.Sprintf("%s/%s: %s of %s entries (%d%%), %d devices", g.Namespace, g.Pod,
					discover.Thousands(int64(g.Entries)), discover.Thousands(int64(g.Capacity)), int64(g.Entries)*100/max(int64(g.Capacity), 1), g.Devices))
			}
		}
		s.Policies = append(s.Policies, ps)
	}
	for _, d := range r.Devices {
		s.Grants = append(s.Grants, d.Grants...)
	}
	sortGrants(s.Grants)
	names := make([]string, 0, len(zones))
	for n := range zones {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r.Zones = append(r.Zones, *zones[n])
	}
	return r
}

// ineffective lists the approvals in phase Ineffective, by device then name.
func ineffective(a v1alpha1.Approvals) []Finding {
	out := []Finding{}
	for _, e := range a.Exceptions {
		if e.Status.Phase == v1alpha1.ApprovalIneffective {
			out = append(out, Finding{Device: e.Spec.Device.String(), Reason: e.Status.Reason, Detail: "SegmentException " + e.Name + ": " + e.Status.Message})
		}
	}
	for _, g := range a.Grants {
		if g.Status.Phase == v1alpha1.ApprovalIneffective {
			out = append(out, Finding{Device: g.Spec.Device.String(), Reason: g.Status.Reason, Detail: "AccessGrant " + g.Name + ": " + g.Status.Message})
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
		Zone:      Ungoverned, Priority: Unknown, Mode: Unknown, SSVC: []string{},
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
