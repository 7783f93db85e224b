package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/discover"
)

// DeviceAudit is one device's row of `audit -o json`.
type DeviceAudit struct {
	Namespace       string `json:"namespace"`
	Name            string `json:"name"`
	Policy          string `json:"policy"`
	Priority        string `json:"priority"`
	Mode            string `json:"mode"`
	Segmented       bool   `json:"segmented"`
	Reason          string `json:"reason"`
	DriftRepairs    int64  `json:"driftRepairs"`
	WideningForeign int    `json:"wideningForeignPolicies"`
	// Traffic is what Hubble showed (when the operator follows Relay): the observed flows the
	// device's flows do not cover, which Enforce would drop, and the drops in the window.
	Traffic *TrafficAudit `json:"traffic,omitempty"`
}

// TrafficAudit is a device's observed traffic in `audit -o json`.
type TrafficAudit struct {
	UndeclaredFlows       int32    `json:"undeclaredFlows"`
	UndeclaredConnections int64    `json:"undeclaredConnections"`
	Top                   []string `json:"top,omitempty"`
	Drops                 int64    `json:"drops"`
	BypassConnections     int64    `json:"bypassConnections"`
}

// PolicyAudit is one SegmentPolicy's row of `audit -o json`.
type PolicyAudit struct {
	Name               string   `json:"name"`
	Enforcement        string   `json:"enforcement"`
	Devices            int32    `json:"devices"`
	Isolated           bool     `json:"isolated"`
	ReachableWorkloads int32    `json:"reachableWorkloads"`
	Offenders          []string `json:"offenders"`
}

// ApprovalAudit is one SegmentException's or AccessGrant's row of `audit -o json`.
type ApprovalAudit struct {
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Device     string `json:"device"`
	Flow       string `json:"flow,omitempty"`
	MaxMode    string `json:"maxMode,omitempty"`
	Phase      string `json:"phase"`
	Reason     string `json:"reason"`
	Message    string `json:"message"`
	ApprovedBy string `json:"approvedBy"`
	Ticket     string `json:"ticket"`
	NotAfter   string `json:"notAfter"`
}

// AuditReport is `audit -o json`.
type AuditReport struct {
	Devices  []DeviceAudit `json:"devices"`
	Policies []PolicyAudit `json:"policies"`
	// Approvals are the SegmentExceptions and AccessGrants that have not expired, by phase
	// (Ineffective first), then device.
	Approvals []ApprovalAudit `json:"approvals"`
	// Passed is false when any device is not segmented or any policy's networks are flat.
	Passed bool `json:"passed"`
}

// BuildAudit summarises the status medseg wrote.
func BuildAudit(devs []v1alpha1.MedicalDevice, pols []v1alpha1.SegmentPolicy, approvals v1alpha1.Approvals) AuditReport {
	r := AuditReport{Passed: true, Devices: []DeviceAudit{}, Policies: []PolicyAudit{}, Approvals: auditApprovals(approvals)}
	sort.Slice(devs, func(i, j int) bool {
		return v1alpha1.Qualified(devs[i].Namespace, devs[i].Name) < v1alpha1.Qualified(devs[j].Namespace, devs[j].Name)
	})
	for _, d := range devs {
		a := DeviceAudit{Namespace: d.Namespace, Name: d.Name, Reason: "NotReconciled"}
		if d.Status.Risk != nil {
			a.Priority = string(d.Status.Risk.Priority)
		}
		if s := d.Status.Segmentation; s != nil {
			a.Policy, a.Mode = s.Policy, string(s.Mode)
		}
		if c := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ConditionSegmented); c != nil {
			a.Segmented, a.Reason = c.Status == metav1.ConditionTrue, c.Reason
		}
		if dr := d.Status.Drift; dr != nil {
			a.DriftRepairs = dr.Repairs
			for _, f := range dr.ForeignPolicies {
				if f.Widens {
					a.WideningForeign++
				}
			}
		}
		if t := d.Status.Traffic; t != nil {
			a.Traffic = &TrafficAudit{UndeclaredFlows: t.UndeclaredFlows, UndeclaredConnections: t.UndeclaredConnections,
				Drops: t.Drops, BypassConnections: t.BypassConnections}
			for _, f := range t.Undeclared {
				a.Traffic.Top = append(a.Traffic.Top, discover.FlowText(f))
			}
		}
		r.Passed = r.Passed && a.Segmented
		r.Devices = append(r.Devices, a)
	}
	sort.Slice(pols, func(i, j int) bool { return pols[i].Name < pols[j].Name })
	for _, p := range pols {
		a := PolicyAudit{Name: p.Name, Enforcement: string(p.Spec.Enforcement), Devices: p.Status.Devices, Offenders: []string{}}
		if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionIsolated); c != nil {
			a.Isolated = c.Status == metav1.ConditionTrue
		}
		if f := p.Status.Flatness; f != nil {
			a.ReachableWorkloads = f.ReachableWorkloads
			a.Offenders = append(a.Offenders, f.Offenders...)
		}
		r.Passed = r.Passed && a.Isolated
		r.Policies = append(r.Policies, a)
	}
	return r
}

