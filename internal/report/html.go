package report

import (
	"fmt"
	"html"
	"io"
	"sort"
	"strings"
)

// HTML writes the report as one self-contained HTML file: inline CSS and an inline SVG
// diagram, no scripts and no external references, so it opens the same on an offline ward PC.
func HTML(w io.Writer, r *Report) error {
	b := &strings.Builder{}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n<style>\n%s</style>\n</head>\n<body>\n", esc(r.Title), css)
	p("<header><h1>%s</h1>\n<p class=\"meta\">Generated %s from %s.", esc(r.Title), esc(r.GeneratedAt), esc(r.Source))
	if r.Offline {
		p(" Computed offline from files: what medseg would decide; drift, flatness and what is applied are known only in a live cluster.")
	}
	p("</p></header>\n")

	s := r.Summary
	p("<section id=\"summary\"><h2>Summary</h2>\n<div class=\"tiles\">\n")
	tile := func(value, label, class string) {
		p("<div class=\"tile %s\"><div class=\"value\">%s</div><div class=\"label\">%s</div></div>\n", class, esc(value), esc(label))
	}
	tile(fmt.Sprint(s.Devices), "devices", "")
	segClass := "good"
	if s.Segmented < s.Devices {
		segClass = "bad"
	}
	tile(fmt.Sprintf("%d%%", s.SegmentedPercent), fmt.Sprintf("segmented (%d of %d)", s.Segmented, s.Devices), segClass)
	tile(fmt.Sprint(len(s.OpenDrift)), "not segmented as declared", map[bool]string{true: "good", false: "bad"}[len(s.OpenDrift) == 0])
	tile(fmt.Sprint(s.Onboarding), "in onboarding (not commissioned)", map[bool]string{true: "good", false: "warn"}[s.Onboarding == 0])
	tile(fmt.Sprint(len(s.Exceptions)), "exceptions active", "")
	tile(fmt.Sprint(len(s.Grants)), "vendor grants open or upcoming", "")
	p("</div>\n<div class=\"cols\">\n")
	countTable := func(title string, cs []Count, cls func(string) string) {
		p("<table class=\"counts\"><caption>%s</caption>\n", esc(title))
		for _, c := range cs {
			p("<tr><th><span class=\"chip %s\">%s</span></th><td>%d</td></tr>\n", cls(c.Name), esc(c.Name), c.Count)
		}
		p("</table>\n")
	}
	countTable("Devices by SSVC priority", s.ByPriority, priorityClass)
	countTable("Devices by mode", s.ByMode, modeClass)
	p("<table><caption>Zones (SegmentPolicies) and flatness</caption>\n<tr><th>SegmentPolicy</th><th>Enforcement</th><th>Devices</th><th>Flatness</th><th>Reachable workloads</th><th>Most loaded gateway</th></tr>\n")
	for _, ps := range s.Policies {
		p("<tr><td>%s</td><td>%s</td><td>%d</td><td><span class=\"chip %s\">%s</span></td><td>%d</td><td>%s</td></tr>\n",
			esc(ps.Name), esc(ps.Enforcement), ps.Devices, flatClass(ps.Flatness), esc(ps.Flatness), ps.ReachableWorkloads, esc(firstOr(ps.Gateways, "-")))
	}
	p("</table>\n</div>\n")
	for _, a := range s.IneffectiveApprovals {
		p("<p class=\"warn\">Approval without effect on <a href=\"#%s\">%s</a>: <b>%s</b> %s</p>\n", anchor(a.Device), esc(a.Device), esc(a.Reason), esc(a.Detail))
	}
	p("<h3>Open drift</h3>\n")
	if len(s.OpenDrift) == 0 {
		p("<p class=\"ok\">None: every device is segmented as declared.</p>\n")
	} else {
		p("<ul class=\"findings\">\n")
		for _, f := range s.OpenDrift {
			p("<li><a href=\"#%s\">%s</a>: <b>%s</b> %s</li>\n", anchor(f.Device), esc(f.Device), esc(f.Reason), esc(f.Detail))
		}
		p("</ul>\n")
	}
	for _, t := range []table{exceptionsTable(s.Exceptions), grantsTable(s.Grants), trafficTable(s.Traffic)} {
		p("<h3>%s</h3>\n", esc(t.title))
		if len(t.rows) == 0 {
			p("<p>None.</p>\n")
			continue
		}
		p("<table><tr>")
		for _, h := range t.header {
			p("<th>%s</th>", esc(h))
		}
		p("</tr>\n")
		for _, row := range t.rows {
			p("<tr>")
			for _, c := range row {
				p("<td>%s</td>", esc(c))
			}
			p("</tr>\n")
		}
		p("</table>\n")
	}
	p("</section>\n")

	p("<section id=\"zones\"><h2>Zones and conduits</h2>\n<p>Zones are SegmentPolicies (the care areas they govern); devices are coloured by mode. Conduits are the declared flows through each device's gateway: in-cluster peers on the left, external peers on the right; solid when allowed, dashed when blocked, thicker for more critical tiers.</p>\n")
	b.WriteString(Diagram(r))
	p("</section>\n")

	p("<section id=\"devices\"><h2>Devices</h2>\n")
	for _, d := range r.Devices {
		p("<article class=\"device\" id=\"%s\">\n<h3><span class=\"chip %s\">%s</span> %s <small>%s %s</small></h3>\n",
			anchor(d.Ref), modeClass(d.Mode), esc(d.Mode), esc(d.Ref), esc(d.Manufacturer), esc(d.Model))
		p("<dl>\n")
		dl := func(k, v string) { p("<dt>%s</dt><dd>%s</dd>\n", esc(k), v) }
		dl("Identity", esc(identity(d)))
		dl("Clinical impact", esc(fmt.Sprintf("safety %s, mission %s%s", d.SafetyImpact, d.MissionImpact, suffix(", care area ", d.CareArea))))
		dl("Addresses", esc(strings.Join(d.Addresses, ", ")))
		risk := fmt.Sprintf("<span class=\"chip %s\">%s</span>%s", priorityClass(d.Priority), esc(d.Priority), esc(suffix(" deciding: ", d.Deciding)))
		if len(d.SSVC) > 0 {
			risk += "<ul>"
			for _, in := range d.SSVC {
				risk += "<li>" + esc(in) + "</li>"
			}
			risk += "</ul>"
		}
		dl("SSVC priority", risk)
		if d.LastFeed != "" {
			dl("Risk inputs last changed by", esc("feed "+d.LastFeed))
		}
		dl("Mode", esc(fmt.Sprintf("%s in zone %s: %s", d.Mode, d.Zone, d.ModeReason)))
		seg := map[bool]string{true: "good", false: "bad"}[d.Segmented]
		dl("Segmented", fmt.Sprintf("<span class=\"chip %s\">%s</span> %s%s", seg, yesNo(d.Segmented), esc(d.SegmentedReason), esc(suffix(": ", d.SegmentedDetail))))
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
				v += "<ul>"
				for _, f := range t.Undeclared {
					v += "<li>" + esc(f) + "</li>"
				}
				v += "</ul>"
			}
			dl("Observed traffic (Hubble, last "+t.Window+")", v)
		}
		p("</dl>\n")
		if len(d.Flows) > 0 {
			p("<table class=\"flows\"><tr><th>Flow</th><th>Tier</th><th>Access</th><th>Path</th><th>Peers</th><th>Verdict</th></tr>\n")
			for _, c := range d.Flows {
				v := "<span class=\"chip good\">allowed</span>"
				if !c.Allowed {
					v = fmt.Sprintf("<span class=\"chip bad\">blocked: %s</span> %s", esc(c.Reason), esc(c.Detail))
				}
				p("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s/%s</td><td>%s</td><td>%s</td></tr>\n",
					esc(c.Name), esc(c.Tier), esc(c.Access), esc(c.Ports), esc(c.Protocol), esc(strings.Join(c.Peers, "; ")), v)
			}
			p("</table>\n")
		}
		if len(d.History) > 0 {
			p("<details><summary>History (%d changes)</summary><ol>\n", len(d.History))
			for _, h := range d.History {
				p("<li>%s: %s, %s: %s</li>\n", esc(h.Time), esc(h.Priority), esc(h.Mode), esc(h.Reason))
			}
			p("</ol></details>\n")
		}
		p("</article>\n")
	}
	p("</section>\n<footer>medseg report: zones and conduits from MedicalDevice and SegmentPolicy status.</footer>\n</body>\n</html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func esc(s string) string { return html.EscapeString(s) }

// anchor makes an id from a device reference.
func anchor(ref string) string {
	return "device-" + strings.NewReplacer("/", "--", " ", "-").Replace(ref)
}

func modeClass(m string) string {
	switch m {
	case "Standard":
		return "standard"
	case "Restricted":
		return "restricted"
	case "Quarantine":
		return "quarantine"
	}
	return "unknown"
}

func priorityClass(p string) string {
	switch p {
	case "Immediate":
		return "quarantine"
	case "OutOfCycle":
		return "restricted"
	case "Scheduled", "Defer":
		return "standard"
	}
	return "unknown"
}

func flatClass(f string) string {
	switch f {
	case "Isolated":
		return "good"
	case "Flat":
		return "bad"
	}
	return "unknown"
}

// Colours, shared by the CSS and the SVG.
var fills = map[string][2]string{ // fill, stroke
	"standard":   {"#e3f4e5", "#2e7d32"},
	"restricted": {"#fff3d6", "#b26a00"},
	"quarantine": {"#fde3e1", "#c62828"},
	"unknown":    {"#eceff1", "#607d8b"},
}

var tierStroke = map[string]struct {
	color string
	width float64
}{
	"Essential": {"#1a237e", 3},
	"Clinical":  {"#1e88e5", 2},
	"Support":   {"#78909c", 1.5},
}

const css = `body{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif;color:#1f2933;margin:0 auto;max-width:1180px;padding:24px;font-size:14px;line-height:1.45}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;border-bottom:2px solid #d9e2ec;padding-bottom:4px;margin-top:32px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#52606d;margin:0}
.tiles{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.tile{border:1px solid #d9e2ec;border-radius:8px;padding:10px 14px;flex:1 1 130px;background:#f8fafc}
.tile .value{font-size:26px;font-weight:bold}.tile .label{color:#52606d;font-size:12px}
.tile.good{border-color:#2e7d32;background:#e3f4e5}.tile.bad{border-color:#c62828;background:#fde3e1}.tile.warn{border-color:#b26a00;background:#fff3d6}
.cols{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
table{border-collapse:collapse;margin:6px 0 12px}caption{text-align:left;font-weight:bold;padding-bottom:4px}
th,td{border:1px solid #d9e2ec;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f0f4f8}
.chip{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;border:1px solid}
.chip.standard,.chip.good{background:#e3f4e5;border-color:#2e7d32;color:#1b5e20}
.chip.restricted,.chip.warn{background:#fff3d6;border-color:#b26a00;color:#7a4a00}
.chip.quarantine,.chip.bad{background:#fde3e1;border-color:#c62828;color:#8e1c1c}
.chip.unknown{background:#eceff1;border-color:#607d8b;color:#37474f}
.ok{color:#1b5e20}.warn{color:#7a4a00}
.device{border:1px solid #d9e2ec;border-radius:8px;padding:8px 14px;margin:12px 0;page-break-inside:avoid}
.device h3 small{color:#52606d;font-weight:normal}
dl{display:grid;grid-template-columns:150px 1fr;gap:2px 12px;margin:6px 0}dt{color:#52606d}dd{margin:0}dd ul{margin:2px 0;padding-left:18px}
svg{max-width:100%;height:auto;border:1px solid #d9e2ec;border-radius:8px;background:#fff}
svg text{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif}
footer{color:#829ab1;font-size:12px;margin-top:32px}
@media print{body{max-width:none}details{display:block}}
`

// Diagram draws zones, devices and conduits as inline SVG with a small deterministic layout:
// in-cluster peers in the left column, zones with their device cards in the middle (one row
// per flow, with its port and verdict), external peers on the right, and one curve from each
// flow row to each of its peers. Hospitals with more than MaxDiagramDevices devices get a
// summary per zone instead of one card per device; the tables still list every conduit.
func Diagram(r *Report) string {
	const (
		margin     = 20.0
		peerW      = 270.0
		zoneW      = 340.0
		gap        = 120.0
		devHead    = 38.0
		rowH       = 16.0
		devGap     = 10.0
		zoneHeader = 38.0
		zoneGap    = 22.0
		peerH      = 28.0
		peerGap    = 12.0
		top        = margin + 26
	)
	b := &strings.Builder{}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	devs := map[string]*Device{}
	for i := range r.Devices {
		devs[r.Devices[i].Ref] = &r.Devices[i]
	}
	summarised := len(r.Devices) > MaxDiagramDevices

	internal, external := map[string]bool{}, map[string]bool{}
	if !summarised {
		for _, d := range r.Devices {
			for _, c := range d.Flows {
				for _, n := range c.nodes {
					if strings.HasPrefix(n, "external ") {
						external[n] = true
					} else {
						internal[n] = true
					}
				}
			}
		}
	}
	left, right := sortedKeys(internal), sortedKeys(external)

	zoneX := margin + peerW + gap
	rightX := zoneX + zoneW + gap
	width := rightX + peerW + margin
	type box struct{ x, y, w, h float64 }
	devBox := map[string]box{}
	y := top
	type zoneBox struct {
		z Zone
		b box
	}
	var zones []zoneBox
	for _, z := range r.Zones {
		h := zoneHeader
		if summarised {
			h += 40
		} else {
			for _, ref := range z.Devices {
				dh := devHead + float64(len(devs[ref].Flows))*rowH + 6
				devBox[ref] = box{zoneX + 12, y + h, zoneW - 24, dh}
				h += dh + devGap
			}
		}
		zones = append(zones, zoneBox{z, box{zoneX, y, zoneW, h}})
		y += h + zoneGap
	}
	middleEnd := y
	column := func(peers []string) (map[string]box, float64) {
		out := map[string]box{}
		total := float64(len(peers))*(peerH+peerGap) - peerGap
		yy := top + (middleEnd-zoneGap-top-total)/2
		if yy < top {
			yy = top
		}
		for _, peer := range peers {
			out[peer] = box{0, yy, peerW, peerH}
			yy += peerH + peerGap
		}
		return out, yy
	}
	leftBoxes, leftEnd := column(left)
	rightBoxes, rightEnd := column(right)
	height := max(middleEnd, leftEnd, rightEnd) + 50

	p("<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\" aria-label=\"Zones and conduits\">\n", width, height, width, height)
	heading := func(x float64, s string) {
		p("<text x=\"%.0f\" y=\"%.0f\" font-size=\"13\" font-weight=\"bold\" fill=\"#52606d\">%s</text>\n", x, margin+8, esc(s))
	}
	heading(margin, "In-cluster peers")
	heading(zoneX, "Zones (SegmentPolicies) and devices")
	heading(rightX, "External peers")

	for _, zb := range zones {
		z, bx := zb.z, zb.b
		p("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"10\" fill=\"#f8fafc\" stroke=\"#9fb3c8\" stroke-width=\"1.5\"/>\n", bx.x, bx.y, bx.w, bx.h)
		p("<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" font-weight=\"bold\" fill=\"#243b53\">%s</text>\n", bx.x+12, bx.y+18, esc(z.Name+" · "+z.Enforcement))
		if len(z.DeviceNetworks) > 0 {
			p("<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#627d98\">%s</text>\n", bx.x+12, bx.y+31, esc(truncate("device networks "+strings.Join(z.DeviceNetworks, ", "), 60)))
		}
		if summarised {
			byMode := map[string]int{}
			for _, ref := range z.Devices {
				byMode[devs[ref].Mode]++
			}
			var parts []string
			for _, m := range []string{"Standard", "Restricted", "Quarantine", Unknown} {
				if byMode[m] > 0 {
					parts = append(parts, fmt.Sprintf("%d %s", byMode[m], m))
				}
			}
			p("<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#243b53\">%s</text>\n", bx.x+12, bx.y+zoneHeader+18,
				esc(fmt.Sprintf("%d devices: %s", len(z.Devices), strings.Join(parts, ", "))))
		}
	}
	// Curves, then the cards and peers over their ends.
	for _, z := range r.Zones {
		if summarised {
			break
		}
		for _, ref := range z.Devices {
			d, db := devs[ref], devBox[ref]
			for i, c := range d.Flows {
				st := tier(c.Tier)
				ry := db.y + devHead + float64(i)*rowH + rowH/2 - 2
				for _, n := range c.nodes {
					var x1, y1, x2, y2 float64
					if pb, ok := leftBoxes[n]; ok {
						x1, y1, x2, y2 = margin+pb.w, pb.y+pb.h/2, db.x, ry
					} else {
						pb := rightBoxes[n]
						x1, y1, x2, y2 = db.x+db.w, ry, rightX, pb.y+pb.h/2
					}
					dash, opacity := "", 0.85
					if !c.Allowed {
						dash, opacity = " stroke-dasharray=\"6 5\"", 0.5
					}
					mx := (x1 + x2) / 2
					p("<path d=\"M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-opacity=\"%.2f\"%s><title>%s</title></path>\n",
						x1, y1, mx, y1, mx, y2, x2, y2, st.color, st.width, opacity, dash,
						esc(fmt.Sprintf("%s %s (%s, %s/%s): %s", d.Ref, c.Name, c.Tier, c.Ports, c.Protocol, verdict(c))))
				}
			}
		}
	}
	for _, ref := range sortedKeys(boolKeys(devBox)) {
		d, db := devs[ref], devBox[ref]
		c := fills[modeClass(d.Mode)]
		p("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"6\" fill=\"%s\" stroke=\"%s\" stroke-width=\"2\"><title>%s</title></rect>\n",
			db.x, db.y, db.w, db.h, c[0], c[1], esc(d.Ref+": "+d.ModeReason))
		p("<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" font-weight=\"bold\" fill=\"#102a43\">%s</text>\n", db.x+10, db.y+16, esc(truncate(d.Ref, 44)))
		status := d.Priority + " · " + d.Mode
		if !d.Segmented {
			status += " · NOT SEGMENTED"
		}
		if !d.Commissioned {
			status += " · onboarding"
		}
		p("<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"%s\">%s</text>\n", db.x+10, db.y+31, c[1], esc(status))
		for i, fl := range d.Flows {
			mark, color := "✓", tier(fl.Tier).color
			row := fmt.Sprintf("%s %s/%s · %s", fl.Name, strings.TrimSuffix(portOf(fl), "/"+fl.Protocol), fl.Protocol, fl.Tier)
			switch {
			case !fl.Allowed:
				mark, color = "✕", "#829ab1"
				row += " · (" + fl.Reason + ")"
			case strings.HasPrefix(fl.Access, "Granted"):
				row += " · by grant"
			}
			p("<text x=\"%.1f\" y=\"%.1f\" font-size=\"10.5\" fill=\"%s\">%s %s</text>\n", db.x+10, db.y+devHead+float64(i)*rowH+rowH/2+2, color, mark, esc(truncate(row, 52)))
		}
	}
	peerBox := func(x float64, pb box, label string) {
		p("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"14\" fill=\"#ffffff\" stroke=\"#829ab1\"><title>%s</title></rect>\n", x, pb.y, pb.w, pb.h, esc(label))
		p("<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#243b53\">%s</text>\n", x+10, pb.y+18, esc(truncate(label, 44)))
	}
	for _, n := range left {
		peerBox(margin, leftBoxes[n], n)
	}
	for _, n := range right {
		peerBox(rightX, rightBoxes[n], n)
	}

	ly := height - 30
	x := margin
	for _, m := range []string{"standard", "restricted", "quarantine"} {
		c := fills[m]
		p("<rect x=\"%.0f\" y=\"%.0f\" width=\"16\" height=\"12\" rx=\"3\" fill=\"%s\" stroke=\"%s\"/>", x, ly, c[0], c[1])
		p("<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#243b53\">%s</text>\n", x+22, ly+10, strings.ToUpper(m[:1])+m[1:])
		x += 105
	}
	for _, t := range []string{"Essential", "Clinical", "Support"} {
		st := tier(t)
		p("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"%.1f\"/>", x, ly+6, x+30, ly+6, st.color, st.width)
		p("<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#243b53\">%s</text>\n", x+36, ly+10, t)
		x += 105
	}
	p("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#78909c\" stroke-width=\"1.5\" stroke-dasharray=\"6 5\"/>", x, ly+6, x+30, ly+6)
	p("<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#243b53\">blocked ✕</text>\n", x+36, ly+10)
	if summarised {
		p("<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#52606d\">%s</text>\n", x+130, ly+10,
			esc(fmt.Sprintf("%d devices: zones are summarised; the tables list every conduit.", len(r.Devices))))
	}
	p("</svg>\n")
	return b.String()
}

func tier(t string) struct {
	color string
	width float64
} {
	if st, ok := tierStroke[t]; ok {
		return st
	}
	return tierStroke["Support"]
}

// MaxDiagramDevices is the most devices the diagram draws one by one.
const MaxDiagramDevices = 60

func portOf(c Conduit) string {
	// "peers → gateway:8443 → device:443" → "8443/TCP"
	for _, part := range strings.Split(c.Ports, " → ") {
		if strings.HasPrefix(part, "gateway:") {
			return strings.TrimPrefix(part, "gateway:") + "/" + c.Protocol
		}
	}
	return c.Protocol
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func boolKeys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
