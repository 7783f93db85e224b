package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/discover/capture"
	"github.com/medseg/medseg/internal/testenv"
)

// TestDiscoverApply runs kubectl-medseg discover --apply against a live API server with the
// operator writing status meanwhile: a server dry run writes nothing; the apply adds the new
// flows under discover's own field manager with the mapped tiers and touches no existing flow or
// tier; a second capture's apply keeps the first one's flows and a person's tier edit; a rerun
// adds nothing; a spec edited after discovery read it is refused.
func TestDiscoverApply(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const sfx = "-discover"
	startOperator(t)
	devices := applySamples(t, sfx)
	devices = append(devices, applyHospital(t, filepath.Join(testenv.RepoRoot(), "config", "samples", "discovery", "ultrasound-3.yaml"), sfx)...)
	createGateways(t, devices)
	radiology, apps := "radiology"+sfx, "clinical-apps"+sfx
	us := types.NamespacedName{Namespace: radiology, Name: "ultrasound-3"}
	ct := types.NamespacedName{Namespace: radiology, Name: "ct-scanner-1"}
	g.Eventually(func(g Gomega) {
		g.Expect(segReason(getDevice(g, ct))).To(Equal(v1alpha1.ReasonSegmented))
		g.Expect(getDevice(g, us).Status.Segmentation).NotTo(BeNil())
	}, timeout, pollInterval).Should(Succeed())
	ctBefore := getDevice(g, ct)

	gw := &capture.Pod{Namespace: radiology, Name: "gw-ultrasound-3", IP: "10.244.1.20",
		Labels: map[string]string{"app": "dicom-gateway", v1alpha1.LabelGateway: "true"}}
	pod := func(app, ip string) capture.Endpoint {
		return capture.PodEndpoint(&capture.Pod{Namespace: apps, Name: app + "-0", IP: ip, Labels: map[string]string{"app": app}})
	}
	write := func(name string, build func(b *capture.Builder)) string {
		b := capture.NewBuilder(time.Now().Add(-time.Hour), time.Minute)
		build(b)
		path := filepath.Join(t.TempDir(), name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := capture.NewWriter(f).WriteFlows(b.Flows()); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	first := write("first.jsonpb", func(b *capture.Builder) {
		for i := 0; i < 5; i++ {
			b.Proxied(pod("pacs", "10.244.2.30"), gw, 11114, "10.30.1.23", 104, "TCP", false, capture.Forwarded)
			b.Proxied(pod("ris", "10.244.2.31"), gw, 11115, "10.30.1.23", 4006, "TCP", true, capture.Forwarded)
			// The CT scanner's declared worklist flow, and one from billing it does not declare.
			b.Proxied(pod("ris", "10.244.2.31"), gw, 11113, "10.30.1.10", 4006, "TCP", true, capture.Forwarded)
			b.Proxied(pod("billing", "10.244.2.32"), gw, 11113, "10.30.1.10", 4006, "TCP", true, capture.Forwarded)
		}
	})
	second := write("second.jsonpb", func(b *capture.Builder) {
		for i := 0; i < 3; i++ {
			b.Proxied(capture.External("203.0.113.50"), gw, 8443, "10.30.1.23", 443, "TCP", false, capture.Forwarded)
		}
	})
	kc := kubeconfig(t, radiology)
	discover := func(flows string, extra ...string) string {
		t.Helper()
		args := append([]string{"discover", "--kubeconfig", kc, "--flows", flows, "--tier", "app=ris=Essential"}, extra...)
		out, stderr, code := plugin(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, stderr)
		}
		return out
	}

	out := discover(first, "--apply", "--dry-run=server")
	g.Expect(out).To(ContainSubstring("would add to (dry run, server"))
	g.Expect(getDevice(g, us).Spec.Flows).To(BeEmpty())

	out = discover(first, "--apply")
	g.Expect(out).To(ContainSubstring("added to " + us.String() + ": "))
	g.Expect(out).To(ContainSubstring(ct.String() + " was commissioned: its flows changed"))
	d := getDevice(g, us)
	tiers := map[string]v1alpha1.Tier{}
	for _, f := range d.Spec.Flows {
		tiers[f.Name] = f.Tier
	}
	g.Expect(tiers).To(Equal(map[string]v1alpha1.Tier{"out-tcp-11114-104": v1alpha1.TierSupport, "in-tcp-11115-4006": v1alpha1.TierEssential}))
	managers := map[string]metav1.ManagedFieldsOperationType{}
	for _, mf := range d.ManagedFields {
		managers[mf.Manager] = mf.Operation
	}
	g.Expect(managers).To(HaveKeyWithValue(cli.DiscoverFieldManager, metav1.ManagedFieldsOperationApply))
	// The CT scanner: its declared flows are exactly as they were, the billing flow is added.
	ctAfter := getDevice(g, ct)
	g.Expect(ctAfter.Spec.Flows[:len(ctBefore.Spec.Flows)]).To(Equal(ctBefore.Spec.Flows))
	g.Expect(ctAfter.Spec.Flows).To(HaveLen(len(ctBefore.Spec.Flows) + 1))
	g.Expect(ctAfter.Spec.Flows[len(ctBefore.Spec.Flows)].Peers[0].PodSelector.MatchLabels).To(Equal(map[string]string{"app": "billing"}))

	// A clinical engineer raises a discovered flow's tier by hand (an ordinary update).
	updateDevice(g, us, func(d *v1alpha1.MedicalDevice) {
		for i := range d.Spec.Flows {
			if d.Spec.Flows[i].Name == "out-tcp-11114-104" {
				d.Spec.Flows[i].Tier = v1alpha1.TierClinical
			}
		}
	})
	out = discover(second, "--apply")
	g.Expect(out).To(ContainSubstring("added to " + us.String() + ": out-tcp-8443-443"))
	d = getDevice(g, us)
	tiers = map[string]v1alpha1.Tier{}
	for _, f := range d.Spec.Flows {
		tiers[f.Name] = f.Tier
	}
	g.Expect(tiers).To(Equal(map[string]v1alpha1.Tier{"out-tcp-11114-104": v1alpha1.TierClinical,
		"in-tcp-11115-4006": v1alpha1.TierEssential, "out-tcp-8443-443": v1alpha1.TierSupport}))

	// Nothing new: nothing written.
	rv := getDevice(g, us).Generation
	out = discover(first, "--apply")
	g.Expect(out).To(ContainSubstring("no new flows to add"))
	g.Expect(getDevice(g, us).Generation).To(Equal(rv))

	// A spec edited between discovery and the apply is refused, not overwritten.
	f, err := os.Open(second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	stale := getDevice(g, us)
	stale.Spec.Flows = nil
	p, _, err := cli.DiscoverRecords(f, second, []*v1alpha1.MedicalDevice{stale}, nil)
	if err != nil {
		t.Fatal(err)
	}
	updateDevice(g, us, func(d *v1alpha1.MedicalDevice) { d.Spec.Identity.FirmwareVersion = "2.4.1" })
	var msg strings.Builder
	err = cli.ApplyDiscoveredFlows(ctx, env.Client, &msg, p)
	g.Expect(err).To(MatchError(ContainSubstring("its spec changed since discovery read it")))
}
