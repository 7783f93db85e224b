package feed

import (
	"fmt"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/ssa"
)

// Feed is a feed read and ready to plan: kev, epss or vex.
type Feed struct {
	// Manager is its field manager; List the spec list it writes (ListOf(Manager)).
	Manager, List string
	// Records counts what was read: catalog entries, scores or advisories.
	Records int
	plan    func([]Target) *Plan
}

// Plan plans the feed for the devices.
func (f *Feed) Plan(targets []Target) *Plan { return f.plan(targets) }

// ListOf is the spec list a feed's manager writes: KEV and EPSS annotate in threatIntel, VEX
// states presence in vulnerabilities.
func ListOf(manager string) string {
	if manager == ManagerVEX {
		return "vulnerabilities"
	}
	return "threatIntel"
}

// Parse reads documents as the feed kind (kev, epss, vex) says; mappings are VEX's product
// mapping. See ParseKEV, ParseEPSS and ParseVEX for partial and the problems.
func Parse(kind string, docs []Document, partial bool, mappings []Mapping) (*Feed, []Problem, error) {
	switch kind {
	case "kev":
		k, ps, err := ParseKEV(docs, partial)
		if err != nil {
			return nil, ps, err
		}
		return &Feed{Manager: ManagerKEV, List: ListOf(ManagerKEV), Records: len(k.Entries), plan: func(t []Target) *Plan { return PlanKEV(k, t) }}, ps, nil
	case "epss":
		e, ps, err := ParseEPSS(docs, partial)
		if err != nil {
			return nil, ps, err
		}
		return &Feed{Manager: ManagerEPSS, List: ListOf(ManagerEPSS), Records: len(e.Scores), plan: func(t []Target) *Plan { return PlanEPSS(e, t) }}, ps, nil
	case "vex":
		as, ps, err := ParseVEX(docs, partial)
		if err != nil {
			return nil, ps, err
		}
		return &Feed{Manager: ManagerVEX, List: ListOf(ManagerVEX), Records: len(as), plan: func(t []Target) *Plan { return PlanVEX(as, t, mappings) }}, ps, nil
	}
	return nil, nil, fmt.Errorf("unknown feed %q: kev, epss or vex", kind)
}

// ClusterTarget is a device read from a cluster, with what the manager owns of it
// (managedFields).
func ClusterTarget(d *v1alpha1.MedicalDevice, manager string) Target {
	fields := ssa.AppliedEntries(d, manager, ListOf(manager), "id")
	owned := make(map[string]bool, len(fields))
	for k := range fields {
		owned[k] = true
	}
	return Target{Device: d, Owned: owned, OwnedFields: fields}
}
