package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/cli"
)

// kubeconfig writes a kubeconfig with three contexts: "hospital" (this API server, namespace
// ns), "admin" (this API server, no namespace), and "down" (a server nobody listens on).
func kubeconfig(t *testing.T, ns string) string {
	t.Helper()
	user, err := env.Env.AddUser(envtest.User{Name: "plugin-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	base := cfg.Contexts[cfg.CurrentContext]
	hospital, admin := *base, *base
	hospital.Namespace = ns
	cfg.Contexts = map[string]*clientcmdapi.Context{"hospital": &hospital, "admin": &admin}
	down := *cfg.Clusters[base.Cluster]
	down.Server = "https://127.0.0.1:1"
	cfg.Clusters["down"] = &down
	cfg.Contexts["down"] = &clientcmdapi.Context{Cluster: "down", AuthInfo: base.AuthInfo}
	cfg.CurrentContext = "hospital"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func plugin(args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := cli.Run(args, nil, &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestPluginBehavesLikeKubectl runs kubectl-medseg against a real kubeconfig: kubectl's global
// flags, the namespace from the context, flags on both sides of the argument, an unreachable
// server named with its context, -o on live objects, and --dry-run client and server (the server
// dry run goes through the protected-inputs admission policy, whose denial names who may).
func TestPluginBehavesLikeKubectl(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const sfx = "-kubectl"
	startOperator(t)
	devices := applySamples(t, sfx)
	createGateways(t, devices)
	icu := "icu" + sfx
	pump := types.NamespacedName{Namespace: icu, Name: "infusion-pump-bed-12"}
	g.Eventually(func(g Gomega) {
		g.Expect(segReason(getDevice(g, pump))).To(Equal(v1alpha1.ReasonSegmented))
	}, timeout, pollInterval).Should(Succeed())
	kc := kubeconfig(t, icu)

	// The namespace comes from the context; flags before and after the argument; global flags
	// before the command.
	for _, args := range [][]string{
		{"--kubeconfig", kc, "explain", pump.Name},
		{"explain", pump.Name, "--kubeconfig", kc},
		{"--kubeconfig", kc, "--context", "admin", "explain", "-n", icu, pump.Name},
		{"--kubeconfig", kc, "--context", "admin", "explain", pump.Name, "-n", icu},
		{"--kubeconfig=" + kc, "--namespace=" + icu, "--context=admin", "--request-timeout=10s", "explain", pump.Name},
	} {
		out, stderr, code := plugin(args...)
		g.Expect(code).To(Equal(0), "%v: %s", args, stderr)
		g.Expect(out).To(ContainSubstring("MedicalDevice "+icu+"/"+pump.Name), "%v", args)
	}
	// With the admin context (no namespace) the device is looked up in "default": not found.
	_, stderr, code := plugin("--kubeconfig", kc, "--context", "admin", "explain", pump.Name)
	g.Expect(code).To(Equal(1))
	g.Expect(stderr).To(ContainSubstring("default/" + pump.Name))

	// -o on a live object.
	out, stderr, code := plugin("--kubeconfig", kc, "explain", pump.Name, "-o", "jsonpath={.status.segmentation.mode}")
	g.Expect(code).To(Equal(0), stderr)
	g.Expect(out).To(Equal("Standard"))
	out, _, _ = plugin("--kubeconfig", kc, "explain", pump.Name, "-o", "yaml")
	g.Expect(out).To(ContainSubstring("kind: MedicalDevice"))
	g.Expect(out).NotTo(ContainSubstring("managedFields"))

	// audit: every namespace unless -n; -o json and custom-columns.
	out, _, code = plugin("--kubeconfig", kc, "audit", "-n", icu, "-o", "json")
	var audit cli.AuditReport
	g.Expect(json.Unmarshal([]byte(out), &audit)).To(Succeed(), out)
	g.Expect(audit.Devices).To(HaveLen(2), "-n limits the devices")
	out, _, _ = plugin("--kubeconfig", kc, "audit", "-n", icu, "-o", "custom-columns=DEVICE:.devices[*].name")
	g.Expect(out).To(ContainSubstring(pump.Name))
	_ = code

	// An unreachable server is named, with its context.
	_, stderr, code = plugin("--kubeconfig", kc, "--context", "down", "--request-timeout", "3s", "audit")
	g.Expect(code).To(Equal(1))
	g.Expect(stderr).To(ContainSubstring("https://127.0.0.1:1"))
	g.Expect(stderr).To(ContainSubstring("context down"))

	// version: the client, and the operator's Deployment when the cluster has one (it has none).
	out, stderr, code = plugin("--kubeconfig", kc, "version")
	g.Expect(code).To(Equal(0), stderr)
	g.Expect(out).To(ContainSubstring("Client Version:"))
	g.Expect(out).To(ContainSubstring("no medseg Deployment found"))

	// commission: a dry run writes nothing, client or server; a bare --dry-run is refused.
	vent := types.NamespacedName{Namespace: icu, Name: "patient-monitor-bed-12"}
	updateDevice(g, vent, func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].GatewayPort++ }) // onboarding again
	before := getDevice(g, vent).Spec.Commissioning.DeepCopy()
	out, stderr, code = plugin("--kubeconfig", kc, "commission", "-n", icu, "--ticket", "T1", vent.Name, "--dry-run=client", "--approved-by", "J. Rivera")
	g.Expect(code).To(Equal(0), stderr)
	g.Expect(out).To(ContainSubstring("would commission (dry run, client)"))
	_, stderr, code = plugin("--kubeconfig", kc, "commission", vent.Name, "--ticket", "T1", "--dry-run")
	g.Expect(code).To(Equal(1))
	g.Expect(stderr).To(ContainSubstring("--dry-run flag without a value"))
	g.Expect(getDevice(g, vent).Spec.Commissioning).To(Equal(before), "no dry run may write")

	// Server dry runs go through admission: install the protected-inputs policy and act as a
	// ward admin (denied, told who may) and as a commissioner (allowed, nothing persisted).
	installProtectedInputs(t, pump)
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "plugin-test-devices"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"medseg.io"}, Resources: []string{"medicaldevices"}, Verbs: []string{"get", "list", "patch", "update"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "plugin-test-devices"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "ward-admin"}, {Kind: "User", Name: "biomed-lead"}}}
	g.Expect(env.Client.Create(ctx, role)).To(Succeed())
	g.Expect(env.Client.Create(ctx, binding)).To(Succeed())
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), binding)
		_ = env.Client.Delete(context.Background(), role)
	})
	g.Eventually(func(g Gomega) {
		_, stderr, code := plugin("--kubeconfig", kc, "--as", "ward-admin", "commission", vent.Name, "--ticket", "T1", "--approved-by", "me", "--dry-run=server")
		g.Expect(code).To(Equal(1))
		g.Expect(stderr).To(ContainSubstring("only the configured commissioners"))
		g.Expect(stderr).To(ContainSubstring("medseg:commissioners"))
		g.Expect(stderr).To(ContainSubstring("protectedInputs.commissioners"))
	}, timeout, pollInterval).Should(Succeed())
	out, stderr, code = plugin("--kubeconfig", kc, "--as", "biomed-lead", "--as-group", "medseg:commissioners", "commission", vent.Name, "--ticket", "T1", "--approved-by", "B. Lead", "--dry-run=server")
	g.Expect(code).To(Equal(0), stderr)
	g.Expect(out).To(ContainSubstring("dry run, server"))
	g.Expect(getDevice(g, vent).Spec.Commissioning).To(Equal(before), "a server dry run persists nothing")

	// A real commission by the commissioner, flags after the argument.
	out, stderr, code = plugin("commission", vent.Name, "--kubeconfig", kc, "--ticket", "T2", "--approved-by", "B. Lead", "--as", "biomed-lead", "--as-group", "medseg:commissioners")
	g.Expect(code).To(Equal(0), stderr)
	g.Expect(out).To(ContainSubstring("commissioned:"))
	g.Expect(getDevice(g, vent).Spec.Commissioning.Ticket).To(Equal("T2"))
	_ = os.Remove(kc)
}
