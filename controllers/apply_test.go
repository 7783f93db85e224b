package controllers

import (
	"testing"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/medseg/medseg/api/v1alpha1"
)

func cnpAt(rv string) *ciliumv2.CiliumNetworkPolicy {
	return &ciliumv2.CiliumNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "icu", Name: "medseg-pump", ResourceVersion: rv}}
}

// The watch event of medseg's own write is dropped; every other change to the object passes.
func TestOwnWritesDropOnlyTheEchoOfMedsegsWrite(t *testing.T) {
	var w ownWrites
	p := w.dropEchoes()
	if !p.Create(event.CreateEvent{Object: cnpAt("100")}) {
		t.Error("an object medseg never wrote (e.g. after a restart) must be reconciled")
	}
	w.begin(cnpAt(""))
	w.end(cnpAt(""), "100")
	w.end(cnpAt(""), "") // a write that did not happen records nothing
	cases := []struct {
		name string
		pass bool
		got  bool
	}{
		{"create event of medseg's own write", false, p.Create(event.CreateEvent{Object: cnpAt("100")})},
		{"update event of medseg's own write", false, p.Update(event.UpdateEvent{ObjectOld: cnpAt("99"), ObjectNew: cnpAt("100")})},
		{"a hand edit after medseg's write", true, p.Update(event.UpdateEvent{ObjectOld: cnpAt("100"), ObjectNew: cnpAt("101")})},
		{"an informer resync of the object medseg wrote", true, p.Update(event.UpdateEvent{ObjectOld: cnpAt("100"), ObjectNew: cnpAt("100")})},
		{"a deletion", true, p.Delete(event.DeleteEvent{Object: cnpAt("100")})},
		{"a generic event", true, p.Generic(event.GenericEvent{Object: cnpAt("100")})},
	}
	for _, c := range cases {
		if c.got != c.pass {
			t.Errorf("%s: passed=%v, want %v", c.name, c.got, c.pass)
		}
	}
	w.forget(types.NamespacedName{Namespace: "icu", Name: "medseg-pump"})
	if !p.Create(event.CreateEvent{Object: cnpAt("100")}) {
		t.Error("after the device is gone, nothing is remembered of its object")
	}
}

// An echo that outruns the write's response is held back while the write is in flight and
// dropped once the response names it; another write seen meanwhile is a race the owner must
// reconcile.
func TestOwnWritesHoldEventsWhileTheWriteIsInFlight(t *testing.T) {
	var w ownWrites
	p := w.dropEchoes()
	w.begin(cnpAt(""))
	if p.Update(event.UpdateEvent{ObjectOld: cnpAt("99"), ObjectNew: cnpAt("100")}) {
		t.Error("an event while medseg's write is in flight is held back")
	}
	if w.end(cnpAt(""), "100") {
		t.Error("the early echo of medseg's own write is not a race")
	}
	if p.Update(event.UpdateEvent{ObjectOld: cnpAt("100"), ObjectNew: cnpAt("101")}) == false {
		t.Error("after the write, a hand edit passes")
	}

	w.begin(cnpAt(""))
	p.Update(event.UpdateEvent{ObjectOld: cnpAt("101"), ObjectNew: cnpAt("102")}) // someone else's write
	p.Update(event.UpdateEvent{ObjectOld: cnpAt("102"), ObjectNew: cnpAt("103")}) // medseg's echo
	if !w.end(cnpAt(""), "103") {
		t.Error("another write seen while medseg's was in flight must be reported as a race")
	}
	if p.Update(event.UpdateEvent{ObjectOld: cnpAt("102"), ObjectNew: cnpAt("103")}) {
		t.Error("medseg's write is remembered after a race too")
	}

	w.begin(cnpAt(""))
	p.Update(event.UpdateEvent{ObjectOld: cnpAt("103"), ObjectNew: cnpAt("104")})
	if !w.end(cnpAt(""), "") {
		t.Error("an event during a failed write is someone else's: a race")
	}
	w.begin(cnpAt(""))
	if w.end(cnpAt(""), "") {
		t.Error("a failed write without events is no race")
	}
	if !p.Delete(event.DeleteEvent{Object: cnpAt("105")}) {
		t.Error("deletions always pass")
	}
}

// The copy of a written status is dropped once the cache shows the device at that write's
// resourceVersion, and kept while the cache is behind.
func TestWrittenStatusIsForgottenOnceTheCacheHoldsIt(t *testing.T) {
	r := &MedicalDeviceReconciler{}
	key := types.NamespacedName{Namespace: "icu", Name: "pump"}
	r.written.Store(key, writtenStatus{uid: "u1", status: &v1alpha1.MedicalDeviceStatus{}, rv: "5"})
	p := r.forgetCaughtUp()
	at := func(uid types.UID, rv string) *v1alpha1.MedicalDevice {
		return &v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Namespace: "icu", Name: "pump", UID: uid, ResourceVersion: rv}}
	}
	for _, c := range []struct {
		name string
		obj  *v1alpha1.MedicalDevice
		kept bool
	}{{"the cache is behind", at("u1", "4"), true}, {"another device of that name", at("u2", "5"), true}, {"the cache holds the write", at("u1", "5"), false}} {
		if !p.Update(event.UpdateEvent{ObjectOld: at("u1", "3"), ObjectNew: c.obj}) {
			t.Errorf("%s: the predicate must pass every event", c.name)
		}
		if _, ok := r.written.Load(key); ok != c.kept {
			t.Errorf("%s: kept=%v, want %v", c.name, ok, c.kept)
		}
	}
}
