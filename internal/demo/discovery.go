package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/manifest"
)

var ultrasound = types.NamespacedName{Namespace: "radiology", Name: "ultrasound-3"}

// Step 5: a device arrives with no flows; its flows are discovered from a Hubble capture,
// reviewed, applied, commissioned and enforced.
func (s *story) discovery() error {
	s.header("A new ultrasound with no flows: discovered from Hubble, reviewed, enforced",
		"Nobody wrote down the ultrasound's flows. Hubble recorded its traffic through the DICOM",
		"gateway (config/samples/discovery/capture.jsonpb, `hubble observe -o jsonpb`). kubectl",
		"medseg discover pairs each gateway pod's two hops and proposes flows; a clinical engineer",
		"sets the tiers, applies them, and commissions the device.")
	dir := filepath.Join(s.Samples, "discovery")
	objs, err := manifest.Read([]string{filepath.Join(dir, "ultrasound-3.yaml")}, nil)
	if err != nil {
		return err
	}
	if len(objs) != 1 || objs[0].Object.GetKind() != "MedicalDevice" || objs[0].Object.GetNamespace() != ultrasound.Namespace || objs[0].Object.GetName() != ultrasound.Name {
		return fmt.Errorf("%s: want the one MedicalDevice %s", dir, ultrasound)
	}
	if err := s.apply(objs[0].Object); err != nil {
		return err
	}
	if err := s.gatewayPod(ultrasound); err != nil {
		return err
	}
	if err := s.standIn("radiology", "debug-shell"); err != nil {
		return err
	}
	s.say("$ kubectl apply -f config/samples/discovery/ultrasound-3.yaml   (no flows)")
	var d *v1alpha1.MedicalDevice
	err = s.waitFor("hold the flowless ultrasound in onboarding", func() (bool, string, error) {
		if d, err = s.device(ultrasound); err != nil {
			return false, "", err
		}
		if d.Status.Segmentation == nil || !d.Status.Segmentation.Onboarding {
			return false, "the ultrasound is not in onboarding", nil
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	if c := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ConditionCommissioned); c != nil {
		s.say("Commissioned=%s %s: %s", c.Status, c.Reason, c.Message)
	}

	devs, err := s.namespaceDevices(ultrasound.Namespace)
	if err != nil {
		return err
	}
	capture := filepath.Join(dir, "capture.jsonpb")
	f, err := os.Open(capture)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	tiers := []string{"app=pacs=Clinical", "app=ris=Clinical"}
	p, warnings, err := cli.DiscoverRecords(f, capture, devs, tiers)
	if err != nil {
		return err
	}
	fmt.Fprintln(s.Out)
	s.say("$ kubectl medseg discover --flows %s -n radiology --tier %s --tier %s", capture, tiers[0], tiers[1])
	var out strings.Builder
	if err := cli.PrintDiscovered(&out, p); err != nil {
		return err
	}
	for _, w := range warnings {
		out.WriteString("warning: " + w + "\n")
	}
	s.indent(out.String())
	var fresh []string
	bypass := 0
	for _, dp := range p.Devices {
		if dp.Name != ultrasound.Name {
			if n := len(dp.NewFlows()); n > 0 {
				return fmt.Errorf("discovery proposed %d new flows for %s, which declares all its traffic", n, dp.Name)
			}
			continue
		}
		bypass = len(dp.Bypass)
		for _, fl := range dp.NewFlows() {
			fresh = append(fresh, fl.Name)
		}
	}
	if len(fresh) == 0 {
		return fmt.Errorf("discovery proposed no flows for %s", ultrasound)
	}
	if bypass == 0 {
		return fmt.Errorf("the capture's debug shell reaching the ultrasound directly was not reported as bypassing the gateway")
	}

	fmt.Fprintln(s.Out)
	s.say("$ kubectl medseg discover ... --apply   (server-side apply, field manager %s)", cli.DiscoverFieldManager)
	out.Reset()
	if err := cli.ApplyDiscoveredFlows(s.ctx, s.Client, &out, p); err != nil {
		return err
	}
	s.indent(out.String())
	s.say("$ kubectl medseg commission %s -n %s --ticket CHG-2026-1130 --approved-by \"A. Okafor (clinical engineering)\"", ultrasound.Name, ultrasound.Namespace)
	out.Reset()
	if err := cli.Commission(s.ctx, s.Client, &out, ultrasound, cli.CommissionOptions{Ticket: "CHG-2026-1130", ApprovedBy: "A. Okafor (clinical engineering)", Now: time.Now()}); err != nil {
		return err
	}
	s.indent(out.String())
	err = s.waitFor("enforce the ultrasound's discovered flows", func() (bool, string, error) {
		if d, err = s.device(ultrasound); err != nil {
			return false, "", err
		}
		if d.Status.Segmentation == nil || d.Status.Segmentation.Onboarding {
			return false, "the ultrasound is still in onboarding", nil
		}
		if c := segmented(d); c == nil || c.Reason != v1alpha1.ReasonSegmented {
			return false, "the ultrasound is not segmented yet", nil
		}
		var cnp ciliumv2.CiliumNetworkPolicy
		if err := s.Client.Get(s.ctx, types.NamespacedName{Namespace: ultrasound.Namespace, Name: "medseg-" + ultrasound.Name}, &cnp); err != nil {
			return false, "its CiliumNetworkPolicy is not written yet", nil
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	s.say("mode %s, allowed flows: %s", d.Status.Segmentation.Mode, strings.Join(d.Status.Segmentation.AllowedFlows, ", "))
	for _, b := range d.Status.Segmentation.BlockedFlows {
		s.say("blocked flow %s (%s): %s", b.Name, b.Reason, b.Message)
	}

	w, err := s.liveWorld("203.0.113.50")
	if err != nil {
		return err
	}
	gw := "radiology/gateway-" + ultrasound.Name
	verdicts := []verdict{
		{"ultrasound → its DICOM gateway :11114 (discovered, Clinical)", "10.30.1.23", gw, 11114, true, false},
		{"DICOM gateway → PACS :104 (discovered, Clinical)", gw, "clinical-apps/pacs", 104, true, true},
		{"RIS → DICOM gateway :11115 (discovered, Clinical)", "clinical-apps/ris", gw, 11115, true, false},
		{"DICOM gateway → ultrasound :4006 (discovered, Clinical)", gw, "10.30.1.23", 4006, true, true},
		{"debug shell → ultrasound :22 (bypassed the gateway in the capture)", "radiology/debug-shell", "10.30.1.23", 22, false, true},
		{"DICOM gateway → vendor 203.0.113.50 :443 (discovered; blocked: the policy allows no external peers)", gw, "203.0.113.50", 443, false, true},
		{"billing pod → ultrasound :4006", "clinical-apps/billing", "10.30.1.23", 4006, false, true},
	}
	_, err = s.checkVerdicts(w, verdicts)
	return err
}

// namespaceDevices reads the namespace's MedicalDevices as discover does.
func (s *story) namespaceDevices(ns string) ([]*v1alpha1.MedicalDevice, error) {
	var list v1alpha1.MedicalDeviceList
	if err := s.Client.List(s.ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	out := make([]*v1alpha1.MedicalDevice, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// standIn creates a stand-in application pod.
func (s *story) standIn(ns, app string) error {
	pod := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": app, "namespace": ns, "labels": map[string]any{"app": app}},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": "registry.hospital.local/" + app + ":1.0"}}},
	}}
	if err := s.apply(pod); err != nil {
		return fmt.Errorf("creating the %s stand-in pod: %w", app, err)
	}
	return nil
}

// indent prints command output under the story's margin.
func (s *story) indent(text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		s.say("%s", l)
	}
}
