// Package v1alpha1 contains the medseg.io/v1alpha1 API: MedicalDevice and SegmentPolicy.
//
// The package holds types, validation markers and small helpers only; decisions live in
// internal/risk, internal/render and internal/drift. It depends on k8s.io/apimachinery alone,
// so other tools can import it cheaply.
//
// +kubebuilder:object:generate=true
// +groupName=medseg.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of the medseg objects.
	GroupVersion = schema.GroupVersion{Group: "medseg.io", Version: "v1alpha1"}

	// SchemeBuilder registers the medseg types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the medseg types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &MedicalDevice{}, &MedicalDeviceList{}, &SegmentPolicy{}, &SegmentPolicyList{},
		&SegmentException{}, &SegmentExceptionList{}, &AccessGrant{}, &AccessGrantList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
