package feed

import (
	"bytes"
	_ "embed" // the CSAF and CVSS schemas
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/medseg/medseg/api/v1alpha1"
)

var (
	//go:embed schema/csaf_json_schema.json
	csafSchema []byte
	//go:embed schema/cvss-v2.0.json
	cvss20Schema []byte
	//go:embed schema/cvss-v3.0.json
	cvss30Schema []byte
	//go:embed schema/cvss-v3.1.json
	cvss31Schema []byte
)

const csafSchemaURL = "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json"

var schemas = map[string][]byte{
	csafSchemaURL: csafSchema,
	"https://www.first.org/cvss/cvss-v2.0.json": cvss20Schema,
	"https://www.first.org/cvss/cvss-v3.0.json": cvss30Schema,
	"https://www.first.org/cvss/cvss-v3.1.json": cvss31Schema,
}

// embeddedLoader serves the embedded schemas and refuses every other URL: validation never
// reaches the network.
type embeddedLoader struct{}

func (embeddedLoader) Load(url string) (any, error) {
	data, ok := schemas[url]
	if !ok {
		return nil, fmt.Errorf("schema %s is not embedded (no network access for validation)", url)
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(data))
}

var (
	csafOnce     sync.Once
	csafCompiled *jsonschema.Schema
	csafErr      error
)

// ValidateCSAF checks a decoded JSON document against the CSAF 2.0 schema; it returns one
// message per violation, "JSON pointer: what is wrong".
func ValidateCSAF(doc any) ([]string, error) {
	csafOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		c.UseLoader(embeddedLoader{})
		csafCompiled, csafErr = c.Compile(csafSchemaURL)
	})
	if csafErr != nil {
		return nil, fmt.Errorf("compiling the CSAF 2.0 schema: %w", csafErr)
	}
	err := csafCompiled.Validate(doc)
	if err == nil {
		return nil, nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return nil, err
	}
	var out []string
	for _, u := range ve.BasicOutput().Errors {
		if u.Error == nil || u.InstanceLocation == "" && len(ve.Causes) > 0 && u.KeywordLocation == "" {
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s", orRoot(u.InstanceLocation), u.Error.String()))
	}
	sort.Strings(out)
	out = dedupe(out)
	if len(out) == 0 {
		out = []string{ve.Error()}
	}
	return out, nil
}

