package render

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Selection is the outcome of choosing the SegmentPolicy that governs a device.
type Selection struct {
	// Policy is the winner; nil when no policy selects the device.
	Policy *v1alpha1.SegmentPolicy
	// Candidates are the names of every policy that selects the device, winner first.
	Candidates []string
	// Invalid lists policies skipped because a selector could not be parsed.
	Invalid []error
}

// SelectPolicy picks the governing SegmentPolicy for a device: among the policies whose
// deviceSelector matches the device's labels and whose namespaceSelector matches its
// namespace's labels, the highest priority wins and ties go to the name that sorts first.
// Unset selectors match everything.
func SelectPolicy(dev *v1alpha1.MedicalDevice, namespaceLabels map[string]string, policies []v1alpha1.SegmentPolicy) Selection {
	var sel Selection
	var matching []*v1alpha1.SegmentPolicy
	for i := range policies {
		p := &policies[i]
		ok, err := Selects(p, dev.Labels, namespaceLabels)
		if err != nil {
			sel.Invalid = append(sel.Invalid, err)
			continue
		}
		if ok {
			matching = append(matching, p)
		}
	}
	sort.Slice(matching, func(i, j int) bool {
		if matching[i].Spec.Priority != matching[j].Spec.Priority {
			return matching[i].Spec.Priority > matching[j].Spec.Priority
		}
		return matching[i].Name < matching[j].Name
	})
	for _, p := range matching {
		sel.Candidates = append(sel.Candidates, p.Name)
	}
	if len(matching) > 0 {
		sel.Policy = matching[0]
	}
	return sel
}

// Selects reports whether the policy's selectors match a device's labels and its namespace's labels.
func Selects(p *v1alpha1.SegmentPolicy, deviceLabels, namespaceLabels map[string]string) (bool, error) {
	ds, err := SelectorOrEverything(p.Spec.DeviceSelector)
	if err != nil {
		return false, fmt.Errorf("SegmentPolicy %s: spec.deviceSelector: %w", p.Name, err)
	}
	ns, err := SelectorOrEverything(p.Spec.NamespaceSelector)
	if err != nil {
		return false, fmt.Errorf("SegmentPolicy %s: spec.namespaceSelector: %w", p.Name, err)
	}
	return ds.Matches(labels.Set(deviceLabels)) && ns.Matches(labels.Set(namespaceLabels)), nil
}

// SelectorOrEverything converts a label selector; nil selects everything.
func SelectorOrEverything(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}
