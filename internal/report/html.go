package report

import (
	"fmt"
	"html"
	"io"
	"strings"

	"github.com/medseg/medseg/internal/discover"
)

// FirstScreenRows bounds the first screen's lists (the Immediate and OutOfCycle devices, the
// approvals ending soon): the rest is one link away.
const FirstScreenRows = 12

// HTML writes the report as one self-contained HTML file: inline CSS, an inline SVG diagram
// and a small inline filter script; nothing is fetched, so it opens the same from file:// on
// an offline ward PC. The first screen answers the auditor's questions at any size; the device
// list is grouped by zone, most urgent first; printing gives the summary with the per-device
// detail as an appendix.
func HTML(w io.Writer, r *Report) error {
	h := &htmlWriter{b: &strings.Builder{}, r: r, profiles: newProfiles(r.Devices)}
	h.head()
	h.summary()
	h.p("<section id=\"zones\"><h2>Zones and conduits</h2>\n<p class=\"note\">%s</p>\n", esc(diagramNote(r)))
	h.b.WriteString(Diagram(r))
	h.p("</section>\n")
	h.lists()
	h.deviceList()
	h.p("<footer>medseg report (schema %s): zones and conduits from MedicalDevice and SegmentPolicy status.</footer>\n<script>%s</script>\n</body>\n</html>\n", esc(r.SchemaVersion), filterScript)
	_, err := io.WriteString(w, h.b.String())
	return err
}

type htmlWriter struct {
	b        *strings.Builder
	r        *Report
	profiles profiles
}

func (h *htmlWriter) p(format string, args ...any) { fmt.Fprintf(h.b, format, args...) }

func (h *htmlWriter) head() {
	r := h.r
	h.p("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>%s</title>\n<style>\n%s</style>\n</head>\n<body>\n", esc(r.Title), css)
	h.p("<header><h1>%s</h1>\n<p class=\"meta\">Generated %s from %s.", esc(r.Title), esc(r.GeneratedAt), esc(r.Source))
	if r.Offline {
		h.p(" Computed offline from files: what medseg would decide; drift, flatness and what is applied are known only in a live cluster.")
	}
	h.p("</p></header>\n<nav id=\"toc\"><b>Contents</b> <a href=\"#summary\">Summary</a> <a href=\"#urgent\">Immediate and OutOfCycle</a> <a href=\"#not-segmented\">Not segmented</a> <a href=\"#audit\">Audit</a> <a href=\"#ending\">Ending soon</a> <a href=\"#flatness\">Flatness</a> <a href=\"#zones\">Zones and conduits</a> <a href=\"#lists\">Lists</a> <a href=\"#devices\">Devices</a>")
	for _, z := range r.Zones {
		h.p(" <a class=\"sub\" href=\"#%s\">%s</a>", zoneAnchor(z), esc(zoneLabel(z)))
	}
	h.p("</nav>\n")
}

func (h *htmlWriter) tile(value, label, class, href string) {
	open, closing := "<div", "</div>"
	if href != "" {
		open, closing = "<a href=\"#"+href+"\"", "</a>"
	}
	h.p("%s class=\"tile %s\"><span class=\"value\">%s</span><span class=\"label\">%s</span>%s\n", open, class, esc(value), esc(label), closing)
}