// printAudit prints the audit: for table and wide, the devices' and the policies' tables and
// the verdict; otherwise the AuditReport in the requested format.
func printAudit(w io.Writer, out *output, r AuditReport) error {
	if !out.is("table") && !out.is("wide") {
		names := make([]string, 0, len(r.Devices))
		for _, d := range r.Devices {
			names = append(names, v1alpha1.Qualified(d.Namespace, d.Name))
		}
		return out.printRows(w, nil, r, names)
	}
	// The observed-traffic columns appear when the operator follows Hubble (some device has
	// status.traffic).
	traffic := false
	for _, d := range r.Devices {
		traffic = traffic || d.Traffic != nil
	}
	devs := make([][]any, 0, len(r.Devices))
	for _, d := range r.Devices {
		row := []any{d.Namespace, d.Name, dash(d.Policy), dash(d.Priority), dash(d.Mode), fmt.Sprint(d.Segmented), d.Reason, fmt.Sprint(d.DriftRepairs), fmt.Sprint(d.WideningForeign)}
		if traffic {
			undeclared, drops := "-", "-"
			if t := d.Traffic; t != nil {
				undeclared, drops = fmt.Sprint(t.UndeclaredFlows), discover.Thousands(t.Drops)
			}
			row = append(row, undeclared, drops)
		}
		devs = append(devs, row)
	}
	header := []string{"NAMESPACE", "DEVICE", "POLICY", "PRIORITY", "MODE", "SEGMENTED", "REASON", "REPAIRS", "WIDENING"}
	if traffic {
		header = append(header, "UNDECLARED", "DROPS")
	}
	if err := out.printRows(w, table(header, devs), nil, nil); err != nil {
		return err
	}
	if traffic {
		writeAuditTraffic(w, r.Devices)
	}
	fmt.Fprintln(w)
	pols := make([][]any, 0, len(r.Policies))
	for _, p := range r.Policies {
		pols = append(pols, []any{p.Name, p.Enforcement, fmt.Sprint(p.Devices), fmt.Sprint(p.Isolated), fmt.Sprint(p.ReachableWorkloads), dash(strings.Join(p.Offenders, "; "))})
	}
	if err := out.printRows(w, table([]string{"SEGMENTPOLICY", "ENFORCEMENT", "DEVICES", "ISOLATED", "REACHABLE", "OFFENDERS"}, pols), nil, nil); err != nil {
		return err
	}
	if len(r.Approvals) > 0 {
		fmt.Fprintln(w)
		rows := make([][]any, 0, len(r.Approvals))
		for _, a := range r.Approvals {
			rows = append(rows, []any{a.Kind, a.Name, a.Device, dash(a.Flow + a.MaxMode), a.Phase, a.Reason, a.NotAfter})
		}
		if err := out.printRows(w, table([]string{"APPROVAL", "NAME", "DEVICE", "FLOW/MAXMODE", "PHASE", "REASON", "NOT-AFTER"}, rows), nil, nil); err != nil {
			return err
		}
	}
	if r.Passed {
		fmt.Fprintln(w, "\nPASS: every device is segmented and no device network is reachable by ordinary workloads")
	} else {
		fmt.Fprintln(w, "\nFAIL: some devices are not segmented or some device networks are flat (see above)")
	}
	return nil
}

