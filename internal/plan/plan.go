// Package plan composes the pure decisions for one device: which SegmentPolicy governs it, its
// System Exposure from the enforced baseline, its SSVC assessment, the rendered policy, and
// whether it shares gateway pods with devices of another enforcement. The controllers and the
// offline kubectl plugin both call it, so they decide alike.
package plan

import (
	"fmt"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/render"
	"github.com/medseg/medseg/internal/risk"
)

// Input is what a device's plan depends on.
type Input struct {
	Device   *v1alpha1.MedicalDevice
	Policies []v1alpha1.SegmentPolicy
	// Namespaces maps namespace names to labels: the device's own namespace (for policy
	// selection) and, where known, every namespace (for ceiling checks).
	Namespaces map[string]map[string]string
	// Neighbours are the other MedicalDevices in the device's namespace. Their gateway
	// selectors and governing policies decide whether the device shares gateway pods with a
	// device of another enforcement (SharedWith).
	Neighbours []*v1alpha1.MedicalDevice
	// LiveEnforcing reports whether medseg's live policy for a neighbour (by name) enforces,
	// i.e. puts its gateway pods in default deny. An unenforced device keeps its allow-only
	// policy while such a policy still selects pods it shares, even after the neighbour's zone
	// went back to Audit: the neighbour's policy may be removed after the companion otherwise.
	// nil offline, where nothing is live.
	LiveEnforcing func(name string) bool
	// Widened explains a foreign policy or drift that widens access to the device; "" if none.
	Widened string
	// Approvals are the SegmentExceptions and AccessGrants naming the device.
	Approvals v1alpha1.Approvals
	// Floor is the device's last known priority, remembered across its deletion; nil offline
	// or when medseg remembers none.
	Floor *risk.Floor
	Now   time.Time
}

// Plan is the full decision for one device.
type Plan struct {
	Selection  render.Selection
	Policy     *v1alpha1.SegmentPolicy
	Assessment risk.Assessment
	Render     *render.Result
	// Enforced is true when a SegmentPolicy in Enforce governs the device.
	Enforced bool
	// SharedWith are the neighbours whose gateway selectors can select a pod the device's can,
	// and whose enforcement differs: for an enforced device the unenforced neighbours whose
	// flows stay open on its gateways, for an unenforced one the enforced neighbours whose
	// default deny its gateways share. Sorted by name.
	SharedWith []Neighbour
	// Companion is the allow-only policy of an unenforced device that shares gateway pods with
	// enforced devices (render.Companion); nil otherwise.
	Companion *ciliumv2.CiliumNetworkPolicy
	// GatewayFull is set by the caller, who knows the other devices behind the device's gateway
	// pods: it names the gateway pod whose policy map this plan would overflow, with the
	// numbers; "" when none would. DecideObject then adds no flows to it.
	GatewayFull string
}

// Neighbour is another device in the same namespace that can share gateway pods with the device.
type Neighbour struct {
	Name string
	// Policy governs the neighbour; "" when none does.
	Policy   string
	Enforced bool
}

// String names the neighbour and its policy for status and messages.
func (n Neighbour) String() string {
	if n.Policy == "" {
		return n.Name + " (no SegmentPolicy)"
	}
	return n.Name + " (" + n.Policy + ")"
}