func (h *htmlWriter) summary() {
	r, s := h.r, h.r.Summary
	h.p("<section id=\"summary\"><h2>Summary</h2>\n<div class=\"tiles\" id=\"tiles\">\n")
	h.tile(thousands(s.Devices), "devices", "", "devices")
	h.tile(fmt.Sprintf("%d%%", s.SegmentedPercent), fmt.Sprintf("segmented (%s of %s)", thousands(s.Segmented), thousands(s.Devices)),
		map[bool]string{true: "good", false: "warn"}[s.Segmented+s.InAudit == s.Devices], "")
	h.tile(thousands(s.NotSegmented), "not segmented (Audit aside)", map[bool]string{true: "good", false: "bad"}[s.NotSegmented == 0], "not-segmented")
	h.tile(thousands(s.InAudit), "in Audit (rollout stage)", "audit", "audit")
	immediate, outOfCycle := countOf(s.ByPriority, "Immediate"), countOf(s.ByPriority, "OutOfCycle")
	h.tile(thousands(immediate), "Immediate", map[bool]string{true: "good", false: "bad"}[immediate == 0], "urgent")
	h.tile(thousands(outOfCycle), "OutOfCycle", map[bool]string{true: "good", false: "warn"}[outOfCycle == 0], "urgent")
	h.tile(thousands(len(s.Ending)), "approvals ending within 7 days", map[bool]string{true: "", false: "warn"}[len(s.Ending) == 0], "ending")
	h.tile(thousands(s.Onboarding), "in onboarding", map[bool]string{true: "good", false: "warn"}[s.Onboarding == 0], "")
	h.p("</div>\n")
	if len(r.Sites) > 1 {
		h.sites()
	}
	h.p("<div class=\"cols\">\n<div class=\"col\" id=\"urgent\"><h3>Immediate and OutOfCycle (%s)</h3>\n", thousands(len(s.Urgent)))
	if len(s.Urgent) == 0 {
		h.p("<p class=\"ok\">None.</p>\n")
	} else {
		h.p("<table class=\"list\"><tr><th>Device</th><th>Priority</th><th>Mode</th><th>Status</th></tr>\n")
		for _, l := range s.Urgent[:min(len(s.Urgent), FirstScreenRows)] {
			h.p("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", deviceLink(l.Ref), chip(priorityClass(l.Priority), l.Priority), chip(modeClass(l.Mode), l.Mode), statusChip(l))
		}
		h.p("</table>\n")
		if len(s.Urgent) > FirstScreenRows {
			h.p("<p><a href=\"#urgent-all\">All %s Immediate and OutOfCycle devices</a></p>\n", thousands(len(s.Urgent)))
		}
	}
	h.p("</div>\n<div class=\"col\">\n<h3 id=\"not-segmented\">Not segmented (%s)</h3>\n", thousands(s.NotSegmented))
	if len(s.NotSegmentedByReason) == 0 {
		h.p("<p class=\"ok\">None: every device is segmented or in Audit.</p>\n")
	} else {
		h.groups(s.NotSegmentedByReason, "ns")
	}
	h.p("<h3 id=\"audit\">In Audit (%s)</h3>\n", thousands(s.InAudit))
	if len(s.Audit) == 0 {
		h.p("<p>No zone is in Audit.</p>\n")
	} else {
		h.p("<ul class=\"findings\">\n")
		for _, a := range s.Audit {
			h.p("<li><a href=\"#%s\">%s</a>: %s</li>\n", zoneAnchor(Zone{Site: a.Site, Name: a.Policy}), esc(siteName(a.Site, a.Policy)), esc(auditLine(a)))
		}
		h.p("</ul>\n")
	}
	h.p("<h3 id=\"flatness\">Flatness per zone</h3>\n<table class=\"list\"><tr><th>Zone</th><th>Flatness</th><th>Reachable workloads</th><th>Evaluated</th></tr>\n")
	for _, ps := range s.Policies {
		h.p("<tr><td><a href=\"#%s\">%s</a> <small>%s</small></td><td>%s</td><td>%s</td><td class=\"t\">%s</td></tr>\n", zoneAnchor(Zone{Site: ps.Site, Name: ps.Name}),
			esc(siteName(ps.Site, ps.Name)), esc(ps.Enforcement), chip(flatClass(ps.Flatness), ps.Flatness), esc(reachable(ps)), esc(shortTime(ps.EvaluatedAt)))
	}
	h.p("</table>\n")
	for _, ps := range s.Policies {
		for _, o := range ps.Offenders {
			h.p("<p class=\"warn\">%s reachable: %s</p>\n", esc(siteName(ps.Site, ps.Name)), esc(o))
		}
	}
	h.p("<h3 id=\"ending\">Ending within 7 days (%d)</h3>\n", len(s.Ending))
	if len(s.Ending) == 0 {
		h.p("<p>No exception or grant ends within 7 days.</p>\n")
	} else {
		h.p("<table class=\"list\"><tr><th>Ends</th><th>Approval</th><th>Device</th></tr>\n")
		for _, e := range s.Ending[:min(len(s.Ending), FirstScreenRows)] {
			h.p("<tr><td class=\"t\">%s</td><td>%s %s: %s</td><td>%s</td></tr>\n", esc(shortTime(e.Ends)), esc(e.Kind), esc(e.Name), esc(e.What), deviceLink(e.Device))
		}
		h.p("</table>\n")
		if len(s.Ending) > FirstScreenRows {
			h.p("<p><a href=\"#approvals\">All %d</a></p>\n", len(s.Ending))
		}
	}
	h.p("</div>\n</div>\n")
	h.p("<h3 id=\"gateways\">Zones and their most loaded gateway</h3>\n<table><tr><th>Zone (SegmentPolicy)</th><th>Enforcement</th><th>Devices</th><th>Most loaded gateway (policy map entries, estimated)</th></tr>\n")
	for _, ps := range s.Policies {
		h.p("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", esc(siteName(ps.Site, ps.Name)), esc(ps.Enforcement), thousands(ps.Devices), esc(firstOr(ps.Gateways, "-")))
	}
	h.p("</table>\n")
	if len(s.IneffectiveApprovals) > 0 {
		h.p("<h3>Approvals without effect</h3>\n")
		h.groups(s.IneffectiveApprovals, "ia")
	}
	h.p("<div class=\"cols\">\n")
	countTable := func(title string, cs []Count, cls func(string) string) {
		h.p("<table class=\"counts\"><caption>%s</caption>\n", esc(title))
		for _, c := range cs {
			h.p("<tr><th>%s</th><td>%s</td></tr>\n", chip(cls(c.Name), c.Name), thousands(c.Count))
		}
		h.p("</table>\n")
	}
	countTable("Devices by SSVC priority", s.ByPriority, priorityClass)
	countTable("Devices by mode", s.ByMode, modeClass)
	if len(s.Traffic) > 0 {
		h.p("<p>%s devices have observed traffic (Hubble) their flows do not cover, drops, or connections around their gateway: <a href=\"#traffic\">the list</a>.</p>\n", thousands(len(s.Traffic)))
	}
	h.p("</div>\n</section>\n")
}

