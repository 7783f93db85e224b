// Package risk is medseg's SSVC engine: it turns a device's clinical impact, vulnerabilities,
// detections and exposure into the CERT/CC deployer priority, with every input explained.
//
// It is pure: no client, no context, and the clock is an argument.
package risk

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
)

// ExploitLevel is SSVC Exploitation, ordered None < PoC < Active.
type ExploitLevel int

// The exploitation levels.
const (
	ExploitNone ExploitLevel = iota
	ExploitPoC
	ExploitActive
)

func (e ExploitLevel) String() string {
	switch e {
	case ExploitNone:
		return "None"
	case ExploitPoC:
		return "PoC"
	default:
		return "Active"
	}
}

// Exposure is SSVC System Exposure, ordered Small < Controlled < Open.
type Exposure int

// The exposure levels.
const (
	ExposureSmall Exposure = iota
	ExposureControlled
	ExposureOpen
)

func (x Exposure) String() string {
	switch x {
	case ExposureSmall:
		return "Small"
	case ExposureControlled:
		return "Controlled"
	default:
		return "Open"
	}
}

// HumanImpact is SSVC Human Impact, ordered Low < Medium < High < VeryHigh.
type HumanImpact int

// The human impact levels.
const (
	ImpactLow HumanImpact = iota
	ImpactMedium
	ImpactHigh
	ImpactVeryHigh
)

func (h HumanImpact) String() string {
	return [...]string{"Low", "Medium", "High", "VeryHigh"}[clamp(int(h), 3)]
}

// Input is everything the engine needs for one device.
type Input struct {
	Safety          v1alpha1.SafetyImpact
	Mission         v1alpha1.MissionImpact
	Vulnerabilities []v1alpha1.Vulnerability
	// Intel annotates vulnerabilities by id (CISA KEV, FIRST EPSS); an entry without a
	// vulnerability of its id is ignored.
	Intel      []v1alpha1.ThreatIntel
	Detections []v1alpha1.Detection
	// Exposure and ExposureSource come from the controllers (or the offline plugin), derived from
	// the device's baseline segmentation as enforced; see BaselineExposure.
	Exposure       Exposure
	ExposureSource string
	// EPSSThreshold is the policy's epssActiveThreshold as a decimal string; empty means 0.9.
	EPSSThreshold string
	// Now is the assessment time.
	Now time.Time
}

// Explained is an input value with where it came from.
type Explained struct {
	Value  string
	Source string
}

func (e Explained) String() string {
	if e.Source == "" {
		return e.Value
	}
	return e.Value + " (" + e.Source + ")"
}

// VulnAssessment is the decision for one vulnerability.
type VulnAssessment struct {
	ID           string
	Exploitation ExploitLevel
	Explanation  Explained // exploitation with its source
	Automatable  bool
	Priority     v1alpha1.Priority
}

// Assessment is the device's SSVC result.
type Assessment struct {
	Priority v1alpha1.Priority
	// Deciding is the vulnerability that set the priority; nil when none was assessed.
	Deciding *VulnAssessment
	// Vulnerabilities are every assessed vulnerability, highest priority first.
	Vulnerabilities []VulnAssessment
	Ignored         int
	Exploitation    Explained
	Exposure        Explained
	Automatable     Explained
	HumanImpact     Explained
	Summary         string
	AssessedAt      time.Time
}

