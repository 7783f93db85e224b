// Package controllers holds medseg's reconcilers: thin glue that reads the cluster, calls the
// pure packages (internal/plan → risk, render) and writes the result with server-side apply
// and one status patch per reconcile.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/drift"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/render"
)

// MedicalDeviceReconciler assesses a device, renders its CiliumNetworkPolicy, enforces it and
// records the decision in status.
type MedicalDeviceReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Metrics  *Metrics

	// written remembers, per device (namespace/name → writtenStatus), the status last written.
	// medseg is the only writer of device status, so what it wrote is never older than the cache:
	// the reconcile that our own CNP write triggers can read the device from before our status
	// write, and starting from the cache would redo (and conflict on) the write.
	written sync.Map
	// own drops the watch events of medseg's own CiliumNetworkPolicy writes: on a cold start
	// they would double the reconciles (docs/performance.md).
	own ownWrites
}

// +kubebuilder:rbac:groups=medseg.io,resources=medicaldevices,verbs=get;list;watch
// +kubebuilder:rbac:groups=medseg.io,resources=medicaldevices/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=medseg.io,resources=medicaldevices/finalizers,verbs=update
// +kubebuilder:rbac:groups=medseg.io,resources=segmentpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnetworkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces;pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// observed is what a device's decision depends on besides the device itself.
type observed struct {
	policies   []v1alpha1.SegmentPolicy
	namespaces map[string]map[string]string
	// gatewayPods counts pods matching spec.gateway.podSelector; unlabelled those among them
	// without medseg.io/gateway: "true".
	gatewayPods, unlabelled int
	conflicts               []string
	// foreign are the policies medseg does not own that concern the device (drift.ForDevice);
	// widened explains those that widen access, "" if none does.
	foreign []drift.Finding
	widened string
}

// Reconcile reconciles one device. During shutdown a failed step is not retried: a cancelled
// context is not an error to back off from, and requeueing it would hold the manager's queue
// open until the graceful-shutdown deadline.
func (r *MedicalDeviceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	if err != nil && ctx.Err() != nil {
		return ctrl.Result{}, nil
	}
	return res, err
}

// reconcile reads like its steps: get the device, observe its surroundings, plan (pure),
// enforce, and write status once.
func (r *MedicalDeviceReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	dev := &v1alpha1.MedicalDevice{}
	if err := r.Get(ctx, req.NamespacedName, dev); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forgetDevice(req.String())
			r.forgetWritten(req)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !dev.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // its CiliumNetworkPolicy goes with it (owner reference)
	}
	now := r.Clock.Now()
	obs, err := r.observe(ctx, dev)
	if err != nil {
		return ctrl.Result{}, err
	}
	p, planErr := plan.Device(plan.Input{Device: dev, Policies: obs.policies, Namespaces: obs.namespaces,
		Widened: obs.widened, Now: now})

	st := &deviceStatus{old: r.previousStatus(req.NamespacedName, dev), now: now, dev: dev, plan: p, obs: obs}
	var enforceErr error
	if planErr == nil {
		enforceErr = r.enforce(ctx, st)
	}
	st.build(planErr, enforceErr)
	r.emitEvents(dev, st)
	r.Metrics.observeDevice(req.String(), dev.Status.Segmentation, dev.Status.Risk)

	if !sameStatus(st.old, &dev.Status) {
		if err := r.Status().Update(ctx, dev, client.FieldOwner(v1alpha1.FieldOwner)); err != nil {
			return ctrl.Result{}, fmt.Errorf("writing status: %w", err)
		}
		r.written.Store(req.NamespacedName, writtenStatus{uid: dev.UID, status: dev.Status.DeepCopy()})
	}
	if enforceErr != nil && !errors.Is(enforceErr, errForeignObject) {
		return ctrl.Result{}, enforceErr
	}
	if planErr == nil && p.Render != nil && !p.Render.NextChange.IsZero() {
		// An exception or access grant starts or ends: come back exactly then, without any
		// other event.
		return ctrl.Result{RequeueAfter: p.Render.NextChange.Sub(now) + 50*time.Millisecond}, nil
	}
	return ctrl.Result{}, nil
}

