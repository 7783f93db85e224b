package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/medseg/medseg/internal/discover"
)

// Markdown writes the report as GitHub-flavoured Markdown, in the HTML's order: the summary
// (sites, Immediate and OutOfCycle, not segmented by reason, Audit, ending soon, flatness),
// zones with their aggregated conduits, the device list by zone, the full lists, and the
// per-device detail as an appendix.
func Markdown(w io.Writer, r *Report) error {
	b := &strings.Builder{}
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	p("# %s", r.Title)
	p("")
	p("Generated %s from %s. Schema %s.", r.GeneratedAt, md(r.Source), r.SchemaVersion)
	if r.Offline {
		p("Computed offline from files: what medseg would decide. Drift, flatness and what is actually applied are known only in a live cluster.")
	}
	s := r.Summary
	p("")
	p("## Summary")
	p("")
	p("- **%s devices**: %s segmented (%d%%), %s in Audit (rollout stage), %s not segmented, %s in onboarding",
		thousands(s.Devices), thousands(s.Segmented), s.SegmentedPercent, thousands(s.InAudit), thousands(s.NotSegmented), thousands(s.Onboarding))
	p("- By SSVC priority: %s", counts(s.ByPriority))
	p("- By mode: %s", counts(s.ByMode))
	if len(r.Sites) > 1 {
		p("")
		p("| Site | Devices | Segmented | In Audit | Not segmented | Immediate | OutOfCycle | Zones |")
		p("|---|---|---|---|---|---|---|---|")
		for _, st := range r.Sites {
			if !st.Reachable {
				p("| %s | **unreachable**: %s | | | | | | |", md(st.Name), md(st.Error))
				continue
			}
			p("| %s | %d | %d | %d | %d | %d | %d | %d |", md(st.Name), st.Devices, st.Segmented, st.InAudit, st.NotSegmented, st.Immediate, st.OutOfCycle, st.Zones)
		}
	}
	p("")
	p("### Immediate and OutOfCycle (%s)", thousands(len(s.Urgent)))
	p("")
	if len(s.Urgent) == 0 {
		p("None.")
	}
	for _, l := range s.Urgent[:min(len(s.Urgent), FirstScreenRows)] {
		p("- **%s** %s, %s: %s", md(l.Ref), l.Priority, l.Mode, md(l.Status))
	}
	if len(s.Urgent) > FirstScreenRows {
		p("- … all %s in [the full list](#immediate-and-outofcycle-devices)", thousands(len(s.Urgent)))
	}
	p("")
	p("### Not segmented (%s)", thousands(s.NotSegmented))
	p("")
	if len(s.NotSegmentedByReason) == 0 {
		p("None: every device is segmented or in Audit.")
	}
	mdGroups(p, s.NotSegmentedByReason)
	p("")
	p("### In Audit (%s)", thousands(s.InAudit))
	p("")
	if len(s.Audit) == 0 {
		p("No zone is in Audit.")
	}
	for _, a := range s.Audit {
		p("- **%s**: %s", md(siteName(a.Site, a.Policy)), md(auditLine(a)))
	}
	p("")
	p("### Ending within 7 days (%d)", len(s.Ending))
	p("")
	if len(s.Ending) == 0 {
		p("No exception or grant ends within 7 days.")
	}
	for _, e := range s.Ending {
		p("- %s: %s %s on %s %s", e.Ends, e.Kind, md(e.Name), md(e.Device), md(e.What))
	}
	p("")
	p("### Flatness per zone")
	p("")
	p("| Zone (SegmentPolicy) | Enforcement | Devices | Flatness | Reachable workloads | Evaluated | Most loaded gateway |")
	p("|---|---|---|---|---|---|---|")
	for _, ps := range s.Policies {
		p("| %s | %s | %d | %s | %s | %s | %s |", md(siteName(ps.Site, ps.Name)), ps.Enforcement, ps.Devices, ps.Flatness, reachable(ps), orDash(ps.EvaluatedAt), md(firstOr(ps.Gateways, "-")))
	}
	for _, ps := range s.Policies {
		for _, o := range ps.Offenders {
			p("- %s reachable: %s", md(siteName(ps.Site, ps.Name)), md(o))
		}
	}
	if len(s.IneffectiveApprovals) > 0 {
		p("")
		p("### Approvals without effect")
		p("")
		mdGroups(p, s.IneffectiveApprovals)
	}
	p("")
	p("## Zones and conduits")
	p("")
	p("A zone is a SegmentPolicy (the care areas it governs); a conduit is a declared flow through the device's gateway, here aggregated by device type and peer.")
	devs := r.byRef()
	for _, z := range r.Zones {
		p("")
		p("### Zone %s (%s, %s devices: %s)", md(zoneLabel(z)), z.Enforcement, thousands(len(z.Devices)), countsText(z.ByMode))
		p("")
		if len(z.DeviceNetworks) > 0 {
			p("Device networks: %s", strings.Join(z.DeviceNetworks, ", "))
			p("")
		}
		if len(z.Groups) > 0 {
			p("| Devices | Strictest mode | Peer | Flows | Allowed | Blocked | Tier | Gateway ports |")
			p("|---|---|---|---|---|---|---|---|")
			for _, g := range z.Groups {
				if len(g.Conduits) == 0 {
					p("| %s (%d) | %s | (none: isolated) | 0 | 0 | 0 | | |", md(g.Name), g.Devices, g.Mode)
				}
				for _, c := range g.Conduits {
					p("| %s (%d) | %s | %s | %d | %d | %d | %s | %s |", md(g.Name), g.Devices, g.Mode, md(c.Peer), c.Flows, c.Allowed, c.Blocked, c.Tier, strings.Join(c.Ports, ", "))
				}
			}
			p("")
		}
		if len(z.Devices) == 0 {
			p("No devices.")
			continue
		}
		p("| Device | Type | Priority | Mode | Status | Flows allowed | Flows blocked |")
		p("|---|---|---|---|---|---|---|")
		for _, ref := range z.Devices {
			d := devs[ref]
			allowed, blocked := flowCounts(d)
			p("| %s | %s | %s | %s | %s | %d | %d |", md(d.Ref), md(orDash(d.DeviceType)), d.Priority, d.Mode, md(lineOf(d).Status), allowed, blocked)
		}
	}
	p("")
	p("## Lists")
	p("")
	p("### Immediate and OutOfCycle devices")
	p("")
	if len(s.Urgent) == 0 {
		p("None.")
	} else {
		p("| Device | Zone | Priority | Mode | Status | Deciding vulnerability |")
		p("|---|---|---|---|---|---|")
		for _, l := range s.Urgent {
			p("| %s | %s | %s | %s | %s | %s |", md(l.Ref), md(siteName(l.Site, l.Zone)), l.Priority, l.Mode, md(l.Status), md(orDash(l.Deciding)))
		}
	}
	for _, g := range s.NotSegmentedByReason {
		p("")
		p("### Not segmented: %s (%d)", g.Reason, g.Count)
		p("")
		p("%s", md(strings.Join(g.Devices, ", ")))
	}
	p("")
	for _, t := range []table{exceptionsTable(s.Exceptions), grantsTable(s.Grants), trafficTable(s.Traffic)} {
		p("### %s", t.title)
		p("")
		if len(t.rows) == 0 {
			p("None.")
		} else {
			p("| %s |", strings.Join(t.header, " | "))
			p("|%s", strings.Repeat("---|", len(t.header)))
			for _, row := range t.rows {
				cells := make([]string, len(row))
				for i, c := range row {
					cells[i] = md(c)
				}
				p("| %s |", strings.Join(cells, " | "))
			}
		}
		p("")
	}
	p("## Appendix: device detail")
	for _, d := range r.Devices {
		p("")
		p("### %s: %s %s", md(d.Ref), md(d.Manufacturer), md(d.Model))
		p("")
		p("- Identity: %s", md(identity(d)))
		p("- Clinical impact: safety %s, mission %s%s", d.SafetyImpact, d.MissionImpact, suffix(", care area ", d.CareArea))
		p("- Addresses: %s", strings.Join(d.Addresses, ", "))
		p("- Priority: **%s**%s", d.Priority, suffix(" (deciding: ", d.Deciding, ")"))
		if d.LastFeed != "" {
			p("- Risk inputs last changed by feed %s", md(d.LastFeed))
		}
		for _, in := range d.SSVC {
			p("  - %s", md(in))
		}
		p("- Mode: **%s** in zone %s (%s): %s", d.Mode, md(d.Zone), d.Enforcement, md(d.ModeReason))
		p("- Segmented: %s (%s)%s", yesNo(d.Segmented), d.SegmentedReason, suffix(": ", md(d.SegmentedDetail)))
		p("- Commissioning: %s", md(d.Commissioning))
		if e := d.Exception; e != nil {
			p("- Exception %s: caps the mode at %s, approved by %s, expires %s (%s)%s", md(e.Name), e.MaxMode, md(e.ApprovedBy), e.ExpiresAt, e.State, suffix(": ", md(e.Justification)))
		}
		for _, g := range d.Grants {
			p("- Access grant %s (%s): flow %s, approved by %s, ticket %s, %s → %s", md(g.Name), g.State, md(g.Flow), md(g.ApprovedBy), md(g.Ticket), g.NotBefore, g.NotAfter)
		}
		for _, f := range d.ForeignPolicies {
			p("- Foreign policy: %s", md(f))
		}
		if t := d.Traffic; t != nil {
			p("- Observed traffic (Hubble, last %s): %s", t.Window, md(trafficLine(t)))
			for _, f := range t.Undeclared {
				p("  - %s", md(f))
			}
		}
		p("")
		if len(d.Flows) > 0 {
			p("| Flow | Tier | Access | Path | Peers | Verdict |")
			p("|---|---|---|---|---|---|")
			for _, c := range d.Flows {
				v := verdict(c)
				if !c.Allowed && c.Detail != "" {
					v += ": " + c.Detail
				}
				p("| %s | %s | %s | %s/%s | %s | %s |", md(c.Name), c.Tier, c.Access, md(c.Ports), c.Protocol, md(strings.Join(c.Peers, "; ")), md(v))
			}
		}
		if len(d.History) > 0 {
			p("")
			p("History (newest first):")
			p("")
			for _, h := range d.History {
				p("- %s: %s, %s: %s", h.Time, h.Priority, h.Mode, md(h.Reason))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdGroups writes finding groups, one line per reason.
func mdGroups(p func(string, ...any), gs []FindingGroup) {
	for _, g := range gs {
		line := fmt.Sprintf("- **%s** (%s)", g.Reason, thousands(g.Count))
		if len(g.Details) > 0 {
			line += ": " + md(g.Details[0].Text)
			if g.Details[0].Count > 1 {
				line += fmt.Sprintf(" (×%s)", thousands(g.Details[0].Count))
			}
			if rest := g.Count - g.Details[0].Count; rest > 0 {
				line += fmt.Sprintf(" and %s other", thousands(rest))
			}
		}
		p("%s", line)
	}
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

func counts(cs []Count) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s %d", c.Name, c.Count)
	}
	return strings.Join(parts, ", ")
}

func verdict(c Conduit) string {
	if c.Allowed {
		return "allowed"
	}
	return "blocked (" + c.Reason + ")"
}

func identity(d Device) string {
	parts := []string{d.Manufacturer + " " + d.Model}
	if d.DeviceType != "" {
		parts = append(parts, d.DeviceType)
	}
	if d.Firmware != "" {
		parts = append(parts, "firmware "+d.Firmware)
	}
	if d.SerialNumber != "" {
		parts = append(parts, "serial "+d.SerialNumber)
	}
	return strings.Join(parts, ", ")
}

func suffix(prefix, v string, closing ...string) string {
	if v == "" {
		return ""
	}
	return prefix + v + strings.Join(closing, "")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// md escapes text for a Markdown table cell or line.
func md(s string) string { return mdEscaper.Replace(s) }

var mdEscaper = strings.NewReplacer("|", "\\|", "\n", " ", "*", "\\*", "_", "\\_", "<", "&lt;", ">", "&gt;")

// table is a summary table both writers print.
type table struct {
	title  string
	header []string
	rows   [][]string
}

func exceptionsTable(es []Exception) table {
	t := table{title: "Exceptions active or expiring within 7 days", header: []string{"Device", "Exception", "Caps mode at", "Approved by", "Expires", "State"}}
	for _, e := range es {
		t.rows = append(t.rows, []string{e.Device, e.Name, e.MaxMode, e.ApprovedBy, e.ExpiresAt, e.State})
	}
	return t
}

func trafficTable(ts []Traffic) table {
	t := table{title: "Observed traffic (Hubble): what Enforce would drop, drops, and traffic around the gateway",
		header: []string{"Device", "Enforcement", "Undeclared flows", "Connections", "Top undeclared flow", "Dropped", "Without gateway"}}
	for _, x := range ts {
		top := "-"
		if len(x.Undeclared) > 0 {
			top = x.Undeclared[0]
		}
		t.rows = append(t.rows, []string{x.Device, x.Enforcement, fmt.Sprint(x.UndeclaredFlows), discover.Thousands(x.UndeclaredConnections),
			top, discover.Thousands(x.Drops), discover.Thousands(x.BypassConnections)})
	}
	return t
}

// trafficLine summarises a device's observed traffic in one sentence.
func trafficLine(t *Traffic) string {
	return fmt.Sprintf("%d flows its flows do not cover (%s connections; Enforce drops them), %s connections dropped, %s without its gateway",
		t.UndeclaredFlows, discover.Thousands(t.UndeclaredConnections), discover.Thousands(t.Drops), discover.Thousands(t.BypassConnections))
}

func grantsTable(gs []Grant) table {
	t := table{title: "Vendor access grants open or starting within 7 days", header: []string{"Device", "Flow", "Grant", "Approved by", "Ticket", "From", "Until", "State"}}
	for _, g := range gs {
		t.rows = append(t.rows, []string{g.Device, g.Flow, g.Name, g.ApprovedBy, g.Ticket, g.NotBefore, g.NotAfter, g.State})
	}
	return t
}
