package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/render"
)

// Field indexes on MedicalDevices.
const (
	// indexAddress: each of spec.network.addresses, to find address conflicts.
	indexAddress = "spec.network.addresses"
	// indexPolicy: status.segmentation.policy, the devices a SegmentPolicy governs.
	indexPolicy = "status.segmentation.policy"
	// indexForeign on CNPs and CCNPs: "true" for policies medseg does not own. At hospital scale
	// nearly every CNP is medseg's own; reading only the foreign ones keeps a device reconcile
	// from touching every policy in the cluster.
	indexForeign = "medseg.foreign"
	// indexApprovalDevice on SegmentExceptions and AccessGrants: the device they name
	// (namespace/name).
	indexApprovalDevice = "spec.device"
	// indexApprovalPolicy on SegmentExceptions and AccessGrants: status.policy.
	indexApprovalPolicy = "status.policy"
)

// approvalObject is a SegmentException or an AccessGrant.
type approvalObject interface {
	client.Object
	GetApproval() *v1alpha1.Approval
	GetApprovalStatus() *v1alpha1.ApprovalStatus
}

func approvalDeviceIndex(o client.Object) []string {
	ref := o.(approvalObject).GetApproval().Device
	return []string{v1alpha1.Qualified(ref.Namespace, ref.Name)}
}

func approvalPolicyIndex(o client.Object) []string {
	if p := o.(approvalObject).GetApprovalStatus().Policy; p != "" {
		return []string{p}
	}
	return nil
}

func foreignIndex(o client.Object) []string {
	if render.Owned(o) {
		return nil
	}
	return []string{"true"}
}

// Options tune the controllers.
type Options struct {
	// DeviceWorkers and PolicyWorkers are MaxConcurrentReconciles.
	DeviceWorkers, PolicyWorkers int
}

// SetupIndexes registers the field indexes both reconcilers use.
func SetupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.MedicalDevice{}, indexAddress, func(o client.Object) []string {
		// Canonical form, so ::ffff:10.20.1.12 and 10.20.1.12 are one address.
		var out []string
		for _, a := range o.(*v1alpha1.MedicalDevice).Spec.Network.Addresses {
			if ip, ok := plan.CanonicalAddr(a); ok {
				out = append(out, ip.String())
			}
		}
		return out
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1alpha1.MedicalDevice{}, indexPolicy, func(o client.Object) []string {
		if s := o.(*v1alpha1.MedicalDevice).Status.Segmentation; s != nil && s.Policy != "" {
			return []string{s.Policy}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &ciliumv2.CiliumNetworkPolicy{}, indexForeign, foreignIndex); err != nil {
		return err
	}
	for _, o := range []client.Object{&v1alpha1.SegmentException{}, &v1alpha1.AccessGrant{}} {
		if err := idx.IndexField(ctx, o, indexApprovalDevice, approvalDeviceIndex); err != nil {
			return err
		}
		if err := idx.IndexField(ctx, o, indexApprovalPolicy, approvalPolicyIndex); err != nil {
			return err
		}
	}
	return idx.IndexField(ctx, &ciliumv2.CiliumClusterwideNetworkPolicy{}, indexForeign, foreignIndex)
}

// SetupWithManager wires the device reconciler's watches: its own CiliumNetworkPolicies
// (drift), SegmentPolicies (only the devices a policy selects or governs), namespaces and
// gateway pods (metadata only), and devices sharing an address.
func (r *MedicalDeviceReconciler) SetupWithManager(mgr ctrl.Manager, opts Options) error {
	b := ctrl.NewControllerManagedBy(mgr)
	if r.Traffic != nil {
		// The traffic follower wakes devices whose observed traffic changed.
		b = b.WatchesRawSource(source.Channel(r.Traffic.events, &handler.EnqueueRequestForObject{}))
		if err := mgr.Add(r.Traffic); err != nil {
			return err
		}
	}
	return b.
		Named("medicaldevice").
		For(&v1alpha1.MedicalDevice{}, builder.WithPredicates(predicate.And(r.forgetCaughtUp(), predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{})))).
		Owns(&ciliumv2.CiliumNetworkPolicy{}, builder.WithPredicates(r.own.dropEchoes())).
		Watches(&v1alpha1.SegmentPolicy{}, handler.EnqueueRequestsFromMapFunc(r.devicesOfPolicy),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// An approval wakes only the device it names; its status (written by the approval
		// reconciler) does not.
		Watches(&v1alpha1.SegmentException{}, handler.EnqueueRequestsFromMapFunc(deviceOfApproval),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.AccessGrant{}, handler.EnqueueRequestsFromMapFunc(deviceOfApproval),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.devicesInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.devicesInNamespace),
			builder.OnlyMetadata, builder.WithPredicates(podLabelsChanged())).
		Watches(&v1alpha1.MedicalDevice{}, addressPeers{r.Client}).
		Watches(&v1alpha1.MedicalDevice{}, gatewayNeighbours{r.Client}).
		Watches(&ciliumv2.CiliumNetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(r.companionsToReview), builder.WithPredicates(enforcingChanged())).
		Watches(&ciliumv2.CiliumNetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(r.devicesConcernedBy), builder.WithPredicates(notOwnedByMedseg())).
		Watches(&ciliumv2.CiliumClusterwideNetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(r.devicesConcernedBy), builder.WithPredicates(notOwnedByMedseg())).
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(r.devicesConcernedBy)).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, opts.DeviceWorkers)}).
		Complete(r)
}

