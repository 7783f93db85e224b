package plan_test

import (
	"net/netip"
	"testing"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/render"
)

func TestDecideObject(t *testing.T) {
	h := stagedHospital(t)
	planOf := func(h plan.Hospital, name string) *plan.Plan {
		d, err := plan.HospitalObjects(h, testNow)
		if err != nil {
			t.Fatal(err)
		}
		for i, dev := range h.Devices {
			if dev.Name == name {
				return d.Plans[i]
			}
		}
		t.Fatalf("no device %s", name)
		return nil
	}
	monitor, analyser, poct, ct := planOf(h, "patient-monitor-bed-4"), planOf(h, "chemistry-analyser-7"), planOf(h, "blood-gas-analyser-2"), planOf(h, "ct-scanner-3")
	quarantined := func() *ciliumv2.CiliumNetworkPolicy {
		g := stagedHospital(t)
		device(g, "patient-monitor-bed-4").Spec.Vulnerabilities = []v1alpha1.Vulnerability{{ID: "CVE-1", KnownExploited: true, Automatable: true}}
		return planOf(g, "patient-monitor-bed-4").Render.CNP
	}()
	relaxedUngoverned := planOf(func() plan.Hospital {
		g := stagedHospital(t)
		device(g, "patient-monitor-bed-4").Labels = nil
		return g
	}(), "patient-monitor-bed-4")
	contested := []netip.Addr{netip.MustParseAddr("10.20.2.4")}
	full := func(p *plan.Plan) *plan.Plan {
		q := *p
		q.GatewayFull = "gateway critical-care/hl7-engine would hold 17,000 policy map entries (estimated) for 130 devices, against Cilium's 16,384"
		return &q
	}
	cases := []struct {
		name       string
		p          *plan.Plan
		live       *ciliumv2.CiliumNetworkPolicy
		contested  []netip.Addr
		waitingFor []string
		want       plan.Intent
		object     *ciliumv2.CiliumNetworkPolicy
	}{
		{"an enforced device gets its policy", monitor, nil, nil, nil, plan.Apply, monitor.Render.CNP},
		{"an enforced device waits for the companions of the Audit devices sharing its gateway", monitor, nil, nil, []string{"chemistry-analyser-7 (diagnostics)"}, plan.Wait, nil},
		{"once its policy is in place it no longer waits", monitor, monitor.Render.CNP, nil, []string{"chemistry-analyser-7 (diagnostics)"}, plan.Apply, monitor.Render.CNP},
		{"an Audit device sharing an enforced gateway gets its allow-only policy", analyser, nil, nil, nil, plan.Apply, analyser.Companion},
		{"an Audit device sharing nothing gets nothing", ct, nil, nil, nil, plan.Nothing, nil},
		{"an Audit device's leftover policy is pruned", ct, monitor.Render.CNP, nil, nil, plan.Prune, nil},
		{"an ungoverned device gets nothing", poct, nil, nil, nil, plan.Nothing, nil},
		{"an ungoverned device keeps what medseg enforced before", relaxedUngoverned, quarantined, nil, nil, plan.Keep, nil},
		{"an ungoverned device's allow-only policy is pruned when nothing is shared", poct, analyser.Companion, nil, nil, plan.Prune, nil},
		{"a contested device with no policy gets none", monitor, nil, contested, nil, plan.Nothing, nil},
		{"a contested device's policy may tighten", monitor, monitor.Render.CNP, contested, nil, plan.Apply, monitor.Render.CNP},
		{"a contested device's policy never opens", monitor, quarantined, contested, nil, plan.Keep, nil},
		{"invalid input keeps what is in place", nil, quarantined, nil, nil, plan.Keep, nil},
		{"a full gateway gets no new policy", full(monitor), nil, nil, nil, plan.Nothing, nil},
		{"a full gateway keeps the policy in place rather than open more", full(monitor), quarantined, nil, nil, plan.Keep, nil},
		{"a full gateway's policy may tighten", full(monitor), monitor.Render.CNP, nil, nil, plan.Apply, monitor.Render.CNP},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := plan.DecideObject(c.p, c.live, c.contested, c.waitingFor)
			if d.Intent != c.want {
				t.Fatalf("intent %d, want %d (%s)", d.Intent, c.want, d.Why)
			}
			if c.object != nil && (d.Object == nil || d.Object.Annotations[v1alpha1.AnnotationContentHash] != c.object.Annotations[v1alpha1.AnnotationContentHash]) {
				t.Errorf("applies %v, want %s", d.Object, c.object.Name)
			}
			if (c.want == plan.Keep || c.want == plan.Wait) && d.Why == "" {
				t.Error("Keep and Wait must say why")
			}
		})
	}
	if analyser.Companion == nil || !render.IsCompanion(analyser.Companion) || len(analyser.SharedWith) != 1 || !analyser.SharedWith[0].Enforced {
		t.Errorf("the Audit analyser shares the HL7 engine with the enforced monitor: %+v", analyser.SharedWith)
	}
	if len(monitor.SharedWith) != 1 || monitor.SharedWith[0].Name != "chemistry-analyser-7" || monitor.SharedWith[0].Enforced {
		t.Errorf("the enforced monitor shares the HL7 engine with the Audit analyser: %+v", monitor.SharedWith)
	}
}
