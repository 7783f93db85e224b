// Package demo tells medseg's story against a running API server with the operator running:
// the sample hospital is applied, then a KEV update, a foreign allow rule, a deleted policy and
// an expiring exception each show what medseg does. Every step checks its own outcome and
// fails loudly when the operator did not do its job. hack/demo runs it for `make demo`; an
// envtest test runs it too, so the demo cannot rot.
package demo

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	slimmetav1 "github.com/cilium/cilium/pkg/k8s/slim/k8s/apis/meta/v1"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/manifest"
)

// Options configure a run.
type Options struct {
	Out     io.Writer
	Client  client.Client
	Samples string // config/samples
	// Timeout bounds each step's wait for the operator.
	Timeout time.Duration
	// ExceptionWindow is how long the NICU camera's exception stays active in the last step.
	ExceptionWindow time.Duration
	// GrantWindow is how long the vendor's access grant stays open.
	GrantWindow time.Duration
}

type story struct {
	Options
	ctx   context.Context
	steps int
	step  int
	// note is printed after the current wait succeeds.
	note string
}

var (
	pump    = types.NamespacedName{Namespace: "icu", Name: "infusion-pump-bed-12"}
	monitor = types.NamespacedName{Namespace: "icu", Name: "patient-monitor-bed-12"}
	camera  = types.NamespacedName{Namespace: "nicu", Name: "nicu-camera-bay-3"}
)

// Run tells the story. It returns an error naming the step whose outcome did not happen.
func Run(ctx context.Context, o Options) error {
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.ExceptionWindow == 0 {
		o.ExceptionWindow = 10 * time.Second
	}
	if o.GrantWindow == 0 {
		o.GrantWindow = 8 * time.Second
	}
	s := &story{Options: o, ctx: ctx, steps: 10}
	for _, f := range []func() error{s.hospital, s.policies, s.stagedRollout, s.onboarding, s.discovery, s.vendorWindow, s.kev, s.foreign, s.repair, s.exception} {
		if err := f(); err != nil {
			return fmt.Errorf("step %d: %w", s.step, err)
		}
	}
	return nil
}

func (s *story) header(title string, lines ...string) {
	s.step++
	fmt.Fprintf(s.Out, "\n━━ Step %d/%d: %s\n", s.step, s.steps, title)
	for _, l := range lines {
		fmt.Fprintf(s.Out, "   %s\n", l)
	}
	fmt.Fprintln(s.Out)
}

func (s *story) say(format string, args ...any) { fmt.Fprintf(s.Out, "   "+format+"\n", args...) }

// waitFor polls check until it reports done, printing progress; on timeout it returns the last
// reason check gave.
func (s *story) waitFor(what string, check func() (bool, string, error)) error {
	start := time.Now()
	fmt.Fprintf(s.Out, "   … %s", what)
	last := ""
	s.note = ""
	for {
		done, why, err := check()
		if err == nil && done {
			fmt.Fprintf(s.Out, "\r   ✓ %s (%.1fs)\n", what, time.Since(start).Seconds())
			if s.note != "" {
				s.say("%s", s.note)
			}
			return nil
		}
		if err != nil {
			why = err.Error()
		}
		last = why
		if time.Since(start) > s.Timeout {
			fmt.Fprintf(s.Out, "\r   ✗ %s\n", what)
			return fmt.Errorf("the operator did not %s within %s: %s", what, s.Timeout, last)
		}
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *story) device(k types.NamespacedName) (*v1alpha1.MedicalDevice, error) {
	var d v1alpha1.MedicalDevice
	err := s.Client.Get(s.ctx, k, &d)
	return &d, err
}

func segmented(d *v1alpha1.MedicalDevice) *metav1.Condition {
	return meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ConditionSegmented)
}

