package controllers

import (
	"context"
	"errors"
	"fmt"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/render"
)

// SegmentPolicyReconciler keeps a SegmentPolicy's guard CiliumClusterwideNetworkPolicy and
// reports the devices it governs.
type SegmentPolicyReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Metrics  *Metrics
}

// +kubebuilder:rbac:groups=medseg.io,resources=segmentpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=medseg.io,resources=segmentpolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumclusterwidenetworkpolicies,verbs=get;list;watch;create;update;patch;delete

// Reconcile applies or removes the guard, counts the governed devices and writes status once.
func (r *SegmentPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pol := &v1alpha1.SegmentPolicy{}
	if err := r.Get(ctx, req.NamespacedName, pol); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // the guard goes with it (owner reference)
	}
	if !pol.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	old := pol.Status.DeepCopy()
	st := &pol.Status
	gen := pol.Generation
	st.ObservedGeneration = gen

	guard, err := render.Guard(pol)
	var o outcome
	var applyErr error
	switch {
	case err != nil:
		o = outcome{stalled: true, reason: v1alpha1.ReasonInvalidInput, message: err.Error()}
	case pol.Spec.Enforcement == v1alpha1.EnforcementEnforce:
		var res applyOutcome
		res, applyErr = ensureObject(ctx, r.Client, guard, old.Guard != nil)
		switch {
		case errors.Is(applyErr, errForeignObject):
			o = outcome{stalled: true, reason: v1alpha1.ReasonObjectConflict, message: applyErr.Error()}
		case applyErr != nil:
			r.Metrics.applyErrors.WithLabelValues(ciliumv2.CCNPKindDefinition).Inc()
			o = outcome{progressing: true, reason: v1alpha1.ReasonApplyFailed, message: applyErr.Error()}
		default:
			st.Guard = &v1alpha1.AppliedObject{Kind: ciliumv2.CCNPKindDefinition, Name: guard.Name, Hash: guard.Annotations[v1alpha1.AnnotationContentHash]}
			o = outcome{reason: v1alpha1.ReasonGuardApplied, message: fmt.Sprintf("guard %s denies %v to every pod but gateways", guard.Name, pol.Spec.DeviceNetworks)}
			if res != unchanged {
				r.Metrics.writes.WithLabelValues(ciliumv2.CCNPKindDefinition, outcomeName(res)).Inc()
			}
			if res == repaired {
				st.GuardRepairs++
				r.Metrics.driftRepairs.WithLabelValues(ciliumv2.CCNPKindDefinition).Inc()
				r.event(pol, corev1.EventTypeWarning, v1alpha1.EventDriftRepaired, "guard %s was edited or deleted by hand; medseg put it back", guard.Name)
			}
		}
	default:
		deleted, err := pruneObject(ctx, r.Client, guard, pol.UID)
		if err != nil {
			applyErr = err
			o = outcome{progressing: true, reason: v1alpha1.ReasonApplyFailed, message: err.Error()}
		} else {
			if deleted {
				r.Metrics.writes.WithLabelValues(ciliumv2.CCNPKindDefinition, "pruned").Inc()
			}
			st.Guard = nil
			o = outcome{reason: v1alpha1.ReasonAuditOnly, message: "Audit: devices are assessed and reported; no Cilium object is written"}
		}
	}
	if old.Enforcement != "" && old.Enforcement != pol.Spec.Enforcement {
		r.event(pol, corev1.EventTypeNormal, v1alpha1.EventEnforcementChange, "enforcement %s → %s", old.Enforcement, pol.Spec.Enforcement)
	}
	st.Enforcement = pol.Spec.Enforcement
	if err := r.count(ctx, pol); err != nil {
		return ctrl.Result{}, err
	}
	setReadiness(&st.Conditions, gen, o)
	if !sameConditions(old.Conditions, st.Conditions) || !equality.Semantic.DeepEqual(withoutConditions(old), withoutConditions(st)) {
		if err := r.Status().Update(ctx, pol); err != nil {
			return ctrl.Result{}, fmt.Errorf("writing status: %w", err)
		}
	}
	if applyErr != nil && !errors.Is(applyErr, errForeignObject) {
		return ctrl.Result{}, applyErr
	}
	return ctrl.Result{}, nil
}

// count fills the device counts from the devices whose status names this policy.
func (r *SegmentPolicyReconciler) count(ctx context.Context, pol *v1alpha1.SegmentPolicy) error {
	var devs v1alpha1.MedicalDeviceList
	if err := r.List(ctx, &devs, client.MatchingFields{indexPolicy: pol.Name}); err != nil {
		return err
	}
	st := &pol.Status
	st.Devices, st.Modes, st.Priorities = 0, v1alpha1.ModeCounts{}, v1alpha1.PriorityCounts{}
	for _, d := range devs.Items {
		st.Devices++
		switch d.Status.Segmentation.Mode {
		case v1alpha1.ModeStandard:
			st.Modes.Standard++
		case v1alpha1.ModeRestricted:
			st.Modes.Restricted++
		case v1alpha1.ModeQuarantine:
			st.Modes.Quarantine++
		}
		if d.Status.Risk == nil {
			continue
		}
		switch d.Status.Risk.Priority {
		case v1alpha1.PriorityDefer:
			st.Priorities.Defer++
		case v1alpha1.PriorityScheduled:
			st.Priorities.Scheduled++
		case v1alpha1.PriorityOutOfCycle:
			st.Priorities.OutOfCycle++
		case v1alpha1.PriorityImmediate:
			st.Priorities.Immediate++
		}
	}
	return nil
}

func (r *SegmentPolicyReconciler) event(pol *v1alpha1.SegmentPolicy, typ, reason, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(pol, nil, typ, reason, "Reconcile", note, args...)
	}
}

func withoutConditions(s *v1alpha1.SegmentPolicyStatus) *v1alpha1.SegmentPolicyStatus {
	c := s.DeepCopy()
	c.Conditions = nil
	return c
}
