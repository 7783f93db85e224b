package report

import (
	"fmt"
	"sort"
	"strings"
)

// MaxDiagramDevices is the most devices the diagram draws one by one; above it conduits are
// aggregated: zone → device type (or care area) → peer, with counts and the strictest mode.
const MaxDiagramDevices = 60

// Aggregated diagram bounds: groups drawn per zone, conduit rows per group, peers per column.
// What is beyond them is counted in the diagram and listed in the zone's conduit table.
const (
	maxGroupsPerZone = 10
	maxRowsPerGroup  = 5
	maxPeersPerSide  = 24
)

func diagramNote(r *Report) string {
	if len(r.Devices) > MaxDiagramDevices {
		return fmt.Sprintf("%s devices: each zone (SegmentPolicy) shows its devices by type with the strictest mode, and their conduits (declared flows through the gateways) aggregated by peer, with counts; in-cluster peers on the left, external peers on the right, solid when all are allowed, dashed when some are blocked. Select a group for its conduit table; the device list and the appendix carry every device.", thousands(len(r.Devices)))
	}
	return "Zones are SegmentPolicies (the care areas they govern); devices are coloured by mode. Conduits are the declared flows through each device's gateway: in-cluster peers on the left, external peers on the right; solid when allowed, dashed when blocked, thicker for more critical tiers."
}

// Diagram draws zones, devices and conduits as inline SVG with a small deterministic layout:
// in-cluster peers in the left column, zones in the middle, external peers on the right, and
// one curve from each conduit row to its peer. Up to MaxDiagramDevices devices each device is
// a card with one row per flow; above, each zone shows device groups with aggregated conduits.
// Every text is fitted to its box (svg <g class="box">) by DejaVu Sans metrics.
func Diagram(r *Report) string {
	d := &diagram{b: &strings.Builder{}}
	if len(r.Devices) > MaxDiagramDevices {
		d.aggregated(r)
	} else {
		d.detailed(r)
	}
	return d.b.String()
}

type box struct{ x, y, w, h float64 }

type diagram struct {
	b *strings.Builder
}

func (d *diagram) p(format string, args ...any) { fmt.Fprintf(d.b, format, args...) }

const (
	dMargin = 20.0
	dPeerW  = 260.0
	dGap    = 100.0
	dTop    = dMargin + 26
	dPeerH  = 28.0
	dPeerG  = 10.0
)

// text writes a text fitted to width (by DejaVu Sans metrics).
func (d *diagram) text(x, y, size float64, bold bool, fill, s string, width float64) {
	weight := ""
	if bold {
		weight = " font-weight=\"bold\""
	}
	d.p("<text x=\"%.1f\" y=\"%.1f\" font-size=\"%g\"%s fill=\"%s\">%s</text>\n", x, y, size, weight, fill, esc(fit(s, size, bold, width)))
}

func (d *diagram) open(width, height float64) {
	d.p("<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\" aria-label=\"Zones and conduits\">\n", width, height, width, height)
}

func (d *diagram) headings(zoneX, zoneW, rightX float64) {
	d.text(dMargin, dMargin+8, 13, true, "#52606d", "In-cluster peers", dPeerW)
	d.text(zoneX, dMargin+8, 13, true, "#52606d", "Zones (SegmentPolicies) and devices", zoneW)
	d.text(rightX, dMargin+8, 13, true, "#52606d", "External peers", dPeerW)
}

// peerColumn places peer boxes centred on the middle column's height.
func peerColumn(peers []string, middleEnd float64) (map[string]box, float64) {
	out := map[string]box{}
	total := float64(len(peers))*(dPeerH+dPeerG) - dPeerG
	y := max(dTop, dTop+(middleEnd-dTop-total)/2)
	for _, peer := range peers {
		out[peer] = box{0, y, dPeerW, dPeerH}
		y += dPeerH + dPeerG
	}
	return out, y
}

// frame places the peer columns beside the middle column (which ends at middleEnd), opens the
// SVG tall enough for all three and the legend below them, and writes the column headings.
func (d *diagram) frame(left, right []string, middleEnd, legend, zoneX, zoneW, rightX, width float64) (leftBoxes, rightBoxes map[string]box, height float64) {
	leftBoxes, leftEnd := peerColumn(left, middleEnd)
	rightBoxes, rightEnd := peerColumn(right, middleEnd)
	height = max(middleEnd, leftEnd, rightEnd) + legend
	d.open(width, height)
	d.headings(zoneX, zoneW, rightX)
	return leftBoxes, rightBoxes, height
}