// deviceOfApproval maps a SegmentException or AccessGrant to the device it names.
func deviceOfApproval(_ context.Context, o client.Object) []reconcile.Request {
	ref := o.(approvalObject).GetApproval().Device
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}}}
}

// devicesOfPolicy maps a SegmentPolicy to the devices it selects now and those it governed.
func (r *MedicalDeviceReconciler) devicesOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	pol := o.(*v1alpha1.SegmentPolicy)
	seen := map[types.NamespacedName]bool{}
	var governed v1alpha1.MedicalDeviceList
	if err := r.List(ctx, &governed, client.MatchingFields{indexPolicy: pol.Name}); err != nil {
		logMapError(ctx, err, "listing the MedicalDevices of SegmentPolicy "+pol.Name)
	}
	for _, d := range governed.Items {
		seen[types.NamespacedName{Namespace: d.Namespace, Name: d.Name}] = true
	}
	devSel, err1 := render.SelectorOrEverything(pol.Spec.DeviceSelector)
	nsSel, err2 := render.SelectorOrEverything(pol.Spec.NamespaceSelector)
	if err1 == nil && err2 == nil {
		var nss corev1.NamespaceList
		if err := r.List(ctx, &nss, client.MatchingLabelsSelector{Selector: nsSel}); err != nil {
			logMapError(ctx, err, "listing the namespaces SegmentPolicy "+pol.Name+" selects")
		}
		for _, ns := range nss.Items {
			var devs v1alpha1.MedicalDeviceList
			if err := r.List(ctx, &devs, client.InNamespace(ns.Name), client.MatchingLabelsSelector{Selector: devSel}); err != nil {
				logMapError(ctx, err, "listing the MedicalDevices of namespace "+ns.Name)
				continue
			}
			for _, d := range devs.Items {
				seen[types.NamespacedName{Namespace: d.Namespace, Name: d.Name}] = true
			}
		}
	} else {
		logMapError(ctx, errors.Join(err1, err2), "reading the selectors of SegmentPolicy "+pol.Name)
	}
	// Unenforced devices that share gateway pods with this policy's devices must learn of its
	// enforcement (they write or drop their allow-only policies), so every device in the
	// namespaces concerned is reconciled.
	namespaces := map[string]bool{}
	for k := range seen {
		namespaces[k.Namespace] = true
	}
	for ns := range namespaces {
		var devs metav1.PartialObjectMetadataList
		devs.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("MedicalDeviceList"))
		if err := r.List(ctx, &devs, client.InNamespace(ns)); err != nil {
			logMapError(ctx, err, "listing the MedicalDevices of namespace "+ns)
			continue
		}
		for _, d := range devs.Items {
			seen[types.NamespacedName{Namespace: d.Namespace, Name: d.Name}] = true
		}
	}
	out := make([]reconcile.Request, 0, len(seen))
	for k := range seen {
		out = append(out, reconcile.Request{NamespacedName: k})
	}
	return out
}

// devicesConcernedBy maps a foreign policy to the devices it may concern: the devices of its
// namespace (it may select their gateways); every device when it is clusterwide or names
// CIDRs (it may open device addresses from anywhere).
func (r *MedicalDeviceReconciler) devicesConcernedBy(ctx context.Context, o client.Object) []reconcile.Request {
	wide := o.GetNamespace() == ""
	switch p := o.(type) {
	case *ciliumv2.CiliumNetworkPolicy:
		wide = wide || namesCIDRs(p.Spec, p.Specs)
	case *networkingv1.NetworkPolicy:
		for _, e := range p.Spec.Egress {
			for _, to := range e.To {
				wide = wide || to.IPBlock != nil
			}
		}
	}
	if !wide {
		return r.devicesInNamespace(ctx, o)
	}
	var devs v1alpha1.MedicalDeviceList
	if err := r.List(ctx, &devs); err != nil {
		logMapError(ctx, err, "listing MedicalDevices")
		return nil
	}
	out := make([]reconcile.Request, 0, len(devs.Items))
	for _, d := range devs.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: d.Name}})
	}
	return out
}