func (h *htmlWriter) sites() {
	h.p("<table id=\"sites\"><caption>Sites</caption><tr><th>Site</th><th>Devices</th><th>Segmented</th><th>In Audit</th><th>Not segmented</th><th>Immediate</th><th>OutOfCycle</th><th>Zones</th></tr>\n")
	for _, s := range h.r.Sites {
		if !s.Reachable {
			h.p("<tr class=\"unreachable\"><td>%s</td><td colspan=\"7\">%s %s</td></tr>\n", esc(s.Name), chip(clsBad, "unreachable"), esc(s.Error))
			continue
		}
		h.p("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td></tr>\n", esc(s.Name), thousands(s.Devices), thousands(s.Segmented),
			thousands(s.InAudit), thousands(s.NotSegmented), thousands(s.Immediate), thousands(s.OutOfCycle), s.Zones)
	}
	h.p("</table>\n")
}

// groups writes finding groups as one line per reason, with a count, its most frequent detail
// and a link to the full list.
func (h *htmlWriter) groups(gs []FindingGroup, prefix string) {
	h.p("<ul class=\"findings\">\n")
	for _, g := range gs {
		h.p("<li><b>%s</b>, %s: ", esc(g.Reason), esc(plural(g.Count, "device")))
		if len(g.Details) > 0 {
			d := g.Details[0]
			h.p("%s", esc(d.Text))
			if d.Count < g.Count {
				h.p(" (×%s, and %s more)", thousands(d.Count), thousands(g.Count-d.Count))
			}
		}
		h.p(" <a href=\"#%s\">list</a></li>\n", prefix+"-"+idPart(g.Reason))
	}
	h.p("</ul>\n")
}

func (h *htmlWriter) deviceList() {
	r := h.r
	devs := r.byRef()
	h.p("<section id=\"devices\"><h2>Devices by zone, most urgent first</h2>\n<p class=\"filter noprint\"><label for=\"q\">Filter</label> <input id=\"q\" type=\"search\" placeholder=\"device, zone, type, priority, mode, reason…\" autocomplete=\"off\"> <span id=\"qn\"></span> <button id=\"open-all\" type=\"button\">Expand all</button></p>\n")
	h.p("<p class=\"note\">Each line opens to the device's detail: identity, clinical impact, SSVC priority and why, mode and why, segmentation, commissioning, flows with their verdicts, approvals, foreign policies, observed traffic and history.</p>\n")
	for _, z := range r.Zones {
		h.p("<h3 id=\"%s\">Zone %s <small>%s · %s devices · %s</small></h3>\n", zoneAnchor(z), esc(zoneLabel(z)), esc(z.Enforcement), thousands(len(z.Devices)), esc(countsText(z.ByMode)))
		if len(z.DeviceNetworks) > 0 {
			h.p("<p class=\"note\">Device networks %s</p>\n", esc(strings.Join(z.DeviceNetworks, ", ")))
		}
		if len(z.Groups) > 0 {
			h.p("<table class=\"conduits\"><caption>Conduits by device type and peer</caption><tr><th>Devices</th><th>Strictest mode</th><th>Peer</th><th>Flows</th><th>Allowed</th><th>Blocked</th><th>Tier</th><th>Gateway ports</th></tr>\n")
			for gi, g := range z.Groups {
				rows := max(len(g.Conduits), 1)
				h.p("<tr id=\"%s\"><td rowspan=\"%d\"><a href=\"#q=%s\">%s</a> (%s)</td><td rowspan=\"%d\">%s</td>", groupAnchor(z, gi), rows, esc(urlFragment(g.Name)), esc(g.Name), thousands(g.Devices), rows, chip(modeClass(g.Mode), g.Mode))
				if len(g.Conduits) == 0 {
					h.p("<td colspan=\"6\">no declared flows: isolated</td></tr>\n")
					continue
				}
				for ci, c := range g.Conduits {
					if ci > 0 {
						h.p("<tr>")
					}
					h.p("<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", esc(c.Peer), thousands(c.Flows), thousands(c.Allowed), thousands(c.Blocked), esc(c.Tier), esc(strings.Join(c.Ports, ", ")))
				}
			}
			h.p("</table>\n")
		}
		if len(z.Devices) == 0 {
			h.p("<p>No devices.</p>\n")
			continue
		}
		h.p("<div class=\"devs\"><div class=\"hd\"><span>Device</span><span>Type</span><span>Priority</span><span>Mode</span><span>Status</span><span>Flows</span><span>Approvals, onboarding</span></div>\n")
		for _, ref := range z.Devices {
			h.device(devs[ref])
		}
		h.p("</div>\n")
	}
	if len(h.profiles.list) > 0 {
		h.p("<h3 id=\"profiles\">Flow profiles</h3>\n<p class=\"note\">Devices that declare the same flows share a profile; each device lists its flows' verdicts against it.</p>\n<table class=\"profiles\"><tr><th>Profile</th><th>Devices</th><th>Flow</th><th>Tier</th><th>Path</th></tr>\n")
		for _, pr := range h.profiles.list {
			for i, f := range pr.flows {
				if i == 0 {
					h.p("<tr id=\"%s\"><td rowspan=\"%d\">%s</td><td rowspan=\"%d\">%s</td>", pr.id, len(pr.flows), pr.id, len(pr.flows), thousands(pr.devices))
				} else {
					h.p("<tr>")
				}
				h.p("<td>%s</td><td>%s</td><td>%s</td></tr>\n", esc(f.Name), esc(f.Tier+access(f)), esc(flowPath(f)))
			}
		}
		h.p("</table>\n")
	}
	h.p("</section>\n")
}

