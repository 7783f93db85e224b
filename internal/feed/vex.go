package feed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Advisory is one VEX document: its products and what it states about them.
type Advisory struct {
	Document  string // file or URL
	Format    string // "CSAF csaf_vex", "CycloneDX 1.6", ...
	ID        string // CSAF tracking id, or the BOM's serial number
	Publisher string
	Version   string
	Released  time.Time
	Products  map[string]Product
	// Statements, by CVE then product.
	Statements []Statement
}

// Source is what medseg writes into spec.vulnerabilities[].source for the advisory's entries.
func (a *Advisory) Source() string {
	return truncate("VEX "+a.ID, 128)
}

// Product is a product an advisory makes statements about, resolved from its product tree
// (CSAF) or its components (CycloneDX).
type Product struct {
	ID       string
	FullName string
	Vendor   string
	Name     string
	// Version is an exact version; Range a vers range; neither: every version.
	Version, Range string
	CPE, PURL      string
	// Component is set when the statement is about a component of the product (CSAF
	// relationships): the device runs the product.
	Component string
}

func (p Product) String() string {
	parts := []string{}
	for _, s := range []string{p.Vendor, p.Name} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	switch {
	case p.Version != "":
		parts = append(parts, p.Version)
	case p.Range != "":
		parts = append(parts, p.Range)
	}
	if len(parts) == 0 {
		return p.FullName
	}
	return strings.Join(parts, " ")
}

// Statement says a product's status for one CVE.
type Statement struct {
	CVE           string
	Product       string // product id in its advisory
	Status        v1alpha1.VulnerabilityStatus
	Justification string
	CVSS          string
}

// rank orders the statuses by how much risk they leave: when statements disagree, the stricter
// (higher) wins.
func rank(s v1alpha1.VulnerabilityStatus) int {
	switch s {
	case v1alpha1.VulnAffected:
		return 3
	case v1alpha1.VulnUnderInvestigation:
		return 2
	case v1alpha1.VulnFixed:
		return 1
	}
	return 0
}

func stricter(a, b v1alpha1.VulnerabilityStatus) v1alpha1.VulnerabilityStatus {
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// ParseVEX reads CSAF 2.0 and CycloneDX VEX documents. A document that cannot be read (corrupt,
// not VEX, failing the CSAF schema) is a problem naming it; without partial any problem fails
// the whole read. Of two revisions of one advisory (publisher and tracking id) only the newest
// is used.
func ParseVEX(docs []Document, partial bool) ([]*Advisory, []Problem, error) {
	var out []*Advisory
	var problems []Problem
	for _, d := range docs {
		var raw any
		dec := json.NewDecoder(bytes.NewReader(d.Data))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			problems = append(problems, Problem{Document: d.Name, Message: "not a VEX document (JSON): " + jsonError(d.Data, err)})
			continue
		}
		obj, _ := raw.(map[string]any)
		var a *Advisory
		var ps []Problem
		var err error
		switch {
		case obj != nil && obj["document"] != nil:
			// CSAF's schema uses JSON numbers as float64; decode again plainly for it.
			var plain any
			_ = json.Unmarshal(d.Data, &plain)
			a, ps, err = parseCSAF(d, plain)
		case obj != nil && obj["bomFormat"] == "CycloneDX":
			a, ps = parseCycloneDX(d)
		case obj != nil && (obj["catalogVersion"] != nil || obj["vulnerabilities"] != nil && obj["document"] == nil && obj["bomFormat"] == nil):
			return nil, nil, fmt.Errorf("%w: %s looks like a CISA KEV catalog: use feed kev", ErrWrongFormat, d.Name)
		default:
			return nil, nil, fmt.Errorf("%w: %s is neither a CSAF 2.0 document (no \"document\") nor a CycloneDX BOM (no \"bomFormat\": \"CycloneDX\")", ErrWrongFormat, d.Name)
		}
		if err != nil {
			return nil, nil, err
		}
		problems = append(problems, ps...)
		if a != nil {
			out = append(out, a)
		}
	}
	out = newestRevisions(out)
	if len(problems) > 0 && !partial {
		return nil, problems, Problems(problems)
	}
	return out, problems, nil
}