// writeAuditTraffic lists, for the change board, what Enforce would drop of each device's observed
// traffic, and the traffic that reached devices without their gateways.
func writeAuditTraffic(w io.Writer, devs []DeviceAudit) {
	header := false
	for _, d := range devs {
		t := d.Traffic
		if t == nil || (t.UndeclaredFlows == 0 && t.BypassConnections == 0) {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nObserved traffic the devices' flows do not cover (Enforce would drop it):")
			header = true
		}
		q := v1alpha1.Qualified(d.Namespace, d.Name)
		if t.UndeclaredFlows > 0 {
			fmt.Fprintf(w, "  %s: %d flows, %s connections\n", q, t.UndeclaredFlows, discover.Thousands(t.UndeclaredConnections))
			for _, f := range t.Top {
				fmt.Fprintf(w, "    %s\n", f)
			}
		}
		if t.BypassConnections > 0 {
			fmt.Fprintf(w, "  %s: %s connections reached it without its gateway (the network is flat)\n", q, discover.Thousands(t.BypassConnections))
		}
	}
}

// auditApprovals lists the approvals that have not expired: Ineffective first, then Active,
// then Pending; by device and name within a phase.
func auditApprovals(a v1alpha1.Approvals) []ApprovalAudit {
	out := []ApprovalAudit{}
	add := func(kind, name string, ap *v1alpha1.Approval, st v1alpha1.ApprovalStatus, flow, maxMode string) {
		if st.Phase == v1alpha1.ApprovalExpired {
			return
		}
		out = append(out, ApprovalAudit{Kind: kind, Name: name, Device: ap.Device.String(), Flow: flow, MaxMode: maxMode,
			Phase: orNotReconciled(string(st.Phase)), Reason: st.Reason, Message: st.Message, ApprovedBy: ap.ApprovedBy, Ticket: ap.Ticket,
			NotAfter: ap.NotAfter.UTC().Format(time.RFC3339)})
	}
	for i := range a.Exceptions {
		e := &a.Exceptions[i]
		add("SegmentException", e.Name, &e.Spec.Approval, e.Status, "", string(e.Spec.MaxMode))
	}
	for i := range a.Grants {
		g := &a.Grants[i]
		add("AccessGrant", g.Name, &g.Spec.Approval, g.Status, g.Spec.Flow, "")
	}
	rank := map[string]int{string(v1alpha1.ApprovalIneffective): 0, "NotReconciled": 1, string(v1alpha1.ApprovalActive): 2, string(v1alpha1.ApprovalPending): 3}
	sort.SliceStable(out, func(i, j int) bool {
		if rank[out[i].Phase] != rank[out[j].Phase] {
			return rank[out[i].Phase] < rank[out[j].Phase]
		}
		if out[i].Device != out[j].Device {
			return out[i].Device < out[j].Device
		}
		return out[i].Kind+out[i].Name < out[j].Kind+out[j].Name
	})
	return out
}

func orNotReconciled(phase string) string {
	if phase == "" {
		return "NotReconciled"
	}
	return phase
}

// ReadAudit reads devices (of one namespace, or all when ns is "") and every policy from the
// cluster and builds the audit.
func ReadAudit(ctx context.Context, c client.Client, ns string) (AuditReport, error) {
	var devs v1alpha1.MedicalDeviceList
	if err := c.List(ctx, &devs, client.InNamespace(ns)); err != nil {
		return AuditReport{}, fmt.Errorf("listing MedicalDevices: %w", err)
	}
	var pols v1alpha1.SegmentPolicyList
	if err := c.List(ctx, &pols); err != nil {
		return AuditReport{}, fmt.Errorf("listing SegmentPolicies: %w", err)
	}
	approvals, err := ListApprovals(ctx, c, ns)
	if err != nil {
		return AuditReport{}, err
	}
	return BuildAudit(devs.Items, pols.Items, approvals), nil
}

