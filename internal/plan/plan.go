// Package plan composes the pure decisions for one device: which SegmentPolicy governs it, its
// System Exposure from the enforced baseline, its SSVC assessment, and the rendered policy.
// The controllers and the offline kubectl plugin both call it, so they decide alike.
package plan

import (
	"fmt"
	"time"

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
	// Widened explains a foreign policy or drift that widens access to the device; "" if none.
	Widened string
	Now     time.Time
}

// Plan is the full decision for one device.
type Plan struct {
	Selection  render.Selection
	Policy     *v1alpha1.SegmentPolicy
	Assessment risk.Assessment
	Render     *render.Result
}

// Device plans one device.
func Device(in Input) (*Plan, error) {
	dev := in.Device
	sel := render.SelectPolicy(dev, in.Namespaces[dev.Namespace], in.Policies)
	p := &Plan{Selection: sel, Policy: sel.Policy}

	unenforced := ""
	threshold := ""
	switch {
	case sel.Policy == nil:
		unenforced = "no SegmentPolicy governs the device"
	case sel.Policy.Spec.Enforcement != v1alpha1.EnforcementEnforce:
		unenforced = fmt.Sprintf("SegmentPolicy %s is in %s: nothing is enforced", sel.Policy.Name, sel.Policy.Spec.Enforcement)
	}
	if sel.Policy != nil {
		threshold = sel.Policy.Spec.EPSSThreshold()
	}
	gated := func(f v1alpha1.Flow) bool { return render.NeedsGrant(sel.Policy, f) }
	exposure, why := risk.BaselineExposure(dev.Spec.Flows, gated, unenforced, in.Widened)
	p.Assessment = risk.Assess(risk.Input{
		Safety: dev.Spec.Clinical.SafetyImpact, Mission: dev.Spec.Clinical.MissionImpact,
		Vulnerabilities: dev.Spec.Vulnerabilities, Detections: dev.Spec.Detections,
		Exposure: exposure, ExposureSource: why, EPSSThreshold: threshold, Now: in.Now,
	})
	res, err := render.Device(render.Input{Device: dev, Policy: sel.Policy, Priority: p.Assessment.Priority, Namespaces: in.Namespaces, Now: in.Now})
	if err != nil {
		return p, err
	}
	p.Render = res
	return p, nil
}
