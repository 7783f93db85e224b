package controllers

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/drift"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/testenv"
)

var statusNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// sample is the sample hospital, the pump and its policy.
type sample struct {
	in   *cli.Inputs
	pump *v1alpha1.MedicalDevice
}

func loadSample(t *testing.T) *sample {
	t.Helper()
	in, err := cli.Load([]string{filepath.Join(testenv.RepoRoot(), "config", "samples")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &sample{in: in}
	for i := range in.Devices {
		d := &in.Devices[i]
		d.UID, d.Generation = types.UID("uid-"+d.Name), 3
		if d.Name == "infusion-pump-bed-12" {
			s.pump = d
		}
	}
	return s
}

// facts plans the pump and builds the facts of a converged, segmented reconcile, for the cases
// to change.
func (s *sample) facts(t *testing.T) deviceFacts {
	t.Helper()
	p, err := plan.Device(plan.Input{Device: s.pump, Policies: s.in.Policies, Namespaces: s.in.Namespaces, Approvals: s.in.Approvals, Now: statusNow})
	if err != nil {
		t.Fatal(err)
	}
	return deviceFacts{
		Now: statusNow, Device: s.pump, Plan: p,
		Decision: plan.DecideObject(p, nil, nil, nil),
		Write:    writeResult{Outcome: created},
		Around:   surroundings{NamespaceIsGateway: true, GatewayPods: 1},
	}
}

// converged is the status after a first successful create, as the next reconcile reads it.
func (s *sample) converged(t *testing.T) *v1alpha1.MedicalDeviceStatus {
	t.Helper()
	return decideDeviceStatus(&v1alpha1.MedicalDeviceStatus{}, s.facts(t))
}

func reasonOf(st *v1alpha1.MedicalDeviceStatus, cond string) string {
	if c := meta.FindStatusCondition(st.Conditions, cond); c != nil {
		return string(c.Status) + "/" + c.Reason
	}
	return "-"
}

func eventReasons(evs []statusEvent) string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Reason)
	}
	return strings.Join(out, ",")
}

func appliedHash(st *v1alpha1.MedicalDeviceStatus) string {
	if st.Segmentation == nil || len(st.Segmentation.AppliedObjects) == 0 {
		return ""
	}
	return st.Segmentation.AppliedObjects[0].Hash
}