var errAuditFailed = fmt.Errorf("audit failed")

// WriteExplain formats a device's status for people.
func WriteExplain(w io.Writer, d *v1alpha1.MedicalDevice) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	id := d.Spec.Identity
	p("MedicalDevice %s/%s: %s %s (%s)", d.Namespace, d.Name, id.Manufacturer, id.Model, dash(id.DeviceType))
	p("Clinical impact: safety %s, mission %s", d.Spec.Clinical.SafetyImpact, d.Spec.Clinical.MissionImpact)
	if c := d.Spec.Commissioning; c != nil {
		p("Commissioned by %s (ticket %s, %s), flowsHash %s", c.ApprovedBy, c.Ticket, c.ApprovedAt.UTC().Format(time.RFC3339), c.FlowsHash)
	} else {
		p("Not commissioned")
	}
	if d.Status.ObservedGeneration != d.Generation {
		p("NOTE: status describes generation %d; the spec is at %d (medseg has not caught up yet)", d.Status.ObservedGeneration, d.Generation)
	}
	if r := d.Status.Risk; r != nil {
		p("\nRisk (CERT/CC SSVC deployer decision): %s", r.Priority)
		p("  deciding vulnerability: %s", dash(r.DecidingVulnerability))
		p("  Exploitation = %s", r.Exploitation)
		p("  Exposure     = %s", r.Exposure)
		p("  Automatable  = %s", r.Automatable)
		p("  HumanImpact  = %s", r.HumanImpact)
		p("  %d vulnerabilities assessed, %d ignored (Fixed/NotAffected)", r.AssessedVulnerabilities, r.IgnoredVulnerabilities)
		if lf := r.LastFeed; lf != nil {
			p("  inputs last changed by feed %s (%s) at %s", lf.Feed, dash(lf.Source), lf.At.UTC().Format(time.RFC3339))
		}
	}
	if s := d.Status.Segmentation; s != nil {
		p("\nSegmentation: mode %s under SegmentPolicy %s (%s)", dash(string(s.Mode)), dash(s.Policy), dash(string(s.Enforcement)))
		p("  why: %s", s.ModeReason)
		if e := s.ActiveException; e != nil {
			p("  SegmentException %s approved by %s caps the mode at %s until %s", e.Name, e.ApprovedBy, e.MaxMode, e.ExpiresAt.UTC().Format(time.RFC3339))
		}
		if s.Onboarding {
			p("  onboarding: the device is not commissioned for its current flows (see the Commissioned condition)")
		}
		for _, g := range s.ActiveGrants {
			p("  AccessGrant %s (approved by %s, ticket %s) opens flow %s until %s", g.Name, g.ApprovedBy, dash(g.Ticket), g.Flow, g.NotAfter.UTC().Format(time.RFC3339))
		}
		if len(s.SharedWith) > 0 {
			p("  gateway pods shared with devices of another enforcement: %s", strings.Join(s.SharedWith, ", "))
		}
		p("  allowed flows: %s", dash(strings.Join(s.AllowedFlows, ", ")))
		for _, b := range s.BlockedFlows {
			p("  blocked flow %s (%s): %s", b.Name, b.Reason, b.Message)
		}
		for _, o := range s.AppliedObjects {
			p("  applied %s %s (%s)", o.Kind, v1alpha1.Qualified(o.Namespace, o.Name), o.Hash)
		}
	}
	if t := d.Status.Traffic; t != nil {
		at := "-"
		if t.ObservedAt != nil {
			at = t.ObservedAt.UTC().Format(time.RFC3339)
		}
		p("\nObserved traffic (Hubble, last %s, summarised %s):", t.Window.Duration, at)
		p("  %d flows its flows do not cover (%s connections): Enforce would drop them", t.UndeclaredFlows, discover.Thousands(t.UndeclaredConnections))
		for _, f := range t.Undeclared {
			p("    %s", discover.FlowText(f))
		}
		p("  %s connections dropped by Cilium, %s without its gateway", discover.Thousands(t.Drops), discover.Thousands(t.BypassConnections))
	}
	p("\nConditions:")
	conds := append([]metav1.Condition(nil), d.Status.Conditions...)
	sort.Slice(conds, func(i, j int) bool { return conds[i].Type < conds[j].Type })
	for _, c := range conds {
		p("  %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
	}
	if dr := d.Status.Drift; dr != nil {
		p("\nDrift: %d repairs", dr.Repairs)
		for _, f := range dr.ForeignPolicies {
			verdict := "listed"
			if f.Widens {
				verdict = "WIDENS ACCESS"
			}
			p("  %s %s %s: %s", verdict, f.Kind, v1alpha1.Qualified(f.Namespace, f.Name), f.Reason)
		}
	}
	if len(d.Status.History) > 0 {
		p("\nHistory (newest first):")
		for _, h := range d.Status.History {
			p("  %s %s: %s", dash(string(h.Priority)), dash(string(h.Mode)), h.Reason)
		}
	}
}