func (r *MedicalDeviceReconciler) observe(ctx context.Context, dev *v1alpha1.MedicalDevice) (*observed, error) {
	obs := &observed{namespaces: map[string]map[string]string{}}
	var policies v1alpha1.SegmentPolicyList
	if err := r.List(ctx, &policies, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	obs.policies = policies.Items
	var nss corev1.NamespaceList
	if err := r.List(ctx, &nss, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	for _, ns := range nss.Items {
		obs.namespaces[ns.Name] = ns.Labels
	}
	var gatewayLabels []map[string]string
	if sel, err := metav1.LabelSelectorAsSelector(&dev.Spec.Gateway.PodSelector); err == nil {
		var pods metav1.PartialObjectMetadataList
		pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
		if err := r.List(ctx, &pods, client.InNamespace(dev.Namespace), client.MatchingLabelsSelector{Selector: sel}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		obs.gatewayPods = len(pods.Items)
		for _, pod := range pods.Items {
			if pod.Labels[v1alpha1.LabelGateway] != "true" {
				obs.unlabelled++
				continue
			}
			gatewayLabels = append(gatewayLabels, pod.Labels)
		}
	}
	foreign, err := r.foreignPolicies(ctx, dev, obs, gatewayLabels)
	if err != nil {
		return nil, err
	}
	obs.foreign, obs.widened = foreign, drift.Widening(foreign)
	for _, a := range dev.Spec.Network.Addresses {
		var same v1alpha1.MedicalDeviceList
		if err := r.List(ctx, &same, client.MatchingFields{indexAddress: a}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for _, o := range same.Items {
			if o.Namespace != dev.Namespace || o.Name != dev.Name {
				obs.conflicts = append(obs.conflicts, fmt.Sprintf("%s (claimed by %s/%s)", a, o.Namespace, o.Name))
			}
		}
	}
	sort.Strings(obs.conflicts)
	return obs, nil
}

// foreignPolicies finds the policies medseg does not own that select the device's gateway or
// open its addresses (internal/drift), from the cache.
func (r *MedicalDeviceReconciler) foreignPolicies(ctx context.Context, dev *v1alpha1.MedicalDevice, obs *observed, gatewayLabels []map[string]string) ([]drift.Finding, error) {
	var pols drift.Policies
	// Read-only lists from the cache: no deep copies; only the policies medseg does not own.
	var cnps ciliumv2.CiliumNetworkPolicyList
	if err := r.List(ctx, &cnps, client.MatchingFields{indexForeign: "true"}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var ccnps ciliumv2.CiliumClusterwideNetworkPolicyList
	if err := r.List(ctx, &ccnps, client.MatchingFields{indexForeign: "true"}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var nps networkingv1.NetworkPolicyList
	if err := r.List(ctx, &nps, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	pols.CNPs, pols.CCNPs, pols.NetworkPolicies = cnps.Items, ccnps.Items, nps.Items
	pols.OwnedGuards = map[string]types.UID{}
	var nets []netip.Prefix
	for _, p := range obs.policies {
		pols.OwnedGuards[render.GuardObjectName(p.Name)] = p.UID
		for _, n := range p.Spec.DeviceNetworks {
			if pfx, err := netip.ParsePrefix(n); err == nil {
				nets = append(nets, pfx.Masked())
			}
		}
	}
	d := drift.Device{
		Namespace: dev.Namespace, Name: dev.Name, UID: dev.UID,
		Gateways: drift.GatewayWorkloads(dev.Namespace, obs.namespaces[dev.Namespace], dev.Spec.Gateway.PodSelector, gatewayLabels),
	}
	for _, f := range dev.Spec.Flows {
		d.GatewayPorts = append(d.GatewayPorts, f.GatewayPort)
	}
	for _, a := range dev.Spec.Network.Addresses {
		if ip, err := netip.ParseAddr(a); err == nil {
			d.Addresses = append(d.Addresses, ip)
		}
	}
	return drift.ForDevice(d, pols, nets), nil
}

// enforce applies the device's CiliumNetworkPolicy under Enforce and removes it under Audit.
// With no governing policy it keeps whatever medseg last enforced: ungoverned is reported,
// never silently opened.
func (r *MedicalDeviceReconciler) enforce(ctx context.Context, st *deviceStatus) error {
	res := st.plan.Render
	switch {
	case res.NoPolicy:
		return nil
	case !res.Enforce:
		deleted, err := pruneObject(ctx, r.Client, res.CNP, st.dev.UID)
		if err == nil && deleted {
			r.Metrics.writes.WithLabelValues(ciliumv2.CNPKindDefinition, "pruned").Inc()
		}
		return err
	}
	wasApplied := st.old.Segmentation != nil && len(st.old.Segmentation.AppliedObjects) > 0
	out, rv, err := ensureObject(ctx, r.Client, res.CNP, wasApplied)
	r.own.record(res.CNP, rv)
	if err != nil {
		r.Metrics.applyErrors.WithLabelValues(ciliumv2.CNPKindDefinition).Inc()
		return err
	}
	st.applied = out
	if out != unchanged {
		r.Metrics.writes.WithLabelValues(ciliumv2.CNPKindDefinition, outcomeName(out)).Inc()
	}
	if out == repaired {
		r.Metrics.driftRepairs.WithLabelValues(ciliumv2.CNPKindDefinition).Inc()
	}
	return nil
}

func (r *MedicalDeviceReconciler) emitEvents(dev *v1alpha1.MedicalDevice, st *deviceStatus) {
	if r.Recorder == nil {
		return
	}
	ev := func(typ, reason, note string, args ...any) {
		r.Recorder.Eventf(dev, nil, typ, reason, "Reconcile", note, args...)
	}
	old, cur := st.old, &dev.Status
	if old.Risk != nil && cur.Risk != nil && old.Risk.Priority != cur.Risk.Priority {
		ev(corev1.EventTypeNormal, v1alpha1.EventPriorityChanged, "SSVC priority %s → %s: %s", old.Risk.Priority, cur.Risk.Priority, cur.Risk.Summary)
	}
	oldSeg, curSeg := old.Segmentation, cur.Segmentation
	if oldSeg != nil && curSeg != nil && oldSeg.Mode != "" && curSeg.Mode != "" && oldSeg.Mode != curSeg.Mode {
		ev(corev1.EventTypeNormal, v1alpha1.EventModeChanged, "mode %s → %s: %s", oldSeg.Mode, curSeg.Mode, curSeg.ModeReason)
	}
	if oldSeg != nil && curSeg != nil && oldSeg.Enforcement != "" && curSeg.Enforcement != "" && oldSeg.Enforcement != curSeg.Enforcement {
		ev(corev1.EventTypeNormal, v1alpha1.EventEnforcementChange, "enforcement %s → %s (policy %s)", oldSeg.Enforcement, curSeg.Enforcement, curSeg.Policy)
	}
	if oldSeg != nil && oldSeg.ActiveException != nil && (curSeg == nil || curSeg.ActiveException == nil || curSeg.ActiveException.Name != oldSeg.ActiveException.Name) &&
		!st.now.Before(oldSeg.ActiveException.ExpiresAt.Time) {
		ev(corev1.EventTypeNormal, v1alpha1.EventExceptionExpired, "exception %s (approved by %s) expired at %s",
			oldSeg.ActiveException.Name, oldSeg.ActiveException.ApprovedBy, oldSeg.ActiveException.ExpiresAt.UTC().Format(time.RFC3339))
	}
	emitAccessEvents(ev, st.now, oldSeg, curSeg)
	oldComm := meta.FindStatusCondition(old.Conditions, v1alpha1.ConditionCommissioned)
	curComm := meta.FindStatusCondition(cur.Conditions, v1alpha1.ConditionCommissioned)
	if curComm != nil && (oldComm == nil || oldComm.Reason != curComm.Reason) {
		switch curComm.Reason {
		case v1alpha1.ReasonCommissioned:
			if oldComm != nil { // not on first sight: a device created commissioned did not change
				ev(corev1.EventTypeNormal, v1alpha1.EventCommissioned, "%s", curComm.Message)
			}
		case v1alpha1.ReasonFlowsChanged:
			ev(corev1.EventTypeWarning, v1alpha1.EventFlowsChanged, "%s", curComm.Message)
		}
	}
	if st.applied == repaired {
		ev(corev1.EventTypeWarning, v1alpha1.EventDriftRepaired, "CiliumNetworkPolicy %s was edited or deleted by hand; medseg put it back", st.plan.Render.CNP.Name)
	}
	oldSegmented := meta.FindStatusCondition(old.Conditions, v1alpha1.ConditionSegmented)
	curSegmented := meta.FindStatusCondition(cur.Conditions, v1alpha1.ConditionSegmented)
	if curSegmented != nil && curSegmented.Reason == v1alpha1.ReasonNoSegmentPolicy && (oldSegmented == nil || oldSegmented.Reason != v1alpha1.ReasonNoSegmentPolicy) {
		ev(corev1.EventTypeWarning, v1alpha1.EventNoSegmentPolicy, "%s", curSegmented.Message)
	}
}

// emitAccessEvents reports access grants that opened a flow (AccessGranted) and flows whose
// grant no longer opens them (AccessEnded: the window closed, the grant was withdrawn or the
// mode tightened).
func emitAccessEvents(ev func(typ, reason, note string, args ...any), now time.Time, oldSeg, curSeg *v1alpha1.SegmentationStatus) {
	grants := func(s *v1alpha1.SegmentationStatus) map[string]bool {
		out := map[string]bool{}
		for _, g := range s.ActiveGrantsOrEmpty() {
			out[g.Name+"/"+g.Flow] = true
		}
		return out
	}
	before, after := grants(oldSeg), grants(curSeg)
	for _, g := range curSeg.ActiveGrantsOrEmpty() {
		if !before[g.Name+"/"+g.Flow] {
			ev(corev1.EventTypeNormal, v1alpha1.EventAccessGranted, "access grant %s (approved by %s, ticket %s) opens flow %s until %s",
				g.Name, g.ApprovedBy, g.Ticket, g.Flow, g.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	for _, g := range oldSeg.ActiveGrantsOrEmpty() {
		if after[g.Name+"/"+g.Flow] {
			continue
		}
		why := "the grant was withdrawn or the mode no longer allows the flow"
		if !now.Before(g.NotAfter.Time) {
			why = "the window ended at " + g.NotAfter.UTC().Format(time.RFC3339)
		}
		ev(corev1.EventTypeNormal, v1alpha1.EventAccessEnded, "access grant %s no longer opens flow %s: %s", g.Name, g.Flow, why)
	}
}

// deviceStatus builds the new status from the plan and what enforcement did.
type deviceStatus struct {
	old     *v1alpha1.MedicalDeviceStatus
	now     time.Time
	dev     *v1alpha1.MedicalDevice
	plan    *plan.Plan
	obs     *observed
	applied applyOutcome
}

func (st *deviceStatus) build(planErr, enforceErr error) {
	dev, gen := st.dev, st.dev.Generation
	s := &dev.Status
	s.ObservedGeneration = gen
	now := metav1.NewTime(st.now)

	// Risk: keep assessedAt when nothing in the assessment changed.
	risk := st.plan.Assessment.Status()
	if st.old.Risk != nil {
		prev := st.old.Risk.DeepCopy()
		prev.AssessedAt = risk.AssessedAt
		if equality.Semantic.DeepEqual(prev, risk) {
			risk.AssessedAt = st.old.Risk.AssessedAt
		}
	}
	s.Risk = risk
	setCondition(&s.Conditions, gen, v1alpha1.ConditionRiskAssessed, true, v1alpha1.ReasonAssessed, risk.Summary)

	// Commissioned does not depend on a policy: it compares spec.commissioning with spec.flows.
	commission := dev.Spec.CommissioningState()
	s.FlowsHash = commission.FlowsHash
	commissionMsg := commission.Message
	if res := st.plan.Render; planErr == nil && res != nil && !res.NoPolicy && !commission.Commissioned {
		if res.Onboarding {
			commissionMsg += fmt.Sprintf("; until then the device runs at least in onboarding mode %s of SegmentPolicy %s", st.plan.Policy.Spec.OnboardingMode(), res.Policy)
		} else {
			commissionMsg += fmt.Sprintf("; SegmentPolicy %s does not require onboarding (onboarding.required=false), so its risk alone sets the mode", res.Policy)
		}
	}
	setCondition(&s.Conditions, gen, v1alpha1.ConditionCommissioned, commission.Commissioned, commission.Reason, commissionMsg)

	var o outcome
	segOK, segReason, segMsg := false, "", ""
	res := st.plan.Render
	switch {
	case planErr != nil:
		segReason, segMsg = v1alpha1.ReasonInvalidInput, planErr.Error()
		o = outcome{stalled: true, reason: segReason, message: segMsg}
	case res.NoPolicy:
		segReason = v1alpha1.ReasonNoSegmentPolicy
		segMsg = "no SegmentPolicy selects this device: it is not governed"
		if st.old.Segmentation != nil && len(st.old.Segmentation.AppliedObjects) > 0 {
			segMsg += fmt.Sprintf("; the last enforced policy %s is kept in place", st.old.Segmentation.AppliedObjects[0].Name)
		}
		if len(st.plan.Selection.Invalid) > 0 {
			segMsg += "; skipped: " + errorsString(st.plan.Selection.Invalid)
		}
		o = outcome{stalled: true, reason: segReason, message: segMsg}
	default:
		segOK, segReason, segMsg, o = st.segmented(enforceErr)
	}
	setCondition(&s.Conditions, gen, v1alpha1.ConditionSegmented, segOK, segReason, segMsg)
	setReadiness(&s.Conditions, gen, o)

	s.Segmentation = st.segmentation(planErr)
	if s.Segmentation != nil && st.old.Segmentation != nil && st.applied == unchanged {
		s.Segmentation.LastAppliedAt = st.old.Segmentation.LastAppliedAt
	}
	if st.applied != unchanged && s.Segmentation != nil {
		s.Segmentation.LastAppliedAt = &now
	}

	ds := st.old.Drift.DeepCopy()
	if ds == nil {
		ds = &v1alpha1.DriftStatus{}
	}
	if st.applied == repaired {
		ds.Repairs++
		ds.LastRepairAt = &now
	}
	ds.ForeignPolicies = nil
	for _, f := range st.obs.foreign {
		ds.ForeignPolicies = append(ds.ForeignPolicies, v1alpha1.ForeignPolicy{Kind: f.Kind, Namespace: f.Namespace, Name: f.Name, Widens: f.Widens, Reason: f.Reason})
	}
	if ds.Repairs == 0 && len(ds.ForeignPolicies) == 0 {
		ds = nil
	}
	s.Drift = ds

	mode := v1alpha1.Mode("")
	reason := segMsg
	if s.Segmentation != nil {
		mode, reason = s.Segmentation.Mode, s.Segmentation.ModeReason
	}
	s.History = pushHistory(st.old.History, v1alpha1.HistoryEntry{Time: now, Priority: risk.Priority, Mode: mode, Reason: reason})
}

// segmented decides the Segmented condition for a governed device.
func (st *deviceStatus) segmented(enforceErr error) (bool, string, string, outcome) {
	res := st.plan.Render
	summary := fmt.Sprintf("mode %s: %d of %d flows allowed", res.Mode, len(res.Allowed()), len(res.Flows))
	stalled := func(reason, msg string) (bool, string, string, outcome) {
		return false, reason, msg, outcome{stalled: true, reason: reason, message: msg}
	}
	switch {
	case !res.Enforce:
		msg := fmt.Sprintf("SegmentPolicy %s is in Audit: would enforce %s; nothing is written", res.Policy, summary)
		return false, v1alpha1.ReasonAuditOnly, msg, outcome{reason: v1alpha1.ReasonAuditOnly, message: msg}
	case errors.Is(enforceErr, errForeignObject):
		return stalled(v1alpha1.ReasonObjectConflict, enforceErr.Error())
	case enforceErr != nil:
		msg := enforceErr.Error()
		return false, v1alpha1.ReasonApplyFailed, msg, outcome{progressing: true, reason: v1alpha1.ReasonApplyFailed, message: msg}
	case st.obs.widened != "":
		return stalled(v1alpha1.ReasonForeignPolicyWidens, "a policy medseg does not own widens access: "+st.obs.widened+
			"; medseg does not delete it, remove or narrow it")
	case st.obs.namespaces[st.dev.Namespace][v1alpha1.LabelGatewayNamespace] != "true":
		return stalled(v1alpha1.ReasonGatewayNamespaceNotLabelled, fmt.Sprintf(
			"namespace %s is not labelled %s=true: the guard cuts its gateways off the device networks; ask the platform team to label it",
			st.dev.Namespace, v1alpha1.LabelGatewayNamespace))
	case st.obs.unlabelled > 0:
		return stalled(v1alpha1.ReasonGatewayPodsNotLabelled, fmt.Sprintf(
			"%d of %d pods selected by spec.gateway.podSelector lack the label %s=true: the device policy does not select them and the guard cuts them off",
			st.obs.unlabelled, st.obs.gatewayPods, v1alpha1.LabelGateway))
	case len(st.obs.conflicts) > 0:
		return stalled(v1alpha1.ReasonAddressConflict, "address also claimed by another MedicalDevice: "+strings.Join(st.obs.conflicts, ", "))
	case len(res.AddressesOutsideDeviceNetworks) > 0:
		return stalled(v1alpha1.ReasonAddressOutsideDeviceNetworks, fmt.Sprintf(
			"addresses %s lie outside the deviceNetworks of SegmentPolicy %s: ordinary pods are not fenced from them",
			strings.Join(res.AddressesOutsideDeviceNetworks, ", "), res.Policy))
	case st.obs.gatewayPods == 0:
		msg := summary + "; no pod matches spec.gateway.podSelector yet: the policy applies when the gateway starts"
		return true, v1alpha1.ReasonGatewayNotFound, msg, outcome{reason: v1alpha1.ReasonGatewayNotFound, message: msg}
	}
	msg := summary + fmt.Sprintf(" through %d gateway pod(s)", st.obs.gatewayPods)
	return true, v1alpha1.ReasonSegmented, msg, outcome{reason: v1alpha1.ReasonSegmented, message: msg}
}

func (st *deviceStatus) segmentation(planErr error) *v1alpha1.SegmentationStatus {
	if planErr != nil {
		return st.old.Segmentation
	}
	res := st.plan.Render
	if res.NoPolicy {
		if st.old.Segmentation == nil {
			return nil
		}
		// Keep what is still enforced, so auditors see it, but say no policy governs.
		kept := &v1alpha1.SegmentationStatus{AppliedObjects: st.old.Segmentation.AppliedObjects, LastAppliedAt: st.old.Segmentation.LastAppliedAt}
		if len(kept.AppliedObjects) == 0 {
			return nil
		}
		kept.Mode = st.old.Segmentation.Mode
		kept.ModeReason = "no SegmentPolicy governs the device; the last enforced mode is kept"
		return kept
	}
	return res.SegmentationStatus()
}

type writtenStatus struct {
	uid    types.UID
	status *v1alpha1.MedicalDeviceStatus
}

// previousStatus is the status medseg last wrote for this device, or the cached one.
func (r *MedicalDeviceReconciler) previousStatus(key types.NamespacedName, dev *v1alpha1.MedicalDevice) *v1alpha1.MedicalDeviceStatus {
	if v, ok := r.written.Load(key); ok && v.(writtenStatus).uid == dev.UID {
		return v.(writtenStatus).status.DeepCopy()
	}
	return dev.Status.DeepCopy()
}

func (r *MedicalDeviceReconciler) forgetWritten(req ctrl.Request) {
	r.written.Delete(req.NamespacedName)
	r.own.forget(types.NamespacedName{Namespace: req.Namespace, Name: render.DeviceObjectName(req.Name)})
}

func outcomeName(o applyOutcome) string {
	return [...]string{"unchanged", "created", "updated", "repaired"}[o]
}

func errorsString(errs []error) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}