func namesCIDRs(spec *policyapi.Rule, specs policyapi.Rules) bool {
	rules := append(policyapi.Rules{spec}, specs...)
	for _, r := range rules {
		if r == nil {
			continue
		}
		for _, e := range r.Egress {
			if len(e.ToCIDR) > 0 || len(e.ToCIDRSet) > 0 {
				return true
			}
		}
	}
	return false
}

// notOwnedByMedseg drops events of medseg's own policies (managed-by label and a controller
// reference into medseg.io); Owns watches handle those.
func notOwnedByMedseg() predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool { return !render.Owned(o) })
}

func (r *MedicalDeviceReconciler) devicesInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	ns := o.GetNamespace()
	if _, isNS := o.(*corev1.Namespace); isNS {
		ns = o.GetName()
	}
	var devs v1alpha1.MedicalDeviceList
	if err := r.List(ctx, &devs, client.InNamespace(ns)); err != nil {
		logMapError(ctx, err, "listing the MedicalDevices of namespace "+ns)
		return nil
	}
	out := make([]reconcile.Request, 0, len(devs.Items))
	for _, d := range devs.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: d.Name}})
	}
	return out
}

// podLabelsChanged passes pod creations, deletions and label changes: the only pod facts
// medseg reads.
func podLabelsChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !labels.Equals(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels())
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// addressPeers enqueues the other devices that share (or shared) an address with a changed
// device, so both sides of an AddressConflict are reported and cleared.
type addressPeers struct{ c client.Client }

func (a addressPeers) enqueue(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
	seen := map[types.NamespacedName]bool{}
	for _, o := range objs {
		dev, ok := o.(*v1alpha1.MedicalDevice)
		if !ok {
			continue
		}
		self := types.NamespacedName{Namespace: dev.Namespace, Name: dev.Name}
		for _, addr := range dev.Spec.Network.Addresses {
			ip, ok := plan.CanonicalAddr(addr)
			if !ok {
				continue
			}
			var same v1alpha1.MedicalDeviceList
			if err := a.c.List(ctx, &same, client.MatchingFields{indexAddress: ip.String()}); err != nil {
				logMapError(ctx, err, "looking up the devices that claim "+ip.String())
				continue
			}
			for _, d := range same.Items {
				k := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
				if k != self && !seen[k] {
					seen[k] = true
					q.Add(reconcile.Request{NamespacedName: k})
				}
			}
		}
	}
}

func (a addressPeers) Create(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	a.enqueue(ctx, q, e.Object)
}

func (a addressPeers) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	o, n := e.ObjectOld.(*v1alpha1.MedicalDevice), e.ObjectNew.(*v1alpha1.MedicalDevice)
	if o != nil && n != nil && slices.Equal(o.Spec.Network.Addresses, n.Spec.Network.Addresses) {
		return
	}
	a.enqueue(ctx, q, e.ObjectOld, e.ObjectNew)
}

func (a addressPeers) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	a.enqueue(ctx, q, e.Object)
}

func (a addressPeers) Generic(context.Context, event.GenericEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}

// gatewayNeighbours enqueues the devices of the same namespace whose gateway selectors overlap a
// changed device's and whose enforcement differs from it: an enforced device appearing makes
// its unenforced neighbours write their allow-only policies, an unenforced one appearing is
// waited for by its enforced neighbours. Neighbours of the same enforcement are not enqueued,
// so a cold start of one zone does not reconcile every device once per neighbour.
type gatewayNeighbours struct{ c client.Client }

func (g gatewayNeighbours) enqueue(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
	var pols v1alpha1.SegmentPolicyList
	var nss corev1.NamespaceList
	if err := g.c.List(ctx, &pols, client.UnsafeDisableDeepCopy); err != nil {
		logMapError(ctx, err, "listing SegmentPolicies")
		return
	}
	if err := g.c.List(ctx, &nss, client.UnsafeDisableDeepCopy); err != nil {
		logMapError(ctx, err, "listing namespaces")
		return
	}
	nsLabels := map[string]map[string]string{}
	for _, ns := range nss.Items {
		nsLabels[ns.Name] = ns.Labels
	}
	gov := plan.NewGovernors(pols.Items, nsLabels)
	for _, o := range objs {
		dev, ok := o.(*v1alpha1.MedicalDevice)
		if !ok {
			continue
		}
		var same v1alpha1.MedicalDeviceList
		if err := g.c.List(ctx, &same, client.InNamespace(dev.Namespace), client.UnsafeDisableDeepCopy); err != nil {
			logMapError(ctx, err, "listing the MedicalDevices of namespace "+dev.Namespace)
			continue
		}
		p := gov.Of(dev)
		enforced := p != nil && p.Spec.Enforcement == v1alpha1.EnforcementEnforce
		for _, n := range plan.SharedWith(dev, enforced, plan.Devices(same.Items), gov) {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: dev.Namespace, Name: n.Name}})
		}
	}
}