// newestRevisions keeps, of several revisions of one advisory, the one released last.
func newestRevisions(as []*Advisory) []*Advisory {
	best := map[string]*Advisory{}
	var order []string
	for _, a := range as {
		k := a.Publisher + "\x00" + a.ID
		b, ok := best[k]
		if !ok {
			order = append(order, k)
		}
		if !ok || a.Released.After(b.Released) {
			best[k] = a
		}
	}
	out := make([]*Advisory, 0, len(order))
	for _, k := range order {
		out = append(out, best[k])
	}
	return out
}

var cdxState = map[cdx.ImpactAnalysisState]v1alpha1.VulnerabilityStatus{
	cdx.IASExploitable: v1alpha1.VulnAffected, cdx.IASInTriage: v1alpha1.VulnUnderInvestigation,
	cdx.IASNotAffected: v1alpha1.VulnNotAffected, cdx.IASFalsePositive: v1alpha1.VulnNotAffected,
	cdx.IASResolved: v1alpha1.VulnFixed, cdx.IASResolvedWithPedigree: v1alpha1.VulnFixed,
}

var cdxJustifications = map[cdx.ImpactAnalysisJustification]bool{
	cdx.IAJCodeNotPresent: true, cdx.IAJCodeNotReachable: true, cdx.IAJRequiresConfiguration: true,
	cdx.IAJRequiresDependency: true, cdx.IAJRequiresEnvironment: true, cdx.IAJProtectedByCompiler: true,
	cdx.IAJProtectedAtRuntime: true, cdx.IAJProtectedAtPerimeter: true, cdx.IAJProtectedByMitigatingControl: true,
}

