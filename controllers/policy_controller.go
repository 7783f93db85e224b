package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/drift"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/render"
)

// SegmentPolicyReconciler keeps a SegmentPolicy's guard CiliumClusterwideNetworkPolicy and
// reports the devices it governs.
type SegmentPolicyReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Metrics  *Metrics
	// PolicyMapCapacity is Cilium's per-endpoint policy map size (bpf-policy-map-max) the
	// gateways' estimated loads are held against; 0 turns the GatewayCapacity condition off.
	PolicyMapCapacity int

	guards guardCache
}

// +kubebuilder:rbac:groups=medseg.io,resources=segmentpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=medseg.io,resources=segmentpolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumclusterwidenetworkpolicies,verbs=get;list;watch;create;update;patch;delete

// Reconcile reconciles one SegmentPolicy; during shutdown failures are not retried (see the
// MedicalDeviceReconciler).
func (r *SegmentPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	if err != nil && ctx.Err() != nil {
		return ctrl.Result{}, nil
	}
	r.Metrics.reconcileError("segmentpolicy", err)
	return res, err
}

// reconcile reads like its steps: get the policy, decide its guard (pure) and write it, read
// what it governs and how flat its networks are, decide its status (pure) and write it once.
func (r *SegmentPolicyReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pol := &v1alpha1.SegmentPolicy{}
	if err := r.Get(ctx, req.NamespacedName, pol); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forgetPolicy(req.Name)
			return ctrl.Result{}, nil // the guard goes with it (owner reference)
		}
		return ctrl.Result{}, fmt.Errorf("reading SegmentPolicy %s: %w", req.Name, err)
	}
	if !pol.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	facts := policyFacts{Policy: pol, Now: time.Now()}
	var err error
	if facts.Guard, facts.GuardWrite, err = r.guard(ctx, pol); err != nil {
		return ctrl.Result{}, err
	}
	var governed v1alpha1.MedicalDeviceList
	if err := r.List(ctx, &governed, client.MatchingFields{indexPolicy: pol.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing the MedicalDevices of SegmentPolicy %s: %w", pol.Name, err)
	}
	facts.Counts = countDevices(governed.Items)
	pods, pols, err := observePodsAndPolicies(ctx, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	nets, _ := render.DeviceNetworks(pol) // invalid networks are reported through the guard
	facts.Offenders, facts.Evaluated = drift.Flatness(pods, pols, nets, facts.Counts.Addresses), len(pods)
	// The gateways' policy maps: every device behind a gateway of this policy's devices counts.
	var neighbours []v1alpha1.MedicalDevice
	seenNS := map[string]bool{}
	for _, d := range governed.Items {
		if seenNS[d.Namespace] {
			continue
		}
		seenNS[d.Namespace] = true
		var inNS v1alpha1.MedicalDeviceList
		if err := r.List(ctx, &inNS, client.InNamespace(d.Namespace), client.UnsafeDisableDeepCopy); err != nil {
			return ctrl.Result{}, fmt.Errorf("listing the MedicalDevices of namespace %s: %w", d.Namespace, err)
		}
		neighbours = append(neighbours, inNS.Items...)
	}
	facts.Capacity = r.PolicyMapCapacity
	facts.Gateways = gatewayLoads(governed.Items, neighbours, pods, r.PolicyMapCapacity)

	old := pol.Status.DeepCopy()
	st := decidePolicyStatus(old, facts)
	for _, e := range policyEvents(old, st) {
		if r.Recorder != nil {
			r.Recorder.Eventf(pol, nil, e.Type, e.Reason, "Reconcile", "%s", e.Message)
		}
	}
	isolated := meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionIsolated)
	r.Metrics.observePolicy(pol.Name, isolated, st.Gateways)
	if !samePolicyStatus(old, st) {
		pol.Status = *st
		if err := r.Status().Update(ctx, pol, client.FieldOwner(v1alpha1.FieldOwner)); err != nil {
			return ctrl.Result{}, fmt.Errorf("writing the status of SegmentPolicy %s: %w", pol.Name, err)
		}
	}
	if w := facts.GuardWrite.Err; w != nil && !errors.Is(w, errForeignObject) {
		return ctrl.Result{}, w
	}
	// Re-audit flatness at least every FlatnessRefresh, so its evaluatedAt stays true.
	return ctrl.Result{RequeueAfter: FlatnessRefresh}, nil
}

