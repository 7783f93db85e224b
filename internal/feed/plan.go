package feed

import (
	"fmt"
	"sort"
	"strings"

	"github.com/medseg/medseg/api/v1alpha1"
)

// The field managers, one per source, each owning its own fields of the risk inputs.
const (
	ManagerKEV  = "medseg-feed-kev"
	ManagerEPSS = "medseg-feed-epss"
	ManagerVEX  = "medseg-feed-vex"
)

// Target is a device to plan for, and the ids of the list entries the feed's manager applied
// before (read from managedFields in a cluster; nil for devices read from files, where the
// entries' own fields say which are the feed's).
type Target struct {
	Device *v1alpha1.MedicalDevice
	Owned  map[string]bool
	// OwnedFields are, per owned entry, the fields the manager owns (a cluster's managedFields).
	OwnedFields map[string]map[string]bool
}

// Change is one field of one entry changing.
type Change struct {
	ID     string `json:"id"`
	Field  string `json:"field"`
	From   string `json:"from"`
	To     string `json:"to"`
	Source string `json:"source,omitempty"`
}

// DevicePlan is one device's change under one manager.
type DevicePlan struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Changes   []Change `json:"changes"`
	// Vulnerabilities (VEX) or Intel (KEV, EPSS) are every entry the manager applies to the
	// device: server-side apply drops what a manager stops applying.
	Vulnerabilities []v1alpha1.Vulnerability `json:"-"`
	Intel           []v1alpha1.ThreatIntel   `json:"-"`
	// Updated is the device with the change made, for devices read from files.
	Updated *v1alpha1.MedicalDevice `json:"-"`
}

// Plan is what one feed changes.
type Plan struct {
	Manager string `json:"manager"`
	// Read says what was read: catalog version, scores, advisories.
	Read      string       `json:"read"`
	Devices   []DevicePlan `json:"devices"`
	Unchanged int          `json:"unchangedDevices"`
	// VEX only: devices no statement matched, products that matched no device, devices that
	// could be a product but whose version is not known, and disagreeing statements.
	Unmatched      []string  `json:"unmatchedDevices,omitempty"`
	UnusedProducts []string  `json:"unmatchedProducts,omitempty"`
	Unknown        []string  `json:"unknownVersions,omitempty"`
	Conflicts      []string  `json:"conflicts,omitempty"`
	Problems       []Problem `json:"problems,omitempty"`
}

func ref(d *v1alpha1.MedicalDevice) string { return v1alpha1.Qualified(d.Namespace, d.Name) }

func present(d *v1alpha1.MedicalDevice) []string {
	ids := make([]string, 0, len(d.Spec.Vulnerabilities))
	for _, v := range d.Spec.Vulnerabilities {
		ids = append(ids, v.ID)
	}
	sort.Strings(ids)
	return ids
}

func intelOf(d *v1alpha1.MedicalDevice) map[string]v1alpha1.ThreatIntel {
	m := make(map[string]v1alpha1.ThreatIntel, len(d.Spec.ThreatIntel))
	for _, t := range d.Spec.ThreatIntel {
		m[t.ID] = t
	}
	return m
}

// annotator is what one exploitation feed (KEV, EPSS) says and owns of spec.threatIntel.
type annotator struct {
	field, source string
	// lookup is the feed's annotation for a vulnerability id, if it has one.
	lookup func(id string) (v1alpha1.ThreatIntel, bool)
	// has says whether an entry carries the feed's fields; text shows them; same says whether
	// an entry already says what the feed says (in what matters for risk).
	has  func(v1alpha1.ThreatIntel) bool
	text func(v1alpha1.ThreatIntel) string
	same func(cur, want v1alpha1.ThreatIntel) bool
	// set copies the feed's fields from w to x, or clears them when w is nil.
	set func(x, w *v1alpha1.ThreatIntel)
}

