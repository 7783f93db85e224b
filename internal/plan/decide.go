package plan

import (
	"fmt"
	"net/netip"
	"strings"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"

	"github.com/medseg/medseg/internal/render"
)

// Intent is what medseg does with a device's CiliumNetworkPolicy in one reconcile.
type Intent int

// The intents.
const (
	// Apply: write Object (server-side apply; skipped when the live content already matches).
	Apply Intent = iota
	// Keep: leave the live policy as it is (ungoverned, or an input conflict).
	Keep
	// Prune: delete medseg's policy; the device needs none.
	Prune
	// Nothing: there is no policy and none is written.
	Nothing
	// Wait: enforcing now would cut flows of unenforced devices sharing the gateway; come back
	// when their allow-only policies are in place.
	Wait
)

// ObjectDecision says what to do with the device's policy and why.
type ObjectDecision struct {
	Intent Intent
	// Object is the policy to apply (Apply).
	Object *ciliumv2.CiliumNetworkPolicy
	// Why explains Keep, Nothing and Wait for status.
	Why string
}

// DecideObject decides what to do with the device's policy, given the plan, medseg's live
// policy for the device (nil when none), the device's contested addresses (claimed by another
// device too) and the unenforced neighbours sharing its gateway whose allow-only policies are
// not in place yet (waitingFor).
//
//   - A device governed by an enforced policy gets its rendered policy.
//   - An ungoverned device keeps the enforcing policy medseg wrote before: ungoverned is
//     reported, never silently opened.
//   - An unenforced device that shares gateway pods with enforced devices gets its allow-only
//     companion; any other unenforced device gets nothing (Audit writes nothing else).
//   - Conflicts fail closed: while an address is contested the policy may tighten but never
//     open (render.NoWider against the live one); with no live policy nothing is written.
//   - An enforced device does not put new gateway pods in default deny while unenforced
//     neighbours sharing them lack their companions, so a rollout step never cuts their flows.
//   - A gateway whose policy map would overflow (Plan.GatewayFull) gets no more allowed flows:
//     the policy may tighten, the one in place stays, and with none nothing is written. Cilium
//     would otherwise fail to regenerate the gateway's policy, for every device behind it.
func DecideObject(p *Plan, live *ciliumv2.CiliumNetworkPolicy, contested []netip.Addr, waitingFor []string) ObjectDecision {
	if p == nil || p.Render == nil {
		return ObjectDecision{Intent: Keep, Why: "the inputs could not be planned; what medseg applied before stays"}
	}
	var desired *ciliumv2.CiliumNetworkPolicy
	switch {
	case p.Enforced:
		desired = p.Render.CNP
	case p.Policy == nil && live != nil && !render.IsCompanion(live):
		return ObjectDecision{Intent: Keep, Why: fmt.Sprintf("the last enforced policy %s is kept in place", live.Name)}
	case p.Companion != nil:
		desired = p.Companion
	case live != nil:
		return ObjectDecision{Intent: Prune}
	default:
		return ObjectDecision{Intent: Nothing}
	}
	if len(contested) > 0 {
		addrs := joinAddrs(contested)
		switch {
		case live == nil:
			return ObjectDecision{Intent: Nothing, Why: fmt.Sprintf("medseg writes no policy for it while %s is contested: a conflict never opens a path", addrs)}
		case render.NoWider(desired, live):
			return ObjectDecision{Intent: Apply, Object: desired}
		default:
			return ObjectDecision{Intent: Keep, Why: fmt.Sprintf("medseg keeps %s as it is and opens nothing new while %s is contested", live.Name, addrs)}
		}
	}
	if p.GatewayFull != "" {
		switch {
		case live != nil && render.NoWider(desired, live):
			return ObjectDecision{Intent: Apply, Object: desired}
		case live != nil:
			return ObjectDecision{Intent: Keep, Why: fmt.Sprintf("%s: medseg adds no flows to it and keeps %s as it is", p.GatewayFull, live.Name)}
		default:
			return ObjectDecision{Intent: Nothing, Why: fmt.Sprintf("%s: medseg writes no policy that would add to it", p.GatewayFull)}
		}
	}
	if p.Enforced && len(waitingFor) > 0 && (live == nil || render.IsCompanion(live) || !render.SameGateway(live, desired)) {
		return ObjectDecision{Intent: Wait, Why: fmt.Sprintf("waiting for the allow-only policies of %s, which share its gateway pods and are not enforced: enforcing first would cut their flows",
			strings.Join(waitingFor, ", "))}
	}
	return ObjectDecision{Intent: Apply, Object: desired}
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