func (g gatewayNeighbours) Create(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	g.enqueue(ctx, q, e.Object)
}

func (g gatewayNeighbours) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if e.ObjectOld.GetGeneration() == e.ObjectNew.GetGeneration() && labels.Equals(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) {
		return // a status write changes no gateway selector and no governing policy
	}
	g.enqueue(ctx, q, e.ObjectOld, e.ObjectNew)
}

func (g gatewayNeighbours) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	g.enqueue(ctx, q, e.Object)
}

func (gatewayNeighbours) Generic(context.Context, event.GenericEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}

// enforcingChanged passes the events of medseg's own device policies that change whether a
// policy puts gateway pods in default deny: a deletion, or a switch between an enforcing policy
// and an allow-only companion.
func enforcingChanged() predicate.Predicate {
	enforcing := func(o client.Object) bool {
		c, ok := o.(*ciliumv2.CiliumNetworkPolicy)
		return ok && render.Owned(c) && !render.IsCompanion(c)
	}
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(e event.UpdateEvent) bool { return enforcing(e.ObjectOld) != enforcing(e.ObjectNew) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return enforcing(e.Object) },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// companionsToReview maps a device policy that stopped enforcing to the devices of its namespace
// whose gateway selectors overlap its device's: an unenforced device keeps its allow-only policy
// while an enforcing policy still selects its gateway pods, and drops it once none does.
func (r *MedicalDeviceReconciler) companionsToReview(ctx context.Context, o client.Object) []reconcile.Request {
	owner := &v1alpha1.MedicalDevice{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetLabels()[v1alpha1.LabelDevice]}, owner); err != nil {
		if !apierrors.IsNotFound(err) {
			logMapError(ctx, err, "reading the MedicalDevice of CiliumNetworkPolicy "+o.GetNamespace()+"/"+o.GetName())
		}
		return r.devicesInNamespace(ctx, o) // the owner is gone: its selector is unknown
	}
	var same v1alpha1.MedicalDeviceList
	if err := r.List(ctx, &same, client.InNamespace(owner.Namespace)); err != nil {
		logMapError(ctx, err, "listing the MedicalDevices of namespace "+owner.Namespace)
		return nil
	}
	var out []reconcile.Request
	for _, d := range same.Items {
		if d.Name != owner.Name && render.GatewaysOverlap(owner.Spec.Gateway.PodSelector, d.Spec.Gateway.PodSelector) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: d.Name}})
		}
	}
	return out
}

// logMapError logs a list that failed inside a watch mapping function: the event cannot be
// mapped, so a reconcile may be missed until the next event or resync. Repeats of one message
// are logged at most once a minute.
func logMapError(ctx context.Context, err error, what string) {
	mapErrors.log(ctx, err, what)
}

// mapErrors rate-limits the logging of failed lists in mapping functions.
var mapErrors = &rateLimitedLog{every: time.Minute, last: map[string]time.Time{}}

type rateLimitedLog struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
}

func (l *rateLimitedLog) log(ctx context.Context, err error, what string) {
	l.mu.Lock()
	now := time.Now()
	if t, ok := l.last[what]; ok && now.Sub(t) < l.every {
		l.mu.Unlock()
		return
	}
	l.last[what] = now
	l.mu.Unlock()
	log.FromContext(ctx).Error(err, "a watch event could not be mapped to reconciles; they wait for the next event or resync", "while", what)
}

// SetupWithManager wires the policy reconciler: its guard (drift) and the devices it governs
// (for the counts in status).
func (r *SegmentPolicyReconciler) SetupWithManager(mgr ctrl.Manager, opts Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("segmentpolicy").
		For(&v1alpha1.SegmentPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&ciliumv2.CiliumClusterwideNetworkPolicy{}).
		Watches(&v1alpha1.MedicalDevice{}, policiesOfDevice{r}, builder.WithPredicates(deviceSummaryChanged())).
		// Flatness depends on every pod and every policy in the cluster.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.allPolicies), builder.OnlyMetadata, builder.WithPredicates(podLabelsChanged())).
		Watches(&ciliumv2.CiliumNetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(r.allPolicies), builder.WithPredicates(notOwnedByMedseg())).
		Watches(&ciliumv2.CiliumClusterwideNetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(r.allPolicies), builder.WithPredicates(notOwnedByMedseg())).
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(r.allPolicies)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.allPolicies), builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, opts.PolicyWorkers)}).
		Complete(r)
}