// plan annotates the vulnerabilities already on each device; it never adds one, and drops its
// annotations of vulnerabilities that are gone.
func (a annotator) plan(p *Plan, targets []Target) *Plan {
	for _, t := range targets {
		d := t.Device
		cur := intelOf(d)
		var want []v1alpha1.ThreatIntel
		var changes []Change
		wanted := map[string]bool{}
		for _, id := range present(d) {
			w, ok := a.lookup(strings.ToUpper(id)) // feeds name CVEs in upper case; scanners may not
			if !ok {
				continue
			}
			w.ID = id // the annotation joins the vulnerability by its id as written
			wanted[id] = true
			want = append(want, w)
			if c := cur[id]; !a.same(c, w) {
				changes = append(changes, Change{ID: id, Field: a.field, From: a.text(c), To: a.text(w), Source: a.source})
			}
		}
		for _, c := range d.Spec.ThreatIntel {
			// In a cluster, only what this feed applied can be withdrawn by it: another manager's
			// annotation stays whatever the feed sends, and reporting it would rewrite forever.
			if a.has(c) && !wanted[c.ID] && (t.Owned == nil || t.Owned[c.ID]) {
				changes = append(changes, Change{ID: c.ID, Field: a.field, From: a.text(c), To: "-", Source: a.source})
			}
		}
		p.add(d, changes, want, a.set)
	}
	return p
}

// PlanKEV marks the vulnerabilities already on each device that the catalog lists as known
// exploited, with the date CISA added them.
func PlanKEV(k *KEV, targets []Target) *Plan {
	p := &Plan{Manager: ManagerKEV, Read: fmt.Sprintf("CISA KEV catalog %s, %d entries", k.Version, len(k.Entries))}
	return annotator{
		field: "knownExploited", source: "CISA KEV " + k.Version,
		lookup: func(id string) (v1alpha1.ThreatIntel, bool) {
			e, ok := k.Entries[id]
			return v1alpha1.ThreatIntel{ID: id, KnownExploited: true, KnownExploitedSince: e.DateAdded}, ok
		},
		has: func(t v1alpha1.ThreatIntel) bool { return t.KnownExploited },
		text: func(t v1alpha1.ThreatIntel) string {
			if !t.KnownExploited {
				return "-"
			}
			return "true since " + t.KnownExploitedSince
		},
		same: func(c, w v1alpha1.ThreatIntel) bool {
			return c.KnownExploited && c.KnownExploitedSince == w.KnownExploitedSince
		},
		set: func(x, w *v1alpha1.ThreatIntel) {
			x.KnownExploited, x.KnownExploitedSince = false, ""
			if w != nil {
				x.KnownExploited, x.KnownExploitedSince = w.KnownExploited, w.KnownExploitedSince
			}
		},
	}.plan(p, targets)
}