// Assess computes the device's priority: the highest deployer priority over its vulnerabilities
// whose VEX status is Affected or UnderInvestigation; Defer when there are none.
func Assess(in Input) Assessment {
	hi := HumanImpactOf(in.Safety, in.Mission)
	out := Assessment{
		Priority:    v1alpha1.PriorityDefer,
		Exposure:    Explained{Value: in.Exposure.String(), Source: in.ExposureSource},
		HumanImpact: Explained{Value: hi.String(), Source: fmt.Sprintf("Safety=%s, Mission=%s", orUnknown(string(in.Safety)), orUnknown(string(in.Mission)))},
		AssessedAt:  in.Now,
	}
	threshold, err := parseDecimal(in.EPSSThreshold)
	if in.EPSSThreshold == "" || err != nil {
		threshold, _ = parseDecimal(v1alpha1.DefaultEPSSActiveThreshold)
	}
	detection := activeDetection(in.Detections)
	intel := make(map[string]v1alpha1.ThreatIntel, len(in.Intel))
	for _, t := range in.Intel {
		intel[t.ID] = t
	}
	var notAffected []string
	for _, v := range in.Vulnerabilities {
		if v.Status == v1alpha1.VulnFixed || v.Status == v1alpha1.VulnNotAffected {
			out.Ignored++
			if v.Status == v1alpha1.VulnNotAffected && v.Justification != "" {
				notAffected = append(notAffected, v.ID+": "+v.Justification)
			}
			continue
		}
		level, why := exploitation(v, intel[v.ID], detection, threshold)
		va := VulnAssessment{
			ID: v.ID, Exploitation: level, Automatable: v.Automatable,
			Explanation: Explained{Value: level.String(), Source: why},
			Priority:    Decide(level, in.Exposure, v.Automatable, hi),
		}
		out.Vulnerabilities = append(out.Vulnerabilities, va)
	}
	sort.SliceStable(out.Vulnerabilities, func(i, j int) bool {
		a, b := out.Vulnerabilities[i], out.Vulnerabilities[j]
		if a.Priority.Rank() != b.Priority.Rank() {
			return a.Priority.Rank() > b.Priority.Rank()
		}
		if a.Exploitation != b.Exploitation {
			return a.Exploitation > b.Exploitation
		}
		if a.Automatable != b.Automatable {
			return a.Automatable
		}
		return a.ID < b.ID
	})

	if len(out.Vulnerabilities) == 0 {
		out.Exploitation = Explained{Value: ExploitNone.String(), Source: "no vulnerability assessed"}
		out.Automatable = Explained{Value: "No", Source: "no vulnerability assessed"}
		out.Summary = fmt.Sprintf("Defer: no Affected or UnderInvestigation vulnerability (%d ignored by VEX status); %s, %s",
			out.Ignored, field("Exposure", out.Exposure), field("HumanImpact", out.HumanImpact)) + notAffectedText(notAffected)
		return out
	}
	d := out.Vulnerabilities[0]
	out.Deciding = &d
	out.Priority = d.Priority
	out.Exploitation = d.Explanation
	out.Automatable = Explained{Value: yesNo(d.Automatable), Source: d.ID}
	out.Summary = fmt.Sprintf("%s: %s with %s, %s, %s, %s; %d assessed, %d ignored",
		out.Priority, d.ID, field("Exploitation", out.Exploitation), field("Exposure", out.Exposure),
		field("Automatable", Explained{Value: yesNo(d.Automatable)}), field("HumanImpact", out.HumanImpact),
		len(out.Vulnerabilities), out.Ignored) + notAffectedText(notAffected)
	return out
}

// notAffectedText lists the VEX justifications of NotAffected vulnerabilities, the first few.
func notAffectedText(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	sort.Strings(ids)
	more := ""
	if len(ids) > 3 {
		more, ids = fmt.Sprintf(" and %d more", len(ids)-3), ids[:3]
	}
	return "; NotAffected per VEX: " + strings.Join(ids, ", ") + more
}

// exploitation derives SSVC Exploitation for one vulnerability, strongest evidence first.
func exploitation(v v1alpha1.Vulnerability, intel v1alpha1.ThreatIntel, detection string, threshold int64) (ExploitLevel, string) {
	epss, epssSource := v.EPSS, ""
	if intel.EPSS != "" {
		epss, epssSource = intel.EPSS, " (FIRST EPSS"+suffixDate(" of ", intel.EPSSDate)+")"
	}
	switch {
	case intel.KnownExploited:
		return ExploitActive, "CISA KEV" + suffixDate(" since ", intel.KnownExploitedSince)
	case v.KnownExploited:
		return ExploitActive, "CISA KEV"
	case detection != "":
		return ExploitActive, "active detection " + detection
	case v.Exploitation == v1alpha1.ExploitationActive:
		return ExploitActive, "feed reports active exploitation"
	}
	if epss != "" {
		if p, err := parseDecimal(epss); err == nil && p >= threshold {
			return ExploitActive, fmt.Sprintf("EPSS %s ≥ %s%s", epss, formatDecimal(threshold), epssSource)
		}
	}
	if v.Exploitation == v1alpha1.ExploitationPoC {
		return ExploitPoC, "public proof of concept"
	}
	return ExploitNone, "no known exploitation"
}

func suffixDate(prefix, d string) string {
	if d == "" {
		return ""
	}
	return prefix + d
}

func activeDetection(ds []v1alpha1.Detection) string {
	var found []string
	for _, d := range ds {
		if d.Status == v1alpha1.DetectionResolved {
			continue
		}
		found = append(found, d.Source+"/"+d.Type)
	}
	if len(found) == 0 {
		return ""
	}
	sort.Strings(found)
	return found[0]
}

