package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	return res, err
}

// reconcile applies or removes the guard, counts the governed devices and writes status once.
func (r *SegmentPolicyReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
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

	members, err := r.guardMembers(ctx, pol)
	if err != nil {
		return ctrl.Result{}, err
	}
	guard, err := render.Guard(pol, members)
	var o outcome
	var applyErr error
	switch {
	case err != nil:
		o = outcome{stalled: true, reason: v1alpha1.ReasonInvalidInput, message: err.Error()}
	case pol.Spec.Enforcement == v1alpha1.EnforcementEnforce:
		var res applyOutcome
		res, _, applyErr = ensureObject(ctx, r.Client, guard, old.Guard != nil)
		switch {
		case errors.Is(applyErr, errForeignObject):
			o = outcome{stalled: true, reason: v1alpha1.ReasonObjectConflict, message: applyErr.Error()}
		case applyErr != nil:
			r.Metrics.applyErrors.WithLabelValues(ciliumv2.CCNPKindDefinition).Inc()
			o = outcome{progressing: true, reason: v1alpha1.ReasonApplyFailed, message: applyErr.Error()}
		default:
			st.Guard = &v1alpha1.AppliedObject{Kind: ciliumv2.CCNPKindDefinition, Name: guard.Name, Hash: guard.Annotations[v1alpha1.AnnotationContentHash]}
			o = outcome{reason: v1alpha1.ReasonGuardApplied, message: fmt.Sprintf("guard %s denies %v to every pod but the gateways of the %d devices it enforces", guard.Name, pol.Spec.DeviceNetworks, len(members))}
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
	addrs, err := r.count(ctx, pol)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.flatness(ctx, pol, addrs); err != nil {
		return ctrl.Result{}, err
	}
	if st.IneffectiveApprovals, err = r.ineffectiveApprovals(ctx, pol); err != nil {
		return ctrl.Result{}, err
	}
	setReadiness(&st.Conditions, gen, o)
	if !sameConditions(old.Conditions, st.Conditions) || !equality.Semantic.DeepEqual(withoutConditions(old), withoutConditions(st)) {
		if err := r.Status().Update(ctx, pol, client.FieldOwner(v1alpha1.FieldOwner)); err != nil {
			return ctrl.Result{}, fmt.Errorf("writing status: %w", err)
		}
	}
	if applyErr != nil && !errors.Is(applyErr, errForeignObject) {
		return ctrl.Result{}, applyErr
	}
	return ctrl.Result{}, nil
}

// guardMembers lists the devices whose gateways may reach their addresses under the policy
// (plan.GuardMembers), from the cache.
func (r *SegmentPolicyReconciler) guardMembers(ctx context.Context, pol *v1alpha1.SegmentPolicy) ([]render.GatewayMember, error) {
	if pol.Spec.Enforcement != v1alpha1.EnforcementEnforce {
		return nil, nil
	}
	var devs v1alpha1.MedicalDeviceList
	if err := r.List(ctx, &devs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing MedicalDevices: %w", err)
	}
	var pols v1alpha1.SegmentPolicyList
	if err := r.List(ctx, &pols, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing SegmentPolicies: %w", err)
	}
	var nss corev1.NamespaceList
	if err := r.List(ctx, &nss, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	nsLabels := make(map[string]map[string]string, len(nss.Items))
	for _, ns := range nss.Items {
		nsLabels[ns.Name] = ns.Labels
	}
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
		if !ownedByMedseg(&cnp) || cnp.Labels[v1alpha1.LabelDevice] != ref.Name {
			return nil
		}
		return &cnp
	}
	members := plan.GuardMembers(pol, plan.Hospital{Devices: plan.Devices(devs.Items), Policies: pols.Items, Namespaces: nsLabels, Live: live})
	return members, liveErr
}

// count fills the device counts from the devices whose status names this policy, and returns
// their addresses (the probes of the flatness audit).
func (r *SegmentPolicyReconciler) count(ctx context.Context, pol *v1alpha1.SegmentPolicy) ([]netip.Addr, error) {
	var devs v1alpha1.MedicalDeviceList
	if err := r.List(ctx, &devs, client.MatchingFields{indexPolicy: pol.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	st := &pol.Status
	st.Devices, st.Modes, st.Priorities = 0, v1alpha1.ModeCounts{}, v1alpha1.PriorityCounts{}
	var addrs []netip.Addr
	for _, d := range devs.Items {
		st.Devices++
		for _, a := range d.Spec.Network.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				addrs = append(addrs, ip)
			}
		}
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
	return addrs, nil
}

// maxIneffective bounds status.ineffectiveApprovals (the schema's MaxItems).
const maxIneffective = 64

// ineffectiveApprovals finds the policy's exceptions and access grants that cannot take
// effect: their device does not exist or another policy governs it, or a grant names a flow the
// device does not declare. Exceptions and grants apply only to the devices the policy governs.
func (r *SegmentPolicyReconciler) ineffectiveApprovals(ctx context.Context, pol *v1alpha1.SegmentPolicy) ([]string, error) {
	var out []string
	devices := map[v1alpha1.ObjectRef]*v1alpha1.MedicalDevice{}
	check := func(what string, ref v1alpha1.ObjectRef) (*v1alpha1.MedicalDevice, error) {
		d, seen := devices[ref]
		if !seen {
			d = &v1alpha1.MedicalDevice{}
			if err := r.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, d); err != nil {
				if !apierrors.IsNotFound(err) {
					return nil, err
				}
				d = nil
			}
			devices[ref] = d
		}
		switch {
		case d == nil:
			out = append(out, fmt.Sprintf("%s: device %s does not exist", what, ref))
		case d.Status.Segmentation == nil || d.Status.Segmentation.Policy != pol.Name:
			governor := "no policy"
			if d.Status.Segmentation != nil && d.Status.Segmentation.Policy != "" {
				governor = "SegmentPolicy " + d.Status.Segmentation.Policy
			}
			out = append(out, fmt.Sprintf("%s: device %s is governed by %s, not this one", what, ref, governor))
			return nil, nil
		}
		return d, nil
	}
	for _, e := range pol.Spec.Exceptions {
		if _, err := check("exception "+e.Name, e.Device); err != nil {
			return nil, err
		}
	}
	for _, g := range pol.Spec.AccessGrants {
		what := "access grant " + g.Name
		d, err := check(what, g.Device)
		if err != nil {
			return nil, err
		}
		if d == nil { // already reported: missing, or governed by another policy
			continue
		}
		var flow *v1alpha1.Flow
		for i := range d.Spec.Flows {
			if d.Spec.Flows[i].Name == g.Flow {
				flow = &d.Spec.Flows[i]
			}
		}
		switch {
		case flow == nil:
			out = append(out, fmt.Sprintf("%s: device %s declares no flow %s", what, g.Device, g.Flow))
		case !render.NeedsGrant(pol, *flow):
			out = append(out, fmt.Sprintf("%s: flow %s of %s is standing (no access: Granted, no external peer): the grant changes nothing", what, g.Flow, g.Device))
		}
	}
	if len(out) > maxIneffective {
		out = append(out[:maxIneffective-1], fmt.Sprintf("… and %d more", len(out)-maxIneffective+1))
	}
	return out, nil
}

// maxOffenders bounds the offenders listed in status.
const maxOffenders = 5

// flatness audits which workloads other than gateways can reach the device networks, given
// every policy in the cluster (internal/drift), and sets the Isolated condition.
func (r *SegmentPolicyReconciler) flatness(ctx context.Context, pol *v1alpha1.SegmentPolicy, addrs []netip.Addr) error {
	var nets []netip.Prefix
	for _, n := range pol.Spec.DeviceNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			nets = append(nets, p.Masked())
		}
	}
	pods, pols, err := observePodsAndPolicies(ctx, r.Client)
	if err != nil {
		return err
	}
	offenders := drift.Flatness(pods, pols, nets, addrs)
	st := &pol.Status
	st.Flatness = &v1alpha1.FlatnessStatus{
		ReachableWorkloads: int32(len(offenders)), EvaluatedWorkloads: int32(len(pods)),
		Offenders: drift.Summary(offenders, maxOffenders),
	}
	if len(offenders) == 0 {
		setCondition(&st.Conditions, pol.Generation, v1alpha1.ConditionIsolated, true, v1alpha1.ReasonIsolated,
			fmt.Sprintf("no workload other than gateways can reach %v (%d pods evaluated)", pol.Spec.DeviceNetworks, len(pods)))
	} else {
		setCondition(&st.Conditions, pol.Generation, v1alpha1.ConditionIsolated, false, v1alpha1.ReasonFlatNetwork,
			fmt.Sprintf("%d workloads other than gateways can reach the device networks, e.g. %s", len(offenders), offenders[0]))
	}
	return nil
}

