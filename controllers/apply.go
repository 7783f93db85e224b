package controllers

import (
	"context"
	"fmt"
	"sync"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/render"
)

// applyOutcome says what ensure did.
type applyOutcome int

const (
	unchanged applyOutcome = iota // the object already had the desired content: no write
	created                       // the object did not exist
	updated                       // the desired content changed
	repaired                      // the object had been edited or deleted by hand
)

// ensureObject makes the cluster hold desired (a CNP or CCNP rendered by internal/render) with
// server-side apply, field owner medseg, ForceOwnership and the whole object. It reads the
// current object from the cache first and skips the write when the content medseg sets
// (labels and rules) hashes to the desired content hash, so an unchanged cluster costs no write.
//
// wasApplied tells whether medseg had applied this object before (from status), so a missing
// object is a hand deletion (repaired) rather than a first creation.
//
// An object with the same name that medseg does not manage is never touched: errForeignObject.
//
// It also returns the resourceVersion its write produced ("" when it did not write), so the
// watch event of medseg's own write can be told apart (ownWrites).
//
// With own, the write is marked in flight (ownWrites.begin) so an echo that outruns the
// response is still recognised; the caller ends it with the returned resourceVersion.
func ensureObject(ctx context.Context, c client.Client, desired client.Object, wasApplied bool, own *ownWrites) (applyOutcome, string, error) {
	existing, err := currentOf(ctx, c, desired)
	if err != nil {
		return unchanged, "", err
	}
	want := desired.GetAnnotations()[v1alpha1.AnnotationContentHash]
	outcome := created
	if existing != nil {
		if !managedBy(existing, desired) {
			return unchanged, "", fmt.Errorf("%w: %s %s exists and is not managed by medseg", errForeignObject, kindOf(desired), key(desired))
		}
		got, err := contentHash(existing, desired.GetLabels())
		if err != nil {
			return unchanged, "", err
		}
		if got == want && existing.GetAnnotations()[v1alpha1.AnnotationContentHash] == want && existing.GetDeletionTimestamp() == nil {
			return unchanged, "", nil
		}
		outcome = updated
		// The annotation says what medseg last wrote; content that does not match it was edited.
		if existing.GetAnnotations()[v1alpha1.AnnotationContentHash] != got {
			outcome = repaired
		}
	} else if wasApplied {
		outcome = repaired
	}
	u, err := render.ToUnstructured(desired)
	if err != nil {
		return unchanged, "", err
	}
	if own != nil {
		own.begin(desired)
	}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(v1alpha1.FieldOwner), client.ForceOwnership); err != nil {
		return unchanged, "", fmt.Errorf("applying %s %s: %w", kindOf(desired), key(desired), err)
	}
	return outcome, u.GetResourceVersion(), nil // the API server's response, decoded into u
}

// ownWrites remembers the resourceVersion of each object medseg last wrote, so the watch event
// of that very write (which would only make the owner's reconcile find what it just did) is
// dropped. Any other change has another resourceVersion and is reconciled: a hand edit, another
// manager's write, and a deletion (delete events always pass). An informer resync (same
// resourceVersion before and after) passes too, so the periodic safety net still runs.
//
// The echo of a write can arrive before the write's response, when its resourceVersion is not
// known yet. While a write is in flight (begin … end), events of its object are held back and
// their resourceVersions kept; end compares them with the write's: the echo is dropped, and any
// other write seen meanwhile makes end report a race, on which the owner reconciles again.
type ownWrites struct {
	mu sync.Mutex
	rv map[types.NamespacedName]string // the resourceVersion of medseg's last write
	// flying are the objects being written, with the resourceVersions of their events seen
	// meanwhile.
	flying map[types.NamespacedName][]string
}

// begin marks a write of the object as in flight.
func (w *ownWrites) begin(obj client.Object) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.flying == nil {
		w.flying = map[types.NamespacedName][]string{}
	}
	w.flying[client.ObjectKeyFromObject(obj)] = []string{}
}

