package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/render"
)

// ApprovalReconciler writes the phase of one kind of approval (SegmentException or
// AccessGrant): Pending, Active, Expired or Ineffective, with an Event on every change. It
// never touches the device: the device reconciler reads the approvals that name it.
type ApprovalReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Kind is "SegmentException" or "AccessGrant".
	Kind    string
	Metrics *Metrics
}

// newObject returns an empty object of the reconciler's kind.
func (r *ApprovalReconciler) newObject() approvalObject {
	if r.Kind == "AccessGrant" {
		return &v1alpha1.AccessGrant{}
	}
	return &v1alpha1.SegmentException{}
}

// newList returns an empty list of the reconciler's kind.
func (r *ApprovalReconciler) newList() client.ObjectList {
	if r.Kind == "AccessGrant" {
		return &v1alpha1.AccessGrantList{}
	}
	return &v1alpha1.SegmentExceptionList{}
}

// state decides the phase with the pure functions of internal/render.
func state(o approvalObject, dev *v1alpha1.MedicalDevice, pol *v1alpha1.SegmentPolicy, now time.Time) render.ApprovalState {
	if g, ok := o.(*v1alpha1.AccessGrant); ok {
		return render.GrantState(g, dev, pol, now)
	}
	return render.ExceptionState(o.(*v1alpha1.SegmentException), dev, pol, now)
}

// Reconcile decides and writes one approval's status; a failure is counted, as the device and
// policy reconcilers count theirs.
func (r *ApprovalReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	r.Metrics.reconcileError(strings.ToLower(r.Kind), err)
	return res, err
}

func (r *ApprovalReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	o := r.newObject()
	if err := r.Get(ctx, req.NamespacedName, o); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.observeApproval(r.Kind, req.Name, "", time.Time{})
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := r.Clock.Now()
	ref := o.GetApproval().Device
	var dev *v1alpha1.MedicalDevice
	var pol *v1alpha1.SegmentPolicy
	d := &v1alpha1.MedicalDevice{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, d); {
	case err == nil && d.Status.ObservedGeneration == 0:
		// medseg has not assessed the device yet: its first status write wakes this approval
		// again, and deciding before would report a missing policy that is only not read yet.
		return ctrl.Result{}, nil
	case err == nil:
		dev = d
	case !apierrors.IsNotFound(err):
		return ctrl.Result{}, fmt.Errorf("reading MedicalDevice %s: %w", ref, err)
	}
	// The governing policy is the one the device reconciler recorded: the approval follows
	// the device's decision rather than re-deciding it.
	if dev != nil && dev.Status.Segmentation != nil && dev.Status.Segmentation.Policy != "" {
		p := &v1alpha1.SegmentPolicy{}
		switch err := r.Get(ctx, types.NamespacedName{Name: dev.Status.Segmentation.Policy}, p); {
		case err == nil:
			pol = p
		case !apierrors.IsNotFound(err):
			return ctrl.Result{}, fmt.Errorf("reading SegmentPolicy %s: %w", dev.Status.Segmentation.Policy, err)
		}
	}
	s := state(o, dev, pol, now)
	r.Metrics.observeApproval(r.Kind, o.GetName(), s.Phase, o.GetApproval().NotAfter.Time)
	st := o.GetApprovalStatus()
	old := *st
	changed := old.Phase != s.Phase || old.Reason != s.Reason
	next := v1alpha1.ApprovalStatus{Phase: s.Phase, Reason: s.Reason, Message: cutMessage(s.Message), Policy: s.Policy,
		Since: old.Since, ObservedGeneration: o.GetGeneration()}
	if old.Phase != s.Phase || next.Since == nil {
		t := metav1.NewTime(now)
		next.Since = &t
	}
	same := next.Phase == old.Phase && next.Reason == old.Reason && next.Message == old.Message &&
		next.Policy == old.Policy && next.ObservedGeneration == old.ObservedGeneration && old.Since != nil
	if !same {
		*st = next
		if err := r.Status().Update(ctx, o, client.FieldOwner(v1alpha1.FieldOwner)); err != nil {
			return ctrl.Result{}, fmt.Errorf("writing the status of %s %s: %w", r.Kind, o.GetName(), err)
		}
		if changed && r.Recorder != nil {
			typ := corev1.EventTypeNormal
			if s.Phase == v1alpha1.ApprovalIneffective {
				typ = corev1.EventTypeWarning
			}
			var related runtime.Object // a nil *MedicalDevice would not be a nil interface
			if dev != nil {
				related = dev
			}
			r.Recorder.Eventf(o, related, typ, s.Reason, string(s.Phase), "%s %s is %s: %s", r.Kind, o.GetName(), s.Phase, s.Message)
		}
	}
	if !s.NextChange.IsZero() {
		return ctrl.Result{RequeueAfter: s.NextChange.Sub(now) + 50*time.Millisecond}, nil
	}
	return ctrl.Result{}, nil
}

// cutMessage bounds a message to the schema's 1024 bytes.
func cutMessage(m string) string { return v1alpha1.CutUTF8(m, 1024) }

// SetupWithManager watches the approvals of the kind, the devices they name (their status is
// where a grant's flow is blocked or not) and the SegmentPolicies whose limits they are held to.
func (r *ApprovalReconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(strings.ToLower(r.Kind)).
		For(r.newObject(), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.MedicalDevice{}, handler.EnqueueRequestsFromMapFunc(r.approvalsOfDevice)).
		Watches(&v1alpha1.SegmentPolicy{}, handler.EnqueueRequestsFromMapFunc(r.approvalsOfPolicy),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, workers)}).
		Complete(r)
}

func (r *ApprovalReconciler) approvalsBy(ctx context.Context, field, value string) []reconcile.Request {
	l := r.newList()
	if err := r.List(ctx, l, client.MatchingFields{field: value}); err != nil {
		logMapError(ctx, err, "listing the "+r.Kind+"s with "+field+"="+value)
		return nil
	}
	var out []reconcile.Request
	switch l := l.(type) {
	case *v1alpha1.AccessGrantList:
		for _, o := range l.Items {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: o.Name}})
		}
	case *v1alpha1.SegmentExceptionList:
		for _, o := range l.Items {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: o.Name}})
		}
	}
	return out
}

func (r *ApprovalReconciler) approvalsOfDevice(ctx context.Context, o client.Object) []reconcile.Request {
	return r.approvalsBy(ctx, indexApprovalDevice, v1alpha1.Qualified(o.GetNamespace(), o.GetName()))
}

func (r *ApprovalReconciler) approvalsOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	return r.approvalsBy(ctx, indexApprovalPolicy, o.GetName())
}
