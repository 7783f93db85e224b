package controllers

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/discover"
	"github.com/medseg/medseg/internal/discover/capture"
	"github.com/medseg/medseg/internal/plan"
)

// pumpTraffic runs the pump's gateway traffic through discovery, as the follower does: n
// connections from the pump server (declared: therapy-orders) and m from the billing app
// (undeclared) to the pump's gateway port 8443, each followed by the gateway's connection on to
// the pump's port 443.
func pumpTraffic(t *testing.T, pump *v1alpha1.MedicalDevice, n, m int) *TrafficSnapshot {
	t.Helper()
	gw := &capture.Pod{Namespace: "icu", Name: "pump-gateway-0", IP: "10.244.1.10",
		Labels: map[string]string{"app": "pump-gateway", v1alpha1.LabelGateway: "true"}}
	server := &capture.Pod{Namespace: "icu", Name: "pump-server-0", IP: "10.244.1.20", Labels: map[string]string{"app": "pump-server"}}
	billing := &capture.Pod{Namespace: "clinical-apps", Name: "billing-0", IP: "10.244.2.20", Labels: map[string]string{"app": "billing"}}
	b := capture.NewBuilder(statusNow.Add(-time.Hour), time.Second)
	for i := 0; i < max(n, m); i++ {
		if i < n {
			b.Proxied(capture.PodEndpoint(server), gw, 8443, "10.20.1.12", 443, "TCP", true, capture.Forwarded)
		}
		if i < m {
			b.Proxied(capture.PodEndpoint(billing), gw, 8443, "10.20.1.12", 443, "TCP", true, capture.Forwarded)
		}
	}
	ix := discover.NewIndex([]*v1alpha1.MedicalDevice{pump})
	agg := discover.NewAggregator(ix, discover.Options{})
	for _, f := range b.Flows() {
		agg.Add(f)
	}
	snap := &TrafficSnapshot{Traffic: discover.DeviceTraffic{Window: 24 * time.Hour}}
	if tr := discover.ByDevice(agg.Result())[ix.Devices()[0]]; tr != nil {
		snap.Traffic = *tr
		snap.Traffic.Window, snap.Traffic.At = 24*time.Hour, statusNow
	}
	return snap
}