func (d *diagram) peerBoxes(x float64, peers []string, boxes map[string]box, counts map[string]int) {
	for _, n := range peers {
		pb := boxes[n]
		label := n
		if c := counts[n]; c > 0 {
			label = fmt.Sprintf("%s (%s)", n, thousands(c))
		}
		d.p("<g class=\"box\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"14\" fill=\"#ffffff\" stroke=\"#829ab1\"><title>%s</title></rect>\n", x, pb.y, pb.w, pb.h, esc(label))
		d.text(x+10, pb.y+18, 11, false, "#243b53", label, pb.w-20)
		d.p("</g>\n")
	}
}

// curve draws a conduit from (x1,y1) to (x2,y2).
func (d *diagram) curve(x1, y1, x2, y2 float64, tierName string, dashed bool, title string) {
	st := tier(tierName)
	dash, opacity := "", 0.85
	if dashed {
		dash, opacity = " stroke-dasharray=\"6 5\"", 0.5
	}
	mx := (x1 + x2) / 2
	d.p("<path d=\"M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-opacity=\"%.2f\"%s><title>%s</title></path>\n",
		x1, y1, mx, y1, mx, y2, x2, y2, st.color, st.width, opacity, dash, esc(title))
}

func (d *diagram) legend(height float64, note string) {
	ly := height - 30
	x := dMargin
	for _, m := range []string{"Standard", "Restricted", "Quarantine"} {
		c := fills[modeClass(m)]
		d.p("<rect x=\"%.0f\" y=\"%.0f\" width=\"16\" height=\"12\" rx=\"3\" fill=\"%s\" stroke=\"%s\"/>", x, ly, c[0], c[1])
		d.p("<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#243b53\">%s</text>\n", x+22, ly+10, m)
		x += 105
	}
	for _, t := range []string{"Essential", "Clinical", "Support"} {
		st := tier(t)
		d.p("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"%.1f\"/>", x, ly+6, x+30, ly+6, st.color, st.width)
		d.p("<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#243b53\">%s</text>\n", x+36, ly+10, t)
		x += 105
	}
	d.p("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#78909c\" stroke-width=\"1.5\" stroke-dasharray=\"6 5\"/>", x, ly+6, x+30, ly+6)
	d.p("<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#243b53\">blocked ✕</text>\n", x+36, ly+10)
	if note != "" {
		d.p("<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#52606d\">%s</text>\n", dMargin, ly+26, esc(note))
	}
}