// lists are the full lists behind the first screen's counts.
func (h *htmlWriter) lists() {
	s := h.r.Summary
	h.p("<section id=\"lists\"><h2>Lists</h2>\n<h3 id=\"urgent-all\">Immediate and OutOfCycle devices (%s)</h3>\n", thousands(len(s.Urgent)))
	if len(s.Urgent) > 0 {
		h.p("<table class=\"list\"><tr><th>Device</th><th>Zone</th><th>Priority</th><th>Mode</th><th>Status</th><th>Deciding vulnerability</th></tr>\n")
		for _, l := range s.Urgent {
			h.p("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", deviceLink(l.Ref), esc(siteName(l.Site, l.Zone)), chip(priorityClass(l.Priority), l.Priority),
				chip(modeClass(l.Mode), l.Mode), statusChip(l), esc(orDash(l.Deciding)))
		}
		h.p("</table>\n")
	}
	for _, set := range []struct {
		prefix, title string
		groups        []FindingGroup
	}{{"ns", "Not segmented", s.NotSegmentedByReason}, {"ia", "Approvals without effect", s.IneffectiveApprovals}} {
		for _, g := range set.groups {
			h.p("<h3 id=\"%s-%s\">%s: %s (%s)</h3>\n", set.prefix, idPart(g.Reason), esc(set.title), esc(g.Reason), thousands(g.Count))
			h.p("<ul class=\"details\">")
			for _, d := range g.Details {
				h.p("<li>%s (%s)</li>", esc(d.Text), thousands(d.Count))
			}
			if g.OtherDetails > 0 {
				h.p("<li>%s more with other details: see each device</li>", thousands(g.OtherDetails))
			}
			h.p("</ul>\n<p class=\"refs\">")
			for i, ref := range g.Devices {
				if i > 0 {
					h.p(", ")
				}
				h.p("%s", deviceLink(ref))
			}
			h.p("</p>\n")
		}
	}
	h.p("<div id=\"approvals\"></div>\n")
	for _, t := range []table{exceptionsTable(s.Exceptions), grantsTable(s.Grants), trafficTable(s.Traffic)} {
		id := map[string]string{"Observed traffic": "traffic"}[strings.SplitN(t.title, " (", 2)[0]]
		if id != "" {
			h.p("<h3 id=\"%s\">%s</h3>\n", id, esc(t.title))
		} else {
			h.p("<h3>%s</h3>\n", esc(t.title))
		}
		if len(t.rows) == 0 {
			h.p("<p>None.</p>\n")
			continue
		}
		h.p("<table><tr>")
		for _, c := range t.header {
			h.p("<th>%s</th>", esc(c))
		}
		h.p("</tr>\n")
		for _, row := range t.rows {
			h.p("<tr>")
			for i, c := range row {
				if i == 0 {
					h.p("<td>%s</td>", deviceLink(c))
					continue
				}
				h.p("<td>%s</td>", esc(c))
			}
			h.p("</tr>\n")
		}
		h.p("</table>\n")
	}
	h.p("</section>\n")
}

