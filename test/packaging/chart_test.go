package packaging

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/medseg/medseg/internal/manifest"
	"github.com/medseg/medseg/internal/testenv"
)

func chartDir() string { return filepath.Join(testenv.RepoRoot(), "charts", "medseg") }

// helmTemplate renders the chart with --set values; it returns the objects or helm's error.
func helmTemplate(t *testing.T, set ...string) ([]*unstructured.Unstructured, string, error) {
	t.Helper()
	args := []string{"template", "medseg", chartDir(), "-n", "medseg-system", "--kube-version", "1.36.0"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, errOut.String(), err
	}
	objs, err := manifest.Decode("helm-template", &out)
	if err != nil {
		t.Fatal(err)
	}
	var us []*unstructured.Unstructured
	for _, o := range objs {
		us = append(us, o.Object)
	}
	return us, "", nil
}

func byKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func TestChartDefaults(t *testing.T) {
	objs, stderr, err := helmTemplate(t)
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	crds := byKind(objs, "CustomResourceDefinition")
	if len(crds) != 4 {
		t.Fatalf("want 4 CRDs (MedicalDevice, SegmentPolicy, SegmentException, AccessGrant), got %d", len(crds))
	}
	for _, c := range crds {
		if c.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s lacks helm.sh/resource-policy: keep", c.GetName())
		}
	}
	deps := byKind(objs, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("want one Deployment, got %d", len(deps))
	}
	pod, _, _ := unstructured.NestedMap(deps[0].Object, "spec", "template", "spec")
	c := pod["containers"].([]any)[0].(map[string]any)
	if c["image"] != "ghcr.io/medseg/medseg:0.1.0" {
		t.Errorf("image defaults to the appVersion tag, got %v", c["image"])
	}
	sc := c["securityContext"].(map[string]any)
	want := map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
		"capabilities": map[string]any{"drop": []any{"ALL"}}}
	if !reflect.DeepEqual(sc, want) {
		t.Errorf("container securityContext = %v, want restricted %v", sc, want)
	}
	if ps := pod["securityContext"].(map[string]any); ps["seccompProfile"].(map[string]any)["type"] != "RuntimeDefault" || ps["runAsNonRoot"] != true {
		t.Errorf("pod securityContext = %v", ps)
	}
	if args := strings.Join(toStrings(c["args"]), " "); !strings.Contains(args, "--leader-elect=true") {
		t.Errorf("leader election must be on by default: %s", args)
	}
	for _, k := range []string{"ServiceMonitor", "CiliumNetworkPolicy"} {
		if len(byKind(objs, k)) != 0 {
			t.Errorf("%s must be opt-in", k)
		}
	}
	if len(byKind(objs, "PodDisruptionBudget")) != 1 {
		t.Error("with two replicas (the default) a PodDisruptionBudget must be on")
	}
	// Least privilege: no wildcards, no secrets, only the API groups medseg needs.
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, r := range byKind(objs, kind) {
			hook := r.GetAnnotations()["helm.sh/hook"] == "test" // helm test: reads the CRDs and the Deployment by name
			var role rbacv1.ClusterRole
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(r.Object, &role); err != nil {
				t.Fatal(err)
			}
			for _, rule := range role.Rules {
				for _, x := range append(append(append([]string{}, rule.Verbs...), rule.Resources...), rule.APIGroups...) {
					if x == "*" {
						t.Errorf("%s %s has a wildcard: %+v", kind, r.GetName(), rule)
					}
				}
				for _, res := range rule.Resources {
					// The risk memory: ConfigMaps of medseg's own namespace, read by name and
					// written; never listed or watched, and never cluster-wide.
					memory := res == "configmaps" && kind == "Role" && !slices.Contains(rule.Verbs, "list") && !slices.Contains(rule.Verbs, "watch")
					if res == "secrets" || res == "configmaps" && !memory {
						t.Errorf("%s %s may read %s", kind, r.GetName(), res)
					}
				}
				for _, g := range rule.APIGroups {
					switch g {
					case "", "medseg.io", "cilium.io", "networking.k8s.io", "events.k8s.io", "coordination.k8s.io":
					case "authentication.k8s.io", "authorization.k8s.io":
						// the metrics endpoint's authentication: create TokenReviews and SubjectAccessReviews only
						if !slices.Equal(rule.Verbs, []string{"create"}) {
							t.Errorf("%s %s may %v in %q", kind, r.GetName(), rule.Verbs, g)
						}
					case "apps", "apiextensions.k8s.io":
						if !hook || len(rule.ResourceNames) == 0 || !slices.Equal(rule.Verbs, []string{"get"}) {
							t.Errorf("%s %s reaches API group %q", kind, r.GetName(), g)
						}
					default:
						t.Errorf("%s %s reaches API group %q", kind, r.GetName(), g)
					}
				}
			}
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestChartCustomValues(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	objs, stderr, err := helmTemplate(t,
		"image.repository=registry.hospital.local/medseg", "image.digest="+digest, "replicas=3",
		"nodeSelector.zone=secure", "tolerations[0].key=dedicated", "tolerations[0].operator=Exists",
		"priorityClassName=system-cluster-critical", "extraLabels.owner=platform", "extraAnnotations.ticket=CHG-1",
		"podDisruptionBudget.enabled=true", "serviceMonitor.enabled=true", "networkPolicy.enabled=true",
		"watchNamespaces={icu,nicu}", "crds.keep=false", "leaderElection.enabled=false")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	dep := byKind(objs, "Deployment")[0]
	pod, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec")
	c := pod["containers"].([]any)[0].(map[string]any)
	if c["image"] != "registry.hospital.local/medseg@"+digest {
		t.Errorf("digest must pin the image: %v", c["image"])
	}
	if r, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); r != 3 {
		t.Errorf("replicas = %d", r)
	}
	args := strings.Join(toStrings(c["args"]), " ")
	for _, want := range []string{"--watch-namespaces=icu,nicu", "--leader-elect=false"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if pod["priorityClassName"] != "system-cluster-critical" || pod["nodeSelector"].(map[string]any)["zone"] != "secure" || len(pod["tolerations"].([]any)) != 1 {
		t.Errorf("scheduling values not applied: %v", pod)
	}
	for _, o := range objs {
		if o.GetLabels()["owner"] != "platform" {
			t.Errorf("%s %s lacks the extra label", o.GetKind(), o.GetName())
		}
		if o.GetKind() != "CustomResourceDefinition" && o.GetAnnotations()["ticket"] != "CHG-1" {
			t.Errorf("%s %s lacks the extra annotation", o.GetKind(), o.GetName())
		}
		if o.GetKind() == "CustomResourceDefinition" && o.GetAnnotations()["helm.sh/resource-policy"] != "" {
			t.Errorf("crds.keep=false must drop the keep annotation")
		}
	}
	for _, k := range []string{"PodDisruptionBudget", "ServiceMonitor", "Service", "CiliumNetworkPolicy"} {
		if len(byKind(objs, k)) != 1 {
			t.Errorf("want one %s", k)
		}
	}
	noCRDs, _, err := helmTemplate(t, "crds.enabled=false")
	if err != nil || len(byKind(noCRDs, "CustomResourceDefinition")) != 0 {
		t.Errorf("crds.enabled=false must render no CRD (err %v)", err)
	}
}

func TestChartSchemaRejectsBadValues(t *testing.T) {
	cases := map[string]string{
		"replicas=0":                      "/replicas",
		"replicas=many":                   "/replicas",
		"image.digest=md5:abc":            "/image/digest",
		"image.pullPolicy=Sometimes":      "/image/pullPolicy",
		"image.tag=bad tag":               "/image/tag",
		"workers.devices=0":               "/workers/devices",
		"logLevel=loud":                   "/logLevel",
		"watchNamespaces={ICU}":           "/watchNamespaces/0",
		"serviceMonitor.interval=often":   "/serviceMonitor/interval",
		"podDisruptionBudget.enabled=yes": "/podDisruptionBudget/enabled",
		"typo=1":                          "typo",
		"crds.keeep=true":                 "keeep",
	}
	for set, path := range cases {
		t.Run(set, func(t *testing.T) {
			_, stderr, err := helmTemplate(t, set)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(stderr, path) {
				t.Errorf("error does not name %s:\n%s", path, stderr)
			}
		})
	}
}

// TestChartManifestsPassServerSideDryRun applies every rendered object (every option on, except
// the ServiceMonitor whose CRD the test server lacks) with server-side apply in dry-run mode, so
// the API server validates them.
func TestChartManifestsPassServerSideDryRun(t *testing.T) {
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "medseg-dryrun"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	objs, stderr, err := helmTemplate(t, "podDisruptionBudget.enabled=true", "networkPolicy.enabled=true", "extraAnnotations.a=b",
		"feeds.enabled=true", "feeds.kev.sources={https://mirror.hospital.local/kev.json}", "feeds.vex.sources={/feeds/vex}",
		"feeds.vex.products[0].manufacturer=Acme", "feeds.vex.products[0].model=M", "feeds.vex.products[0].vendor=Acme", "feeds.vex.products[0].product=P",
		"feeds.volume.persistentVolumeClaim.claimName=feeds")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	for _, o := range objs {
		if o.GetNamespace() != "" {
			o.SetNamespace("medseg-dryrun")
		}
		if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("helm-test"), client.ForceOwnership, client.DryRunAll); err != nil {
			t.Errorf("%s %s rejected by the API server: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

// TestChartAndKustomizeAgree: the chart's CRDs and ClusterRole rules are those of config/.
func TestChartAndKustomizeAgree(t *testing.T) {
	objs, stderr, err := helmTemplate(t)
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	out, err := exec.Command(kustomize, "build", filepath.Join(testenv.RepoRoot(), "config", "default")).Output()
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	kobjs, err := manifest.Decode("kustomize", bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var kus []*unstructured.Unstructured
	for _, o := range kobjs {
		kus = append(kus, o.Object)
	}
	for _, name := range []string{"medicaldevices.medseg.io", "segmentpolicies.medseg.io", "segmentexceptions.medseg.io", "accessgrants.medseg.io"} {
		var a, b any
		for _, o := range byKind(objs, "CustomResourceDefinition") {
			if o.GetName() == name {
				a = o.Object["spec"]
			}
		}
		for _, o := range byKind(kus, "CustomResourceDefinition") {
			if o.GetName() == name {
				b = o.Object["spec"]
			}
		}
		if a == nil || b == nil || !reflect.DeepEqual(a, b) {
			t.Errorf("CRD %s differs between chart and config/", name)
		}
	}
	rules := func(os []*unstructured.Unstructured, suffix string) any {
		for _, o := range byKind(os, "ClusterRole") {
			if strings.HasSuffix(o.GetName(), suffix) {
				return o.Object["rules"]
			}
		}
		return nil
	}
	for _, role := range []string{"-manager", ":approvers", ":policy-editors"} {
		if a, b := rules(objs, role), rules(kus, role); a == nil || !reflect.DeepEqual(a, b) {
			t.Errorf("ClusterRole *%s rules differ between chart and config/:\nchart %v\nconfig %v", role, a, b)
		}
	}
	specsOf := func(os []*unstructured.Unstructured, kind string) map[string]any {
		out := map[string]any{}
		for _, o := range byKind(os, kind) {
			out[o.GetName()] = o.Object["spec"]
		}
		return out
	}
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if a, b := specsOf(objs, kind), specsOf(kus, kind); len(a) != 3 || !reflect.DeepEqual(a, b) {
			t.Errorf("%s differs between chart and config/ (%d in the chart)", kind, len(a))
		}
	}
	for _, k := range []string{"Deployment", "ServiceAccount", "ClusterRoleBinding", "Role", "RoleBinding"} {
		if len(byKind(kus, k)) != 1 {
			t.Errorf("config/default lacks a %s", k)
		}
	}
}

// TestInstallUpgradeUninstallKeepsCustomResources drives helm against the test API server:
// install, create custom resources, upgrade with changed values, uninstall. CRDs and custom
// resources survive all of it.
func TestInstallUpgradeUninstallKeepsCustomResources(t *testing.T) {
	ctx := context.Background()
	user, err := env.Env.AddUser(envtestAdmin(), nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	helmRun := func(args ...string) {
		t.Helper()
		cmd := exec.Command(helm, append(args, "--kubeconfig", kcPath)...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helm %v: %v\n%s", args, err, out)
		}
	}
	helmRun("install", "medseg", chartDir(), "-n", "medseg-system", "--create-namespace", "--set", "replicas=2")

	pol := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`apiVersion: medseg.io/v1alpha1
kind: SegmentPolicy
metadata: {name: upgrade-test}
spec: {enforcement: Audit, deviceNetworks: ["10.50.0.0/16"]}`), &pol.Object); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, pol); err != nil {
		t.Fatalf("the installed CRD must accept a SegmentPolicy: %v", err)
	}

	helmRun("upgrade", "medseg", chartDir(), "-n", "medseg-system", "--set", "replicas=3", "--set", "workers.devices=8")
	dep := &unstructured.Unstructured{}
	dep.SetAPIVersion("apps/v1")
	dep.SetKind("Deployment")
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "medseg-system", Name: "medseg"}, dep); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); r != 3 {
		t.Errorf("upgrade did not apply replicas=3: %d", r)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "upgrade-test"}, pol.DeepCopy()); err != nil {
		t.Errorf("the SegmentPolicy must survive the upgrade: %v", err)
	}

	helmRun("uninstall", "medseg", "-n", "medseg-system")
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "upgrade-test"}, pol.DeepCopy()); err != nil {
		t.Errorf("the SegmentPolicy must survive the uninstall (CRDs kept): %v", err)
	}
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "medicaldevices.medseg.io"}, crd); err != nil {
		t.Errorf("the MedicalDevice CRD must be kept: %v", err)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "medseg-system", Name: "medseg"}, dep); !apierrors.IsNotFound(err) {
		t.Errorf("the Deployment must be gone after uninstall: %v", err)
	}
}