// PlanEPSS sets the EPSS score of the vulnerabilities already on each device. A device is
// written only when a score changed: the percentile and the date alone do not change risk.
func PlanEPSS(e *EPSS, targets []Target) *Plan {
	p := &Plan{Manager: ManagerEPSS, Read: fmt.Sprintf("FIRST EPSS %s (%s), %d scores", e.Date, e.Model, len(e.Scores))}
	return annotator{
		field: "epss", source: "FIRST EPSS " + e.Date,
		lookup: func(id string) (v1alpha1.ThreatIntel, bool) {
			s, ok := e.Scores[id]
			return v1alpha1.ThreatIntel{ID: id, EPSS: s.EPSS, EPSSPercentile: s.Percentile, EPSSDate: e.Date}, ok
		},
		has:  func(t v1alpha1.ThreatIntel) bool { return t.EPSS != "" },
		text: func(t v1alpha1.ThreatIntel) string { return dash(t.EPSS) },
		same: func(c, w v1alpha1.ThreatIntel) bool { return c.EPSS == w.EPSS },
		set: func(x, w *v1alpha1.ThreatIntel) {
			x.EPSS, x.EPSSPercentile, x.EPSSDate = "", "", ""
			if w != nil {
				x.EPSS, x.EPSSPercentile, x.EPSSDate = w.EPSS, w.EPSSPercentile, w.EPSSDate
			}
		},
	}.plan(p, targets)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// add records a device's KEV or EPSS changes and makes the updated copy: set applied to each
// entry (w nil: the feed's fields cleared), entries left empty dropped.
func (p *Plan) add(d *v1alpha1.MedicalDevice, changes []Change, intel []v1alpha1.ThreatIntel, set func(x, w *v1alpha1.ThreatIntel)) {
	if len(changes) == 0 {
		p.Unchanged++
		return
	}
	want := map[string]*v1alpha1.ThreatIntel{}
	for i := range intel {
		want[intel[i].ID] = &intel[i]
	}
	u := d.DeepCopy()
	var out []v1alpha1.ThreatIntel
	for _, x := range u.Spec.ThreatIntel {
		set(&x, want[x.ID])
		delete(want, x.ID)
		if x.KnownExploited || x.EPSS != "" {
			out = append(out, x)
		}
	}
	for _, w := range intel {
		if _, ok := want[w.ID]; ok {
			x := v1alpha1.ThreatIntel{ID: w.ID}
			set(&x, &w)
			out = append(out, x)
		}
	}
	u.Spec.ThreatIntel = out
	dp := DevicePlan{Namespace: d.Namespace, Name: d.Name, Changes: changes, Intel: intel}
	dp.Updated = u
	p.Devices = append(p.Devices, dp)
}

// matched is one statement that applies to a device.
type matched struct {
	s   Statement
	a   *Advisory
	how string
}

// PlanVEX applies the advisories' statements to the devices their products match. Entries the
// VEX manager applied from an advisory read in this run that no longer states them are
// withdrawn; entries from advisories not read in this run are kept as they are. When two
// statements disagree about a device and CVE, both are reported and the stricter status wins.
func PlanVEX(advisories []*Advisory, targets []Target, mappings []Mapping) *Plan {
	p := &Plan{Manager: ManagerVEX}
	statements := 0
	for _, a := range advisories {
		statements += len(a.Statements)
	}
	p.Read = fmt.Sprintf("%d VEX documents, %d statements", len(advisories), statements)
	sources := map[string]bool{}
	for _, a := range advisories {
		sources[a.Source()] = true
	}
	usedProduct := map[string]bool{}
	unknown := map[string]bool{}
	indexes := make([]productIndex, len(advisories))
	for i, a := range advisories {
		indexes[i] = indexProducts(a)
	}
	for _, t := range targets {
		d := t.Device
		byCVE := map[string][]matched{}
		for ai, a := range advisories {
			fits := map[string]string{} // product id → how
			for _, id := range indexes[ai].candidates(d, mappings) {
				prod := a.Products[id]
				ok, how, unk := match(d, prod, mappings)
				if ok {
					fits[id] = how
				} else if unk != "" {
					unknown[ref(d)+": "+unk] = true
				}
			}
			for _, s := range a.Statements {
				if how, ok := fits[s.Product]; ok {
					byCVE[s.CVE] = append(byCVE[s.CVE], matched{s: s, a: a, how: how})
					usedProduct[a.Document+"\x00"+productName(a, s.Product)] = true
				}
			}
		}
		if len(byCVE) == 0 {
			p.Unmatched = append(p.Unmatched, ref(d))
		}
		want := map[string]v1alpha1.Vulnerability{}
		cves := make([]string, 0, len(byCVE))
		for c := range byCVE {
			cves = append(cves, c)
		}
		sort.Strings(cves)
		for _, c := range cves {
			ms := byCVE[c]
			sort.SliceStable(ms, func(i, j int) bool {
				if rank(ms[i].s.Status) != rank(ms[j].s.Status) {
					return rank(ms[i].s.Status) > rank(ms[j].s.Status)
				}
				return ms[i].a.Released.After(ms[j].a.Released)
			})
			win := ms[0]
			for _, m := range ms[1:] {
				if m.s.Status != win.s.Status {
					p.Conflicts = append(p.Conflicts, fmt.Sprintf("%s %s: %s (%s) says %s, %s (%s) says %s; the stricter, %s, is used",
						ref(d), c, win.a.ID, productName(win.a, win.s.Product), win.s.Status, m.a.ID, productName(m.a, m.s.Product), m.s.Status, win.s.Status))
				}
			}
			v := v1alpha1.Vulnerability{ID: c, Status: win.s.Status, CVSS: win.s.CVSS, Justification: win.s.Justification, Source: win.a.Source()}
			if v.CVSS == "" {
				for _, m := range ms {
					if m.s.CVSS != "" {
						v.CVSS = m.s.CVSS
						break
					}
				}
			}
			want[c] = v
		}
		// A scanner may write a CVE id in lower case: the statement updates that entry.
		for _, v := range d.Spec.Vulnerabilities {
			if up := strings.ToUpper(v.ID); up != v.ID {
				if w, ok := want[up]; ok {
					w.ID = v.ID
					delete(want, up)
					want[v.ID] = w
					for i := range cves {
						if cves[i] == up {
							cves[i] = v.ID
						}
					}
				}
			}
		}
		// Entries the manager applied before: kept when their advisory was not read now,
		// withdrawn when it was and no longer says anything about the device.
		owned := t.Owned
		var changes []Change
		var apply []v1alpha1.Vulnerability
		live := map[string]v1alpha1.Vulnerability{}
		for _, v := range d.Spec.Vulnerabilities {
			live[v.ID] = v
			isOwned := owned[v.ID]
			if owned == nil {
				isOwned = strings.HasPrefix(v.Source, "VEX ")
			}
			if _, ok := want[v.ID]; ok || !isOwned {
				continue
			}
			if sources[v.Source] {
				changes = append(changes, Change{ID: v.ID, Field: "entry", From: string(v.Status) + " (" + v.Source + ")", To: "withdrawn", Source: v.Source})
				continue
			}
			apply = append(apply, keptFields(v, t.OwnedFields[v.ID]))
		}
		for _, c := range cves {
			w := want[c]
			apply = append(apply, w)
			old, ok := live[c]
			if !ok {
				changes = append(changes, Change{ID: c, Field: "entry", From: "-", To: vexText(w), Source: w.Source})
				continue
			}
			cmp := vexFields(old)
			if w.CVSS == "" {
				cmp.CVSS = "" // the statement gives no score: the one there (a scanner's) stays
			}
			if w.Justification == "" {
				// Nothing to say why: one another manager wrote stays (server-side apply cannot
				// take it away), so it is not a change to make again and again.
				cmp.Justification = ""
			}
			if cmp != w {
				changes = append(changes, Change{ID: c, Field: "entry", From: vexText(vexFields(old)), To: vexText(w), Source: w.Source})
			}
		}
		sort.Slice(apply, func(i, j int) bool { return apply[i].ID < apply[j].ID })
		if len(changes) == 0 {
			p.Unchanged++
			continue
		}
		u := d.DeepCopy()
		var out []v1alpha1.Vulnerability
		withdrawn := map[string]bool{}
		for _, c := range changes {
			if c.To == "withdrawn" {
				withdrawn[c.ID] = true
			}
		}
		for _, v := range u.Spec.Vulnerabilities {
			if withdrawn[v.ID] {
				// In a file, the entry goes only if the feed's statement was all it said; what
				// a scanner found there stays, without the statement.
				if !scannerData(v) {
					continue
				}
				v.Status, v.Justification, v.Source = "", "", ""
			}
			if w, ok := want[v.ID]; ok {
				v.Status, v.Justification, v.Source = w.Status, w.Justification, w.Source
				if w.CVSS != "" {
					v.CVSS = w.CVSS
				}
				delete(want, v.ID)
			}
			out = append(out, v)
		}
		for _, c := range cves {
			if w, ok := want[c]; ok {
				out = append(out, w)
			}
		}
		u.Spec.Vulnerabilities = out
		p.Devices = append(p.Devices, DevicePlan{Namespace: d.Namespace, Name: d.Name, Changes: changes, Vulnerabilities: apply, Updated: u})
	}
	for _, a := range advisories {
		for id := range a.Products {
			if !usedProduct[a.Document+"\x00"+productName(a, id)] && stated(a, id) {
				p.UnusedProducts = append(p.UnusedProducts, fmt.Sprintf("%s: %s", a.ID, productName(a, id)))
			}
		}
	}
	p.UnusedProducts = uniqueSorted(p.UnusedProducts)
	for u := range unknown {
		p.Unknown = append(p.Unknown, u)
	}
	sort.Strings(p.Unknown)
	return p
}

// productIndex finds an advisory's products that could be a device without trying them all:
// by CPE vendor and product, by package URL name, and by vendor and product name (for
// mappings). match decides among the candidates.
type productIndex map[string][]string

func indexProducts(a *Advisory) productIndex {
	ix := productIndex{}
	for id, p := range a.Products {
		if c := cpeParts(p.CPE); len(c) >= 6 {
			ix.add("cpe\x00"+strings.ToLower(c[3]+":"+c[4]), id)
		}
		if p.PURL != "" {
			n, _ := purlParts(p.PURL)
			ix.add("purl\x00"+strings.ToLower(n), id)
		}
		ix.add("name\x00"+strings.ToLower(strings.TrimSpace(p.Vendor))+"\x00"+strings.ToLower(strings.TrimSpace(p.Name)), id)
	}
	for k := range ix {
		sort.Strings(ix[k])
	}
	return ix
}

func (ix productIndex) add(k, id string) { ix[k] = append(ix[k], id) }

func (ix productIndex) candidates(d *v1alpha1.MedicalDevice, mappings []Mapping) []string {
	id := d.Spec.Identity
	var keys []string
	if c := cpeParts(id.CPE); len(c) >= 6 {
		keys = append(keys, "cpe\x00"+strings.ToLower(c[3]+":"+c[4]))
	}
	if id.PURL != "" {
		n, _ := purlParts(id.PURL)
		keys = append(keys, "purl\x00"+strings.ToLower(n))
	}
	for _, m := range mappings {
		if eq(m.Manufacturer, id.Manufacturer) && eq(m.Model, id.Model) {
			keys = append(keys, "name\x00"+strings.ToLower(strings.TrimSpace(m.Vendor))+"\x00"+strings.ToLower(strings.TrimSpace(m.Product)))
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		for _, pid := range ix[k] {
			if !seen[pid] {
				seen[pid] = true
				out = append(out, pid)
			}
		}
	}
	return out
}

// keptFields are the fields of an entry the VEX manager keeps applying from an advisory not read
// in this run: those it owns (from managedFields; offline, all of VEX's), so it never becomes a
// co-owner of a scanner's score.
func keptFields(v v1alpha1.Vulnerability, owned map[string]bool) v1alpha1.Vulnerability {
	k := vexFields(v)
	if owned == nil {
		return k
	}
	if !owned["cvss"] {
		k.CVSS = ""
	}
	if !owned["justification"] {
		k.Justification = ""
	}
	return k
}

// scannerData says whether an entry carries more than a VEX statement: exploitation data a
// scanner or feed wrote.
func scannerData(v v1alpha1.Vulnerability) bool {
	return v.EPSS != "" || v.KnownExploited || v.Automatable || (v.Exploitation != "" && v.Exploitation != v1alpha1.ExploitationNone)
}

// vexFields keeps the fields the VEX manager owns.
func vexFields(v v1alpha1.Vulnerability) v1alpha1.Vulnerability {
	if v.Status == "" {
		v.Status = v1alpha1.VulnAffected // the API's default
	}
	return v1alpha1.Vulnerability{ID: v.ID, Status: v.Status, CVSS: v.CVSS, Justification: v.Justification, Source: v.Source}
}

func vexText(v v1alpha1.Vulnerability) string {
	s := string(v.Status)
	if s == "" {
		s = string(v1alpha1.VulnAffected)
	}
	if v.Justification != "" {
		s += " (" + v.Justification + ")"
	}
	if v.CVSS != "" {
		s += ", CVSS " + v.CVSS
	}
	return s
}

func productName(a *Advisory, id string) string {
	if p, ok := a.Products[id]; ok {
		if s := p.String(); s != "" {
			return s
		}
	}
	return id
}

func stated(a *Advisory, id string) bool {
	for _, s := range a.Statements {
		if s.Product == id {
			return true
		}
	}
	return false
}

func uniqueSorted(s []string) []string {
	sort.Strings(s)
	return dedupe(s)
}