// Status converts the assessment into the API's status.risk.
func (a Assessment) Status() *v1alpha1.RiskStatus {
	at := metav1.NewTime(a.AssessedAt)
	st := &v1alpha1.RiskStatus{
		Priority:                a.Priority,
		Exploitation:            &v1alpha1.SSVCInput{Value: a.Exploitation.Value, Source: a.Exploitation.Source},
		Exposure:                &v1alpha1.SSVCInput{Value: a.Exposure.Value, Source: a.Exposure.Source},
		Automatable:             &v1alpha1.SSVCInput{Value: a.Automatable.Value, Source: a.Automatable.Source},
		HumanImpact:             &v1alpha1.SSVCInput{Value: a.HumanImpact.Value, Source: a.HumanImpact.Source},
		AssessedVulnerabilities: int32(len(a.Vulnerabilities)),
		IgnoredVulnerabilities:  int32(a.Ignored),
		Summary:                 a.Summary,
		AssessedAt:              &at,
	}
	if a.Deciding != nil {
		st.DecidingVulnerability = a.Deciding.ID
	}
	return st
}

// BaselineExposure derives System Exposure from the device's baseline segmentation as enforced,
// never from the mode the risk response chose, so enforcement cannot feed back into the
// priority and flap:
//   - Open when nothing enforces the baseline (no policy, Audit), when drift or a foreign policy
//     widens access, or when a standing flow has an external peer;
//   - Small when every flow is Essential (or there is none);
//   - Controlled otherwise: only declared in-cluster flows, or external peers reachable only
//     inside approved, time-boxed access grants (gated reports those flows; nil means none is).
//
// Whether a grant is open right now does not matter, so the priority does not change at a
// grant's edges. unenforced and widened carry the reason, or "" when they do not apply.
func BaselineExposure(flows []v1alpha1.Flow, gated func(v1alpha1.Flow) bool, unenforced, widened string) (Exposure, string) {
	if unenforced != "" {
		return ExposureOpen, unenforced
	}
	if widened != "" {
		return ExposureOpen, widened
	}
	grantOnly := ""
	for _, f := range flows {
		for _, p := range f.Peers {
			if !p.IsExternal() {
				continue
			}
			if gated == nil || !gated(f) {
				return ExposureOpen, fmt.Sprintf("flow %s has external peer %s", f.Name, p.CIDR)
			}
			if grantOnly == "" {
				grantOnly = fmt.Sprintf("external peer %s of flow %s only inside approved access grants", p.CIDR, f.Name)
			}
		}
	}
	if grantOnly != "" {
		return ExposureControlled, grantOnly
	}
	for _, f := range flows {
		if f.Tier != v1alpha1.TierEssential {
			return ExposureControlled, "only declared in-cluster flows through the gateway"
		}
	}
	if len(flows) == 0 {
		return ExposureSmall, "no flows: isolated behind its gateway"
	}
	return ExposureSmall, "only Essential in-cluster flows"
}

func field(name string, e Explained) string { return name + "=" + e.String() }

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

// decimalScale is the fixed-point scale for EPSS and thresholds (six decimal places), so
// comparisons are exact and independent of floating point.
const decimalScale = 1_000_000

// parseDecimal parses a non-negative decimal string with up to six decimals into millionths.
func parseDecimal(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(frac) > 6 || strings.ContainsAny(whole+frac, "+-") {
		return 0, fmt.Errorf("invalid decimal %q", s)
	}
	w, err := strconv.ParseInt(whole, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid decimal %q", s)
	}
	f := int64(0)
	if frac != "" {
		if f, err = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64); err != nil {
			return 0, fmt.Errorf("invalid decimal %q", s)
		}
	}
	return w*decimalScale + f, nil
}

func formatDecimal(v int64) string {
	s := strconv.FormatFloat(float64(v)/decimalScale, 'f', -1, 64)
	return s
}

// Floor is a device's last known priority, remembered by medseg across the device's deletion:
// a device deleted and created again (a new UID) is held at least at it until the feeds write
// to the new object, so deleting a device does not reset its risk.
type Floor struct {
	Priority v1alpha1.Priority
	// UID is the device object the priority was assessed for.
	UID string
	// At is when it was remembered.
	At time.Time
}

// ApplyFloor raises the assessment to the floor when the floor was remembered for an earlier
// object of the same name (another UID), no feed has written to this object since it was created
// (lastFeed is the newest feed stamp, nil when none), and the assessment is lower.
func ApplyFloor(a Assessment, f *Floor, uid string, created time.Time, lastFeed *time.Time) Assessment {
	if f == nil || f.UID == uid || f.Priority.Rank() <= a.Priority.Rank() {
		return a
	}
	if lastFeed != nil && !lastFeed.Before(created) {
		return a // the feeds have written to this object: its own inputs decide
	}
	a.Summary = fmt.Sprintf("%s: held at the last known priority of this device before it was deleted and created again (%s, remembered %s), until the feeds write to it; assessed from its own inputs: %s",
		f.Priority, f.Priority, f.At.UTC().Format(time.RFC3339), a.Summary)
	a.Priority = f.Priority
	return a
}