// Device plans one device.
func Device(in Input) (*Plan, error) {
	dev := in.Device
	sel := render.SelectPolicy(dev, in.Namespaces[dev.Namespace], in.Policies)
	p := &Plan{Selection: sel, Policy: sel.Policy, Enforced: enforces(sel.Policy)}

	unenforced := ""
	threshold := ""
	switch {
	case sel.Policy == nil:
		unenforced = "no SegmentPolicy governs the device"
	case !p.Enforced:
		unenforced = fmt.Sprintf("SegmentPolicy %s is in %s: nothing is enforced", sel.Policy.Name, sel.Policy.Spec.Enforcement)
	}
	if sel.Policy != nil {
		threshold = sel.Policy.Spec.EPSSThreshold()
	}
	gated := func(f v1alpha1.Flow) bool { return render.NeedsGrant(sel.Policy, f) }
	exposure, why := risk.BaselineExposure(dev.Spec.Flows, gated, unenforced, in.Widened)
	p.Assessment = risk.Assess(risk.Input{
		Safety: dev.Spec.Clinical.SafetyImpact, Mission: dev.Spec.Clinical.MissionImpact,
		Vulnerabilities: dev.Spec.Vulnerabilities, Intel: dev.Spec.ThreatIntel, Detections: dev.Spec.Detections,
		Exposure: exposure, ExposureSource: why, EPSSThreshold: threshold, Now: in.Now,
	})
	var lastFeed *time.Time
	if lf := dev.LastFeed(); lf != nil {
		lastFeed = &lf.At.Time
	}
	p.Assessment = risk.ApplyFloor(p.Assessment, in.Floor, string(dev.UID), dev.CreationTimestamp.Time, lastFeed)
	res, err := render.Device(render.Input{Device: dev, Policy: sel.Policy, Priority: p.Assessment.Priority, Namespaces: in.Namespaces, Approvals: in.Approvals, Now: in.Now})
	if err != nil {
		return p, err
	}
	p.Render = res
	p.SharedWith = sharedWith(dev, p.Enforced, in.Neighbours, NewGovernors(in.Policies, in.Namespaces), in.LiveEnforcing)
	if !p.Enforced && len(p.SharedWith) > 0 {
		policy := ""
		if sel.Policy != nil {
			policy = sel.Policy.Name
		}
		if p.Companion, err = render.Companion(dev, policy); err != nil {
			return p, err
		}
	}
	return p, nil
}

func enforces(p *v1alpha1.SegmentPolicy) bool {
	return p != nil && p.Spec.Enforcement == v1alpha1.EnforcementEnforce
}

// SharedWith lists the neighbours (devices in dev's namespace) whose gateway selectors can
// select a pod dev's can and whose enforcement differs from dev's.
func SharedWith(dev *v1alpha1.MedicalDevice, enforced bool, neighbours []*v1alpha1.MedicalDevice, g *Governors) []Neighbour {
	return sharedWith(dev, enforced, neighbours, g, nil)
}

// sharedWith is SharedWith where, for an unenforced device, a neighbour whose live policy still
// enforces (liveEnforcing) counts as enforced.
func sharedWith(dev *v1alpha1.MedicalDevice, enforced bool, neighbours []*v1alpha1.MedicalDevice, g *Governors, liveEnforcing func(string) bool) []Neighbour {
	var out []Neighbour
	for _, n := range neighbours {
		if n.Namespace != dev.Namespace || n.Name == dev.Name || !render.GatewaysOverlap(dev.Spec.Gateway.PodSelector, n.Spec.Gateway.PodSelector) {
			continue
		}
		pol := g.Of(n)
		nEnforced := enforces(pol) || !enforced && liveEnforcing != nil && liveEnforcing(n.Name)
		if nEnforced == enforced {
			continue
		}
		nb := Neighbour{Name: n.Name, Enforced: !enforced}
		if pol != nil {
			nb.Policy = pol.Name
		}
		out = append(out, nb)
	}
	sortNeighbours(out)
	return out
}

// Governors answers "which SegmentPolicy governs this device" for many devices, selecting once
// per distinct namespace and label set.
type Governors struct {
	policies   []v1alpha1.SegmentPolicy
	namespaces map[string]map[string]string
	memo       map[string]*v1alpha1.SegmentPolicy
}

// NewGovernors prepares policy selection over a fixed set of policies and namespaces.
func NewGovernors(policies []v1alpha1.SegmentPolicy, namespaces map[string]map[string]string) *Governors {
	return &Governors{policies: policies, namespaces: namespaces, memo: map[string]*v1alpha1.SegmentPolicy{}}
}

// Of returns the policy that governs the device, nil when none does.
func (g *Governors) Of(dev *v1alpha1.MedicalDevice) *v1alpha1.SegmentPolicy {
	key := dev.Namespace + "\x00" + labelsKey(dev.Labels)
	if p, ok := g.memo[key]; ok {
		return p
	}
	p := render.SelectPolicy(dev, g.namespaces[dev.Namespace], g.policies).Policy
	g.memo[key] = p
	return p
}