// TestDeviceStatusDecision holds the pure status decision to every condition reason, with the
// Events derived from the transition and what status says is applied.
func TestDeviceStatusDecision(t *testing.T) {
	s := loadSample(t)
	base := s.facts(t)
	desiredHash := base.Decision.Object.Annotations[v1alpha1.AnnotationContentHash]
	live := &v1alpha1.AppliedObject{Kind: ciliumv2.CNPKindDefinition, Namespace: "icu", Name: "medseg-infusion-pump-bed-12", Hash: "sha256:older"}
	empty := &v1alpha1.MedicalDeviceStatus{}

	type want struct {
		segmented, ready, stalled, reconciling string
		applied                                string // hash in appliedObjects, "" for none
		repairs                                int64
		events                                 string
		message                                string // substring of the Segmented message
	}
	cases := []struct {
		name  string
		old   *v1alpha1.MedicalDeviceStatus
		facts func() deviceFacts
		want  want
	}{
		{"first create: segmented, the created policy is applied", empty, func() deviceFacts { return base },
			want{"True/Segmented", "True/Segmented", "-", "-", desiredHash, 0, "", "through 1 gateway pod"}},
		{"first create fails: nothing is claimed applied", empty, func() deviceFacts {
			f := base
			f.Write = writeResult{Err: errors.New("applying CiliumNetworkPolicy icu/medseg-infusion-pump-bed-12: the server is on fire")}
			return f
		}, want{"False/ApplyFailed", "False/ApplyFailed", "-", "True/ApplyFailed", "", 0, "", "on fire"}},
		{"an update fails: what was in place stays recorded", s.converged(t), func() deviceFacts {
			f := base
			f.Write = writeResult{Live: live, Err: errors.New("applying: timeout")}
			return f
		}, want{"False/ApplyFailed", "False/ApplyFailed", "-", "True/ApplyFailed", "sha256:older", 0, "", "timeout"}},
		{"a hand edit is repaired and counted", s.converged(t), func() deviceFacts {
			f := base
			f.Write = writeResult{Live: live, Outcome: repaired}
			return f
		}, want{"True/Segmented", "True/Segmented", "-", "-", desiredHash, 1, "DriftRepaired", ""}},
		{"a hand deletion is repaired and counted", s.converged(t), func() deviceFacts {
			f := base
			f.Write = writeResult{Outcome: repaired}
			return f
		}, want{"True/Segmented", "True/Segmented", "-", "-", desiredHash, 1, "DriftRepaired", ""}},
		{"Audit: reported, nothing written", empty, func() deviceFacts {
			return s.withPolicy(t, func(p *v1alpha1.SegmentPolicy) { p.Spec.Enforcement = v1alpha1.EnforcementAudit })
		}, want{"False/AuditOnly", "True/AuditOnly", "-", "-", "", 0, "", "is in Audit"}},
		{"switching to Audit: enforcement changes, the policy is pruned", s.converged(t), func() deviceFacts {
			f := s.withPolicy(t, func(p *v1alpha1.SegmentPolicy) { p.Spec.Enforcement = v1alpha1.EnforcementAudit })
			f.Write = writeResult{Live: live}
			return f
		}, want{"False/AuditOnly", "True/AuditOnly", "-", "-", "", 0, "EnforcementChanged", ""}},
		{"Audit sharing a gateway with an enforced device", empty, func() deviceFacts {
			f := s.withPolicy(t, func(p *v1alpha1.SegmentPolicy) { p.Spec.Enforcement = v1alpha1.EnforcementAudit })
			f.Plan.SharedWith = []plan.Neighbour{{Name: "patient-monitor-bed-12", Policy: "critical-care", Enforced: true}}
			return f
		}, want{"False/SharedGateway", "True/SharedGateway", "-", "-", "", 0, "", "SegmentPolicy critical-care"}},
		{"no policy, nothing enforced before", empty, func() deviceFacts {
			f := s.withoutPolicies(t)
			f.Decision = plan.ObjectDecision{Intent: plan.Nothing}
			return f
		}, want{"False/NoSegmentPolicy", "False/NoSegmentPolicy", "True/NoSegmentPolicy", "-", "", 0, "NoSegmentPolicy", "not governed"}},
		{"no policy, the policy enforced before is kept", s.converged(t), func() deviceFacts {
			f := s.withoutPolicies(t)
			f.Decision = plan.ObjectDecision{Intent: plan.Keep, Why: "kept"}
			f.Write = writeResult{Live: live}
			return f
		}, want{"False/NoSegmentPolicy", "False/NoSegmentPolicy", "True/NoSegmentPolicy", "-", "sha256:older", 0, "NoSegmentPolicy", "kept in place"}},
		{"a foreign policy widens access", empty, func() deviceFacts {
			f := base
			f.Around.Widened = "CiliumNetworkPolicy icu/allow-all opens the gateway to the world"
			f.Around.Foreign = []drift.Finding{{Kind: drift.KindCNP, Namespace: "icu", Name: "allow-all", Widens: true, Reason: "opens the gateway to the world"}}
			return f
		}, want{"False/ForeignPolicyWidens", "False/ForeignPolicyWidens", "True/ForeignPolicyWidens", "-", desiredHash, 0, "", "allow-all"}},
		{"the gateway namespace is not labelled", empty, func() deviceFacts {
			f := base
			f.Around.NamespaceIsGateway = false
			return f
		}, want{"False/GatewayNamespaceNotLabelled", "False/GatewayNamespaceNotLabelled", "True/GatewayNamespaceNotLabelled", "-", desiredHash, 0, "", "not labelled"}},
		{"gateway pods are not labelled", empty, func() deviceFacts {
			f := base
			f.Around.GatewayPods, f.Around.Unlabelled = 2, 1
			return f
		}, want{"False/GatewayPodsNotLabelled", "False/GatewayPodsNotLabelled", "True/GatewayPodsNotLabelled", "-", desiredHash, 0, "", "1 of 2 pods"}},
		{"no gateway pod runs yet", empty, func() deviceFacts {
			f := base
			f.Around.GatewayPods = 0
			return f
		}, want{"True/GatewayNotFound", "True/GatewayNotFound", "-", "-", desiredHash, 0, "", "applies when the gateway starts"}},
		{"an address conflict fails closed", s.converged(t), func() deviceFacts {
			f := base
			f.Around.Conflicts = []string{"10.20.1.12 (claimed by icu/dup-addr)"}
			f.Decision = plan.ObjectDecision{Intent: plan.Keep, Why: "medseg keeps medseg-infusion-pump-bed-12 as it is and opens nothing new while 10.20.1.12 is contested"}
			f.Write = writeResult{Live: live}
			return f
		}, want{"False/AddressConflict", "False/AddressConflict", "True/AddressConflict", "-", "sha256:older", 0, "AddressConflict", "opens nothing new"}},
		{"an object with medseg's name that medseg does not own", empty, func() deviceFacts {
			f := base
			f.Write = writeResult{Err: fmt.Errorf("%w: CiliumNetworkPolicy icu/medseg-infusion-pump-bed-12 exists and is not managed by medseg", errForeignObject)}
			return f
		}, want{"False/ObjectConflict", "False/ObjectConflict", "True/ObjectConflict", "-", "", 0, "", "not managed by medseg"}},
		{"waiting for the companions of shared gateways", empty, func() deviceFacts {
			f := base
			f.Decision = plan.ObjectDecision{Intent: plan.Wait, Why: "waiting for the allow-only policies of lab-analyser (diagnostics)"}
			f.Write = writeResult{}
			return f
		}, want{"False/WaitingForSharedGateway", "False/WaitingForSharedGateway", "-", "True/WaitingForSharedGateway", "", 0, "", "lab-analyser"}},
		{"an address outside the device networks", empty, func() deviceFacts {
			f := base
			f.Plan.Render.AddressesOutsideDeviceNetworks = []string{"192.168.1.12"}
			return f
		}, want{"False/AddressOutsideDeviceNetworks", "False/AddressOutsideDeviceNetworks", "True/AddressOutsideDeviceNetworks", "-", desiredHash, 0, "", "192.168.1.12"}},
		{"input medseg cannot use", s.converged(t), func() deviceFacts {
			f := base
			f.PlanErr = errors.New("spec.gateway.podSelector: bad operator")
			f.Decision = plan.ObjectDecision{Intent: plan.Keep}
			f.Write = writeResult{Live: live}
			return f
		}, want{"False/InvalidInput", "False/InvalidInput", "True/InvalidInput", "-", desiredHash, 0, "", "bad operator"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.facts()
			st := decideDeviceStatus(c.old, f)
			got := want{
				segmented: reasonOf(st, v1alpha1.ConditionSegmented), ready: reasonOf(st, v1alpha1.ConditionReady),
				stalled: reasonOf(st, v1alpha1.ConditionStalled), reconciling: reasonOf(st, v1alpha1.ConditionReconciling),
				applied: appliedHash(st), events: eventReasons(deviceEvents(c.old, st, f.Now)),
			}
			if st.Drift != nil {
				got.repairs = st.Drift.Repairs
			}
			got.message = c.want.message
			if msg := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionSegmented).Message; !strings.Contains(msg, c.want.message) {
				t.Errorf("Segmented message %q lacks %q", msg, c.want.message)
			}
			if got != c.want {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			if st.ObservedGeneration != 3 {
				t.Errorf("observedGeneration %d", st.ObservedGeneration)
			}
		})
	}
}

