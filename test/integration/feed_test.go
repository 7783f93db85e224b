package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/feed"
	"github.com/medseg/medseg/internal/testenv"
)

func feedSample(parts ...string) string {
	return filepath.Join(append([]string{testenv.RepoRoot(), "config", "samples", "feeds"}, parts...)...)
}

// TestFeedsOnALiveCluster runs KEV, EPSS and VEX one after another against a live API server
// with the operator running: the priorities move as the feeds say, a rerun writes nothing, a
// VEX NotAffected lowers a priority with its justification in the summary, a vulnerability VEX
// withdraws takes the KEV annotation's effect with it at once (no entry lives on because another
// manager owns a field of it), and the admission policy refuses a feed identity that is not a
// protected input's writer.
func TestFeedsOnALiveCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const sfx = "-feeds"
	startOperator(t)
	devices := applySamples(t, sfx)
	createGateways(t, devices)
	pump := types.NamespacedName{Namespace: "icu" + sfx, Name: "infusion-pump-bed-12"}
	ct := types.NamespacedName{Namespace: "radiology" + sfx, Name: "ct-scanner-1"}
	priority := func(k types.NamespacedName) func(Gomega) v1alpha1.Priority {
		return func(g Gomega) v1alpha1.Priority {
			d := getDevice(g, k)
			g.Expect(d.Status.Risk).NotTo(BeNil())
			g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
			return d.Status.Risk.Priority
		}
	}
	g.Eventually(priority(pump), timeout, pollInterval).Should(Equal(v1alpha1.PriorityScheduled))
	g.Eventually(priority(ct), timeout, pollInterval).Should(Equal(v1alpha1.PriorityScheduled))
	// The zone reports its gateways' policy maps: the pump's gateway pod carries the pump's
	// estimated entries, far from Cilium's 16,384.
	g.Eventually(func(g Gomega) {
		var pol v1alpha1.SegmentPolicy
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "critical-care" + sfx}, &pol)).To(Succeed())
		c := meta.FindStatusCondition(pol.Status.Conditions, v1alpha1.ConditionGatewayCapacity)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(v1alpha1.ReasonWithinCapacity))
		g.Expect(pol.Status.Gateways).To(ContainElement(And(HaveField("Pod", "gw-infusion-pump-bed-12"), HaveField("Capacity", int32(16384)))))
		g.Expect(pol.Status.Gateways[0].Entries).To(BeNumerically(">", 0))
	}, timeout, pollInterval).Should(Succeed())

	// Only this test's hospital: the feeds read every namespace, other tests' devices are gone
	// or carry other suffixes, which the plan counts but leaves as they are.
	var out strings.Builder
	run := func(kind string, products string, sources ...string) *feed.Plan {
		t.Helper()
		out.Reset()
		p, err := cli.ApplyFeedFiles(ctx, env.Client, &out, kind, sources, products)
		if err != nil {
			t.Fatalf("feed %s: %v\n%s", kind, err, out.String())
		}
		return p
	}
	mine := func(p *feed.Plan) int {
		n := 0
		for _, dp := range p.Devices {
			if strings.HasSuffix(dp.Namespace, sfx) {
				n++
			}
		}
		return n
	}

	// KEV: the pump's CVE is in the catalog: exploitation Active, OutOfCycle.
	p := run("kev", "", feedSample("kev.json"))
	g.Expect(mine(p)).To(Equal(1), out.String())
	g.Eventually(priority(pump), timeout, pollInterval).Should(Equal(v1alpha1.PriorityOutOfCycle))
	d := getDevice(g, pump)
	g.Expect(d.Status.Risk.Exploitation.Source).To(Equal("CISA KEV since 2026-12-01"))
	g.Expect(d.Spec.Vulnerabilities).To(HaveLen(1), "KEV never adds a vulnerability")
	g.Eventually(func(g Gomega) {
		lf := getDevice(g, pump).Status.Risk.LastFeed
		g.Expect(lf).NotTo(BeNil())
		g.Expect(lf.Feed).To(Equal("kev"))
		g.Expect(lf.Source).To(Equal("CISA KEV 2026.12.01"))
	}, timeout, pollInterval).Should(Succeed())
	var explain strings.Builder
	cli.WriteExplain(&explain, getDevice(g, pump))
	g.Expect(explain.String()).To(ContainSubstring("inputs last changed by feed kev (CISA KEV 2026.12.01) at "))

	// EPSS: scores for every device's CVEs; nothing crosses the 0.9 threshold that did not.
	p = run("epss", "", feedSample("epss_scores-2026-12-01.csv"))
	g.Expect(mine(p)).To(Equal(5), out.String())
	g.Eventually(func(g Gomega) string {
		return getDevice(g, ct).Status.Risk.Exploitation.Source
	}, timeout, pollInterval).Should(Equal("EPSS 0.9201 ≥ 0.9 (FIRST EPSS of 2026-12-01)"))

	// VEX: the CT scanner's CVE does not affect it (code_not_reachable): Defer, and why.
	products := feedSample("products.yaml")
	p = run("vex", products, feedSample("vex"))
	g.Expect(mine(p)).To(Equal(2), out.String())
	g.Eventually(priority(ct), timeout, pollInterval).Should(Equal(v1alpha1.PriorityDefer))
	g.Expect(getDevice(g, ct).Status.Risk.Summary).To(ContainSubstring("NotAffected per VEX: CVE-2025-31337: code_not_reachable"))
	g.Eventually(func(g Gomega) string {
		lf := getDevice(g, ct).Status.Risk.LastFeed
		g.Expect(lf).NotTo(BeNil())
		return lf.Feed + " " + lf.Source
	}, timeout, pollInterval).Should(Equal("vex VEX urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79"))
	g.Eventually(priority(pump), timeout, pollInterval).Should(Equal(v1alpha1.PriorityOutOfCycle))

	// A rerun of all three writes nothing: no device's spec changes.
	gens := map[string]int64{}
	for _, k := range devices {
		gens[k.String()] = getDevice(g, k).Generation
	}
	for _, f := range []struct{ kind, products, source string }{
		{"kev", "", feedSample("kev.json")}, {"epss", "", feedSample("epss_scores-2026-12-01.csv")}, {"vex", products, feedSample("vex")},
	} {
		p = run(f.kind, f.products, f.source)
		g.Expect(mine(p)).To(Equal(0), "rerun of %s:\n%s", f.kind, out.String())
	}
	for _, k := range devices {
		g.Expect(getDevice(g, k).Generation).To(Equal(gens[k.String()]), "%s was written on a rerun", k)
	}

	// Withdrawal. The CT's manufacturer says a second CVE is exploitable, and CISA lists it as
	// exploited: the CT goes up. Then the manufacturer withdraws the statement (it was about
	// another model): the entry goes, and with it the KEV annotation's effect, at once.
	dir := t.TempDir()
	var bom map[string]any
	raw, err := os.ReadFile(feedSample("vex", "imaging-corp-ct64-vex.cdx.json"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(json.Unmarshal(raw, &bom)).To(Succeed())
	vulns := bom["vulnerabilities"].([]any)
	extra := map[string]any{"id": "CVE-2025-39999", "analysis": map[string]any{"state": "exploitable"},
		"ratings": []any{map[string]any{"score": 8.1, "method": "CVSSv31"}},
		"affects": []any{map[string]any{"ref": "imaging-corp/ct-64@11.2"}}}
	write := func(name string, v any) string {
		raw, err := json.Marshal(v)
		g.Expect(err).NotTo(HaveOccurred())
		path := filepath.Join(dir, name)
		g.Expect(os.WriteFile(path, raw, 0o600)).To(Succeed())
		return path
	}
	bom["vulnerabilities"] = append(append([]any{}, vulns...), extra)
	bom["version"] = 2
	withExtra := write("ct64-v2.cdx.json", bom)
	var kev map[string]any
	raw, err = os.ReadFile(feedSample("kev.json"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(json.Unmarshal(raw, &kev)).To(Succeed())
	kev["vulnerabilities"] = append(kev["vulnerabilities"].([]any), map[string]any{"cveID": "CVE-2025-39999", "vendorProject": "Imaging Corp",
		"product": "CT-64", "vulnerabilityName": "x", "dateAdded": "2026-12-02", "shortDescription": "x", "requiredAction": "x", "dueDate": "2026-12-23"})
	kev["count"] = 4
	kevFile := write("kev.json", kev)

	run("vex", products, withExtra)
	run("kev", "", kevFile)
	g.Eventually(priority(ct), timeout, pollInterval).ShouldNot(Equal(v1alpha1.PriorityDefer))
	g.Expect(getDevice(g, ct).Status.Risk.DecidingVulnerability).To(Equal("CVE-2025-39999"))

	bom["vulnerabilities"] = vulns
	bom["version"] = 3
	run("vex", products, write("ct64-v3.cdx.json", bom))
	g.Expect(out.String()).To(ContainSubstring("withdrawn"))
	g.Eventually(priority(ct), timeout, pollInterval).Should(Equal(v1alpha1.PriorityDefer))
	d = getDevice(g, ct)
	for _, v := range d.Spec.Vulnerabilities {
		g.Expect(v.ID).NotTo(Equal("CVE-2025-39999"), "the withdrawn entry lives on")
	}
	// KEV's annotation is inert without its entry, and goes on KEV's next run.
	g.Expect(d.Spec.ThreatIntel).To(ContainElement(HaveField("ID", "CVE-2025-39999")))
	run("kev", "", kevFile)
	g.Expect(getDevice(g, ct).Spec.ThreatIntel).NotTo(ContainElement(HaveField("ID", "CVE-2025-39999")))
	for _, mf := range getDevice(g, ct).ManagedFields {
		if mf.Manager == feed.ManagerVEX || mf.Manager == feed.ManagerKEV || mf.Manager == feed.ManagerEPSS {
			g.Expect(mf.Operation).To(Equal(metav1.ManagedFieldsOperationApply))
		}
	}

	// The admission policy: a feed identity not in protectedInputs is refused; the chart's
	// group is allowed.
	installProtectedInputs(t, ct)
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "feed-test-devices"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"medseg.io"}, Resources: []string{"medicaldevices"}, Verbs: []string{"get", "list", "patch", "delete"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "feed-test-devices"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "system:serviceaccount:tools:rogue-feed"}, {Kind: "User", Name: "system:serviceaccount:medseg-system:medseg-feeds"}}}
	g.Expect(env.Client.Create(ctx, role)).To(Succeed())
	g.Expect(env.Client.Create(ctx, binding)).To(Succeed())
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), binding)
		_ = env.Client.Delete(context.Background(), role)
	})
	kc := kubeconfig(t, ct.Namespace)
	// A new KEV entry for the CT's remaining CVE, so there is something to write.
	kev["vulnerabilities"] = append(kev["vulnerabilities"].([]any)[:3], map[string]any{"cveID": "CVE-2025-31337", "vendorProject": "Imaging Corp",
		"product": "CT-64", "vulnerabilityName": "x", "dateAdded": "2026-12-02", "shortDescription": "x", "requiredAction": "x", "dueDate": "2026-12-23"})
	kevFile = write("kev2.json", kev)
	g.Eventually(func(g Gomega) {
		_, stderr, code := plugin("--kubeconfig", kc, "--as", "system:serviceaccount:tools:rogue-feed", "feed", "kev", "-f", kevFile, "--apply", "--dry-run=server")
		g.Expect(code).NotTo(Equal(0))
		g.Expect(stderr).To(ContainSubstring("spec.threatIntel is a risk input"))
		g.Expect(stderr).To(ContainSubstring("protectedInputs"))
	}, timeout, pollInterval).Should(Succeed())
	// Nor may anyone else forge the stamp that says which feed changed the risk.
	rogueCfg := rest.CopyConfig(env.Config)
	rogueCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:tools:rogue-feed"}
	rogue, err := client.New(rogueCfg, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func() error {
		d := getDevice(g, ct)
		patch := client.MergeFrom(d.DeepCopy())
		d.Annotations[v1alpha1.FeedAnnotationPrefix+"vex"] = "2030-01-01T00:00:00Z forged"
		return rogue.Patch(ctx, d, patch)
	}, timeout, pollInterval).Should(MatchError(ContainSubstring("feeds.medseg.io/ annotations")))
	// Deleting a device (which would drop its risk inputs) is for device administrators only.
	g.Eventually(func() error {
		return rogue.Delete(ctx, getDevice(g, ct), client.DryRunAll)
	}, timeout, pollInterval).Should(MatchError(ContainSubstring("only the configured device administrators may")))
	adminCfg := rest.CopyConfig(env.Config)
	adminCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:medseg-system:medseg-feeds", Groups: []string{"medseg:device-admins"}}
	admin, err := client.New(adminCfg, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(admin.Delete(ctx, getDevice(g, ct), client.DryRunAll)).To(Succeed())
	stdout, stderr, code := plugin("--kubeconfig", kc, "--as", "system:serviceaccount:medseg-system:medseg-feeds", "--as-group", "medseg:risk-feeds",
		"feed", "kev", "-f", kevFile, "--apply", "--dry-run=server")
	g.Expect(code).To(Equal(0), stderr)
	g.Expect(stdout).To(ContainSubstring("would apply (dry run, server"))
	var after v1alpha1.MedicalDevice
	g.Expect(env.Client.Get(ctx, ct, &after)).To(Succeed())
	g.Expect(after.Spec.ThreatIntel).NotTo(ContainElement(HaveField("KnownExploited", true)), "a server dry run persists nothing")
}
