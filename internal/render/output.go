package render

import (
	"bytes"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/medseg/medseg/api/v1alpha1"
)

// ToUnstructured converts a rendered object into the exact content medseg applies: no status,
// no creationTimestamp.
func ToUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("converting %T: %w", obj, err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// YAML writes objects as multi-document YAML, each as ToUnstructured leaves it. Map keys are
// sorted, so the same objects give byte-identical output.
func YAML(objs ...runtime.Object) ([]byte, error) {
	var buf bytes.Buffer
	for _, o := range objs {
		u, err := ToUnstructured(o)
		if err != nil {
			return nil, err
		}
		raw, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		buf.WriteString("---\n")
		buf.Write(raw)
	}
	return buf.Bytes(), nil
}

// SegmentationStatus is the decision as MedicalDevice status.segmentation records it, without
// what only the reconciler knows (appliedObjects, lastAppliedAt, sharedWith); nil when no policy
// governs the device.
func (r *Result) SegmentationStatus() *v1alpha1.SegmentationStatus {
	if r.NoPolicy {
		return nil
	}
	seg := &v1alpha1.SegmentationStatus{
		Policy: r.Policy, Mode: r.Mode, ModeReason: r.Reason,
		Enforcement:      v1alpha1.EnforcementAudit,
		AllowedFlows:     r.Allowed(),
		PolicyMapEntries: int32(r.PolicyMapEntries),
		Onboarding:       r.Onboarding,
	}
	if r.Enforce {
		seg.Enforcement = v1alpha1.EnforcementEnforce
	}
	for _, b := range r.Blocked() {
		seg.BlockedFlows = append(seg.BlockedFlows, v1alpha1.BlockedFlow{Name: b.Name, Reason: b.Reason, Message: b.Message})
	}
	if e := r.Exception; e != nil {
		seg.ActiveException = &v1alpha1.ActiveException{Name: e.Name, MaxMode: e.Spec.MaxMode, ApprovedBy: e.Spec.ApprovedBy, ExpiresAt: e.Spec.NotAfter}
	}
	for _, g := range r.Grants() {
		seg.ActiveGrants = append(seg.ActiveGrants, v1alpha1.ActiveGrant{Name: g.Name, Flow: g.Spec.Flow, ApprovedBy: g.Spec.ApprovedBy, Ticket: g.Spec.Ticket,
			NotBefore: g.Spec.NotBefore, NotAfter: g.Spec.NotAfter})
	}
	return seg
}