// TestLastAppliedAtComesOnlyFromWrites: a write that did not happen leaves lastAppliedAt as it
// was, one that did sets it, one that failed does not.
func TestLastAppliedAtComesOnlyFromWrites(t *testing.T) {
	s := loadSample(t)
	first := decideDeviceStatus(&v1alpha1.MedicalDeviceStatus{}, s.facts(t))
	if first.Segmentation.LastAppliedAt == nil || !first.Segmentation.LastAppliedAt.Time.Equal(statusNow) {
		t.Fatalf("a create sets lastAppliedAt: %v", first.Segmentation.LastAppliedAt)
	}
	later := s.facts(t)
	later.Now = statusNow.Add(time.Hour)
	later.Write = writeResult{Live: appliedObjectOf(later.Decision.Object), Outcome: unchanged}
	if st := decideDeviceStatus(first, later); !st.Segmentation.LastAppliedAt.Time.Equal(statusNow) {
		t.Errorf("no write, yet lastAppliedAt moved to %v", st.Segmentation.LastAppliedAt)
	}
	later.Write = writeResult{Live: appliedObjectOf(later.Decision.Object), Err: errors.New("conflict")}
	if st := decideDeviceStatus(first, later); !st.Segmentation.LastAppliedAt.Time.Equal(statusNow) {
		t.Errorf("a failed write moved lastAppliedAt to %v", st.Segmentation.LastAppliedAt)
	}
	// A resync that changes nothing produces the same status and no Event.
	again := s.facts(t)
	again.Write = writeResult{Live: appliedObjectOf(again.Decision.Object), Outcome: unchanged}
	st := decideDeviceStatus(first, again)
	if !sameStatus(first, st) || len(deviceEvents(first, st, statusNow)) != 0 {
		t.Errorf("a resync changed the status or emitted Events: %v", deviceEvents(first, st, statusNow))
	}
}

