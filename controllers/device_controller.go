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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

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
	// Traffic follows Hubble Relay; nil when the operator is not given a Relay address.
	Traffic *TrafficFollower
	// PolicyMapCapacity is Cilium's per-endpoint policy map size (bpf-policy-map-max): a device
	// whose gateway pod would exceed it gets no more flows; 0 checks nothing.
	PolicyMapCapacity int
	selectors         selectorCache
	// Memory remembers devices' last known priority across their deletion; nil remembers nothing.
	Memory *RiskMemory

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
// +kubebuilder:rbac:groups=medseg.io,resources=segmentexceptions;accessgrants,verbs=get;list;watch
// +kubebuilder:rbac:groups=medseg.io,resources=segmentexceptions/status;accessgrants/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumnetworkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces;pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// observed is what a device's decision depends on besides the device itself.
type observed struct {
	policies   []v1alpha1.SegmentPolicy
	namespaces map[string]map[string]string
	// neighbours are the other devices in the device's namespace (shared gateways).
	neighbours []*v1alpha1.MedicalDevice
	// approvals are the SegmentExceptions and AccessGrants naming the device.
	approvals v1alpha1.Approvals
	// gateways are the device's labelled gateway pods.
	gateways []gatewayPod
	// gatewayPods counts pods matching spec.gateway.podSelector; unlabelled those among them
	// without medseg.io/gateway: "true".
	gatewayPods, unlabelled int
	// contested are the device's addresses other devices claim too; conflicts says by whom.
	contested []netip.Addr
	conflicts []string
	// foreign are the policies medseg does not own that concern the device (drift.ForDevice);
	// widened explains those that widen access, "" if none does.
	foreign []drift.Finding
	widened string
	// live is medseg's own policy for the device, nil when there is none.
	live *ciliumv2.CiliumNetworkPolicy
	// liveEnforcing names the devices of the namespace whose live medseg policy enforces; read
	// on first use (only unenforced devices sharing a gateway ask).
	liveEnforcing map[string]bool
	liveErr       error
}

// enforcingLive reports whether medseg's live policy for a device of the namespace enforces.
func (r *MedicalDeviceReconciler) enforcingLive(ctx context.Context, ns string, obs *observed) func(string) bool {
	return func(name string) bool {
		if obs.liveEnforcing == nil && obs.liveErr == nil {
			var cnps ciliumv2.CiliumNetworkPolicyList
			if err := r.List(ctx, &cnps, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}, client.UnsafeDisableDeepCopy); err != nil {
				obs.liveErr = fmt.Errorf("listing medseg's CiliumNetworkPolicies in namespace %s: %w", ns, err)
				return true // unknown: keep the allow-only policy, it never narrows anything
			}
			obs.liveEnforcing = map[string]bool{}
			for i := range cnps.Items {
				if c := &cnps.Items[i]; render.Owned(c) && !render.IsCompanion(c) {
					obs.liveEnforcing[c.Labels[v1alpha1.LabelDevice]] = true
				}
			}
		}
		return obs.liveErr != nil || obs.liveEnforcing[name]
	}
}

// Reconcile reconciles one device. During shutdown a failed step is not retried: a cancelled
// context is not an error to back off from, and requeueing it would hold the manager's queue
// open until the graceful-shutdown deadline.
func (r *MedicalDeviceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	if err != nil && ctx.Err() != nil {
		return ctrl.Result{}, nil
	}
	r.Metrics.reconcileError("medicaldevice", err)
	return res, err
}