// device writes a device as one line of the list that opens to its detail.
func (h *htmlWriter) device(d *Device) {
	l := lineOf(d)
	allowed, blocked := flowCounts(d)
	notes := []string{}
	if d.Exception != nil {
		notes = append(notes, "exception "+d.Exception.Name)
	}
	for _, g := range d.Grants {
		notes = append(notes, "grant "+g.Name+" ("+g.State+")")
	}
	if !d.Commissioned {
		notes = append(notes, "onboarding")
	}
	flows := fmt.Sprintf("%d ✓", allowed)
	if blocked > 0 {
		flows += fmt.Sprintf(" %d ✕", blocked)
	}
	h.p("<details class=\"dev\" id=\"%s\"><summary><b>%s</b><span>%s</span>%s%s%s<span>%s</span><span>%s</span></summary>\n<dl>", anchor(d.Ref), esc(d.Ref), esc(orDash(d.DeviceType)),
		chip(priorityClass(d.Priority), d.Priority), chip(modeClass(d.Mode), d.Mode), chip(statusClass(l), l.Status), flows, esc(strings.Join(notes, "; ")))
	dl := func(k, v string) { h.p("<dt>%s</dt><dd>%s</dd>", k, v) }
	dl("Identity", esc(identity(*d)))
	risk := esc(d.Priority + suffix(" deciding ", d.Deciding))
	if len(d.SSVC) > 0 {
		risk += esc(": " + strings.Join(d.SSVC, ", "))
	}
	dl("Priority", risk)
	if d.LastFeed != "" {
		dl("Last feed", esc(d.LastFeed))
	}
	dl("Mode", esc(fmt.Sprintf("%s in zone %s (%s)%s", d.Mode, d.Zone, d.Enforcement, suffix(": ", d.ModeReason))))
	seg := "yes, " + esc(d.SegmentedReason)
	switch {
	case d.InAudit:
		seg = "in Audit, " + esc(d.SegmentedReason+suffix(": ", d.SegmentedDetail))
	case !d.Segmented:
		seg = "<b>no</b>, " + esc(d.SegmentedReason+suffix(": ", d.SegmentedDetail))
	}
	dl("Segmented", seg)
	dl("Clinical", esc(fmt.Sprintf("safety %s, mission %s%s · %s", d.SafetyImpact, d.MissionImpact, suffix(", care area ", d.CareArea), strings.Join(d.Addresses, ", "))))
	dl("Commissioning", esc(d.Commissioning))
	if e := d.Exception; e != nil {
		dl("Exception", esc(fmt.Sprintf("%s caps the mode at %s, approved by %s, expires %s (%s)%s", e.Name, e.MaxMode, e.ApprovedBy, e.ExpiresAt, e.State, suffix(": ", e.Justification))))
	}
	for _, g := range d.Grants {
		dl("Access grant", esc(fmt.Sprintf("%s (%s): flow %s, approved by %s, ticket %s, %s → %s", g.Name, g.State, g.Flow, g.ApprovedBy, g.Ticket, g.NotBefore, g.NotAfter)))
	}
	for _, f := range d.ForeignPolicies {
		dl("Foreign policy", esc(f))
	}
	if t := d.Traffic; t != nil {
		v := esc(trafficLine(t))
		if len(t.Undeclared) > 0 {
			v += ": " + esc(strings.Join(t.Undeclared, "; "))
		}
		dl("Traffic ("+esc(t.Window)+")", v)
	}
	if len(d.Flows) > 0 {
		h.flows(d)
	}
	if len(d.History) > 0 {
		parts := make([]string, len(d.History))
		for i, x := range d.History {
			parts[i] = fmt.Sprintf("%s %s/%s (%s)", x.Time, x.Priority, x.Mode, x.Reason)
		}
		dl("History", esc(strings.Join(parts, "; ")))
	}
	h.p("</dl></details>\n")
}

// flows writes a device's flows: in full for a small report; against its flow profile (the
// paths listed once) for a large one.
func (h *htmlWriter) flows(d *Device) {
	verdict := func(c Conduit) string {
		switch {
		case c.Allowed:
			return "✓ " + c.Name
		case c.Reason == Unknown:
			return "○ " + c.Name + " (not enforced: no decision recorded)"
		}
		return "✕ " + c.Name + " (" + c.Reason + suffix(": ", c.Detail) + ")"
	}
	if id := h.profiles.of(d); id != "" {
		parts := make([]string, len(d.Flows))
		for i, c := range d.Flows {
			parts[i] = verdict(c)
		}
		h.p("<dt>Flows</dt><dd><a href=\"#%s\">%s</a>: %s</dd>", id, id, esc(strings.Join(parts, " · ")))
		return
	}
	h.p("<dt>Flows</dt><dd><ul class=\"fl\">")
	for _, c := range d.Flows {
		h.p("<li>%s, %s, %s</li>", esc(verdict(c)), esc(c.Tier+access(c)), esc(flowPath(c)))
	}
	h.p("</ul></dd>")
}