// observePodsAndPolicies reads every pod (metadata), namespace and network policy from the cache.
func observePodsAndPolicies(ctx context.Context, c client.Client) ([]drift.Pod, drift.Policies, error) {
	var pols drift.Policies
	var nss corev1.NamespaceList
	if err := c.List(ctx, &nss, client.UnsafeDisableDeepCopy); err != nil {
		return nil, pols, err
	}
	nsLabels := map[string]map[string]string{}
	for _, ns := range nss.Items {
		nsLabels[ns.Name] = ns.Labels
	}
	var podList metav1.PartialObjectMetadataList
	podList.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := c.List(ctx, &podList, client.UnsafeDisableDeepCopy); err != nil {
		return nil, pols, err
	}
	pods := make([]drift.Pod, 0, len(podList.Items))
	for _, p := range podList.Items {
		pods = append(pods, drift.Pod{Name: p.Name, Workload: drift.Workload{Namespace: p.Namespace, NamespaceLabels: nsLabels[p.Namespace], Labels: p.Labels}})
	}
	var cnps ciliumv2.CiliumNetworkPolicyList
	if err := c.List(ctx, &cnps, client.UnsafeDisableDeepCopy); err != nil {
		return nil, pols, err
	}
	var ccnps ciliumv2.CiliumClusterwideNetworkPolicyList
	if err := c.List(ctx, &ccnps, client.UnsafeDisableDeepCopy); err != nil {
		return nil, pols, err
	}
	var nps networkingv1.NetworkPolicyList
	if err := c.List(ctx, &nps, client.UnsafeDisableDeepCopy); err != nil {
		return nil, pols, err
	}
	pols.CNPs, pols.CCNPs, pols.NetworkPolicies = cnps.Items, ccnps.Items, nps.Items
	return pods, pols, nil
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
