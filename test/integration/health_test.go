package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/operator"
	"github.com/medseg/medseg/internal/testenv"
)

// argoHealth runs one of the chart's Argo CD health scripts (files/health) with gopher-lua, the
// interpreter Argo CD embeds, on an object as Argo CD passes it (the global obj), and returns the
// status and message the script returns.
func argoHealth(g Gomega, script string, kind string, obj client.Object) (string, string) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "charts", "medseg", "files", "health", script))
	g.Expect(err).NotTo(HaveOccurred())
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).NotTo(HaveOccurred())
	m["apiVersion"], m["kind"] = v1alpha1.GroupVersion.String(), kind
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, m))
	g.Expect(L.DoString(string(raw))).To(Succeed())
	ret, ok := L.Get(-1).(*lua.LTable)
	g.Expect(ok).To(BeTrue(), "the script returns a table")
	return ret.RawGetString("status").String(), ret.RawGetString("message").String()
}

// toLua converts JSON-like values to Lua values, as Argo CD does.
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case bool:
		return lua.LBool(x)
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case nil:
		return lua.LNil
	}
	return lua.LString("")
}

// TestHealthChecks runs the chart's Argo CD health scripts on objects the operator wrote and
// holds Flux's view (kstatus) of the same objects beside them: a converged device and policy
// are Healthy (Current); a device whose spec medseg has not observed yet is Progressing
// (InProgress); a device no policy governs is Degraded (Failed); a policy in Audit is Suspended;
// approvals follow their phase.
func TestHealthChecks(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	startOperator(t)
	const sfx = "-health"
	devices := applySamples(t, sfx)
	createGateways(t, devices)
	pump := types.NamespacedName{Namespace: "icu" + sfx, Name: "infusion-pump-bed-12"}
	g.Eventually(func(g Gomega) {
		d := getDevice(g, pump)
		g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonSegmented))
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		s, msg := argoHealth(g, "conditions.lua", "MedicalDevice", d)
		g.Expect(s).To(Equal("Healthy"), msg)
		g.Expect(kstatusOf(g, d)).To(Equal(status.CurrentStatus))
		var p v1alpha1.SegmentPolicy
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "critical-care" + sfx}, &p)).To(Succeed())
		g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
		s, msg = argoHealth(g, "conditions.lua", "SegmentPolicy", &p)
		g.Expect(s).To(Equal("Healthy"), msg)
		g.Expect(kstatusOf(g, &p)).To(Equal(status.CurrentStatus))
	}, timeout, pollInterval).Should(Succeed())

	// A spec change medseg has not observed yet: the object as Argo CD sees it between the
	// write and the reconcile.
	d := getDevice(g, pump)
	d.Generation++
	s, _ := argoHealth(g, "conditions.lua", "MedicalDevice", d)
	g.Expect(s).To(Equal("Progressing"))
	g.Expect(kstatusOf(g, d)).To(Equal(status.InProgressStatus))

	// A device no SegmentPolicy governs needs a person.
	g.Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ungoverned" + sfx,
		Labels: map[string]string{v1alpha1.LabelGatewayNamespace: "true"}}})).To(Succeed())
	stray := getDevice(g, pump).DeepCopy()
	stray.ObjectMeta = metav1.ObjectMeta{Name: "stray-pump", Namespace: "ungoverned" + sfx}
	stray.Spec.Network.Addresses = []string{"10.99.9.9"}
	stray.Spec.Commissioning = nil
	stray.Status = v1alpha1.MedicalDeviceStatus{}
	g.Expect(env.Client.Create(ctx, stray)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), stray) })
	g.Eventually(func(g Gomega) {
		d := getDevice(g, client.ObjectKeyFromObject(stray))
		g.Expect(segReason(d)).To(Equal(v1alpha1.ReasonNoSegmentPolicy))
		s, msg := argoHealth(g, "conditions.lua", "MedicalDevice", d)
		g.Expect(s).To(Equal("Degraded"))
		g.Expect(msg).To(ContainSubstring("NoSegmentPolicy"))
		g.Expect(kstatusOf(g, d)).To(Equal(status.FailedStatus))
	}, timeout, pollInterval).Should(Succeed())

	// A zone in Audit is a rollout stage, not a failure: Suspended for Argo CD, Current for Flux.
	updatePolicy(g, "diagnostics"+sfx, func(p *v1alpha1.SegmentPolicy) { p.Spec.Enforcement = v1alpha1.EnforcementAudit })
	g.Eventually(func(g Gomega) {
		var p v1alpha1.SegmentPolicy
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "diagnostics" + sfx}, &p)).To(Succeed())
		g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
		s, msg := argoHealth(g, "conditions.lua", "SegmentPolicy", &p)
		g.Expect(s).To(Equal("Suspended"), msg)
		g.Expect(msg).To(ContainSubstring("Audit"))
		g.Expect(kstatusOf(g, &p)).To(Equal(status.CurrentStatus))
	}, timeout, pollInterval).Should(Succeed())

	// Approvals: the sample exception is Active; a grant for a missing device is Ineffective; a
	// grant that opens later is Pending; one whose window closed is Expired.
	now := time.Now().UTC().Truncate(time.Second)
	pumpRef := v1alpha1.ObjectRef{Namespace: pump.Namespace, Name: pump.Name}
	for _, gr := range []v1alpha1.AccessGrant{
		accessGrant("health-missing", v1alpha1.ObjectRef{Namespace: "icu" + sfx, Name: "no-such-pump"}, "vendor-maintenance", now, time.Hour),
		accessGrant("health-later", pumpRef, "vendor-maintenance", now.Add(time.Hour), time.Hour),
		accessGrant("health-past", pumpRef, "vendor-maintenance", now.Add(-2*time.Hour), time.Hour),
	} {
		g.Expect(env.Client.Create(ctx, &gr)).To(Succeed())
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), &gr) })
	}
	g.Eventually(func(g Gomega) {
		var e v1alpha1.SegmentException
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: "nicu-camera-feed" + sfx}, &e)).To(Succeed())
		s, msg := argoHealth(g, "approval.lua", "SegmentException", &e)
		g.Expect(s).To(Equal("Healthy"), msg)
		for name, want := range map[string]string{"health-missing": "Degraded", "health-later": "Progressing", "health-past": "Suspended"} {
			var a v1alpha1.AccessGrant
			g.Expect(env.Client.Get(ctx, types.NamespacedName{Name: name}, &a)).To(Succeed())
			s, msg := argoHealth(g, "approval.lua", "AccessGrant", &a)
			g.Expect(s).To(Equal(want), "%s: %s", name, msg)
		}
	}, timeout, pollInterval).Should(Succeed())
}

// TestCheckInstall: what the chart's helm test runs. Against the real API server, with medseg's
// CRDs installed: a manager Deployment without a ready replica fails, with the reason; once its
// status reports one, the check passes.
func TestCheckInstall(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "check-install"}})).To(Succeed())
	labels := map[string]string{"app": "medseg"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "medseg", Namespace: "check-install"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "medseg:test"}}}}}}
	g.Expect(env.Client.Create(ctx, d)).To(Succeed())
	err := operator.CheckInstall(ctx, env.Client, "check-install", "medseg")
	g.Expect(err).To(MatchError(ContainSubstring("the manager Deployment check-install/medseg")))
	g.Expect(operator.CheckInstall(ctx, env.Client, "check-install", "absent")).To(MatchError(ContainSubstring("not found")))
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, ReadyReplicas: 1}
	g.Expect(env.Client.Status().Update(ctx, d)).To(Succeed())
	g.Expect(operator.CheckInstall(ctx, env.Client, "check-install", "medseg")).To(Succeed())
	g.Expect(operator.CheckInstallUntil(ctx, env.Config, "check-install", "medseg", time.Second)).To(Succeed())
}