// Step 1: apply the sample hospital and wait until every device is segmented.
func (s *story) hospital() error {
	s.header("The hospital",
		"A sample hospital from config/samples: care-area namespaces labelled as gateway namespaces,",
		"two SegmentPolicies (critical care, diagnostics), and five devices. Gateway proxies run as",
		"pods labelled medseg.io/gateway=true; here they are stand-in pods (no kubelet runs them).")
	objs, err := manifest.Read([]string{s.Samples}, nil)
	if err != nil {
		return err
	}
	order := map[string]int{"Namespace": 0, "SegmentPolicy": 1}
	sort.SliceStable(objs, func(i, j int) bool { return rank(order, objs[i]) < rank(order, objs[j]) })
	var devices []types.NamespacedName
	for _, o := range objs {
		u := o.Object
		FreshenExceptions(u, time.Now())
		if err := s.apply(u.DeepCopy()); err != nil {
			return fmt.Errorf("applying %s: %w", o.Source, err)
		}
		s.say("created %s %s", u.GetKind(), v1alpha1.Qualified(u.GetNamespace(), u.GetName()))
		if u.GetKind() == "MedicalDevice" {
			devices = append(devices, types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()})
		}
	}
	for _, k := range devices {
		if err := s.gatewayPod(k); err != nil {
			return err
		}
	}
	s.say("created %d gateway pods", len(devices))
	fmt.Fprintln(s.Out)
	err = s.waitFor("assess and segment every device", func() (bool, string, error) {
		for _, k := range devices {
			d, err := s.device(k)
			if err != nil {
				return false, "", err
			}
			if c := segmented(d); c == nil || c.Reason != v1alpha1.ReasonSegmented || d.Status.ObservedGeneration != d.Generation {
				return false, k.String() + " is not segmented yet", nil
			}
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(s.Out, "\n   $ kubectl get mdev -A")
	if err := s.deviceTable(); err != nil {
		return err
	}
	s.say("")
	s.say("Priority is the CERT/CC SSVC deployer decision, not CVSS: the CT scanner's CVSS 9.8 with")
	s.say("EPSS 0.95 counts as actively exploited, but it only talks DICOM inside the cluster and its")
	s.say("human impact is low, so it is Scheduled. The NICU camera's actively exploited bug makes it")
	s.say("OutOfCycle, which critical care quarantines; a clinician's exception keeps it Restricted.")
	return nil
}

// FreshenExceptions moves the window of a sample SegmentException to the present (approved an
// hour ago, expiring in 14 days), keeping the samples' story true on any date: a fixed notAfter
// in a sample file would silently expire one day.
func FreshenExceptions(u *unstructured.Unstructured, now time.Time) {
	if u.GetKind() != "SegmentException" {
		return
	}
	_ = unstructured.SetNestedField(u.Object, now.Add(-time.Hour).UTC().Format(time.RFC3339), "spec", "notBefore")
	_ = unstructured.SetNestedField(u.Object, now.Add(14*24*time.Hour).UTC().Format(time.RFC3339), "spec", "notAfter")
}

// Recommission sets spec.commissioning.flowsHash of a MedicalDevice that has a commissioning
// record to the hash of its current flows. Test hospitals rename the samples' namespaces, which
// changes the flows' peer selectors the samples' commissioning approved.
func Recommission(u *unstructured.Unstructured) error {
	if u.GetKind() != "MedicalDevice" {
		return nil
	}
	if _, found, _ := unstructured.NestedMap(u.Object, "spec", "commissioning"); !found {
		return nil
	}
	var d v1alpha1.MedicalDevice
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
		return err
	}
	return unstructured.SetNestedField(u.Object, v1alpha1.FlowsHash(d.Spec.Flows), "spec", "commissioning", "flowsHash")
}

// apply is `kubectl apply --server-side --field-manager=medseg-demo`.
func (s *story) apply(u *unstructured.Unstructured) error {
	return s.Client.Apply(s.ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("medseg-demo"), client.ForceOwnership)
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func rank(order map[string]int, o manifest.Object) int {
	if r, ok := order[o.Object.GetKind()]; ok {
		return r
	}
	return 9
}

func (s *story) deviceTable() error {
	var devs v1alpha1.MedicalDeviceList
	if err := s.Client.List(s.ctx, &devs); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "   NAMESPACE\tNAME\tTYPE\tPRIORITY\tMODE\tSEGMENTED\tWHY")
	for _, d := range devs.Items {
		prio, mode, seg, why := "-", "-", "-", ""
		if d.Status.Risk != nil {
			prio = string(d.Status.Risk.Priority)
			if d.Status.Risk.DecidingVulnerability != "" {
				why = d.Status.Risk.DecidingVulnerability + ": Exploitation=" + d.Status.Risk.Exploitation.String()
			} else {
				why = fmt.Sprintf("no Affected vulnerability (%d Fixed/NotAffected by VEX)", d.Status.Risk.IgnoredVulnerabilities)
			}
		}
		if d.Status.Segmentation != nil {
			mode = string(d.Status.Segmentation.Mode)
		}
		if c := segmented(&d); c != nil {
			seg = string(c.Status)
		}
		fmt.Fprintf(tw, "   %s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Namespace, d.Name, d.Spec.Identity.DeviceType, prio, mode, seg, why)
	}
	return tw.Flush()
}

// gatewayPod creates a stand-in gateway pod for a device.
func (s *story) gatewayPod(k types.NamespacedName) error {
	d, err := s.device(k)
	if err != nil {
		return err
	}
	lbls := map[string]string{v1alpha1.LabelGateway: "true"}
	for kk, vv := range d.Spec.Gateway.PodSelector.MatchLabels {
		lbls[kk] = vv
	}
	pod := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "gateway-" + d.Name, "namespace": d.Namespace, "labels": toAny(lbls)},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "proxy", "image": "registry.hospital.local/gateway:1.0"}}},
	}}
	if err := s.apply(pod); err != nil {
		return fmt.Errorf("creating gateway pod: %w", err)
	}
	return nil
}