// detailed draws every device as a card with one row per flow.
func (d *diagram) detailed(r *Report) {
	const (
		zoneW      = 340.0
		devHead    = 38.0
		rowH       = 16.0
		devGap     = 10.0
		zoneHeader = 38.0
		zoneGap    = 22.0
	)
	devs := r.byRef()
	internal, external := map[string]bool{}, map[string]bool{}
	for _, dv := range r.Devices {
		for _, c := range dv.Flows {
			for _, n := range c.nodes {
				if strings.HasPrefix(n, "external ") {
					external[n] = true
				} else {
					internal[n] = true
				}
			}
		}
	}
	left, right := sortedKeys(internal), sortedKeys(external)
	zoneX := dMargin + dPeerW + dGap
	rightX := zoneX + zoneW + dGap
	width := rightX + dPeerW + dMargin
	devBox := map[string]box{}
	y := dTop
	type zoneBox struct {
		z Zone
		b box
	}
	var zones []zoneBox
	for _, z := range r.Zones {
		h := zoneHeader
		for _, ref := range z.Devices {
			dh := devHead + float64(len(devs[ref].Flows))*rowH + 6
			devBox[ref] = box{zoneX + 12, y + h, zoneW - 24, dh}
			h += dh + devGap
		}
		zones = append(zones, zoneBox{z, box{zoneX, y, zoneW, h}})
		y += h + zoneGap
	}
	leftBoxes, rightBoxes, height := d.frame(left, right, y, 50, zoneX, zoneW, rightX, width)
	for _, zb := range zones {
		d.zoneBox(zb.z, zb.b)
	}
	// Curves, then the cards and peers over their ends.
	for _, z := range r.Zones {
		for _, ref := range z.Devices {
			dv, db := devs[ref], devBox[ref]
			for i, c := range dv.Flows {
				ry := db.y + devHead + float64(i)*rowH + rowH/2 - 2
				for _, n := range c.nodes {
					title := fmt.Sprintf("%s %s (%s, %s/%s): %s", dv.Ref, c.Name, c.Tier, c.Ports, c.Protocol, verdict(c))
					if pb, ok := leftBoxes[n]; ok {
						d.curve(dMargin+pb.w, pb.y+pb.h/2, db.x, ry, c.Tier, !c.Allowed, title)
					} else {
						pb := rightBoxes[n]
						d.curve(db.x+db.w, ry, rightX, pb.y+pb.h/2, c.Tier, !c.Allowed, title)
					}
				}
			}
		}
	}
	for _, z := range r.Zones {
		for _, ref := range z.Devices {
			dv, db := devs[ref], devBox[ref]
			c := fills[modeClass(dv.Mode)]
			d.p("<a href=\"#%s\"><g class=\"box\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"6\" fill=\"%s\" stroke=\"%s\" stroke-width=\"2\"><title>%s</title></rect>\n",
				anchor(dv.Ref), db.x, db.y, db.w, db.h, c[0], c[1], esc(dv.Ref+": "+dv.ModeReason))
			d.text(db.x+10, db.y+16, 12, true, "#102a43", dv.Ref, db.w-20)
			status := dv.Priority + " · " + dv.Mode
			switch {
			case dv.InAudit:
				status += " · in Audit"
			case !dv.Segmented:
				status += " · NOT SEGMENTED"
			}
			if !dv.Commissioned {
				status += " · onboarding"
			}
			d.text(db.x+10, db.y+31, 11, false, c[1], status, db.w-20)
			for i, fl := range dv.Flows {
				mark, color := "✓", tier(fl.Tier).color
				row := fmt.Sprintf("%s %s · %s", fl.Name, portOf(fl), fl.Tier)
				switch {
				case !fl.Allowed:
					mark, color = "✕", "#829ab1"
					row += " · (" + fl.Reason + ")"
				case strings.HasPrefix(fl.Access, "Granted"):
					row += " · by grant"
				}
				d.text(db.x+10, db.y+devHead+float64(i)*rowH+rowH/2+2, 10.5, false, color, mark+" "+row, db.w-20)
			}
			d.p("</g></a>\n")
		}
	}
	d.peerBoxes(dMargin, left, leftBoxes, nil)
	d.peerBoxes(rightX, right, rightBoxes, nil)
	d.legend(height, "")
	d.p("</svg>\n")
}

// zoneBox draws a zone's frame and title.
func (d *diagram) zoneBox(z Zone, bx box) {
	d.p("<a href=\"#%s\"><g class=\"box\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"10\" fill=\"#f8fafc\" stroke=\"#9fb3c8\" stroke-width=\"1.5\"/>\n", zoneAnchor(z), bx.x, bx.y, bx.w, bx.h)
	enf := z.Enforcement
	if z.Name == Ungoverned {
		enf = "no SegmentPolicy: not enforced"
	}
	d.text(bx.x+12, bx.y+18, 13, true, "#243b53", zoneLabel(z)+" · "+enf+" · "+plural(len(z.Devices), "device"), bx.w-24)
	if len(z.DeviceNetworks) > 0 {
		d.text(bx.x+12, bx.y+31, 10, false, "#627d98", "device networks "+strings.Join(z.DeviceNetworks, ", "), bx.w-24)
	}
	d.p("</g></a>\n")
}

// peerAggregation maps each peer to the node drawn for it: itself while a column holds at most
// maxPeersPerSide peers; beyond, in-cluster peers collapse to their namespace and external ones
// to one node.
func peerAggregation(peers map[string]int) (nodes map[string]string, left, right []string, counts map[string]int) {
	var in, ex []string
	for p := range peers {
		if strings.HasPrefix(p, "external ") {
			ex = append(ex, p)
		} else {
			in = append(in, p)
		}
	}
	nodes, counts = map[string]string{}, map[string]int{}
	collapse := func(ps []string, key func(string) string) {
		for _, p := range ps {
			nodes[p] = p
			if len(ps) > maxPeersPerSide {
				nodes[p] = key(p)
			}
			counts[nodes[p]] += peers[p]
		}
	}
	collapse(in, func(p string) string {
		ns, _, _ := strings.Cut(p, ": ")
		return ns + ": any pods"
	})
	collapse(ex, func(string) string { return fmt.Sprintf("external (%d CIDRs)", len(ex)) })
	seenL, seenR := map[string]bool{}, map[string]bool{}
	for p, n := range nodes {
		if strings.HasPrefix(p, "external ") {
			seenR[n] = true
		} else {
			seenL[n] = true
		}
	}
	return nodes, sortedKeys(seenL), sortedKeys(seenR), counts
}

