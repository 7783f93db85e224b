package integration

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/medseg/medseg/internal/report"
	"github.com/medseg/medseg/internal/report/reporttest"
	"github.com/medseg/medseg/internal/testenv"
)

// TestFleetReport reads two API servers (two sites) and a third nobody listens on through one
// kubeconfig: `report --context north --context south --context down` writes one report with
// both sites' devices, a per-site breakdown, and the down site named as unreachable (and exits
// 1 once the report is written); --all-contexts with --context-filter picks the sites by name.
func TestFleetReport(t *testing.T) {
	g := NewWithT(t)
	south, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = south.Stop() })

	now := time.Now().UTC().Truncate(time.Second)
	const label = "medseg-fleet-test"
	northIn := loadHospital(t, env.Client, reporttest.Hospital(24, now), "-north", label)
	southIn := loadHospital(t, south.Client, reporttest.Hospital(40, now), "-south", label)

	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	for name, e := range map[string]*envtest.Environment{"north": env.Env, "south": south.Env} {
		user, err := e.AddUser(envtest.User{Name: "fleet-" + name, Groups: []string{"system:masters"}}, nil)
		g.Expect(err).NotTo(HaveOccurred())
		raw, err := user.KubeConfig()
		g.Expect(err).NotTo(HaveOccurred())
		one, err := clientcmd.Load(raw)
		g.Expect(err).NotTo(HaveOccurred())
		c := one.Contexts[one.CurrentContext]
		cfg.Clusters[name], cfg.AuthInfos[name] = one.Clusters[c.Cluster], one.AuthInfos[c.AuthInfo]
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	}
	down := *cfg.Clusters["north"]
	down.Server = "https://127.0.0.1:1"
	cfg.Clusters["down"] = &down
	cfg.Contexts["down"] = &clientcmdapi.Context{Cluster: "down", AuthInfo: "north"}
	cfg.CurrentContext = "north"
	g.Expect(clientcmd.WriteToFile(*cfg, path)).To(Succeed())

	out, stderr, code := plugin("report", "--kubeconfig", path, "--context", "north", "--context", "south", "--context", "down", "-o", "json", "--site-timeout", "20s")
	g.Expect(code).To(Equal(1), "an unreachable site fails the command after the report: %s", stderr)
	g.Expect(stderr).To(ContainSubstring("down"))
	var r report.Report
	g.Expect(json.Unmarshal([]byte(out), &r)).To(Succeed(), out)
	g.Expect(r.SchemaVersion).To(Equal(report.SchemaVersion))
	g.Expect(r.Sites).To(HaveLen(3))
	sites := map[string]report.Site{}
	for _, s := range r.Sites {
		sites[s.Name] = s
	}
	g.Expect(sites["down"].Reachable).To(BeFalse())
	g.Expect(sites["down"].Error).To(ContainSubstring("127.0.0.1:1"), "the unreachable site names its server")
	for name, in := range map[string][]string{"north": northIn, "south": southIn} {
		s := sites[name]
		g.Expect(s.Reachable).To(BeTrue(), name)
		g.Expect(s.Devices).To(Equal(len(in)), name)
		g.Expect(s.Segmented+s.InAudit+s.NotSegmented).To(Equal(s.Devices), name)
		g.Expect(s.Zones).To(BeNumerically(">=", 2), name)
	}
	g.Expect(r.Summary.Devices).To(Equal(len(northIn) + len(southIn)))
	seen := map[string]bool{}
	for _, d := range r.Devices {
		g.Expect(d.Ref).To(HavePrefix(d.Site+":"), "a fleet device names its site")
		seen[d.Ref] = true
	}
	for _, ref := range northIn {
		g.Expect(seen).To(HaveKey("north:" + ref))
	}
	for _, ref := range southIn {
		g.Expect(seen).To(HaveKey("south:" + ref))
	}
	for _, z := range r.Zones {
		g.Expect(z.Site).To(BeElementOf("north", "south"), "zones are per site")
	}

	// The HTML's first screen carries the per-site breakdown, the unreachable site in it.
	html, stderr, code := plugin("report", "--kubeconfig", path, "--context", "north", "--context", "south", "--context", "down", "-o", "html", "--site-timeout", "20s")
	g.Expect(code).To(Equal(1), stderr)
	testenv.CheckReportHTML(t, html, len(northIn)+len(southIn))
	first := html[:strings.Index(html, "id=\"urgent\"")]
	g.Expect(first).To(ContainSubstring("<table id=\"sites\">"))
	g.Expect(first).To(ContainSubstring("<tr class=\"unreachable\"><td>down</td>"))

	// --all-contexts with a filter: the sites whose names match, the down one left out.
	out, stderr, code = plugin("report", "--kubeconfig", path, "--all-contexts", "--context-filter", "*o*th", "-o", "json")
	g.Expect(code).To(Equal(0), stderr)
	g.Expect(json.Unmarshal([]byte(out), &r)).To(Succeed())
	var names []string
	for _, s := range r.Sites {
		names = append(names, s.Name)
	}
	g.Expect(names).To(Equal([]string{"north", "south"}))

	// Only report reads several clusters.
	_, stderr, code = plugin("audit", "--kubeconfig", path, "--context", "north", "--context", "south")
	g.Expect(code).To(Equal(1))
	g.Expect(stderr).To(ContainSubstring("only report reads several clusters"))
}

// loadHospital writes a synthetic hospital with its statuses into a cluster: namespaces
// suffixed, policies renamed and selecting only those namespaces (by label), so nothing else in
// a shared API server is governed by them. It returns the devices' references and deletes
// everything when the test ends.
func loadHospital(t *testing.T, c client.Client, in report.Input, sfx, label string) []string {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	var objs []client.Object
	t.Cleanup(func() {
		for _, o := range objs {
			_ = c.Delete(context.Background(), o)
		}
	})
	create := func(o client.Object, status func()) {
		t.Helper()
		g.Expect(c.Create(ctx, o)).To(Succeed(), "%T %s", o, o.GetName())
		objs = append(objs, o)
		if status != nil {
			status()
			g.Expect(c.Status().Update(ctx, o)).To(Succeed(), "status of %T %s", o, o.GetName())
		}
	}
	namespaces := map[string]bool{}
	for i := range in.Devices {
		namespaces[in.Devices[i].Namespace+sfx] = true
	}
	for ns := range namespaces {
		create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{label: "true"}}}, nil)
	}
	for i := range in.Policies {
		p := in.Policies[i].DeepCopy()
		st := p.Status
		p.Name += sfx
		p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{label: "true"}}
		create(p, func() { p.Status = st })
	}
	var refs []string
	for i := range in.Devices {
		d := in.Devices[i].DeepCopy()
		st := d.Status
		d.Namespace += sfx
		if st.Segmentation != nil && st.Segmentation.Policy != "" {
			st.Segmentation.Policy += sfx
		}
		create(d, func() { d.Status = st })
		refs = append(refs, d.Namespace+"/"+d.Name)
	}
	return refs
}