// reconcile reads like its steps: get the device, observe its surroundings, plan (pure), decide
// what to do with its policy (pure), write it, decide the status (pure) and write that once.
func (r *MedicalDeviceReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	dev := &v1alpha1.MedicalDevice{}
	if err := r.Get(ctx, req.NamespacedName, dev); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forgetDevice(req.String())
			r.forgetWritten(req)
			r.selectors.forgetName(req)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("reading MedicalDevice %s: %w", req.NamespacedName, err)
	}
	if !dev.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // its CiliumNetworkPolicy goes with it (owner reference)
	}
	now := r.Clock.Now()
	obs, err := r.observe(ctx, dev)
	if err != nil {
		return ctrl.Result{}, err
	}
	floor, err := r.Memory.Recall(ctx, dev.Namespace, dev.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	p, planErr := plan.Device(plan.Input{Device: dev, Policies: obs.policies, Namespaces: obs.namespaces,
		Neighbours: obs.neighbours, Approvals: obs.approvals, Floor: floor, LiveEnforcing: r.enforcingLive(ctx, dev.Namespace, obs), Widened: obs.widened, Now: now})
	if obs.liveErr != nil {
		return ctrl.Result{}, obs.liveErr
	}
	var load *gatewayLoad
	if planErr == nil {
		own := ownEntries(p)
		load = r.selectors.mostLoadedGateway(dev, own, obs.neighbours, obs.gateways, r.PolicyMapCapacity)
		if load != nil && load.over() && own > 0 {
			p.GatewayFull = load.String()
		}
	}
	var waiting []string
	if planErr == nil && p.Enforced {
		if waiting, err = r.companionsMissing(ctx, p, obs); err != nil {
			return ctrl.Result{}, err
		}
	}
	if planErr != nil {
		p = nil
	}
	decision := plan.DecideObject(p, obs.live, obs.contested, waiting)
	if p == nil {
		p = &plan.Plan{}
	}
	old := r.previousStatus(req.NamespacedName, dev)
	write := r.carryOut(ctx, dev, decision, obs.live, old)

	facts := deviceFacts{Now: now, Device: dev, Plan: p, PlanErr: planErr, Decision: decision, Write: write, Around: surroundings{
		NamespaceIsGateway: obs.namespaces[dev.Namespace][v1alpha1.LabelGatewayNamespace] == "true",
		GatewayPods:        obs.gatewayPods, Unlabelled: obs.unlabelled, Conflicts: obs.conflicts,
		Foreign: obs.foreign, Widened: obs.widened, Gateway: load,
	}}
	if r.Traffic != nil {
		facts.Traffic = r.Traffic.Snapshot(req.NamespacedName)
	}
	st := decideDeviceStatus(old, facts)
	for _, e := range deviceEvents(old, st, now) {
		if r.Recorder != nil {
			r.Recorder.Eventf(dev, nil, e.Type, e.Reason, "Reconcile", "%s", e.Message)
		}
	}
	unsegmented := ""
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionSegmented); c != nil && c.Status != metav1.ConditionTrue {
		unsegmented = c.Reason
	}
	r.Metrics.observeDevice(req.String(), st.Segmentation, st.Risk, unsegmented)
	r.Metrics.observeFeeds(dev)
	if !sameStatus(old, st) {
		dev.Status = *st
		if err := r.Status().Update(ctx, dev, client.FieldOwner(v1alpha1.FieldOwner)); err != nil {
			return ctrl.Result{}, fmt.Errorf("writing the status of MedicalDevice %s: %w", req.NamespacedName, err)
		}
		r.written.Store(req.NamespacedName, writtenStatus{uid: dev.UID, status: st.DeepCopy(), rv: dev.ResourceVersion})
	}
	if write.Err != nil && !errors.Is(write.Err, errForeignObject) {
		return ctrl.Result{}, write.Err
	}
	if planErr == nil {
		if err := r.Memory.Remember(ctx, dev, st.Risk.Priority, now); err != nil {
			return ctrl.Result{}, err
		}
	}
	if decision.Intent == plan.Wait {
		return ctrl.Result{RequeueAfter: waitForCompanions}, nil
	}
	if write.Raced {
		// Someone else wrote the device's policy while medseg did: look again.
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	if planErr == nil && p.Render != nil && !p.Render.NextChange.IsZero() {
		// An exception or access grant starts or ends: come back exactly then, without any
		// other event.
		return ctrl.Result{RequeueAfter: p.Render.NextChange.Sub(now) + 50*time.Millisecond}, nil
	}
	return ctrl.Result{}, nil
}

// waitForCompanions is how soon an enforced device that waits for the allow-only policies of
// its unenforced gateway neighbours looks again.
const waitForCompanions = time.Second

// carryOut writes what DecideObject decided and reports what happened.
func (r *MedicalDeviceReconciler) carryOut(ctx context.Context, dev *v1alpha1.MedicalDevice, d plan.ObjectDecision, live *ciliumv2.CiliumNetworkPolicy, old *v1alpha1.MedicalDeviceStatus) writeResult {
	w := writeResult{Live: appliedObjectOf(live)}
	switch d.Intent {
	case plan.Apply:
		out, rv, err := ensureObject(ctx, r.Client, d.Object, wasApplied(old, d.Object.Name), &r.own)
		w.Raced = r.own.end(d.Object, rv)
		w.Outcome, w.Err = out, err
		if err != nil {
			r.Metrics.applyErrors.WithLabelValues(ciliumv2.CNPKindDefinition).Inc()
			return w
		}
		if out != unchanged {
			r.Metrics.writes.WithLabelValues(ciliumv2.CNPKindDefinition, outcomeName(out)).Inc()
		}
		if out == repaired {
			r.Metrics.driftRepairs.WithLabelValues(ciliumv2.CNPKindDefinition).Inc()
		}
	case plan.Prune:
		deleted, err := pruneObject(ctx, r.Client, live, dev.UID)
		w.Err = err
		if err == nil && deleted {
			r.Metrics.writes.WithLabelValues(ciliumv2.CNPKindDefinition, "pruned").Inc()
		}
	}
	return w
}

