package integration

import (
	"bytes"
	"context"
	"flag"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/testenv"
)

var rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func checkGolden(t *testing.T, name, got string) { t.Helper(); testenv.Golden(t, name, got, *update) }

// TestAuditAndExplainOnTheLiveCluster runs the plugin's online commands against the operator's
// status for the sample hospital: golden audit and explain output, and an exit code that fails
// a pipeline when a device is not segmented.
func TestAuditAndExplainOnTheLiveCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const sfx = "-cli"
	startOperator(t)
	devices := applySamples(t, sfx)
	createGateways(t, devices)
	for _, k := range devices {
		g.Eventually(func(g Gomega) {
			g.Expect(segReason(getDevice(g, k))).To(Equal(v1alpha1.ReasonSegmented))
		}, timeout, pollInterval).Should(Succeed())
	}
	// Only this test's hospital: other tests' objects share the API server.
	report := func(g Gomega) cli.AuditReport {
		var devs v1alpha1.MedicalDeviceList
		g.Expect(env.Client.List(ctx, &devs)).To(Succeed())
		var pols v1alpha1.SegmentPolicyList
		g.Expect(env.Client.List(ctx, &pols)).To(Succeed())
		var mine []v1alpha1.MedicalDevice
		for _, d := range devs.Items {
			if strings.HasSuffix(d.Namespace, sfx) {
				mine = append(mine, d)
			}
		}
		var minePols []v1alpha1.SegmentPolicy
		for _, p := range pols.Items {
			if strings.HasSuffix(p.Name, sfx) {
				minePols = append(minePols, p)
			}
		}
		return cli.BuildAudit(mine, minePols, v1alpha1.Approvals{})
	}
	g.Eventually(func(g Gomega) {
		r := report(g)
		g.Expect(r.Passed).To(BeTrue(), "%+v", r)
		g.Expect(r.Policies).To(HaveLen(2))
		g.Expect(r.Policies[0].Devices + r.Policies[1].Devices).To(Equal(int32(5)))
	}, timeout, pollInterval).Should(Succeed())
	for _, format := range []string{"table", "json"} {
		var out bytes.Buffer
		g.Expect(cli.WriteAudit(&out, report(g), format)).To(Succeed())
		checkGolden(t, "audit."+format, out.String())
	}
	var explain bytes.Buffer
	g.Expect(cli.Explain(ctx, env.Client, &explain, types.NamespacedName{Namespace: "nicu" + sfx, Name: "nicu-camera-bay-3"})).To(Succeed())
	// The sample exception's dates are moved to the present when applied; mask timestamps.
	checkGolden(t, "explain-nicu-camera.txt", rfc3339.ReplaceAllString(explain.String(), "<time>"))

	// The command itself: an ungoverned device fails the audit with exit code 2.
	saved := cli.NewClient
	cli.NewClient = func(*genericclioptions.ConfigFlags) (client.Client, error) { return env.Client, nil }
	t.Cleanup(func() { cli.NewClient = saved })
	orphan := getDevice(g, types.NamespacedName{Namespace: "icu" + sfx, Name: "infusion-pump-bed-12"}).DeepCopy()
	orphan.ObjectMeta = metav1ObjectMeta("ungoverned-pump", "default")
	orphan.Spec.Network.Addresses = []string{"10.20.66.1"}
	orphan.Status = v1alpha1.MedicalDeviceStatus{}
	g.Expect(env.Client.Create(ctx, orphan)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, orphan) })
	g.Eventually(func(g Gomega) {
		g.Expect(segReason(getDevice(g, types.NamespacedName{Namespace: "default", Name: "ungoverned-pump"}))).To(Equal(v1alpha1.ReasonNoSegmentPolicy))
	}, timeout, pollInterval).Should(Succeed())
	var out, errOut bytes.Buffer
	code := cli.Run([]string{"audit", "-o", "json"}, nil, &out, &errOut)
	g.Expect(code).To(Equal(2), "stdout %s stderr %s", out.String(), errOut.String())
	g.Expect(out.String()).To(ContainSubstring(`"reason": "NoSegmentPolicy"`))
	out.Reset()
	g.Expect(cli.Run([]string{"explain", "infusion-pump-bed-12", "-n", "icu" + sfx}, nil, &out, &errOut)).To(Equal(0), errOut.String())
	g.Expect(out.String()).To(ContainSubstring("Risk (CERT/CC SSVC deployer decision): Scheduled"))
}