// profiles names the distinct sets of declared flows of a large report.
type profiles struct {
	byKey map[string]*profile
	list  []*profile
}

type profile struct {
	id      string
	flows   []Conduit
	devices int
}

// MinProfileDevices is the report size from which devices' flows are written against shared
// flow profiles.
const MinProfileDevices = MaxDiagramDevices + 1

func newProfiles(devs []Device) profiles {
	ps := profiles{byKey: map[string]*profile{}}
	if len(devs) < MinProfileDevices {
		return ps
	}
	for i := range devs {
		if len(devs[i].Flows) == 0 {
			continue
		}
		k := profileKey(&devs[i])
		pr := ps.byKey[k]
		if pr == nil {
			pr = &profile{id: fmt.Sprintf("P%d", len(ps.list)+1), flows: devs[i].Flows}
			ps.byKey[k] = pr
			ps.list = append(ps.list, pr)
		}
		pr.devices++
	}
	return ps
}

// of is the device's profile id, or "" when the report writes flows in full.
func (ps profiles) of(d *Device) string {
	if len(ps.list) == 0 {
		return ""
	}
	return ps.byKey[profileKey(d)].id
}

func profileKey(d *Device) string {
	var b strings.Builder
	for _, c := range d.Flows {
		b.WriteString(c.Name + "|" + c.Tier + "|" + c.Access + "|" + flowPath(c) + "\n")
	}
	return b.String()
}

// access names a flow's access when it is not standing.
func access(c Conduit) string {
	if c.Access == "Standing" || c.Access == "" {
		return ""
	}
	return " (" + c.Access + ")"
}

// flowPath is a flow's path with its peers: "device → gateway:2575 → clinical-apps:
// app=emr-interface:2575/TCP".
func flowPath(c Conduit) string {
	peers := strings.Join(c.nodes, "; ")
	if len(c.nodes) == 0 {
		peers = strings.Join(c.Peers, "; ")
	}
	if len(c.nodes) > 1 {
		return c.Ports + "/" + c.Protocol + " (peers " + peers + ")"
	}
	return strings.Replace(c.Ports, "peers", peers, 1) + "/" + c.Protocol
}

func flowCounts(d *Device) (allowed, blocked int) {
	for _, c := range d.Flows {
		if c.Allowed {
			allowed++
		} else {
			blocked++
		}
	}
	return allowed, blocked
}

// auditLine says what Enforce would do in an Audit zone.
func auditLine(a AuditZone) string {
	s := fmt.Sprintf("%s devices would be %s", thousands(a.Devices), countsText(a.ByMode))
	s += fmt.Sprintf("; Enforce would block %s declared flows on %s devices", thousands(a.BlockedFlows), thousands(a.DevicesWithBlockedFlows))
	if a.DevicesWithUndeclared > 0 {
		s += fmt.Sprintf(" and drop %s observed flows (%s connections) on %s devices", discover.Thousands(a.UndeclaredFlows), discover.Thousands(a.UndeclaredConnections), thousands(a.DevicesWithUndeclared))
	}
	if a.SharedGateway > 0 {
		s += fmt.Sprintf("; %s devices share gateway pods with enforced devices", thousands(a.SharedGateway))
	}
	return s
}