// Step 2: show the Cilium policies medseg wrote.
func (s *story) policies() error {
	s.header("The generated policies",
		"One CiliumNetworkPolicy per device puts its gateway pods in default deny and allows exactly",
		"the flows its mode permits; one guard per SegmentPolicy denies the device subnets to every",
		"pod except gateways. Deny wins over allow in Cilium: no later allow rule reopens them.")
	var cnps ciliumv2.CiliumNetworkPolicyList
	if err := s.Client.List(s.ctx, &cnps, client.MatchingLabels{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}); err != nil {
		return err
	}
	var ccnps ciliumv2.CiliumClusterwideNetworkPolicyList
	if err := s.Client.List(s.ctx, &ccnps, client.MatchingLabels{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}); err != nil {
		return err
	}
	if len(cnps.Items) < 5 || len(ccnps.Items) < 2 {
		return fmt.Errorf("want 5 device policies and 2 guards, found %d and %d", len(cnps.Items), len(ccnps.Items))
	}
	for _, c := range ccnps.Items {
		s.say("CiliumClusterwideNetworkPolicy %s: egressDeny %s for every pod but gateways", c.Name, strings.Join(cidrs(c.Specs[0].EgressDeny[0].ToCIDR), ", "))
	}
	for _, c := range cnps.Items {
		s.say("CiliumNetworkPolicy %s/%s: %s", c.Namespace, c.Name, rulesSummary(c.Spec))
	}
	return nil
}

func cidrs(c policyapi.CIDRSlice) []string {
	out := make([]string, len(c))
	for i, x := range c {
		out[i] = string(x)
	}
	return out
}

func rulesSummary(r *policyapi.Rule) string {
	var parts []string
	for _, in := range r.Ingress {
		from := "pods"
		if len(in.FromCIDR) > 0 {
			from = strings.Join(cidrs(in.FromCIDR), ",")
		}
		parts = append(parts, fmt.Sprintf("in %s from %s", portsOf(in.ToPorts), from))
	}
	for _, eg := range r.Egress {
		to := "pods"
		if len(eg.ToCIDR) > 0 {
			to = strings.Join(cidrs(eg.ToCIDR), ",")
		}
		parts = append(parts, fmt.Sprintf("out %s to %s", portsOf(eg.ToPorts), to))
	}
	if len(r.EgressDeny) > 0 {
		parts = append(parts, "deny the device both ways")
	}
	return strings.Join(parts, "; ")
}

func portsOf(prs policyapi.PortRules) string {
	var out []string
	for _, pr := range prs {
		for _, p := range pr.Ports {
			out = append(out, p.Port+"/"+string(p.Protocol))
		}
	}
	return strings.Join(out, ",")
}

