package demo

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/manifest"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/segcheck"
)

// appPods are stand-ins for the clinical applications the sample devices talk to, so Cilium's
// engine has a pod for every peer.
var appPods = []struct{ ns, app string }{
	{"icu", "pump-server"}, {"clinical-apps", "emr-interface"}, {"clinical-apps", "alarm-server"},
	{"clinical-apps", "video-viewer"}, {"clinical-apps", "telemetry-relay"}, {"clinical-apps", "pacs"},
	{"clinical-apps", "ris"}, {"clinical-apps", "lis"}, {"clinical-apps", "billing"},
}

// Step 3: a staged rollout. Diagnostics goes back to Audit while critical care enforces; Cilium's
// engine judges the objects in the cluster: radiology's DICOM flow still passes. Then the
// staged-rollout sample, where zones share a gateway, is checked before anything is applied.
func (s *story) stagedRollout() error {
	s.header("A staged rollout: diagnostics in Audit while critical care enforces",
		"Hospitals switch one zone to Enforce at a time. Enforcing critical care must not change a",
		"packet of a zone still in Audit. medseg's guard only fences critical care's networks, and",
		"only critical care's gateways are put in default deny. Cilium's own policy engine judges it.")
	for _, a := range appPods {
		if err := s.standIn(a.ns, a.app); err != nil {
			return err
		}
	}
	if err := s.setEnforcement("diagnostics", v1alpha1.EnforcementAudit); err != nil {
		return err
	}
	s.say("$ kubectl patch segpol diagnostics --type merge -p '{\"spec\":{\"enforcement\":\"Audit\"}}'")
	ct := types.NamespacedName{Namespace: "radiology", Name: "ct-scanner-1"}
	err := s.waitFor("stop enforcing diagnostics (its guard and device policies removed)", func() (bool, string, error) {
		d, err := s.device(ct)
		if err != nil {
			return false, "", err
		}
		if c := segmented(d); c == nil || c.Reason != v1alpha1.ReasonAuditOnly {
			return false, "the CT scanner is not in Audit yet", nil
		}
		var guard ciliumv2.CiliumClusterwideNetworkPolicy
		if err := s.Client.Get(s.ctx, types.NamespacedName{Name: "medseg-guard-diagnostics"}, &guard); err == nil {
			return false, "the diagnostics guard still exists", nil
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	w, err := s.liveWorld()
	if err != nil {
		return err
	}
	dicom := segcheck.Pod{Name: "gateway-ct-scanner-1", Namespace: "radiology"}
	verdicts := []verdict{
		{"CT scanner → its DICOM gateway :104", "10.30.1.10", "radiology/" + dicom.Name, 104, true, false},
		{"DICOM gateway → PACS :104", "radiology/" + dicom.Name, "clinical-apps/pacs", 104, true, false},
		{"DICOM gateway → the internet (not enforced: unchanged)", "radiology/" + dicom.Name, segcheck.Outside, 443, true, true},
		{"DICOM gateway → the ICU infusion pump :443", "radiology/" + dicom.Name, "10.20.1.12", 443, false, true},
		{"billing pod → the ICU infusion pump :443", "clinical-apps/billing", "10.20.1.12", 443, false, true},
	}
	rep, err := s.checkVerdicts(w, verdicts)
	if err != nil {
		return err
	}

	// The staged-rollout sample: checked offline before anything is applied, as GitOps CI would.
	in, err := cli.Load([]string{filepath.Join(s.Samples, "staged-rollout")}, nil)
	if err != nil {
		return err
	}
	staged, err := segcheck.Rendered(plan.Hospital{Devices: plan.Devices(in.Devices), Policies: in.Policies, Approvals: in.Approvals, Namespaces: in.Namespaces}, stagedPods(), nil, time.Now())
	if err != nil {
		return err
	}
	if rep, err = staged.Check(nil); err != nil || len(rep.Violations) > 0 {
		return fmt.Errorf("the staged-rollout sample breaks a rule: %v %v", err, rep.Violations)
	}
	s.say("")
	s.say("$ kubectl medseg render -f config/samples/staged-rollout   # zones sharing an HL7 engine")
	s.say("The HL7 engine fronts an enforced ICU monitor and a lab analyser still in Audit: medseg")
	s.say("writes an allow-only policy for the analyser so the monitor's default deny keeps its flows")
	s.say("open. Checked offline with Cilium's engine: %d verdicts, every rule holds.", rep.Verdicts)

	if err := s.setEnforcement("diagnostics", v1alpha1.EnforcementEnforce); err != nil {
		return err
	}
	return s.waitFor("enforce diagnostics again", func() (bool, string, error) {
		d, err := s.device(ct)
		if err != nil {
			return false, "", err
		}
		if c := segmented(d); c == nil || c.Reason != v1alpha1.ReasonSegmented {
			return false, "the CT scanner is not segmented yet", nil
		}
		return true, "", nil
	})
}

// verdict is a flow whose outcome a step shows, judged by Cilium's engine.
type verdict struct {
	what     string
	from, to string
	port     int32
	want     bool
	egress   bool
}

// checkVerdicts asks Cilium's engine for each verdict, prints it, fails on a wrong one, then
// checks every segmentation rule of the world.
func (s *story) checkVerdicts(w *segcheck.World, verdicts []verdict) (segcheck.Report, error) {
	s.say("")
	s.say("Cilium's policy engine on the objects in the cluster now:")
	for _, v := range verdicts {
		got, err := w.Allowed(w.Identity(v.from), w.Identity(v.to), "TCP", v.port, v.egress)
		if err != nil {
			return segcheck.Report{}, err
		}
		s.say("  %-5s %s", verdictWord(got), v.what)
		if got != v.want {
			return segcheck.Report{}, fmt.Errorf("%s: allowed=%t, want %t", v.what, got, v.want)
		}
	}
	rep, err := w.Check(nil)
	if err != nil {
		return rep, err
	}
	if len(rep.Violations) > 0 {
		return rep, fmt.Errorf("segmentation rules broken: %s", strings.Join(rep.Violations, "; "))
	}
	s.say("Every segmentation rule holds: %d verdicts from Cilium's engine.", rep.Verdicts)
	return rep, nil
}

func verdictWord(allowed bool) string {
	if allowed {
		return "ALLOW"
	}
	return "DENY"
}

func (s *story) setEnforcement(policy string, e v1alpha1.Enforcement) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p v1alpha1.SegmentPolicy
		if err := s.Client.Get(s.ctx, types.NamespacedName{Name: policy}, &p); err != nil {
			return err
		}
		p.Spec.Enforcement = e
		return s.Client.Update(s.ctx, &p)
	})
}

