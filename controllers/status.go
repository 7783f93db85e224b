package controllers

import (
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
)

// outcome is the kstatus-shaped summary of one reconcile, turned into the Ready condition and
// kstatus's two abnormal-true conditions:
//   - converged: Ready=True, no Reconciling, no Stalled (kstatus Current);
//   - progressing (a transient error, retried): Ready=False, Reconciling=True (InProgress);
//   - stalled (needs a person): Ready=False, Stalled=True (Failed).
type outcome struct {
	// ok is the status of the domain condition the outcome comes from (e.g. Segmented).
	ok          bool
	stalled     bool
	progressing bool
	reason      string
	message     string
}

// setReadiness sets Ready, and Reconciling and Stalled only while they are true. kstatus reads
// an absent abnormal-true condition as false, and Flux's controllers remove them the same way.
// Writing them as False on every converged object would add two conditions that say nothing
// to every device's stored status and to every status write (docs/performance.md).
func setReadiness(conds *[]metav1.Condition, gen int64, o outcome) {
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(conds, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	switch {
	case o.stalled:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, o.reason, o.message)
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue, o.reason, o.message)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionReconciling)
	case o.progressing:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, o.reason, o.message)
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, o.reason, o.message)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionStalled)
	default:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, o.reason, o.message)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionStalled)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionReconciling)
	}
}

func setCondition(conds *[]metav1.Condition, gen int64, t string, ok bool, reason, msg string) {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
}

// sameConditions compares conditions ignoring transition times, which SetStatusCondition keeps
// when nothing else changed.
func sameConditions(a, b []metav1.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for _, c := range a {
		o := meta.FindStatusCondition(b, c.Type)
		if o == nil || o.Status != c.Status || o.Reason != c.Reason || o.Message != c.Message || o.ObservedGeneration != c.ObservedGeneration {
			return false
		}
	}
	return true
}

// sameStatus reports whether two device statuses say the same thing.
func sameStatus(a, b *v1alpha1.MedicalDeviceStatus) bool {
	if a.ObservedGeneration != b.ObservedGeneration || a.FlowsHash != b.FlowsHash || !sameConditions(a.Conditions, b.Conditions) {
		return false
	}
	return equality.Semantic.DeepEqual(a.Risk, b.Risk) && equality.Semantic.DeepEqual(a.Segmentation, b.Segmentation) &&
		equality.Semantic.DeepEqual(a.Drift, b.Drift) && equality.Semantic.DeepEqual(a.History, b.History) &&
		equality.Semantic.DeepEqual(a.Traffic, b.Traffic)
}

// pushHistory adds an entry at the front when priority or mode changed, keeping MaxHistory.
func pushHistory(h []v1alpha1.HistoryEntry, e v1alpha1.HistoryEntry) []v1alpha1.HistoryEntry {
	if len(h) > 0 && h[0].Priority == e.Priority && h[0].Mode == e.Mode {
		return h
	}
	out := append([]v1alpha1.HistoryEntry{e}, h...)
	if len(out) > v1alpha1.MaxHistory {
		out = out[:v1alpha1.MaxHistory]
	}
	return out
}
