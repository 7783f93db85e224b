package render

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Owner is the one definition of "medseg owns this object", used by the controllers (what to
// apply, prune and watch) and by the drift analysis (what is foreign): the object carries
// medseg's managed-by label, its controller reference points into medseg.io, and its name is
// the one medseg gives the owner's object (medseg-<device> for a MedicalDevice,
// medseg-guard-<policy> for a SegmentPolicy). It returns that controller reference; ok is false
// for any other object, which medseg never modifies or deletes.
func Owner(o metav1.Object) (ref *metav1.OwnerReference, ok bool) {
	if o.GetLabels()[v1alpha1.LabelManagedBy] != v1alpha1.ManagedByValue {
		return nil, false
	}
	ref = metav1.GetControllerOfNoCopy(o)
	if ref == nil || !strings.HasPrefix(ref.APIVersion, v1alpha1.GroupVersion.Group+"/") {
		return nil, false
	}
	switch ref.Kind {
	case "MedicalDevice":
		return ref, o.GetName() == DeviceObjectName(ref.Name)
	case "SegmentPolicy":
		return ref, o.GetName() == GuardObjectName(ref.Name) && o.GetNamespace() == ""
	}
	return nil, false
}

// Owned reports whether medseg owns the object (Owner).
func Owned(o metav1.Object) bool {
	_, ok := Owner(o)
	return ok
}
