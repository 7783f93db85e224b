package feed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// KEV is CISA's Known Exploited Vulnerabilities catalog, by CVE.
type KEV struct {
	Version string
	Entries map[string]KEVEntry
}

// KEVEntry is one catalog entry medseg uses.
type KEVEntry struct {
	CVE       string
	DateAdded string // YYYY-MM-DD
	Product   string // vendorProject and product, for messages
}

type kevCatalog struct {
	Title           string            `json:"title"`
	CatalogVersion  *string           `json:"catalogVersion"`
	DateReleased    string            `json:"dateReleased"`
	Count           *int              `json:"count"`
	Vulnerabilities []json.RawMessage `json:"vulnerabilities"`
}

type kevRecord struct {
	CVEID         string `json:"cveID"`
	VendorProject string `json:"vendorProject"`
	Product       string `json:"product"`
	DateAdded     string `json:"dateAdded"`
}

// CVEPattern is a CVE ID as CVE's own schema (and KEV's) defines it.
var CVEPattern = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,19}$`)

// ParseKEV reads KEV catalogs (the JSON feed). Entries with a malformed CVE ID or date are
// problems; with partial, the rest of the catalog is still returned.
func ParseKEV(docs []Document, partial bool) (*KEV, []Problem, error) {
	out := &KEV{Entries: map[string]KEVEntry{}}
	var problems []Problem
	for _, d := range docs {
		var c kevCatalog
		dec := json.NewDecoder(bytes.NewReader(d.Data))
		if err := dec.Decode(&c); err != nil {
			return nil, nil, Problems{{Document: d.Name, Message: "not a CISA KEV catalog (JSON): " + jsonError(d.Data, err)}}
		}
		if c.CatalogVersion == nil || c.Vulnerabilities == nil {
			return nil, nil, fmt.Errorf("%w: %s is not a CISA KEV catalog: it has no catalogVersion and vulnerabilities (for EPSS use feed epss, for CSAF or CycloneDX feed vex)", ErrWrongFormat, d.Name)
		}
		if c.Count != nil && *c.Count != len(c.Vulnerabilities) {
			problems = append(problems, Problem{Document: d.Name, Message: fmt.Sprintf("count says %d entries, the catalog has %d: it may be truncated", *c.Count, len(c.Vulnerabilities))})
		}
		if out.Version == "" || *c.CatalogVersion > out.Version {
			out.Version = *c.CatalogVersion
		}
		for i, raw := range c.Vulnerabilities {
			where := fmt.Sprintf("vulnerabilities[%d]", i)
			var r kevRecord
			if err := json.Unmarshal(raw, &r); err != nil {
				problems = append(problems, Problem{Document: d.Name, Where: where, Message: err.Error()})
				continue
			}
			id := strings.ToUpper(strings.TrimSpace(r.CVEID))
			if !CVEPattern.MatchString(id) {
				problems = append(problems, Problem{Document: d.Name, Where: where, Message: fmt.Sprintf("cveID %q is not a CVE ID (CVE-YYYY-NNNN)", r.CVEID)})
				continue
			}
			if _, err := time.Parse(time.DateOnly, r.DateAdded); err != nil {
				problems = append(problems, Problem{Document: d.Name, Where: where + " (" + id + ")", Message: fmt.Sprintf("dateAdded %q is not a date (YYYY-MM-DD)", r.DateAdded)})
				continue
			}
			e := KEVEntry{CVE: id, DateAdded: r.DateAdded, Product: strings.TrimSpace(strings.TrimSpace(r.VendorProject) + " " + strings.TrimSpace(r.Product))}
			if old, ok := out.Entries[id]; !ok || e.DateAdded < old.DateAdded {
				out.Entries[id] = e // the earliest date it was known exploited
			}
		}
	}
	if len(problems) > 0 && !partial {
		return nil, problems, Problems(problems)
	}
	return out, problems, nil
}

// jsonError says where a JSON document broke, with the line.
func jsonError(data []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errorAs(err, &se):
		off = se.Offset
	case errorAs(err, &te):
		off = te.Offset
	}
	if err.Error() == "unexpected EOF" {
		return "truncated (unexpected end of the file)"
	}
	if off < 0 {
		return err.Error()
	}
	line := 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n"))
	return fmt.Sprintf("line %d: %v", line, err)
}
