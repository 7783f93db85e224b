package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/controllers"
	"github.com/medseg/medseg/internal/operator"
)

// TestRiskSurvivesDeletion: a pump quarantined (OutOfCycle) for a known exploited vulnerability is deleted
// and created again without it, by its ward's administrator (impersonated; the administrator
// may edit devices in the ward, not medseg's namespace). The new object is held at the last
// known priority, in onboarding, until a feed writes to it; then its own inputs decide. The
// memory lives where the ward's administrator cannot write it.
func TestRiskSurvivesDeletion(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const memoryNS = "medseg-memory"
	g.Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: memoryNS}})).To(Succeed())
	runOperatorWith(t, func(c *operator.Config) { c.MemoryNamespace = memoryNS })
	key := adoptionHospital(t, "memory", nil, true)
	g.Expect(env.Client.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "ward-admin", Namespace: "memory"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"medseg.io"}, Resources: []string{"medicaldevices"}, Verbs: []string{"get", "create", "update", "patch", "delete"}}}})).To(Succeed())
	g.Expect(env.Client.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "ward-admin", Namespace: "memory"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "ward-admin"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "ward-admin"}}})).To(Succeed())
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "ward-admin", Groups: []string{"system:authenticated", "medseg:device-admins"}}
	ward, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())

	updatePolicy(g, "memory", func(p *v1alpha1.SegmentPolicy) { p.Spec.RiskResponse.OutOfCycle = v1alpha1.ModeQuarantine })
	edit := func(mutate func(*v1alpha1.MedicalDevice)) { // medseg writes status meanwhile: retry on conflict
		g.Eventually(func() error {
			var d v1alpha1.MedicalDevice
			if err := env.Client.Get(ctx, key, &d); err != nil {
				return err
			}
			mutate(&d)
			return env.Client.Update(ctx, &d)
		}, timeout, pollInterval).Should(Succeed())
	}
	edit(func(d *v1alpha1.MedicalDevice) {
		d.Spec.Vulnerabilities = []v1alpha1.Vulnerability{{ID: "CVE-2026-4242", KnownExploited: true, Automatable: true, CVSS: "9.8"}}
	})
	g.Eventually(func(g Gomega) {
		d := getDevice(g, key)
		g.Expect(d.Status.Risk).NotTo(BeNil())
		g.Expect(d.Status.Segmentation).NotTo(BeNil())
		g.Expect(d.Status.Risk.Priority).To(Equal(v1alpha1.PriorityOutOfCycle))
		g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeQuarantine))
		var cms corev1.ConfigMapList
		g.Expect(env.Client.List(ctx, &cms, client.InNamespace(memoryNS))).To(Succeed())
		found := false
		for _, cm := range cms.Items {
			found = found || strings.HasPrefix(cm.Data["memory_pump"], "OutOfCycle "+string(d.UID))
		}
		g.Expect(found).To(BeTrue(), "the memory holds the pump's priority")
	}, timeout, pollInterval).Should(Succeed())
	oldUID := getDevice(g, key).UID

	// The ward's administrator deletes the pump and creates it again without the vulnerability.
	fresh := getDevice(g, key)
	g.Expect(ward.Delete(ctx, fresh)).To(Succeed())
	g.Eventually(func() bool {
		var gone v1alpha1.MedicalDevice
		return env.Client.Get(ctx, key, &gone) != nil
	}, timeout, pollInterval).Should(BeTrue())
	again := &v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}, Spec: *fresh.Spec.DeepCopy()}
	again.Spec.Vulnerabilities, again.Spec.Commissioning = nil, nil
	g.Expect(ward.Create(ctx, again)).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := getDevice(g, key)
		g.Expect(d.UID).NotTo(Equal(oldUID))
		g.Expect(d.Status.Risk).NotTo(BeNil())
		g.Expect(d.Status.Segmentation).NotTo(BeNil())
		g.Expect(d.Status.Risk.Priority).To(Equal(v1alpha1.PriorityOutOfCycle), d.Status.Risk.Summary)
		g.Expect(d.Status.Risk.Summary).To(ContainSubstring("held at the last known priority of this device before it was deleted and created again"))
		g.Expect(d.Status.Segmentation.Mode).To(Equal(v1alpha1.ModeQuarantine))
		g.Expect(d.Status.Segmentation.Onboarding).To(BeTrue(), "a recreated device starts in onboarding")
	}, timeout, pollInterval).Should(Succeed())

	// The memory is not the ward's to change.
	var cms corev1.ConfigMapList
	g.Expect(env.Client.List(ctx, &cms, client.InNamespace(memoryNS))).To(Succeed())
	g.Expect(cms.Items).NotTo(BeEmpty())
	forged := cms.Items[0].DeepCopy()
	forged.Data = map[string]string{}
	err = ward.Update(ctx, forged)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("forbidden"))

	// A feed writes to the new object (VEX: the vulnerability is fixed in its firmware): from
	// then on its own inputs decide.
	edit(func(d *v1alpha1.MedicalDevice) {
		d.Annotations = map[string]string{v1alpha1.FeedAnnotationPrefix + "vex": fmt.Sprintf("%s test-mirror", time.Now().UTC().Add(time.Second).Format(time.RFC3339))}
		d.Spec.Vulnerabilities = []v1alpha1.Vulnerability{{ID: "CVE-2026-4242", Status: v1alpha1.VulnFixed}}
	})
	g.Eventually(func(g Gomega) {
		d := getDevice(g, key)
		g.Expect(d.Status.Risk.Priority).To(Equal(v1alpha1.PriorityDefer), d.Status.Risk.Summary)
		var cms corev1.ConfigMapList
		g.Expect(env.Client.List(ctx, &cms, client.InNamespace(memoryNS))).To(Succeed())
		for _, cm := range cms.Items {
			g.Expect(cm.Data).NotTo(HaveKey("memory_pump"), "at Defer the entry goes")
		}
	}, timeout, pollInterval).Should(Succeed())
}

// TestRiskMemoryShardDeletedByHand: a memory shard deleted by hand is written again by the next
// flush, with every entry the leader remembers, rather than failing at every flush.
func TestRiskMemoryShardDeletedByHand(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const ns = "medseg-memory-flush"
	g.Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	m := &controllers.RiskMemory{Client: env.Client, Reader: env.Client, Namespace: ns}
	dev := &v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Namespace: "icu", Name: "pump-7", UID: "uid-7"}}
	now := time.Now()
	g.Expect(m.Remember(ctx, dev, v1alpha1.PriorityOutOfCycle, now)).To(Succeed())
	g.Expect(m.Flush(ctx)).To(Succeed())
	var cms corev1.ConfigMapList
	g.Expect(env.Client.List(ctx, &cms, client.InNamespace(ns))).To(Succeed())
	g.Expect(cms.Items).To(HaveLen(1))
	shard := cms.Items[0]

	g.Expect(env.Client.Delete(ctx, &shard)).To(Succeed())
	g.Expect(m.Remember(ctx, dev, v1alpha1.PriorityImmediate, now)).To(Succeed())
	g.Expect(m.Flush(ctx)).To(Succeed(), "the flush writes the shard again")
	var again corev1.ConfigMap
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&shard), &again)).To(Succeed())
	g.Expect(again.Data).To(ContainElement(HavePrefix("Immediate uid-7 ")))
	floor, err := (&controllers.RiskMemory{Client: env.Client, Reader: env.Client, Namespace: ns}).Recall(ctx, "icu", "pump-7")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(floor).NotTo(BeNil())
	g.Expect(floor.Priority).To(Equal(v1alpha1.PriorityImmediate), "a new leader reads it back")
}
