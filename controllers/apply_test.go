package controllers

import (
	"testing"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
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
	w.record(cnpAt(""), "100")
	w.record(cnpAt(""), "") // a write that did not happen records nothing
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