// parseCycloneDX reads a CycloneDX VEX (1.4 and later: vulnerabilities with analysis).
func parseCycloneDX(d Document) (*Advisory, []Problem) {
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(d.Data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, []Problem{{Document: d.Name, Message: "CycloneDX: " + err.Error()}}
	}
	if bom.Vulnerabilities == nil || len(*bom.Vulnerabilities) == 0 {
		return nil, []Problem{{Document: d.Name, Message: "a CycloneDX BOM without vulnerabilities is not a VEX"}}
	}
	a := &Advisory{Document: d.Name, Format: "CycloneDX " + bom.SpecVersion.String(), ID: bom.SerialNumber, Version: strconv.Itoa(bom.Version), Products: map[string]Product{}}
	if a.ID == "" {
		a.ID = d.Name
	}
	vendorOf := func(c cdx.Component) string {
		switch {
		case c.Manufacturer != nil && c.Manufacturer.Name != "":
			return c.Manufacturer.Name
		case c.Supplier != nil && c.Supplier.Name != "":
			return c.Supplier.Name
		}
		return c.Publisher
	}
	var comps []cdx.Component
	if bom.Metadata != nil {
		if bom.Metadata.Timestamp != "" {
			a.Released, _ = time.Parse(time.RFC3339, bom.Metadata.Timestamp)
		}
		if bom.Metadata.Component != nil {
			comps = append(comps, *bom.Metadata.Component)
		}
		if bom.Metadata.Manufacturer != nil {
			a.Publisher = bom.Metadata.Manufacturer.Name
		}
	}
	if bom.Components != nil {
		comps = append(comps, *bom.Components...)
	}
	for _, c := range comps {
		p := Product{ID: c.BOMRef, FullName: c.Name, Vendor: vendorOf(c), Name: c.Name, Version: c.Version, CPE: c.CPE, PURL: c.PackageURL}
		if p.ID == "" {
			p.ID = c.PackageURL
		}
		if p.ID != "" {
			a.Products[p.ID] = p
		}
	}
	var problems []Problem
	for i, v := range *bom.Vulnerabilities {
		where := fmt.Sprintf("vulnerabilities[%d]", i)
		id := strings.ToUpper(strings.TrimSpace(v.ID))
		if !CVEPattern.MatchString(id) {
			problems = append(problems, Problem{Document: d.Name, Where: where, Message: fmt.Sprintf("id %q is not a CVE ID", v.ID)})
			continue
		}
		if v.Analysis == nil || v.Analysis.State == "" {
			problems = append(problems, Problem{Document: d.Name, Where: where + " (" + id + ")", Message: "no analysis.state: not a VEX statement"})
			continue
		}
		st, ok := cdxState[v.Analysis.State]
		if !ok {
			problems = append(problems, Problem{Document: d.Name, Where: where + " (" + id + ")", Message: fmt.Sprintf("analysis.state %q is not a CycloneDX impact analysis state", v.Analysis.State)})
			continue
		}
		just := ""
		if st == v1alpha1.VulnNotAffected {
			just = string(v.Analysis.Justification)
			if just != "" && !cdxJustifications[v.Analysis.Justification] {
				problems = append(problems, Problem{Document: d.Name, Where: where + " (" + id + ")", Message: fmt.Sprintf("analysis.justification %q is not a CycloneDX justification", just)})
				continue
			}
			if v.Analysis.State == cdx.IASFalsePositive && just == "" {
				just = "false_positive"
			}
		}
		cvss := ""
		if v.Ratings != nil {
			for _, r := range *v.Ratings {
				if r.Score != nil && strings.HasPrefix(strings.ToUpper(string(r.Method)), "CVSS") {
					if *r.Score < 0 || *r.Score > 10 {
						problems = append(problems, Problem{Document: d.Name, Where: where + " (" + id + ")", Message: fmt.Sprintf("CVSS score %v is outside [0, 10]; the statement is used without it", *r.Score)})
						break
					}
					cvss = strconv.FormatFloat(*r.Score, 'f', 1, 64)
					break
				}
			}
		}
		if v.Affects == nil || len(*v.Affects) == 0 {
			problems = append(problems, Problem{Document: d.Name, Where: where + " (" + id + ")", Message: "affects names no component"})
			continue
		}
		for k, af := range *v.Affects {
			ref := af.Ref
			if cdx.IsBOMLink(ref) {
				if l, err := cdx.ParseBOMLink(ref); err == nil {
					ref = l.Reference()
				}
			}
			base, ok := a.Products[ref]
			if !ok {
				problems = append(problems, Problem{Document: d.Name, Where: where + " (" + id + ")", Message: fmt.Sprintf("affects %s, which is not a component of the BOM", af.Ref)})
				continue
			}
			if af.Range == nil || len(*af.Range) == 0 {
				a.Statements = append(a.Statements, Statement{CVE: id, Product: base.ID, Status: st, Justification: just, CVSS: cvss})
				continue
			}
			// Per-version statements: affected versions take the analysis' exploitable status,
			// unaffected ones are NotAffected (or Fixed when the analysis says resolved).
			for j, av := range *af.Range {
				p := base
				p.ID = fmt.Sprintf("%s#%d#%d#%d", base.ID, i, k, j)
				p.Version, p.Range = av.Version, av.Range
				a.Products[p.ID] = p
				s := Statement{CVE: id, Product: p.ID, CVSS: cvss}
				switch av.Status {
				case cdx.VulnerabilityStatusAffected:
					s.Status = v1alpha1.VulnAffected
				case cdx.VulnerabilityStatusNotAffected:
					s.Status, s.Justification = v1alpha1.VulnNotAffected, just
					if st == v1alpha1.VulnFixed {
						s.Status, s.Justification = v1alpha1.VulnFixed, ""
					}
				default:
					s.Status = v1alpha1.VulnUnderInvestigation
				}
				a.Statements = append(a.Statements, s)
			}
		}
	}
	sort.SliceStable(a.Statements, func(i, j int) bool { return a.Statements[i].CVE < a.Statements[j].CVE })
	return a, problems
}