// TestChartFeeds: with feeds on, one CronJob per feed with sources, running kubectl-medseg feed
// --apply under a ServiceAccount that may only read and patch MedicalDevices, in a restricted pod,
// and admitted by the protected-inputs policy as a risk-input writer.
func TestChartFeeds(t *testing.T) {
	objs, stderr, err := helmTemplate(t, "feeds.enabled=true", "feeds.kev.sources={https://mirror.hospital.local/kev.json}",
		"feeds.epss.sources={/feeds/epss_scores-current.csv.gz}", "feeds.volume.configMap.name=feed-files")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	jobs := byKind(objs, "CronJob")
	if len(jobs) != 2 || jobs[0].GetName() != "medseg-feed-kev" || jobs[1].GetName() != "medseg-feed-epss" {
		t.Fatalf("want the kev and epss CronJobs (no VEX sources), got %d", len(jobs))
	}
	pod, _, _ := unstructured.NestedMap(jobs[0].Object, "spec", "jobTemplate", "spec", "template", "spec")
	if pod["serviceAccountName"] != "medseg-feeds" {
		t.Errorf("service account %v", pod["serviceAccountName"])
	}
	c := pod["containers"].([]any)[0].(map[string]any)
	if got := strings.Join(toStrings(c["command"]), " ") + " " + strings.Join(toStrings(c["args"]), " "); got != "/kubectl-medseg feed kev --filename=https://mirror.hospital.local/kev.json --apply --output=json" {
		t.Errorf("command %q", got)
	}
	sc := c["securityContext"].(map[string]any)
	if sc["allowPrivilegeEscalation"] != false || sc["readOnlyRootFilesystem"] != true || sc["runAsNonRoot"] != true {
		t.Errorf("container security context is not restricted: %v", sc)
	}
	if psc := pod["securityContext"].(map[string]any); psc["seccompProfile"].(map[string]any)["type"] != "RuntimeDefault" {
		t.Errorf("pod security context: %v", psc)
	}
	var role *unstructured.Unstructured
	for _, r := range byKind(objs, "ClusterRole") {
		if r.GetName() == "medseg-feeds" {
			role = r
		}
	}
	if role == nil {
		t.Fatal("no medseg-feeds ClusterRole")
	}
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	if len(rules) != 1 || strings.Join(toStrings(rules[0].(map[string]any)["resources"]), ",") != "medicaldevices" ||
		strings.Join(toStrings(rules[0].(map[string]any)["verbs"]), ",") != "get,list,patch" {
		t.Errorf("the feeds may only read and patch MedicalDevices: %v", rules)
	}
	vap := byKind(objs, "ValidatingAdmissionPolicy")[0]
	vars, _, _ := unstructured.NestedSlice(vap.Object, "spec", "variables")
	if !strings.Contains(vars[0].(map[string]any)["expression"].(string), "'system:serviceaccount:medseg-system:medseg-feeds'") {
		t.Errorf("the feeds' ServiceAccount is not a protected-inputs writer: %v", vars[0])
	}
	if _, stderr, err := helmTemplate(t, "feeds.enabled=true", "feeds.vex.products[0].manufacturer=Acme"); err == nil || !strings.Contains(stderr, "model") {
		t.Errorf("an incomplete product mapping must be refused by the schema: %v %s", err, stderr)
	}
}