// WriteAudit prints an audit in one of the -o formats of `kubectl medseg audit`.
func WriteAudit(w io.Writer, r AuditReport, format string) error {
	out := &output{format: format, print: genericclioptions.NewPrintFlags(""), allowed: []string{"table", "wide"}}
	if err := out.validate(); err != nil {
		return err
	}
	return printAudit(w, out, r)
}

// Explain prints the decision medseg recorded for one device (WriteExplain).
func Explain(ctx context.Context, c client.Client, w io.Writer, key types.NamespacedName) error {
	var d v1alpha1.MedicalDevice
	if err := c.Get(ctx, key, &d); err != nil {
		return fmt.Errorf("reading MedicalDevice %s: %w", key, err)
	}
	return explainDevice(ctx, c, w, &d)
}

// explainDevice writes the decision recorded for a device already read, then its approvals.
func explainDevice(ctx context.Context, c client.Client, w io.Writer, d *v1alpha1.MedicalDevice) error {
	WriteExplain(w, d)
	approvals, err := ListApprovals(ctx, c, d.Namespace)
	if err != nil {
		return err
	}
	WriteApprovals(w, approvals.ByDevice()[v1alpha1.ObjectRef{Namespace: d.Namespace, Name: d.Name}])
	return nil
}

// WriteApprovals lists a device's SegmentExceptions and AccessGrants with their phase.
func WriteApprovals(w io.Writer, a v1alpha1.Approvals) {
	rows := auditApprovals(a)
	for i := range a.Exceptions { // expired ones too: explain is the device's whole story
		if e := &a.Exceptions[i]; e.Status.Phase == v1alpha1.ApprovalExpired {
			rows = append(rows, ApprovalAudit{Kind: "SegmentException", Name: e.Name, Phase: string(e.Status.Phase), Message: e.Status.Message, ApprovedBy: e.Spec.ApprovedBy, Ticket: e.Spec.Ticket})
		}
	}
	for i := range a.Grants {
		if g := &a.Grants[i]; g.Status.Phase == v1alpha1.ApprovalExpired {
			rows = append(rows, ApprovalAudit{Kind: "AccessGrant", Name: g.Name, Phase: string(g.Status.Phase), Message: g.Status.Message, ApprovedBy: g.Spec.ApprovedBy, Ticket: g.Spec.Ticket})
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nApprovals (kubectl get segex,grant):\n")
	for _, r := range rows {
		fmt.Fprintf(w, "  %s %s: %s (approved by %s, ticket %s): %s\n", r.Kind, r.Name, r.Phase, r.ApprovedBy, r.Ticket, dash(r.Message))
	}
}
