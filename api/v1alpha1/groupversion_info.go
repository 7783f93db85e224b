// Package v1alpha1 contains the medseg.io/v1alpha1 API: MedicalDevice and SegmentPolicy.
//
// The package holds types, validation markers and small helpers only; decisions live in
// internal/risk, internal/render and internal/drift.
//
// +kubebuilder:object:generate=true
// +groupName=medseg.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of the medseg objects.
	GroupVersion = schema.GroupVersion{Group: "medseg.io", Version: "v1alpha1"}

	// SchemeBuilder registers the medseg types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the medseg types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