// TestChartExtensibility renders the values a platform team sets in a typical hospital cluster:
// private-registry pull secrets (its own and a parent chart's global ones), an existing
// ServiceAccount, extra arguments, environment and volumes, pod labels, log format, client
// limits; a second release gets its own admission policy names; bad values fail at the schema.
func TestChartExtensibility(t *testing.T) {
	objs, stderr, err := helmTemplate(t, "global.imagePullSecrets[0]=regcred", "imagePullSecrets[0].name=own",
		"serviceAccount.create=false", "serviceAccount.name=existing", "extraArgs[0]=--traffic-window=12h",
		"extraEnv[0].name=HTTPS_PROXY", "extraEnv[0].value=http://proxy:3128", "extraVolumes[0].name=ca", "extraVolumes[0].configMap.name=hospital-ca",
		"extraVolumeMounts[0].name=ca", "extraVolumeMounts[0].mountPath=/etc/ssl/hospital", "podLabels.team=platform",
		"logFormat=console", "kubeAPI.qps=50", "kubeAPI.burst=100", "global.someParentValue=x")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	dep := byKind(objs, "Deployment")[0]
	pod, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec")
	raw, _ := json.Marshal(pod)
	for _, want := range []string{`"imagePullSecrets":[{"name":"regcred"},{"name":"own"}]`, `"serviceAccountName":"existing"`, `"--traffic-window=12h"`,
		`"--zap-encoder=console"`, `"--kube-api-qps=50"`, `"--kube-api-burst=100"`, `{"name":"HTTPS_PROXY","value":"http://proxy:3128"}`,
		`"mountPath":"/etc/ssl/hospital"`, `"configMap":{"name":"hospital-ca"}`, `"topologySpreadConstraints"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the manager pod lacks %s:\n%s", want, raw)
		}
	}
	if lbls, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "template", "metadata", "labels"); lbls["team"] != "platform" {
		t.Errorf("pod labels %v", lbls)
	}
	for _, sa := range byKind(objs, "ServiceAccount") {
		if sa.GetAnnotations()["helm.sh/hook"] == "" {
			t.Errorf("serviceAccount.create=false must not create %s", sa.GetName())
		}
	}
	other, stderr, err := helmTemplate(t, "nameOverride=x")
	if err == nil || !strings.Contains(stderr, "nameOverride") {
		t.Errorf("unknown values must fail at the schema: %v %s", len(other), stderr)
	}
	for _, bad := range []string{"logLevel=0", "logFormat=xml", "kubeAPI.qps=0"} {
		if _, stderr, err := helmTemplate(t, bad); err == nil {
			t.Errorf("%s must fail at the schema", bad)
		} else if !strings.Contains(stderr, strings.Split(strings.Split(bad, "=")[0], ".")[0]) {
			t.Errorf("%s: the error must name the value: %s", bad, stderr)
		}
	}
	one, _, err := helmTemplate(t, "replicas=1")
	if err != nil {
		t.Fatal(err)
	}
	if len(byKind(one, "PodDisruptionBudget")) != 0 {
		t.Error("one replica: a PodDisruptionBudget would block node drains")
	}
	args := []string{"template", "second", chartDir(), "-n", "medseg-2", "--kube-version", "1.36.0"}
	out, err := exec.Command(helm, args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	second, err := manifest.Decode("second", bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range second {
		if k := o.Object.GetKind(); (k == "ValidatingAdmissionPolicy" || k == "ValidatingAdmissionPolicyBinding" || k == "ClusterRole") &&
			!strings.HasPrefix(o.Object.GetName(), "second") {
			t.Errorf("cluster-scoped %s %s does not carry the release name: two releases would collide", k, o.Object.GetName())
		}
	}
}