// writeGuard carries out the guard decision.
func (r *SegmentPolicyReconciler) writeGuard(ctx context.Context, pol *v1alpha1.SegmentPolicy, d guardDecision) writeResult {
	var w writeResult
	if d.Guard == nil {
		return w
	}
	var live ciliumv2.CiliumClusterwideNetworkPolicy
	if err := r.Get(ctx, client.ObjectKeyFromObject(d.Guard), &live); err == nil && render.Owned(&live) {
		w.Live = appliedGuardOf(&live)
	}
	switch d.Intent {
	case guardApply:
		w.Outcome, w.rv, w.Err = ensureObject(ctx, r.Client, d.Guard, pol.Status.Guard != nil, nil)
		switch {
		case w.Err != nil:
			r.Metrics.applyErrors.WithLabelValues(ciliumv2.CCNPKindDefinition).Inc()
		case w.Outcome != unchanged:
			r.Metrics.writes.WithLabelValues(ciliumv2.CCNPKindDefinition, outcomeName(w.Outcome)).Inc()
		}
		if w.Err == nil && w.Outcome == repaired {
			r.Metrics.driftRepairs.WithLabelValues(ciliumv2.CCNPKindDefinition).Inc()
		}
	case guardPrune:
		deleted, err := pruneObject(ctx, r.Client, d.Guard, pol.UID)
		w.Err = err
		if err == nil && deleted {
			r.Metrics.writes.WithLabelValues(ciliumv2.CCNPKindDefinition, "pruned").Inc()
		}
	}
	return w
}

// guard decides the policy's guard and writes it. When nothing the guard depends on changed
// since medseg last wrote it, and it is in the cluster as medseg left it, the last decision
// stands (guardCache).
func (r *SegmentPolicyReconciler) guard(ctx context.Context, pol *v1alpha1.SegmentPolicy) (guardDecision, writeResult, error) {
	if pol.Spec.Enforcement != v1alpha1.EnforcementEnforce {
		r.guards.forget(pol.Name)
		d := decideGuard(pol, nil)
		return d, r.writeGuard(ctx, pol, d), nil
	}
	var devs v1alpha1.MedicalDeviceList
	if err := r.List(ctx, &devs, client.UnsafeDisableDeepCopy); err != nil {
		return guardDecision{}, writeResult{}, fmt.Errorf("listing MedicalDevices: %w", err)
	}
	var pols v1alpha1.SegmentPolicyList
	if err := r.List(ctx, &pols, client.UnsafeDisableDeepCopy); err != nil {
		return guardDecision{}, writeResult{}, fmt.Errorf("listing SegmentPolicies: %w", err)
	}
	nsLabels, err := namespaceLabels(ctx, r.Client)
	if err != nil {
		return guardDecision{}, writeResult{}, err
	}
	inputs := guardInputs(pol, pols.Items, nsLabels, devs.Items)
	if e, ok := r.guards.get(pol.Name); ok && e.inputs == inputs && e.decision.Guard != nil {
		var live ciliumv2.CiliumClusterwideNetworkPolicy
		if err := r.Get(ctx, client.ObjectKeyFromObject(e.decision.Guard), &live); err == nil && live.ResourceVersion == e.rv {
			return e.decision, writeResult{Live: appliedGuardOf(&live)}, nil
		}
	}
	members, err := r.guardMembers(ctx, pol, devs.Items, pols.Items, nsLabels)
	if err != nil {
		return guardDecision{}, writeResult{}, err
	}
	d := decideGuard(pol, members)
	w := r.writeGuard(ctx, pol, d)
	if w.Err == nil && d.Guard != nil {
		var live ciliumv2.CiliumClusterwideNetworkPolicy
		if err := r.Get(ctx, client.ObjectKeyFromObject(d.Guard), &live); err == nil {
			rv := live.ResourceVersion
			if w.rv != "" {
				rv = w.rv // the write's own response; the cache may not have seen it yet
			}
			r.guards.put(pol.Name, guardEntry{inputs: inputs, decision: d, rv: rv})
		}
	} else {
		r.guards.forget(pol.Name)
	}
	return d, w, nil
}

// guardMembers lists the devices whose gateways may reach their addresses under the policy
// (plan.GuardMembers), reading live policies from the cache where a conflict or a kept policy
// makes them matter.
func (r *SegmentPolicyReconciler) guardMembers(ctx context.Context, pol *v1alpha1.SegmentPolicy, devs []v1alpha1.MedicalDevice, pols []v1alpha1.SegmentPolicy, nsLabels map[string]map[string]string) ([]render.GatewayMember, error) {
	var liveErr error
	live := func(ref v1alpha1.ObjectRef) *ciliumv2.CiliumNetworkPolicy {
		var cnp ciliumv2.CiliumNetworkPolicy
		key := types.NamespacedName{Namespace: ref.Namespace, Name: render.DeviceObjectName(ref.Name)}
		if err := r.Get(ctx, key, &cnp); err != nil {
			if !apierrors.IsNotFound(err) && liveErr == nil {
				liveErr = fmt.Errorf("reading CiliumNetworkPolicy %s: %w", key, err)
			}
			return nil
		}
		if !render.Owned(&cnp) || cnp.Labels[v1alpha1.LabelDevice] != ref.Name {
			return nil
		}
		return &cnp
	}
	members := plan.GuardMembers(pol, plan.Hospital{Devices: plan.Devices(devs), Policies: pols, Namespaces: nsLabels, Live: live})
	return members, liveErr
}