// TestDeviceEventsFromTransitions: onboarding and flows changed, grants opening and ending, and
// an exception expiring are Events because the status changed, and only then.
func TestDeviceEventsFromTransitions(t *testing.T) {
	s := loadSample(t)
	commissioned := s.converged(t)

	// Flows changed after commissioning: FlowsChanged, and the device goes to onboarding.
	s.pump.Spec.Flows[0].GatewayPort = 8444
	f := s.facts(t)
	onboarding := decideDeviceStatus(commissioned, f)
	if got := reasonOf(onboarding, v1alpha1.ConditionCommissioned); got != "False/FlowsChanged" || !onboarding.Segmentation.Onboarding {
		t.Errorf("Commissioned %s, onboarding %t", got, onboarding.Segmentation.Onboarding)
	}
	if got := eventReasons(deviceEvents(commissioned, onboarding, statusNow)); !strings.Contains(got, v1alpha1.EventFlowsChanged) {
		t.Errorf("events %s lack FlowsChanged", got)
	}
	// Commissioned again: Commissioned.
	s.pump.Spec.Commissioning.FlowsHash = v1alpha1.FlowsHash(s.pump.Spec.Flows)
	back := decideDeviceStatus(onboarding, s.facts(t))
	if got := eventReasons(deviceEvents(onboarding, back, statusNow)); !strings.Contains(got, v1alpha1.EventCommissioned) {
		t.Errorf("events %s lack Commissioned", got)
	}

	// A vendor grant opens the vendor flow, then its window ends.
	notBefore := statusNow.Add(-time.Hour)
	s.in.Approvals.Grants = []v1alpha1.AccessGrant{{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: v1alpha1.AccessGrantSpec{Flow: "vendor-maintenance",
		Approval: v1alpha1.Approval{Device: v1alpha1.ObjectRef{Namespace: "icu", Name: s.pump.Name},
			NotBefore: metav1.NewTime(notBefore), NotAfter: metav1.NewTime(notBefore.Add(2 * time.Hour)), ApprovedBy: "sec", Ticket: "VND-1", Justification: "j"}}}}
	open := decideDeviceStatus(back, s.facts(t))
	if got := eventReasons(deviceEvents(back, open, statusNow)); got != v1alpha1.EventAccessGranted {
		t.Errorf("grant opened: events %q", got)
	}
	ended := s.facts(t)
	ended.Now = notBefore.Add(2 * time.Hour)
	p, err := plan.Device(plan.Input{Device: s.pump, Policies: s.in.Policies, Namespaces: s.in.Namespaces, Approvals: s.in.Approvals, Now: ended.Now})
	if err != nil {
		t.Fatal(err)
	}
	ended.Plan, ended.Decision = p, plan.DecideObject(p, nil, nil, nil)
	closed := decideDeviceStatus(open, ended)
	evs := deviceEvents(open, closed, ended.Now)
	if eventReasons(evs) != v1alpha1.EventAccessEnded || !strings.Contains(evs[0].Message, "window ended") {
		t.Errorf("grant ended: events %+v", evs)
	}

	// The NICU camera's exception expires: ExceptionExpired, and its mode tightens.
	var camera *v1alpha1.MedicalDevice
	for i := range s.in.Devices {
		if s.in.Devices[i].Name == "nicu-camera-bay-3" {
			camera = &s.in.Devices[i]
		}
	}
	var expires time.Time
	for _, e := range s.in.Approvals.Exceptions {
		expires = e.Spec.NotAfter.Time
	}
	statusAt := func(now time.Time, old *v1alpha1.MedicalDeviceStatus) *v1alpha1.MedicalDeviceStatus {
		p, err := plan.Device(plan.Input{Device: camera, Policies: s.in.Policies, Namespaces: s.in.Namespaces,
			Approvals: s.in.Approvals.ByDevice()[v1alpha1.ObjectRef{Namespace: camera.Namespace, Name: camera.Name}], Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return decideDeviceStatus(old, deviceFacts{Now: now, Device: camera, Plan: p, Decision: plan.DecideObject(p, nil, nil, nil),
			Write: writeResult{Outcome: created}, Around: surroundings{NamespaceIsGateway: true, GatewayPods: 1}})
	}
	active := statusAt(expires.Add(-time.Hour), &v1alpha1.MedicalDeviceStatus{})
	expired := statusAt(expires, active)
	if got := eventReasons(deviceEvents(active, expired, expires)); !strings.Contains(got, v1alpha1.EventExceptionExpired) || !strings.Contains(got, v1alpha1.EventModeChanged) {
		t.Errorf("exception expired: events %q (%s → %s)", got, active.Segmentation.Mode, expired.Segmentation.Mode)
	}
}

// withPolicy plans the pump with its policy changed.
func (s *sample) withPolicy(t *testing.T, mutate func(*v1alpha1.SegmentPolicy)) deviceFacts {
	t.Helper()
	for i := range s.in.Policies {
		if s.in.Policies[i].Name == "critical-care" {
			p := s.in.Policies[i].DeepCopy()
			mutate(p)
			pols := append([]v1alpha1.SegmentPolicy(nil), s.in.Policies...)
			pols[i] = *p
			pl, err := plan.Device(plan.Input{Device: s.pump, Policies: pols, Namespaces: s.in.Namespaces, Now: statusNow})
			if err != nil {
				t.Fatal(err)
			}
			f := s.facts(t)
			f.Plan, f.Decision = pl, plan.DecideObject(pl, nil, nil, nil)
			return f
		}
	}
	t.Fatal("no critical-care policy")
	return deviceFacts{}
}

// withoutPolicies plans the pump with no SegmentPolicy at all.
func (s *sample) withoutPolicies(t *testing.T) deviceFacts {
	t.Helper()
	pl, err := plan.Device(plan.Input{Device: s.pump, Namespaces: s.in.Namespaces, Now: statusNow})
	if err != nil {
		t.Fatal(err)
	}
	f := s.facts(t)
	f.Plan = pl
	return f
}