func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// The parts of a CSAF 2.0 document medseg reads. Own types rather than a library's: product
// groups and group_ids are arrays in the schema, and one malformed identifier must not make a
// whole advisory unreadable.
type csafDoc struct {
	Document struct {
		Category  string `json:"category"`
		Publisher struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"publisher"`
		Title    string `json:"title"`
		Tracking struct {
			ID                 string `json:"id"`
			CurrentReleaseDate string `json:"current_release_date"`
			Version            string `json:"version"`
		} `json:"tracking"`
	} `json:"document"`
	ProductTree struct {
		Branches         []csafBranch   `json:"branches"`
		FullProductNames []csafProduct  `json:"full_product_names"`
		Relationships    []csafRelation `json:"relationships"`
		ProductGroups    []struct {
			GroupID    string   `json:"group_id"`
			ProductIDs []string `json:"product_ids"`
		} `json:"product_groups"`
	} `json:"product_tree"`
	Vulnerabilities []csafVuln `json:"vulnerabilities"`
}

type csafBranch struct {
	Category string       `json:"category"`
	Name     string       `json:"name"`
	Branches []csafBranch `json:"branches"`
	Product  *csafProduct `json:"product"`
}

type csafProduct struct {
	Name    string `json:"name"`
	ID      string `json:"product_id"`
	Helpers struct {
		CPE  string `json:"cpe"`
		PURL string `json:"purl"`
	} `json:"product_identification_helper"`
}

type csafRelation struct {
	Category  string      `json:"category"`
	Product   csafProduct `json:"full_product_name"`
	Component string      `json:"product_reference"`
	Parent    string      `json:"relates_to_product_reference"`
}

type csafVuln struct {
	CVE           string                  `json:"cve"`
	IDs           []struct{ Text string } `json:"ids"`
	ProductStatus map[string][]string     `json:"product_status"`
	Flags         []struct {
		Label      string   `json:"label"`
		ProductIDs []string `json:"product_ids"`
		GroupIDs   []string `json:"group_ids"`
	} `json:"flags"`
	Threats []struct {
		Category   string   `json:"category"`
		Details    string   `json:"details"`
		ProductIDs []string `json:"product_ids"`
		GroupIDs   []string `json:"group_ids"`
	} `json:"threats"`
	Scores []struct {
		CVSS3 *struct {
			BaseScore float64 `json:"baseScore"`
		} `json:"cvss_v3"`
		CVSS2 *struct {
			BaseScore float64 `json:"baseScore"`
		} `json:"cvss_v2"`
		Products []string `json:"products"`
	} `json:"scores"`
}

// csafStatus maps the CSAF product status lists to medseg's VEX status.
var csafStatus = map[string]v1alpha1.VulnerabilityStatus{
	"known_affected": v1alpha1.VulnAffected, "first_affected": v1alpha1.VulnAffected, "last_affected": v1alpha1.VulnAffected,
	"known_not_affected": v1alpha1.VulnNotAffected,
	"fixed":              v1alpha1.VulnFixed, "first_fixed": v1alpha1.VulnFixed,
	"under_investigation": v1alpha1.VulnUnderInvestigation,
}

// parseCSAF reads one CSAF 2.0 document (csaf_vex or csaf_security_advisory): its products and
// statements. A document that fails the schema is refused whole: its statements could be
// anything.
func parseCSAF(d Document, raw any) (*Advisory, []Problem, error) {
	msgs, err := ValidateCSAF(raw)
	if err != nil {
		return nil, nil, err
	}
	if len(msgs) > 0 {
		ps := make([]Problem, len(msgs))
		for i, m := range msgs {
			ps[i] = Problem{Document: d.Name, Message: "fails the CSAF 2.0 schema at " + m}
		}
		return nil, ps, nil
	}
	var c csafDoc
	if err := json.Unmarshal(d.Data, &c); err != nil {
		return nil, []Problem{{Document: d.Name, Message: "CSAF: " + err.Error()}}, nil
	}
	switch c.Document.Category {
	case "csaf_vex", "csaf_security_advisory":
	default:
		return nil, []Problem{{Document: d.Name, Message: fmt.Sprintf("CSAF category %q carries no product status medseg reads (want csaf_vex or csaf_security_advisory)", c.Document.Category)}}, nil
	}
	a := &Advisory{Document: d.Name, Format: "CSAF " + c.Document.Category, ID: c.Document.Tracking.ID,
		Publisher: c.Document.Publisher.Namespace, Version: c.Document.Tracking.Version, Products: map[string]Product{}}
	if t, err := time.Parse(time.RFC3339, c.Document.Tracking.CurrentReleaseDate); err == nil {
		a.Released = t
	}
	var walk func(bs []csafBranch, p Product)
	walk = func(bs []csafBranch, p Product) {
		for _, b := range bs {
			q := p
			switch b.Category {
			case "vendor":
				q.Vendor = b.Name
			case "product_name":
				q.Name = b.Name
			case "product_version":
				q.Version = b.Name
			case "product_version_range":
				q.Range = b.Name
			}
			if b.Product != nil {
				q.ID, q.FullName, q.CPE, q.PURL = b.Product.ID, b.Product.Name, b.Product.Helpers.CPE, b.Product.Helpers.PURL
				a.Products[q.ID] = q
			}
			walk(b.Branches, q)
		}
	}
	walk(c.ProductTree.Branches, Product{})
	for _, fp := range c.ProductTree.FullProductNames {
		a.Products[fp.ID] = Product{ID: fp.ID, FullName: fp.Name, CPE: fp.Helpers.CPE, PURL: fp.Helpers.PURL}
	}
	var problems []Problem
	// A relationship's product is its parent with the component in it: a device runs the
	// parent, so statements about the combination are statements about the parent.
	for _, r := range c.ProductTree.Relationships {
		parent, ok := a.Products[r.Parent]
		if !ok {
			problems = append(problems, Problem{Document: d.Name, Where: "product_tree.relationships", Message: fmt.Sprintf("%s relates to unknown product %s", r.Product.ID, r.Parent)})
			continue
		}
		parent.ID, parent.FullName, parent.Component = r.Product.ID, r.Product.Name, r.Component
		a.Products[r.Product.ID] = parent
	}
	groups := map[string][]string{}
	for _, g := range c.ProductTree.ProductGroups {
		groups[g.GroupID] = g.ProductIDs
	}
	expand := func(ids, gids []string) []string {
		out := append([]string(nil), ids...)
		for _, g := range gids {
			out = append(out, groups[g]...)
		}
		return out
	}
	for i, v := range c.Vulnerabilities {
		where := fmt.Sprintf("vulnerabilities[%d]", i)
		id := strings.ToUpper(strings.TrimSpace(v.CVE))
		if id == "" {
			problems = append(problems, Problem{Document: d.Name, Where: where, Message: "no cve: medseg keys vulnerabilities by CVE"})
			continue
		}
		just := map[string]string{}
		for _, f := range v.Flags {
			for _, p := range expand(f.ProductIDs, f.GroupIDs) {
				just[p] = f.Label
			}
		}
		for _, t := range v.Threats {
			if t.Category != "impact" {
				continue
			}
			for _, p := range expand(t.ProductIDs, t.GroupIDs) {
				if just[p] == "" {
					just[p] = truncate(t.Details, 256)
				}
			}
		}
		cvss := map[string]string{}
		for _, s := range v.Scores {
			score := ""
			switch {
			case s.CVSS3 != nil:
				score = strconv.FormatFloat(s.CVSS3.BaseScore, 'f', 1, 64)
			case s.CVSS2 != nil:
				score = strconv.FormatFloat(s.CVSS2.BaseScore, 'f', 1, 64)
			}
			for _, p := range s.Products {
				if _, ok := cvss[p]; !ok || s.CVSS3 != nil {
					cvss[p] = score
				}
			}
		}
		// CSAF test 6.1.6: a product in two status groups of one vulnerability contradicts
		// itself. Reported; the stricter status is kept.
		seen := map[string]v1alpha1.VulnerabilityStatus{}
		lists := make([]string, 0, len(v.ProductStatus))
		for l := range v.ProductStatus {
			lists = append(lists, l)
		}
		sort.Strings(lists)
		for _, list := range lists {
			st, ok := csafStatus[list]
			if !ok {
				continue // recommended: a version, not a status
			}
			for _, p := range v.ProductStatus[list] {
				if prev, ok := seen[p]; ok && prev != st {
					problems = append(problems, Problem{Document: d.Name, Where: where + " (" + id + ")",
						Message: fmt.Sprintf("product %s is both %s and %s (CSAF 6.1.6 contradicting product status); the stricter, %s, is used", p, prev, st, stricter(prev, st))})
					st = stricter(prev, st)
				}
				seen[p] = st
			}
		}
		for p, st := range seen {
			if _, ok := a.Products[p]; !ok {
				problems = append(problems, Problem{Document: d.Name, Where: where + " (" + id + ")", Message: fmt.Sprintf("product %s is not in the product tree", p)})
				continue
			}
			s := Statement{CVE: id, Product: p, Status: st, CVSS: cvss[p]}
			if st == v1alpha1.VulnNotAffected {
				s.Justification = just[p]
			}
			a.Statements = append(a.Statements, s)
		}
	}
	sort.Slice(a.Statements, func(i, j int) bool {
		x, y := a.Statements[i], a.Statements[j]
		if x.CVE != y.CVE {
			return x.CVE < y.CVE
		}
		return x.Product < y.Product
	})
	return a, problems, nil
}

// truncate shortens s to at most n bytes, at a character boundary, ending in "…".
func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return v1alpha1.CutUTF8(s, n-len("…")) + "…"
}