// liveWorld loads the sample hospital as it is in the cluster (its namespaces' devices, pods and
// medseg's policies there, every SegmentPolicy and every guard) into Cilium's engine.
// liveWorld loads the objects in the cluster into Cilium's engine; probes are extra addresses
// to ask about.
func (s *story) liveWorld(probes ...string) (*segcheck.World, error) {
	objs, err := manifest.Read([]string{s.Samples}, nil)
	if err != nil {
		return nil, err
	}
	ours, policies := map[string]bool{}, map[string]bool{}
	for _, o := range objs {
		switch o.Object.GetKind() {
		case "Namespace":
			ours[o.Object.GetName()] = true
		case "SegmentPolicy":
			policies[o.Object.GetName()] = true
		}
	}
	var h plan.Hospital
	var devs v1alpha1.MedicalDeviceList
	if err := s.Client.List(s.ctx, &devs); err != nil {
		return nil, err
	}
	for i := range devs.Items {
		if ours[devs.Items[i].Namespace] {
			h.Devices = append(h.Devices, &devs.Items[i])
		}
	}
	var pols v1alpha1.SegmentPolicyList
	if err := s.Client.List(s.ctx, &pols); err != nil {
		return nil, err
	}
	for _, p := range pols.Items {
		if policies[p.Name] {
			h.Policies = append(h.Policies, p)
		}
	}
	var nss corev1.NamespaceList
	if err := s.Client.List(s.ctx, &nss); err != nil {
		return nil, err
	}
	h.Namespaces = map[string]map[string]string{}
	for _, ns := range nss.Items {
		h.Namespaces[ns.Name] = ns.Labels
	}
	var pods corev1.PodList
	if err := s.Client.List(s.ctx, &pods); err != nil {
		return nil, err
	}
	var sp []segcheck.Pod
	for _, p := range pods.Items {
		if ours[p.Namespace] {
			sp = append(sp, segcheck.Pod{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels})
		}
	}
	var cnps ciliumv2.CiliumNetworkPolicyList
	if err := s.Client.List(s.ctx, &cnps, client.MatchingLabels{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}); err != nil {
		return nil, err
	}
	var ccnps ciliumv2.CiliumClusterwideNetworkPolicyList
	if err := s.Client.List(s.ctx, &ccnps, client.MatchingLabels{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}); err != nil {
		return nil, err
	}
	live := map[v1alpha1.ObjectRef]*ciliumv2.CiliumNetworkPolicy{}
	var cps []*ciliumv2.CiliumNetworkPolicy
	for i := range cnps.Items {
		c := &cnps.Items[i]
		if !ours[c.Namespace] {
			continue
		}
		cps = append(cps, c)
		live[v1alpha1.ObjectRef{Namespace: c.Namespace, Name: c.Labels[v1alpha1.LabelDevice]}] = c
	}
	h.Live = func(r v1alpha1.ObjectRef) *ciliumv2.CiliumNetworkPolicy { return live[r] }
	if h.Approvals, err = cli.ListApprovals(s.ctx, s.Client, ""); err != nil {
		return nil, err
	}
	var gs []*ciliumv2.CiliumClusterwideNetworkPolicy
	for i := range ccnps.Items {
		if policies[ccnps.Items[i].Labels[v1alpha1.LabelPolicy]] {
			gs = append(gs, &ccnps.Items[i])
		}
	}
	d, err := plan.HospitalObjects(h, time.Now())
	if err != nil {
		return nil, err
	}
	return segcheck.Load(h, sp, probes, d.Plans, gs, cps)
}

// stagedPods are the pods of the staged-rollout sample: its gateways, a gateway-labelled debug
// proxy no device selects, and the clinical applications.
func stagedPods() []segcheck.Pod {
	gw := func(ns, app string) segcheck.Pod {
		return segcheck.Pod{Name: app, Namespace: ns, Labels: map[string]string{"app": app, v1alpha1.LabelGateway: "true"}}
	}
	app := func(ns, a string) segcheck.Pod {
		return segcheck.Pod{Name: a, Namespace: ns, Labels: map[string]string{"app": a}}
	}
	return []segcheck.Pod{
		gw("icu", "pump-gateway"), app("icu", "pump-server"), gw("integration", "hl7-engine"), gw("integration", "poct-gateway"),
		gw("integration", "debug-proxy"), gw("radiology", "dicom-gateway"), app("clinical-apps", "emr-interface"),
		app("clinical-apps", "alarm-server"), app("clinical-apps", "lis"), app("clinical-apps", "lis-qc"),
		app("clinical-apps", "pacs"), app("clinical-apps", "ris"), app("clinical-apps", "billing"),
	}
}
