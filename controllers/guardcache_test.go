package controllers

import (
	"testing"

	"github.com/medseg/medseg/api/v1alpha1"
)

// TestGuardInputs: the fingerprint changes with everything a guard depends on, and with nothing
// a recount is about (status), nor with list order.
func TestGuardInputs(t *testing.T) {
	s := loadSample(t)
	pol := policyOf(t, s, "critical-care")
	base := func() ([]v1alpha1.SegmentPolicy, map[string]map[string]string, []v1alpha1.MedicalDevice) {
		nss := map[string]map[string]string{}
		for k, v := range s.in.Namespaces {
			c := map[string]string{}
			for kk, vv := range v {
				c[kk] = vv
			}
			nss[k] = c
		}
		devs := make([]v1alpha1.MedicalDevice, len(s.in.Devices))
		for i := range s.in.Devices {
			devs[i] = *s.in.Devices[i].DeepCopy()
		}
		return append([]v1alpha1.SegmentPolicy(nil), s.in.Policies...), nss, devs
	}
	pols, nss, devs := base()
	want := guardInputs(pol, pols, nss, devs)
	cases := []struct {
		name    string
		mutate  func(*v1alpha1.SegmentPolicy, []v1alpha1.SegmentPolicy, map[string]map[string]string, []v1alpha1.MedicalDevice) []v1alpha1.MedicalDevice
		changes bool
	}{
		{"nothing changed", func(*v1alpha1.SegmentPolicy, []v1alpha1.SegmentPolicy, map[string]map[string]string, []v1alpha1.MedicalDevice) []v1alpha1.MedicalDevice {
			return nil
		}, false},
		{"a device's status moved (a recount)", func(_ *v1alpha1.SegmentPolicy, _ []v1alpha1.SegmentPolicy, _ map[string]map[string]string, d []v1alpha1.MedicalDevice) []v1alpha1.MedicalDevice {
			d[0].Status.Risk = &v1alpha1.RiskStatus{Priority: v1alpha1.PriorityImmediate}
			return d
		}, false},
		{"devices listed in another order", func(_ *v1alpha1.SegmentPolicy, _ []v1alpha1.SegmentPolicy, _ map[string]map[string]string, d []v1alpha1.MedicalDevice) []v1alpha1.MedicalDevice {
			d[0], d[1] = d[1], d[0]
			return d
		}, false},
		{"a device's spec changed", func(_ *v1alpha1.SegmentPolicy, _ []v1alpha1.SegmentPolicy, _ map[string]map[string]string, d []v1alpha1.MedicalDevice) []v1alpha1.MedicalDevice {
			d[0].Generation++
			return d
		}, true},
		{"a device's labels changed", func(_ *v1alpha1.SegmentPolicy, _ []v1alpha1.SegmentPolicy, _ map[string]map[string]string, d []v1alpha1.MedicalDevice) []v1alpha1.MedicalDevice {
			d[0].Labels = map[string]string{"zone": "x"}
			return d
		}, true},
		{"a device appeared", func(_ *v1alpha1.SegmentPolicy, _ []v1alpha1.SegmentPolicy, _ map[string]map[string]string, d []v1alpha1.MedicalDevice) []v1alpha1.MedicalDevice {
			n := *d[0].DeepCopy()
			n.Name = "another"
			return append(d, n)
		}, true},
		{"a namespace was relabelled", func(_ *v1alpha1.SegmentPolicy, _ []v1alpha1.SegmentPolicy, n map[string]map[string]string, _ []v1alpha1.MedicalDevice) []v1alpha1.MedicalDevice {
			n["icu"][v1alpha1.LabelGatewayNamespace] = "false"
			return nil
		}, true},
		{"another policy changed", func(_ *v1alpha1.SegmentPolicy, p []v1alpha1.SegmentPolicy, _ map[string]map[string]string, _ []v1alpha1.MedicalDevice) []v1alpha1.MedicalDevice {
			p[1].Generation++
			return nil
		}, true},
		{"the policy itself changed", func(p *v1alpha1.SegmentPolicy, _ []v1alpha1.SegmentPolicy, _ map[string]map[string]string, _ []v1alpha1.MedicalDevice) []v1alpha1.MedicalDevice {
			p.Generation++
			return nil
		}, true},
	}
	for _, c := range cases {
		p := pol.DeepCopy()
		pols, nss, devs := base()
		if d := c.mutate(p, pols, nss, devs); d != nil {
			devs = d
		}
		if got := guardInputs(p, pols, nss, devs) != want; got != c.changes {
			t.Errorf("%s: fingerprint changed=%t, want %t", c.name, got, c.changes)
		}
	}
}