// countsText is "120 Quarantine, 80 Restricted" (zero counts left out).
func countsText(cs []Count) string {
	var parts []string
	for _, c := range cs {
		if c.Count > 0 {
			parts = append(parts, thousands(c.Count)+" "+c.Name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func countOf(cs []Count, name string) int {
	for _, c := range cs {
		if c.Name == name {
			return c.Count
		}
	}
	return 0
}

func reachable(ps PolicySummary) string {
	if ps.ReachableWorkloads == nil {
		return "-"
	}
	s := discover.Thousands(int64(*ps.ReachableWorkloads))
	if ps.EvaluatedWorkloads != nil {
		s += " of " + discover.Thousands(int64(*ps.EvaluatedWorkloads)) + " pods"
	}
	return s
}

func thousands(n int) string { return discover.Thousands(int64(n)) }

// plural is "1 device", "2 devices".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return thousands(n) + " " + noun + "s"
}

// shortTime is an RFC 3339 time without its seconds: "2026-12-02 08:55Z".
func shortTime(s string) string {
	if len(s) == len("2006-01-02T15:04:05Z") && s[10] == 'T' {
		return s[:10] + " " + s[11:16] + "Z"
	}
	return orDash(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func siteName(site, name string) string {
	if site == "" {
		return name
	}
	return site + ":" + name
}

func zoneLabel(z Zone) string { return siteName(z.Site, z.Name) }

func zoneAnchor(z Zone) string { return "zone-" + idPart(siteName(z.Site, z.Name)) }

func groupAnchor(z Zone, i int) string { return fmt.Sprintf("%s-g%d", zoneAnchor(z), i) }

// idPart makes a fragment-safe id part: letters, digits, '-', '_' and '.' kept, the rest '-'.
func idPart(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, s)
}

// urlFragment escapes a filter text for a #q= link.
func urlFragment(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", "#", "%23", "\"", "%22").Replace(s)
}

func chip(class, text string) string {
	return "<span class=\"c " + class + "\">" + esc(text) + "</span>"
}

func statusChip(l DeviceLine) string { return chip(statusClass(l), l.Status) }

func statusClass(l DeviceLine) string {
	switch {
	case l.Segmented:
		return clsGood
	case l.Status == StatusInAudit:
		return clsAudit
	}
	return clsBad
}

func deviceLink(ref string) string {
	return "<a href=\"#" + anchor(ref) + "\">" + esc(ref) + "</a>"
}

func esc(s string) string { return html.EscapeString(s) }

// anchor makes an id from a device reference.
func anchor(ref string) string {
	return "d-" + strings.NewReplacer("/", "--", ":", "__", " ", "-").Replace(ref)
}

// CSS classes of modes, priorities and verdicts: short, since a large report repeats them
// tens of thousands of times. s, r, q: the modes' colours; g good, b bad, w warn, a audit,
// u unknown.
func modeClass(m string) string {
	switch m {
	case "Standard":
		return "s"
	case "Restricted":
		return "r"
	case "Quarantine":
		return "q"
	}
	return "u"
}

func priorityClass(p string) string {
	switch p {
	case "Immediate":
		return "q"
	case "OutOfCycle":
		return "r"
	case "Scheduled", "Defer":
		return "s"
	}
	return "u"
}

func flatClass(f string) string {
	switch f {
	case "Isolated":
		return "g"
	case "Flat":
		return "b"
	}
	return "u"
}

// verdict classes
const (
	clsGood  = "g"
	clsBad   = "b"
	clsWarn  = "w"
	clsAudit = "a"
)

// filterScript filters the device list by every word typed (or given as
// #q=... in the address), offline: no request, no library.
const filterScript = `(function(){var q=document.getElementById('q'),n=document.getElementById('qn'),items=null,t;if(!q)return;
function run(){var w=q.value.toLowerCase().split(/\s+/).filter(Boolean),c=0;if(!items){items=[].slice.call(document.querySelectorAll('details.dev'));items.forEach(function(e){e._t=e.textContent.toLowerCase()})}
items.forEach(function(e){var ok=w.every(function(x){return e._t.indexOf(x)>=0});e.hidden=!ok;if(ok)c++});n.textContent=w.length?c+' devices match':''}
q.addEventListener('input',function(){clearTimeout(t);t=setTimeout(run,150)});
function fromHash(){var h=decodeURIComponent(location.hash);if(h.indexOf('#q=')===0){q.value=h.slice(3);run();q.scrollIntoView()}}
window.addEventListener('hashchange',fromHash);fromHash();
function openTarget(){var e=location.hash&&document.getElementById(decodeURIComponent(location.hash.slice(1)));if(e&&e.tagName==='DETAILS'){e.open=true;e.scrollIntoView()}}
window.addEventListener('hashchange',openTarget);openTarget();
var all=document.getElementById('open-all');all.addEventListener('click',function(){var o=all.textContent==='Expand all';document.querySelectorAll('details.dev').forEach(function(d){if(!d.hidden)d.open=o});all.textContent=o?'Collapse all':'Expand all'});
window.addEventListener('beforeprint',function(){document.querySelectorAll('details.dev').forEach(function(d){d.open=true})})})();`

const css = `body{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif;color:#1f2933;margin:0 auto;max-width:1180px;padding:16px 24px;font-size:14px;line-height:1.4}
h1{font-size:22px;margin:0 0 2px}h2{font-size:19px;border-bottom:2px solid #d9e2ec;padding-bottom:4px;margin-top:28px}h3{font-size:15px;margin:14px 0 6px}h4{font-size:14px;margin:0 0 4px}
.meta,.note{color:#52606d;margin:0}small{color:#52606d;font-weight:normal}
nav{font-size:12px;margin:6px 0;line-height:1.9}nav a{margin-right:8px}nav a.sub{color:#52606d}
.tiles{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.tile{border:1px solid #d9e2ec;border-radius:8px;padding:6px 10px;flex:1 1 110px;background:#f8fafc;color:inherit;text-decoration:none;min-width:0}
.tile .value{display:block;font-size:22px;font-weight:bold}.tile .label{display:block;color:#52606d;font-size:12px}
.tile.good{border-color:#2e7d32;background:#e3f4e5}.tile.bad{border-color:#c62828;background:#fde3e1}.tile.warn{border-color:#b26a00;background:#fff3d6}.tile.audit{border-color:#1e63b5;background:#e3eefb}
.cols{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}.col{flex:1 1 460px;min-width:0}.col h3:first-child{margin-top:4px}
table{border-collapse:collapse;margin:4px 0 10px}caption{text-align:left;font-weight:bold;padding-bottom:4px}
th,td{border:1px solid #d9e2ec;padding:3px 7px;text-align:left;vertical-align:top;overflow-wrap:anywhere}th{background:#f0f4f8}
table.list,table.conduits{width:100%}table.list{font-size:13px}
.c{display:inline-block;border-radius:10px;padding:0 7px;font-size:12px;border:1px solid;white-space:nowrap}
.c.s,.c.g{background:#e3f4e5;border-color:#2e7d32;color:#1b5e20}
.c.r,.c.w{background:#fff3d6;border-color:#b26a00;color:#7a4a00}
.c.q,.c.b{background:#fde3e1;border-color:#c62828;color:#8e1c1c}
.c.a{background:#e3eefb;border-color:#1e63b5;color:#123e72}
.c.u{background:#eceff1;border-color:#607d8b;color:#37474f}
td.s,td.g{color:#1b5e20}td.r,td.w{color:#7a4a00}td.q,td.b{color:#8e1c1c;font-weight:bold}td.a{color:#123e72}td.u{color:#37474f}
ul.fl{margin:0;padding:0;list-style:none}ul.fl li{margin:1px 0}
.ok{color:#1b5e20}.warn{color:#7a4a00}td.t{white-space:nowrap}th{overflow-wrap:normal}
ul.findings{margin:4px 0;padding-left:18px}ul.findings li{margin:2px 0}.refs{font-size:12px;overflow-wrap:anywhere}
.filter input{font-size:14px;padding:4px 8px;width:min(420px,70%)}
.devs{font-size:13px;margin:4px 0 14px}
.devs .hd,.dev summary{display:grid;grid-template-columns:minmax(0,2.4fr) minmax(0,1.3fr) 6.5em 6.5em minmax(0,1.6fr) 4.5em minmax(0,1.4fr);gap:6px;align-items:start;padding:3px 6px}
.devs .hd{background:#f0f4f8;font-weight:bold;border:1px solid #d9e2ec}
.dev{border:1px solid #d9e2ec;border-top:none;content-visibility:auto;contain-intrinsic-size:auto 28px}
.dev summary{cursor:pointer;list-style:none}.dev summary::-webkit-details-marker{display:none}.dev summary b{font-weight:normal;overflow-wrap:anywhere}.dev summary b::before{content:"▸ ";color:#829ab1}.dev[open] summary b::before{content:"▾ "}
.dev summary span{overflow-wrap:anywhere;min-width:0}.dev summary .c{justify-self:start;max-width:100%;overflow:hidden;text-overflow:ellipsis}
.dev[open]{background:#fbfcfe}
dl{display:grid;grid-template-columns:110px minmax(0,1fr);gap:1px 10px;margin:4px 12px 8px;font-size:13px}dt{color:#52606d}dd{margin:0;overflow-wrap:anywhere}
svg{box-sizing:border-box;max-width:100%;height:auto;border:1px solid #d9e2ec;border-radius:8px;background:#fff}
svg text{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif}svg a:hover rect{stroke-width:3}
tr.unreachable td{background:#fde3e1}
footer{color:#829ab1;font-size:12px;margin-top:28px}
@media print{body{max-width:none;padding:0;font-size:10px}.noprint,nav,#lists{display:none}
h2{break-after:avoid}h3{break-after:avoid}tr,li{break-inside:avoid}.tile .value{font-size:16px}
#devices{break-before:page}#devices h2::before{content:"Appendix: "}
.devs{font-size:8.5px}.dev{break-inside:avoid;content-visibility:visible}.dev::details-content{content-visibility:visible;display:block}
.dev summary b::before,.dev[open] summary b::before{content:""}.dev dl{font-size:8px;grid-template-columns:64px minmax(0,1fr);margin:2px 6px 4px}
.c{font-size:8.5px;padding:0 4px}svg{max-height:24cm;width:auto}}
`