// wasApplied reports whether status says medseg had the object in place, so a missing object is
// a hand deletion rather than a first creation.
func wasApplied(old *v1alpha1.MedicalDeviceStatus, name string) bool {
	if old.Segmentation == nil {
		return false
	}
	for _, o := range old.Segmentation.AppliedObjects {
		if o.Name == name {
			return true
		}
	}
	return false
}

func (r *MedicalDeviceReconciler) observe(ctx context.Context, dev *v1alpha1.MedicalDevice) (*observed, error) {
	obs := &observed{namespaces: map[string]map[string]string{}}
	var policies v1alpha1.SegmentPolicyList
	if err := r.List(ctx, &policies, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing SegmentPolicies: %w", err)
	}
	obs.policies = policies.Items
	var err error
	if obs.namespaces, err = namespaceLabels(ctx, r.Client); err != nil {
		return nil, err
	}
	var same v1alpha1.MedicalDeviceList
	if err := r.List(ctx, &same, client.InNamespace(dev.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing the MedicalDevices in namespace %s: %w", dev.Namespace, err)
	}
	for i := range same.Items {
		if same.Items[i].Name != dev.Name {
			obs.neighbours = append(obs.neighbours, &same.Items[i])
		}
	}
	key := client.MatchingFields{indexApprovalDevice: v1alpha1.Qualified(dev.Namespace, dev.Name)}
	var exceptions v1alpha1.SegmentExceptionList
	if err := r.List(ctx, &exceptions, key); err != nil {
		return nil, fmt.Errorf("listing the SegmentExceptions of %s/%s: %w", dev.Namespace, dev.Name, err)
	}
	var grants v1alpha1.AccessGrantList
	if err := r.List(ctx, &grants, key); err != nil {
		return nil, fmt.Errorf("listing the AccessGrants of %s/%s: %w", dev.Namespace, dev.Name, err)
	}
	obs.approvals = v1alpha1.Approvals{Exceptions: exceptions.Items, Grants: grants.Items}
	var gatewayLabels []map[string]string
	if sel, err := metav1.LabelSelectorAsSelector(&dev.Spec.Gateway.PodSelector); err == nil {
		var pods metav1.PartialObjectMetadataList
		pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
		if err := r.List(ctx, &pods, client.InNamespace(dev.Namespace), client.MatchingLabelsSelector{Selector: sel}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing the gateway pods of %s/%s: %w", dev.Namespace, dev.Name, err)
		}
		obs.gatewayPods = len(pods.Items)
		for _, pod := range pods.Items {
			if pod.Labels[v1alpha1.LabelGateway] != "true" {
				obs.unlabelled++
				continue
			}
			gatewayLabels = append(gatewayLabels, pod.Labels)
			obs.gateways = append(obs.gateways, gatewayPod{name: pod.Name, labels: pod.Labels})
		}
	}
	foreign, err := r.foreignPolicies(ctx, dev, obs, gatewayLabels)
	if err != nil {
		return nil, err
	}
	obs.foreign, obs.widened = foreign, drift.Widening(foreign)
	if obs.contested, obs.conflicts, err = r.claimants(ctx, dev); err != nil {
		return nil, err
	}
	if obs.live, err = r.liveObject(ctx, dev); err != nil {
		return nil, err
	}
	return obs, nil
}

// claimants finds the device's addresses that other devices claim too (compared in canonical
// form), and names the claimants.
func (r *MedicalDeviceReconciler) claimants(ctx context.Context, dev *v1alpha1.MedicalDevice) ([]netip.Addr, []string, error) {
	var contested []netip.Addr
	var conflicts []string
	for _, a := range dev.Spec.Network.Addresses {
		ip, ok := plan.CanonicalAddr(a)
		if !ok {
			continue
		}
		var same v1alpha1.MedicalDeviceList
		if err := r.List(ctx, &same, client.MatchingFields{indexAddress: ip.String()}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, nil, fmt.Errorf("looking up the devices that claim %s: %w", ip, err)
		}
		found := false
		for _, o := range same.Items {
			if o.Namespace != dev.Namespace || o.Name != dev.Name {
				conflicts = append(conflicts, fmt.Sprintf("%s (claimed by %s)", ip, v1alpha1.Qualified(o.Namespace, o.Name)))
				found = true
			}
		}
		if found {
			contested = append(contested, ip)
		}
	}
	sort.Strings(conflicts)
	return contested, conflicts, nil
}

// liveObject reads medseg's own policy for the device from the cache: nil when there is none or
// the object with that name is not medseg's (the apply then reports ObjectConflict).
func (r *MedicalDeviceReconciler) liveObject(ctx context.Context, dev *v1alpha1.MedicalDevice) (*ciliumv2.CiliumNetworkPolicy, error) {
	var cnp ciliumv2.CiliumNetworkPolicy
	key := types.NamespacedName{Namespace: dev.Namespace, Name: render.DeviceObjectName(dev.Name)}
	if err := r.Get(ctx, key, &cnp); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading CiliumNetworkPolicy %s: %w", key, err)
	}
	if !render.Owned(&cnp) || cnp.Labels[v1alpha1.LabelDevice] != dev.Name {
		return nil, nil
	}
	return &cnp, nil
}