// aggregated draws each zone's device groups with their conduits by peer.
func (d *diagram) aggregated(r *Report) {
	const (
		zoneW      = 440.0
		zoneHeader = 40.0
		zoneGap    = 22.0
		groupHead  = 36.0
		rowH       = 16.0
		groupGap   = 8.0
	)
	peers := map[string]int{}
	for _, z := range r.Zones {
		for _, g := range z.Groups {
			for _, c := range g.Conduits {
				peers[c.Peer] += c.Flows
			}
		}
	}
	nodes, left, right, counts := peerAggregation(peers)
	zoneX := dMargin + dPeerW + dGap
	rightX := zoneX + zoneW + dGap
	width := rightX + dPeerW + dMargin
	type row struct {
		text, peer, tier, title string
		dashed                  bool
	}
	type groupBox struct {
		z    Zone
		g    DeviceGroup
		gi   int
		b    box
		rows []row
		more string
	}
	type zoneBox struct {
		z    Zone
		b    box
		more string
	}
	var zones []zoneBox
	var groups []groupBox
	y := dTop
	for _, z := range r.Zones {
		h := zoneHeader
		for gi, g := range z.Groups {
			if gi == maxGroupsPerZone {
				break
			}
			gb := groupBox{z: z, g: g, gi: gi}
			for ci, c := range g.Conduits {
				if ci == maxRowsPerGroup {
					gb.more = fmt.Sprintf("+ %d more peers: see the conduit table", len(g.Conduits)-ci)
					break
				}
				text := c.Peer + " · " + plural(c.Flows, "flow")
				if c.Blocked > 0 {
					text += fmt.Sprintf(" · %s blocked", thousands(c.Blocked))
				}
				if c.Undecided > 0 {
					text += fmt.Sprintf(" · %s not enforced", thousands(c.Undecided))
				}
				gb.rows = append(gb.rows, row{text: text, peer: nodes[c.Peer], tier: c.Tier, dashed: c.Blocked > 0,
					title: fmt.Sprintf("%s → %s: %d flows on %d devices (%d allowed, %d blocked, %d not enforced), %s, ports %s", g.Name, c.Peer, c.Flows, c.Devices, c.Allowed, c.Blocked, c.Undecided, c.Tier, strings.Join(c.Ports, ", "))})
			}
			lines := len(gb.rows)
			if gb.more != "" {
				lines++
			}
			if len(g.Conduits) == 0 {
				lines = 1
			}
			gh := groupHead + float64(lines)*rowH + 6
			gb.b = box{zoneX + 12, y + h, zoneW - 24, gh}
			groups = append(groups, gb)
			h += gh + groupGap
		}
		zb := zoneBox{z: z}
		if n := len(z.Groups) - maxGroupsPerZone; n > 0 {
			rest := 0
			for _, g := range z.Groups[maxGroupsPerZone:] {
				rest += g.Devices
			}
			zb.more = fmt.Sprintf("+ %d more device types (%s devices): see the zone's conduit table", n, thousands(rest))
			h += rowH + 4
		}
		zb.b = box{zoneX, y, zoneW, h}
		zones = append(zones, zb)
		y += h + zoneGap
	}
	leftBoxes, rightBoxes, height := d.frame(left, right, y, 60, zoneX, zoneW, rightX, width)
	for _, zb := range zones {
		d.zoneBox(zb.z, zb.b)
		if zb.more != "" {
			d.p("<g class=\"box\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"none\"/>\n", zb.b.x+12, zb.b.y+zb.b.h-rowH-6, zb.b.w-24, rowH)
			d.text(zb.b.x+12, zb.b.y+zb.b.h-10, 11, false, "#52606d", zb.more, zb.b.w-24)
			d.p("</g>\n")
		}
	}
	for _, gb := range groups {
		for i, rw := range gb.rows {
			ry := gb.b.y + groupHead + float64(i)*rowH + rowH/2 - 2
			if pb, ok := leftBoxes[rw.peer]; ok {
				d.curve(dMargin+pb.w, pb.y+pb.h/2, gb.b.x, ry, rw.tier, rw.dashed, rw.title)
			} else if pb, ok := rightBoxes[rw.peer]; ok {
				d.curve(gb.b.x+gb.b.w, ry, rightX, pb.y+pb.h/2, rw.tier, rw.dashed, rw.title)
			}
		}
	}
	for _, gb := range groups {
		g, bx := gb.g, gb.b
		c := fills[modeClass(g.Mode)]
		d.p("<a href=\"#%s\"><g class=\"box\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"6\" fill=\"%s\" stroke=\"%s\" stroke-width=\"2\"><title>%s</title></rect>\n",
			groupAnchor(gb.z, gb.gi), bx.x, bx.y, bx.w, bx.h, c[0], c[1], esc(fmt.Sprintf("%s in %s: %d devices, %s", g.Name, zoneLabel(gb.z), g.Devices, countsText(g.ByMode))))
		d.text(bx.x+10, bx.y+16, 12, true, "#102a43", g.Name+" · "+plural(g.Devices, "device"), bx.w-20)
		d.text(bx.x+10, bx.y+31, 11, false, c[1], "strictest "+g.Mode+": "+countsText(g.ByMode), bx.w-20)
		for i, rw := range gb.rows {
			color, mark := tier(rw.tier).color, "→"
			if rw.dashed {
				mark = "✕"
			}
			d.text(bx.x+10, bx.y+groupHead+float64(i)*rowH+rowH/2+2, 10.5, false, color, mark+" "+rw.text, bx.w-20)
		}
		switch {
		case gb.more != "":
			d.text(bx.x+10, bx.y+groupHead+float64(len(gb.rows))*rowH+rowH/2+2, 10.5, false, "#52606d", gb.more, bx.w-20)
		case len(g.Conduits) == 0:
			d.text(bx.x+10, bx.y+groupHead+rowH/2+2, 10.5, false, "#52606d", "no declared flows: isolated", bx.w-20)
		}
		d.p("</g></a>\n")
	}
	d.peerBoxes(dMargin, left, leftBoxes, counts)
	d.peerBoxes(rightX, right, rightBoxes, counts)
	d.legend(height, fmt.Sprintf("%s devices aggregated by type; counts are device flows; peers show their flows in brackets.", thousands(len(r.Devices))))
	d.p("</svg>\n")
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

// Colours, shared by the CSS and the SVG.
var fills = map[string][2]string{ // fill, stroke
	"s": {"#e3f4e5", "#2e7d32"}, // Standard
	"r": {"#fff3d6", "#b26a00"}, // Restricted
	"q": {"#fde3e1", "#c62828"}, // Quarantine
	"u": {"#eceff1", "#607d8b"}, // Unknown
}

var tierStroke = map[string]struct {
	color string
	width float64
}{
	"Essential": {"#1a237e", 3},
	"Clinical":  {"#1e88e5", 2},
	"Support":   {"#78909c", 1.5},
}

func portOf(c Conduit) string {
	// "peers → gateway:8443 → device:443" → "8443/TCP"
	for _, part := range strings.Split(c.Ports, " → ") {
		if strings.HasPrefix(part, "gateway:") {
			return strings.TrimPrefix(part, "gateway:") + "/" + c.Protocol
		}
	}
	return c.Protocol
}

// dejaVuWidths are DejaVu Sans advance widths in em (units per em 2048) for ASCII.
var dejaVuWidths = func() [128]float64 {
	var w [128]float64
	for i := range w {
		w[i] = 0.70 // capitals and anything unlisted: a generous width
	}
	set := func(chars string, v float64) {
		for _, c := range chars {
			w[c] = v
		}
	}
	set(" ", 0.318)
	set("0123456789", 0.637)
	set("abdeghnopqu", 0.637)
	set("c", 0.55)
	set("k", 0.58)
	set("vxy", 0.592)
	set("sz", 0.525)
	set("ftr", 0.41)
	set("ijl", 0.278)
	set("m", 0.974)
	set("w", 0.818)
	set("IJ", 0.30)
	set("MW", 1.0)
	set(".,:;'|!", 0.318)
	set("-()[]{}/\\", 0.39)
	set("_=+<>~*", 0.838)
	set("%", 0.95)
	set("@", 1.0)
	return w
}()

// textWidth estimates a text's width in px at a font size (DejaVu Sans; bold is wider).
func textWidth(s string, size float64, bold bool) float64 {
	w := 0.0
	for _, r := range s {
		switch {
		case r < 128:
			w += dejaVuWidths[r]
		case r == '·':
			w += 0.318
		default:
			w += 1.0 // arrows, marks, ellipsis and anything else: at most an em
		}
	}
	if bold {
		w *= 1.12
	}
	return w * size
}

// fit shortens a text with an ellipsis until it fits width.
func fit(s string, size float64, bold bool, width float64) string {
	if textWidth(s, size, bold) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && textWidth(string(r)+"…", size, bold) > width {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