var ventilator = types.NamespacedName{Namespace: "icu", Name: "ventilator-bed-14"}

// Step 3: a new device starts in onboarding and is commissioned.
func (s *story) onboarding() error {
	s.header("A new ventilator is onboarded, then commissioned",
		"Biomedical engineering adds a ventilator. Until security approves its flows it runs in the",
		"policy's onboarding mode (Restricted): its vendor telemetry stays closed whatever its risk.",
		"kubectl medseg commission shows the flows, records who approved them under which ticket",
		"and their hash; changing the flows later puts the device back in onboarding.")
	vent := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "medseg.io/v1alpha1", "kind": "MedicalDevice",
		"metadata": map[string]any{"name": ventilator.Name, "namespace": ventilator.Namespace},
		"spec": map[string]any{
			"identity": map[string]any{"manufacturer": "AirFlow Medical", "model": "Vent 7", "deviceType": "Ventilator"},
			"clinical": map[string]any{"safetyImpact": "Catastrophic", "missionImpact": "MEFFailure", "careArea": "ICU"},
			"network":  map[string]any{"addresses": []any{"10.20.1.14"}},
			"gateway":  map[string]any{"podSelector": map[string]any{"matchLabels": map[string]any{"app": "vent-gateway"}}},
			"flows": []any{
				map[string]any{"name": "alarms", "direction": "FromDevice", "tier": "Essential", "protocol": "UDP", "gatewayPort": int64(7001), "peerPort": int64(7000),
					"peers": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "clinical-apps"}},
						"podSelector": map[string]any{"matchLabels": map[string]any{"app": "alarm-server"}}}}},
				map[string]any{"name": "telemetry", "direction": "FromDevice", "tier": "Support", "gatewayPort": int64(9443), "peerPort": int64(443),
					"peers": []any{map[string]any{"podSelector": map[string]any{"matchLabels": map[string]any{"app": "fleet-telemetry"}}}}},
			},
		},
	}}
	if err := s.apply(vent); err != nil {
		return err
	}
	if err := s.gatewayPod(ventilator); err != nil {
		return err
	}
	s.say("$ kubectl apply -f ventilator-bed-14.yaml   (no spec.commissioning)")
	fmt.Fprintln(s.Out)
	var d *v1alpha1.MedicalDevice
	err := s.waitFor("hold the ventilator in onboarding mode", func() (bool, string, error) {
		var err error
		if d, err = s.device(ventilator); err != nil {
			return false, "", err
		}
		if d.Status.Segmentation == nil || !d.Status.Segmentation.Onboarding || d.Status.Segmentation.Mode != v1alpha1.ModeRestricted {
			return false, "ventilator is not in onboarding", nil
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	if c := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ConditionCommissioned); c != nil {
		s.say("Commissioned=%s %s: %s", c.Status, c.Reason, c.Message)
	}
	s.say("modeReason: %s", d.Status.Segmentation.ModeReason)
	fmt.Fprintln(s.Out)
	s.say("$ kubectl medseg commission %s -n %s --ticket CHG-2026-1107 --approved-by \"J. Rivera (clinical engineering)\"", ventilator.Name, ventilator.Namespace)
	var out strings.Builder
	if err := cli.Commission(s.ctx, s.Client, &out, ventilator, cli.CommissionOptions{Ticket: "CHG-2026-1107", ApprovedBy: "J. Rivera (clinical engineering)", Now: time.Now()}); err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		s.say("%s", l)
	}
	fmt.Fprintln(s.Out)
	err = s.waitFor("let the commissioned ventilator leave onboarding", func() (bool, string, error) {
		var err error
		if d, err = s.device(ventilator); err != nil {
			return false, "", err
		}
		if d.Status.Segmentation == nil || d.Status.Segmentation.Onboarding || d.Status.Segmentation.Mode != v1alpha1.ModeStandard {
			return false, "ventilator is still in onboarding", nil
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	s.say("mode %s, allowed flows: %s", d.Status.Segmentation.Mode, strings.Join(d.Status.Segmentation.AllowedFlows, ", "))
	return nil
}

// Step 4: a vendor maintenance window opens the pump's vendor flow and closes it again.
func (s *story) vendorWindow() error {
	s.header("A vendor maintenance window opens and closes on its own",
		"The pump's vendor reaches it over a VPN (an external peer). Such flows open only inside an",
		"AccessGrant: its own object, created by an approver (the medseg:approvers role), naming who",
		"approved it, which ticket and why, from when until when (at most vendorAccess.maxWindow, 8h",
		fmt.Sprintf("by default). It wakes only the pump's reconcile. Here: %s.", s.GrantWindow))
	d, err := s.device(pump)
	if err != nil {
		return err
	}
	for _, b := range d.Status.Segmentation.BlockedFlows {
		s.say("before: blocked flow %s: %s", b.Name, b.Message)
	}
	now := time.Now().UTC().Truncate(time.Second)
	grant := &v1alpha1.AccessGrant{ObjectMeta: metav1.ObjectMeta{Name: "acme-firmware-check-" + now.Format("150405")},
		Spec: v1alpha1.AccessGrantSpec{Flow: "vendor-maintenance", Approval: v1alpha1.Approval{
			Device:    v1alpha1.ObjectRef{Namespace: pump.Namespace, Name: pump.Name},
			NotBefore: metav1.NewTime(now), NotAfter: metav1.NewTime(now.Add(s.GrantWindow)),
			ApprovedBy: "m.chen@hospital.example", Ticket: "VND-7781", Justification: "Vendor checks the firmware after the infusion-rate alarm"}}}
	if err := s.Client.Create(s.ctx, grant); err != nil {
		return err
	}
	s.say("$ kubectl create -f grant.yaml   (AccessGrant %s: flow %s, %s → %s, approved by %s, ticket %s)", grant.Name, grant.Spec.Flow,
		grant.Spec.NotBefore.Format("15:04:05"), grant.Spec.NotAfter.Format("15:04:05"), grant.Spec.ApprovedBy, grant.Spec.Ticket)
	fmt.Fprintln(s.Out)
	vendorOpen := func(want bool) func() (bool, string, error) {
		return func() (bool, string, error) {
			var cnp ciliumv2.CiliumNetworkPolicy
			if err := s.Client.Get(s.ctx, types.NamespacedName{Namespace: pump.Namespace, Name: "medseg-" + pump.Name}, &cnp); err != nil {
				return false, "", err
			}
			open := strings.Contains(rulesSummary(cnp.Spec), "2222/TCP")
			if open != want {
				return false, fmt.Sprintf("vendor flow open=%t", open), nil
			}
			return true, "", nil
		}
	}
	if err := s.waitFor("open the vendor flow inside the window", vendorOpen(true)); err != nil {
		return err
	}
	if err := s.waitFor("record the AccessGranted event", s.hasEvent(pump, v1alpha1.EventAccessGranted)); err != nil {
		return err
	}
	if err := s.waitFor("close it at notAfter, with no one touching anything", vendorOpen(false)); err != nil {
		return err
	}
	return s.waitFor("record the AccessEnded event", s.hasEvent(pump, v1alpha1.EventAccessEnded))
}

// Step 5: a KEV update through server-side apply tightens the pump.
func (s *story) kev() error {
	s.header("A KEV feed update tightens the infusion pump",
		"CISA adds the pump's vulnerability to the Known Exploited Vulnerabilities catalog. kubectl",
		"medseg feed kev reads the catalog (here a copy from the hospital's mirror) and marks the",
		"vulnerabilities already on devices, with server-side apply under its own field manager",
		"(medseg-feed-kev): it owns only spec.threatIntel's KEV fields and never adds a vulnerability.")
	kevFile := filepath.Join(s.Samples, "feeds", "kev.json")
	s.say("$ kubectl medseg feed kev -f %s --apply", kevFile)
	var out strings.Builder
	if _, err := cli.ApplyFeedFiles(s.ctx, s.Client, &out, "kev", []string{kevFile}, ""); err != nil {
		return err
	}
	s.indent(out.String())
	fmt.Fprintln(s.Out)
	var d *v1alpha1.MedicalDevice
	err := s.waitFor("raise the pump to OutOfCycle, which critical care quarantines", func() (bool, string, error) {
		var err error
		if d, err = s.device(pump); err != nil {
			return false, "", err
		}
		if d.Status.Segmentation == nil || d.Status.Segmentation.Mode != v1alpha1.ModeQuarantine {
			return false, "pump is not in Quarantine", nil
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	s.say("status.risk.summary: %s", d.Status.Risk.Summary)
	s.say("status.segmentation.modeReason: %s", d.Status.Segmentation.ModeReason)
	for _, b := range d.Status.Segmentation.BlockedFlows {
		s.say("blocked flow %s: %s", b.Name, b.Message)
	}
	var cnp ciliumv2.CiliumNetworkPolicy
	if err := s.Client.Get(s.ctx, types.NamespacedName{Namespace: pump.Namespace, Name: "medseg-" + pump.Name}, &cnp); err != nil {
		return err
	}
	s.say("CiliumNetworkPolicy now: %s", rulesSummary(cnp.Spec))
	return s.waitFor("record the ModeChanged event", s.hasEvent(pump, v1alpha1.EventModeChanged))
}

func (s *story) hasEvent(k types.NamespacedName, reason string) func() (bool, string, error) {
	return func() (bool, string, error) {
		var evs corev1.EventList
		if err := s.Client.List(s.ctx, &evs, client.InNamespace(k.Namespace)); err != nil {
			return false, "", err
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == k.Name && e.Reason == reason {
				s.note = fmt.Sprintf("Event %s %s: %s", e.Type, e.Reason, e.Message)
				return true, "", nil
			}
		}
		return false, "no " + reason + " event yet", nil
	}
}

// Step 6: a foreign allow rule is detected and raises the monitor's priority.
func (s *story) foreign() error {
	s.header("A hand-made allow rule is detected",
		"Someone adds a 'temporary' CiliumNetworkPolicy that opens the patient monitor's gateway to",
		"the world. medseg does not delete what it does not own: it reports the policy on the device,",
		"treats its exposure as Open, and the SSVC priority rises with it.")
	open := &ciliumv2.CiliumNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "temporary-vendor-access", Namespace: monitor.Namespace},
		Spec: &policyapi.Rule{
			EndpointSelector: policyapi.EndpointSelector{LabelSelector: &slimmetav1.LabelSelector{MatchLabels: map[string]string{"app": "monitor-gateway"}}},
			Ingress:          []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEntities: policyapi.EntitySlice{policyapi.EntityWorld}}}},
		},
	}
	if err := s.Client.Create(s.ctx, open); err != nil {
		return err
	}
	s.say("$ kubectl apply -f temporary-vendor-access.yaml   (fromEntities: [world])")
	fmt.Fprintln(s.Out)
	var d *v1alpha1.MedicalDevice
	err := s.waitFor("report ForeignPolicyWidens and raise the monitor's priority", func() (bool, string, error) {
		var err error
		if d, err = s.device(monitor); err != nil {
			return false, "", err
		}
		c := segmented(d)
		if c == nil || c.Reason != v1alpha1.ReasonForeignPolicyWidens || d.Status.Risk.Priority != v1alpha1.PriorityOutOfCycle {
			return false, "monitor not yet reported", nil
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	s.say("Segmented=False %s: %s", segmented(d).Reason, segmented(d).Message)
	s.say("exposure %s; priority %s; mode %s", d.Status.Risk.Exposure, d.Status.Risk.Priority, d.Status.Segmentation.Mode)
	fmt.Fprintln(s.Out)
	s.say("The platform team removes the rule:")
	if err := s.Client.Delete(s.ctx, open); err != nil {
		return err
	}
	return s.waitFor("restore the monitor to Scheduled and Standard", func() (bool, string, error) {
		d, err := s.device(monitor)
		if err != nil {
			return false, "", err
		}
		c := segmented(d)
		return c != nil && c.Reason == v1alpha1.ReasonSegmented && d.Status.Risk.Priority == v1alpha1.PriorityScheduled, "not restored yet", nil
	})
}

// Step 7: a deleted CNP is put back.
func (s *story) repair() error {
	s.header("A deleted policy is repaired",
		"Someone deletes the pump's CiliumNetworkPolicy. medseg watches what it owns and puts it back",
		"at once, counting the repair in status.drift.repairs.")
	var cnp ciliumv2.CiliumNetworkPolicy
	key := types.NamespacedName{Namespace: pump.Namespace, Name: "medseg-" + pump.Name}
	if err := s.Client.Get(s.ctx, key, &cnp); err != nil {
		return err
	}
	if err := s.Client.Delete(s.ctx, &cnp); err != nil {
		return err
	}
	s.say("$ kubectl -n icu delete cnp medseg-infusion-pump-bed-12")
	fmt.Fprintln(s.Out)
	err := s.waitFor("recreate the policy and count the repair", func() (bool, string, error) {
		var again ciliumv2.CiliumNetworkPolicy
		if err := s.Client.Get(s.ctx, key, &again); err != nil {
			return false, "policy not back yet", nil
		}
		d, err := s.device(pump)
		if err != nil {
			return false, "", err
		}
		return d.Status.Drift != nil && d.Status.Drift.Repairs >= 1, "repair not counted yet", nil
	})
	if err != nil {
		return err
	}
	return s.waitFor("record the DriftRepaired event", s.hasEvent(pump, v1alpha1.EventDriftRepaired))
}

// Step 8: the NICU camera's exception expires on its own.
func (s *story) exception() error {
	s.header("An exception expires on its own",
		"The NICU camera is OutOfCycle, which critical care quarantines; Dr. Okafor's exception keeps",
		"its Clinical video feed open (maxMode Restricted): a SegmentException, its own object. We",
		fmt.Sprintf("shorten it so it ends in %s: medseg requeues at notAfter, quarantines the camera without", s.ExceptionWindow),
		"any other event, and marks the exception Expired.")
	now := time.Now().UTC().Truncate(time.Second)
	expires := now.Add(s.ExceptionWindow)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var e v1alpha1.SegmentException
		if err := s.Client.Get(s.ctx, types.NamespacedName{Name: "nicu-camera-feed"}, &e); err != nil {
			return err
		}
		e.Spec.NotBefore, e.Spec.NotAfter = metav1.NewTime(now.Add(-time.Hour)), metav1.NewTime(expires)
		return s.Client.Update(s.ctx, &e)
	})
	if err != nil {
		return err
	}
	err = s.waitFor("keep the camera Restricted while the exception is active", func() (bool, string, error) {
		d, err := s.device(camera)
		if err != nil {
			return false, "", err
		}
		seg := d.Status.Segmentation
		if seg == nil || seg.ActiveException == nil || !seg.ActiveException.ExpiresAt.Equal(&metav1.Time{Time: expires}) || seg.Mode != v1alpha1.ModeRestricted {
			return false, "exception not in status yet", nil
		}
		s.note = fmt.Sprintf("activeException %s approved by %s until %s", seg.ActiveException.Name, seg.ActiveException.ApprovedBy, seg.ActiveException.ExpiresAt.UTC().Format(time.RFC3339))
		return true, "", nil
	})
	if err != nil {
		return err
	}
	err = s.waitFor("quarantine the camera when the exception expires", func() (bool, string, error) {
		d, err := s.device(camera)
		if err != nil {
			return false, "", err
		}
		return d.Status.Segmentation != nil && d.Status.Segmentation.Mode == v1alpha1.ModeQuarantine && d.Status.Segmentation.ActiveException == nil,
			"still " + string(d.Status.Segmentation.Mode), nil
	})
	if err != nil {
		return err
	}
	if err := s.waitFor("record the ExceptionExpired event", s.hasEvent(camera, v1alpha1.EventExceptionExpired)); err != nil {
		return err
	}
	err = s.waitFor("mark the SegmentException Expired", func() (bool, string, error) {
		var e v1alpha1.SegmentException
		if err := s.Client.Get(s.ctx, types.NamespacedName{Name: "nicu-camera-feed"}, &e); err != nil {
			return false, "", err
		}
		s.note = fmt.Sprintf("$ kubectl get segex nicu-camera-feed → phase %s (%s): %s", e.Status.Phase, e.Status.Reason, e.Status.Message)
		return e.Status.Phase == v1alpha1.ApprovalExpired, "phase " + string(e.Status.Phase), nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(s.Out, "\n   $ kubectl get mdev -A")
	return s.deviceTable()
}