// companionsMissing names the unenforced neighbours sharing an enforced device's gateway pods
// whose allow-only policies are not in place yet. A neighbour whose address is contested, or
// whose companion cannot be rendered, never gets one (conflicts and bad input fail closed), so
// it is not waited for.
func (r *MedicalDeviceReconciler) companionsMissing(ctx context.Context, p *plan.Plan, obs *observed) ([]string, error) {
	var missing []string
	for _, n := range p.SharedWith {
		var nb *v1alpha1.MedicalDevice
		for _, d := range obs.neighbours {
			if d.Name == n.Name {
				nb = d
			}
		}
		if nb == nil {
			continue
		}
		live, err := r.liveObject(ctx, nb)
		if err != nil {
			return nil, err
		}
		if live != nil {
			continue
		}
		contested, _, err := r.claimants(ctx, nb)
		if err != nil {
			return nil, err
		}
		if _, err := render.Companion(nb, n.Policy); err != nil || len(contested) > 0 {
			continue
		}
		missing = append(missing, n.String())
	}
	return missing, nil
}

// foreignPolicies finds the policies medseg does not own that select the device's gateway or
// open its addresses (internal/drift), from the cache.
func (r *MedicalDeviceReconciler) foreignPolicies(ctx context.Context, dev *v1alpha1.MedicalDevice, obs *observed, gatewayLabels []map[string]string) ([]drift.Finding, error) {
	pols, err := networkPolicies(ctx, r.Client, true)
	if err != nil {
		return nil, err
	}
	pols.OwnedGuards = map[string]types.UID{}
	var nets []netip.Prefix
	for i := range obs.policies {
		p := &obs.policies[i]
		pols.OwnedGuards[render.GuardObjectName(p.Name)] = p.UID
		pn, _ := render.DeviceNetworks(p) // an invalid policy is reported on the policy
		nets = append(nets, pn...)
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

type writtenStatus struct {
	uid    types.UID
	status *v1alpha1.MedicalDeviceStatus
	// rv is the device's resourceVersion after the status write: once the cache holds it, the
	// copy is dropped (forgetCaughtUp) and the cache is read again.
	rv string
}

// previousStatus is the status medseg last wrote for this device, or the cached one.
func (r *MedicalDeviceReconciler) previousStatus(key types.NamespacedName, dev *v1alpha1.MedicalDevice) *v1alpha1.MedicalDeviceStatus {
	if v, ok := r.written.Load(key); ok && v.(writtenStatus).uid == dev.UID {
		return v.(writtenStatus).status.DeepCopy()
	}
	return dev.Status.DeepCopy()
}

// forgetCaughtUp is a predicate that passes every event and, when an event shows the device at
// the resourceVersion of medseg's last status write, drops the remembered copy of that status:
// the cache holds it now. Without it the copies of every device's status would stay for good.
func (r *MedicalDeviceReconciler) forgetCaughtUp() predicate.Predicate {
	forget := func(obj client.Object) {
		key := client.ObjectKeyFromObject(obj)
		if v, ok := r.written.Load(key); ok && v.(writtenStatus).uid == obj.GetUID() && v.(writtenStatus).rv == obj.GetResourceVersion() {
			r.written.CompareAndDelete(key, v)
		}
	}
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool { forget(e.ObjectNew); return true },
		CreateFunc: func(e event.CreateEvent) bool { forget(e.Object); return true },
	}
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
