package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/medseg/medseg/internal/discover"
)

// Markdown writes the report as GitHub-flavoured Markdown.
func Markdown(w io.Writer, r *Report) error {
	b := &strings.Builder{}
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	p("# %s", r.Title)
	p("")
	p("Generated %s from %s.", r.GeneratedAt, r.Source)
	if r.Offline {
		p("Computed offline from files: what medseg would decide. Drift, flatness and what is actually applied are known only in a live cluster.")
	}
	s := r.Summary
	p("")
	p("## Summary")
	p("")
	p("- **%d devices**, %d segmented (%d%%), %d not commissioned (in onboarding)", s.Devices, s.Segmented, s.SegmentedPercent, s.Onboarding)
	p("- By SSVC priority: %s", counts(s.ByPriority))
	p("- By mode: %s", counts(s.ByMode))
	p("")
	p("| SegmentPolicy | Enforcement | Devices | Flatness | Reachable workloads | Most loaded gateway |")
	p("|---|---|---|---|---|---|")
	for _, ps := range s.Policies {
		p("| %s | %s | %d | %s | %d | %s |", md(ps.Name), ps.Enforcement, ps.Devices, ps.Flatness, ps.ReachableWorkloads, md(firstOr(ps.Gateways, "-")))
	}
	for _, ps := range s.Policies {
		for _, o := range ps.Offenders {
			p("- %s reachable: %s", md(ps.Name), md(o))
		}
	}
	for _, a := range s.IneffectiveApprovals {
		p("- approval without effect on %s: %s: %s", md(a.Device), a.Reason, md(a.Detail))
	}
	p("")
	p("### Open drift")
	p("")
	if len(s.OpenDrift) == 0 {
		p("None: every device is segmented as declared.")
	}
	for _, f := range s.OpenDrift {
		p("- **%s**: %s: %s", md(f.Device), f.Reason, md(f.Detail))
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
	p("## Zones and conduits")
	p("")
	p("A zone is a SegmentPolicy (the care areas it governs); a conduit is a declared flow through the device's gateway.")
	devs := map[string]*Device{}
	for i := range r.Devices {
		devs[r.Devices[i].Ref] = &r.Devices[i]
	}
	for _, z := range r.Zones {
		p("")
		p("### Zone %s (%s)", md(z.Name), z.Enforcement)
		p("")
		if len(z.DeviceNetworks) > 0 {
			p("Device networks: %s", strings.Join(z.DeviceNetworks, ", "))
			p("")
		}
		if len(z.Devices) == 0 {
			p("No devices.")
			continue
		}
		p("| Device | Mode | Conduit | Tier | Path | Peers | Verdict |")
		p("|---|---|---|---|---|---|---|")
		for _, ref := range z.Devices {
			d := devs[ref]
			for _, c := range d.Flows {
				p("| %s | %s | %s | %s | %s/%s | %s | %s |", md(d.Ref), d.Mode, md(c.Name), c.Tier, md(c.Ports), c.Protocol, md(strings.Join(c.Peers, "; ")), verdict(c))
			}
			if len(d.Flows) == 0 {
				p("| %s | %s | (none) | | | | isolated |", md(d.Ref), d.Mode)
			}
		}
	}
	p("")
	p("## Devices")
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
		p("- Mode: **%s** in zone %s: %s", d.Mode, md(d.Zone), md(d.ModeReason))
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
func md(s string) string {
	r := strings.NewReplacer("|", "\\|", "\n", " ", "*", "\\*", "_", "\\_", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}

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