// recountDelay coalesces the recounts a burst of device changes (a cold start, a KEV update
// touching thousands of devices) asks of their SegmentPolicy into one status write.
const recountDelay = 2 * time.Second

// deviceSummaryChanged passes device events that change what a policy reports or guards: its
// spec (addresses, gateway selector, flows) or labels (which policy selects it), and in status
// the governing policy, mode, priority, the flows' hash (a grant naming a flow the device lacks
// is reported until the flow appears) and the policy in place (which claimant of a contested
// address medseg enforces, and ungoverned devices whose last enforced policy is kept).
func deviceSummaryChanged() predicate.Predicate {
	summary := func(o client.Object) [8]string {
		d := o.(*v1alpha1.MedicalDevice)
		var s [8]string
		if t := d.Status.Traffic; t != nil {
			s[7] = fmt.Sprint(t.UndeclaredFlows, t.Drops, t.BypassConnections > 0)
		}
		if c := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ConditionSegmented); c != nil {
			s[6] = c.Reason
		}
		if seg := d.Status.Segmentation; seg != nil {
			s[0], s[1] = seg.Policy, string(seg.Mode)
			s[4] = fmt.Sprint(seg.PolicyMapEntries) // the gateways' loads
			for _, a := range seg.AppliedObjects {
				s[4] += a.Hash
			}
		}
		if d.Status.Risk != nil {
			s[2] = string(d.Status.Risk.Priority)
		}
		s[3] = d.Status.FlowsHash
		s[5] = fmt.Sprint(d.Generation, d.Labels)
		return s
	}
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool { return summary(e.ObjectOld) != summary(e.ObjectNew) },
	}
}

// policiesOfDevice enqueues SegmentPolicies after recountDelay, so the delaying queue coalesces
// a burst (a cold start, a KEV update touching thousands of devices) into one reconcile per
// policy. A change that can move a device between policies or change a guard's members (a
// device created or deleted, its spec or labels changed, an address conflict, a policy kept in
// place for an ungoverned device) enqueues every policy; policies are few. A status change
// (mode, priority, what is applied) only concerns the policies the device names, before and
// after.
type policiesOfDevice struct{ r *SegmentPolicyReconciler }

func (h policiesOfDevice) all(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	var pols v1alpha1.SegmentPolicyList
	if err := h.r.List(ctx, &pols); err != nil {
		logMapError(ctx, err, "listing SegmentPolicies")
		return
	}
	for _, p := range pols.Items {
		q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}}, recountDelay)
	}
}

func (h policiesOfDevice) named(q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
	for _, o := range objs {
		if d, ok := o.(*v1alpha1.MedicalDevice); ok && d.Status.Segmentation != nil && d.Status.Segmentation.Policy != "" {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: d.Status.Segmentation.Policy}}, recountDelay)
		}
	}
}

// concernsGuards: a device whose conflict or kept policy decides a guard's members.
func concernsGuards(o client.Object) bool {
	d, ok := o.(*v1alpha1.MedicalDevice)
	if !ok {
		return false
	}
	c := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ConditionSegmented)
	return c != nil && (c.Reason == v1alpha1.ReasonAddressConflict || c.Reason == v1alpha1.ReasonNoSegmentPolicy)
}

func (h policiesOfDevice) Create(ctx context.Context, _ event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.all(ctx, q)
}

func (h policiesOfDevice) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() || !labels.Equals(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
		concernsGuards(e.ObjectOld) || concernsGuards(e.ObjectNew) {
		h.all(ctx, q)
		return
	}
	h.named(q, e.ObjectOld, e.ObjectNew)
}

func (h policiesOfDevice) Delete(ctx context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.all(ctx, q)
}

func (policiesOfDevice) Generic(context.Context, event.GenericEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}

// allPolicies enqueues every SegmentPolicy.
func (r *SegmentPolicyReconciler) allPolicies(ctx context.Context, _ client.Object) []reconcile.Request {
	var pols v1alpha1.SegmentPolicyList
	if err := r.List(ctx, &pols); err != nil {
		logMapError(ctx, err, "listing SegmentPolicies")
		return nil
	}
	out := make([]reconcile.Request, 0, len(pols.Items))
	for _, p := range pols.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
	}
	return out
}