// TestTrafficStatusDecision: what the device's status says about observed traffic, by
// enforcement and onboarding.
func TestTrafficStatusDecision(t *testing.T) {
	cases := []struct {
		name        string
		enforcement v1alpha1.Enforcement
		onboarding  bool
		follow      bool
		declared    int
		undeclared  int
		unavailable string
		cond        string
		message     string
		undeclFlows int32
	}{
		{name: "not following: no traffic, no condition", enforcement: v1alpha1.EnforcementAudit, cond: "-"},
		{name: "Audit with undeclared traffic", enforcement: v1alpha1.EnforcementAudit, follow: true, declared: 3, undeclared: 1204,
			cond: "False/UndeclaredTraffic", message: "Enforce would drop 1 observed flow (top: clinical-apps/app=billing → 443/TCP, 1,204 times)", undeclFlows: 1},
		{name: "Audit, all declared", enforcement: v1alpha1.EnforcementAudit, follow: true, declared: 3,
			cond: "True/TrafficDeclared", message: "cover all 1 flows observed in the last 24h0m0s"},
		{name: "Audit, nothing seen", enforcement: v1alpha1.EnforcementAudit, follow: true, cond: "Unknown/NoTrafficObserved"},
		{name: "Audit, Relay unreachable", enforcement: v1alpha1.EnforcementAudit, follow: true, unavailable: "cannot follow Hubble Relay at relay:80",
			cond: "Unknown/HubbleUnavailable", message: "cannot follow Hubble Relay at relay:80"},
		{name: "Enforce, commissioned: drops are reported, no condition", enforcement: v1alpha1.EnforcementEnforce, follow: true, declared: 2, undeclared: 4,
			cond: "-", undeclFlows: 1},
		{name: "Enforce, onboarding", enforcement: v1alpha1.EnforcementEnforce, onboarding: true, follow: true, declared: 2, undeclared: 4,
			cond: "False/UndeclaredTraffic", message: "enforcement drops 1 observed flow the onboarding mode does not allow", undeclFlows: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := loadSample(t)
			for i := range s.in.Policies {
				if s.in.Policies[i].Name == "critical-care" {
					s.in.Policies[i].Spec.Enforcement = c.enforcement
				}
			}
			if c.onboarding {
				s.pump.Spec.Commissioning = nil
			}
			f := s.facts(t)
			p, err := plan.Device(plan.Input{Device: s.pump, Policies: s.in.Policies, Namespaces: s.in.Namespaces, Now: statusNow})
			if err != nil {
				t.Fatal(err)
			}
			f.Plan, f.Decision = p, plan.DecideObject(p, nil, nil, nil)
			if c.follow {
				f.Traffic = pumpTraffic(t, s.pump, c.declared, c.undeclared)
				f.Traffic.Unavailable = c.unavailable
			}
			st := decideDeviceStatus(&v1alpha1.MedicalDeviceStatus{}, f)
			if got := reasonOf(st, v1alpha1.ConditionTrafficDeclared); got != c.cond {
				t.Errorf("condition %s, want %s", got, c.cond)
			}
			if cond := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionTrafficDeclared); cond != nil && !strings.Contains(cond.Message, c.message) {
				t.Errorf("message %q, want %q", cond.Message, c.message)
			}
			if !c.follow {
				if st.Traffic != nil {
					t.Errorf("traffic without a follower: %+v", st.Traffic)
				}
				return
			}
			if st.Traffic == nil || st.Traffic.UndeclaredFlows != c.undeclFlows || st.Traffic.UndeclaredConnections != int64(c.undeclared) {
				t.Fatalf("traffic %+v", st.Traffic)
			}
			if c.undeclared > 0 && (len(st.Traffic.Undeclared) != 1 || st.Traffic.Undeclared[0].Peer != "clinical-apps/app=billing") {
				t.Errorf("undeclared %+v", st.Traffic.Undeclared)
			}
			// A second decision from the same facts writes nothing.
			if again := decideDeviceStatus(st, f); !sameStatus(st, again) {
				t.Error("the same traffic changed the status")
			}
		})
	}
}

// TestTrafficSummaryIsBounded: thousands of undeclared peers give ten entries and the totals.
func TestTrafficSummaryIsBounded(t *testing.T) {
	s := loadSample(t)
	gw := &capture.Pod{Namespace: "icu", Name: "pump-gateway-0", IP: "10.244.1.10",
		Labels: map[string]string{"app": "pump-gateway", v1alpha1.LabelGateway: "true"}}
	b := capture.NewBuilder(statusNow.Add(-time.Hour), 10*time.Millisecond)
	for i := 0; i < 3000; i++ {
		peer := capture.External("198.51.100." + strings.Repeat("1", 1+i%2) + "")
		if i%3 == 0 {
			peer = capture.External("192.0.2." + string(rune('1'+i%9)))
		}
		b.Proxied(peer, gw, uint32(9000+i%50), "10.20.1.12", 443, "TCP", true, capture.Forwarded)
	}
	ix := discover.NewIndex([]*v1alpha1.MedicalDevice{s.pump})
	agg := discover.NewAggregator(ix, discover.Options{})
	for _, f := range b.Flows() {
		agg.Add(f)
	}
	tr := discover.ByDevice(agg.Result())[ix.Devices()[0]]
	st := discover.Summarize(tr, "icu", s.pump.Spec.Flows)
	if len(st.Undeclared) != discover.MaxUndeclared || st.UndeclaredFlows <= discover.MaxUndeclared || st.UndeclaredConnections != 3000 {
		t.Errorf("summary: %d listed, %d flows, %d connections", len(st.Undeclared), st.UndeclaredFlows, st.UndeclaredConnections)
	}
	for i := 1; i < len(st.Undeclared); i++ {
		if st.Undeclared[i].Connections > st.Undeclared[i-1].Connections {
			t.Errorf("not most connections first: %+v", st.Undeclared)
		}
	}
}