// end records the write's resourceVersion ("" when it failed or did not write) and reports
// whether an event of another write arrived while it was in flight.
func (w *ownWrites) end(obj client.Object, rv string) (raced bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := client.ObjectKeyFromObject(obj)
	seen := w.flying[key]
	delete(w.flying, key)
	if rv != "" {
		if w.rv == nil {
			w.rv = map[types.NamespacedName]string{}
		}
		w.rv[key] = rv
	}
	for _, v := range seen {
		if v != rv {
			raced = true
		}
	}
	return raced
}

func (w *ownWrites) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.rv, key)
}

// isEcho reports whether an event is the echo of medseg's own write. While a write of the
// object is in flight the event is held back (true) and judged by end.
func (w *ownWrites) isEcho(obj client.Object) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := client.ObjectKeyFromObject(obj)
	if seen, ok := w.flying[key]; ok {
		w.flying[key] = append(seen, obj.GetResourceVersion())
		return true
	}
	rv, ok := w.rv[key]
	return ok && rv == obj.GetResourceVersion()
}

// dropEchoes is the predicate for the watch of medseg's own objects.
func (w *ownWrites) dropEchoes() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !w.isEcho(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool {
			resync := e.ObjectOld.GetResourceVersion() == e.ObjectNew.GetResourceVersion()
			return resync || !w.isEcho(e.ObjectNew)
		},
	}
}

// pruneObject deletes an object medseg owns (managed-by label and a controller reference to
// owner). Anything else with that name is left alone. Reports whether it deleted.
func pruneObject(ctx context.Context, c client.Client, obj client.Object, owner types.UID) (bool, error) {
	existing, err := currentOf(ctx, c, obj)
	if err != nil || existing == nil {
		return false, err
	}
	if !controlledBy(existing, owner) {
		return false, nil
	}
	if err := c.Delete(ctx, existing, client.Preconditions{UID: ptr.To(existing.GetUID())}); err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("deleting %s %s: %w", kindOf(obj), key(obj), err)
	}
	return true, nil
}

var errForeignObject = fmt.Errorf("name taken")

func currentOf(ctx context.Context, c client.Client, desired client.Object) (client.Object, error) {
	var cur client.Object
	switch desired.(type) {
	case *ciliumv2.CiliumNetworkPolicy:
		cur = &ciliumv2.CiliumNetworkPolicy{}
	case *ciliumv2.CiliumClusterwideNetworkPolicy:
		cur = &ciliumv2.CiliumClusterwideNetworkPolicy{}
	default:
		return nil, fmt.Errorf("unsupported object %T", desired)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(desired), cur); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return cur, nil
}

// contentHash hashes the content medseg sets on an object read from the cluster: the labels
// medseg sets (other labels, e.g. a GitOps tool's tracking label, are not medseg's) and the rules.
func contentHash(obj client.Object, desiredLabels map[string]string) (string, error) {
	lbls := map[string]string{}
	for k := range desiredLabels {
		if v, ok := obj.GetLabels()[k]; ok {
			lbls[k] = v
		}
	}
	switch o := obj.(type) {
	case *ciliumv2.CiliumNetworkPolicy:
		return render.HashOf(lbls, o.Spec, o.Specs)
	case *ciliumv2.CiliumClusterwideNetworkPolicy:
		return render.HashOf(lbls, o.Spec, o.Specs)
	}
	return "", fmt.Errorf("unsupported object %T", obj)
}

// managedBy reports whether existing is medseg's object for the desired object's owner: owned
// (render.Owner) by an object of the same kind and name. A previous incarnation of the same
// owner (deleted and recreated, another UID) is still ours.
func managedBy(existing, desired client.Object) bool {
	have, ok := render.Owner(existing)
	if !ok {
		return false
	}
	want := metav1.GetControllerOf(desired)
	return want == nil || have.Kind == want.Kind && have.Name == want.Name
}

// controlledBy reports whether medseg owns obj for the owner with that UID.
func controlledBy(obj client.Object, owner types.UID) bool {
	ref, ok := render.Owner(obj)
	return ok && ref.UID == owner
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *ciliumv2.CiliumNetworkPolicy:
		return ciliumv2.CNPKindDefinition
	case *ciliumv2.CiliumClusterwideNetworkPolicy:
		return ciliumv2.CCNPKindDefinition
	}
	return fmt.Sprintf("%T", obj)
}

func key(obj client.Object) string { return v1alpha1.Qualified(obj.GetNamespace(), obj.GetName()) }
