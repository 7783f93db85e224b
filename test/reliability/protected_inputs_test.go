package reliability

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/manifest"
	"github.com/medseg/medseg/internal/testenv"
)

// TestRiskInputsOnlyFromTrustedIdentities installs the ValidatingAdmissionPolicy that config/ and
// the chart ship, and acts as a namespace editor and as a scanner (impersonation): the editor
// cannot mark a vulnerability NotAffected or drop a detection, and is told which field; the
// editor can still change other fields; the scanner, in the trusted group, can change both.
func TestRiskInputsOnlyFromTrustedIdentities(t *testing.T) {
	ctx := context.Background()
	objs, err := manifest.Read([]string{filepath.Join(testenv.RepoRoot(), "config", "admission", "protected-inputs.yaml")}, nil)
	must(t, err)
	for _, o := range objs {
		must(t, env.Client.Create(ctx, o.Object))
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o.Object) })
	}
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "inputs"}}))
	d := device("pump", "inputs", "10.48.0.1")
	d.Spec.Vulnerabilities = []v1alpha1.Vulnerability{{ID: "CVE-2026-1", KnownExploited: true}}
	d.Spec.Detections = []v1alpha1.Detection{{Source: "mdr", Type: "C2Beacon", ObservedAt: metav1.Now()}}
	must(t, env.Client.Create(ctx, d))
	must(t, env.Client.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "edit-devices", Namespace: "inputs"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"medseg.io"}, Resources: []string{"medicaldevices"}, Verbs: []string{"get", "create", "update", "patch"}}}}))
	must(t, env.Client.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "edit-devices", Namespace: "inputs"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "edit-devices"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "ward-admin"}, {Kind: "User", Name: "scanner-bot"}, {Kind: "User", Name: "biomed-lead"}}}))

	as := func(user string, groups ...string) client.Client {
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
		c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
		must(t, err)
		return c
	}
	editor, scanner, commissioner := as("ward-admin"), as("scanner-bot", "medseg:risk-feeds"), as("biomed-lead", "medseg:commissioners")
	update := func(c client.Client, mutate func(*v1alpha1.MedicalDevice), opts ...client.UpdateOption) error {
		var cur v1alpha1.MedicalDevice
		if err := c.Get(ctx, types.NamespacedName{Namespace: "inputs", Name: "pump"}, &cur); err != nil {
			return err
		}
		mutate(&cur)
		return c.Update(ctx, &cur, opts...)
	}
	lowerRisk := func(d *v1alpha1.MedicalDevice) { d.Spec.Vulnerabilities[0].Status = v1alpha1.VulnNotAffected }

	// The policy takes effect once the API server has loaded it: probe with dry-run updates,
	// which run admission without changing anything.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := update(editor, lowerRisk, client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), "spec.vulnerabilities is a risk input") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want a denial naming spec.vulnerabilities, got %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := update(editor, lowerRisk); err == nil || !strings.Contains(err.Error(), "spec.vulnerabilities is a risk input") {
		t.Fatalf("a namespace editor marked a vulnerability NotAffected: %v", err)
	}
	if err := update(editor, func(d *v1alpha1.MedicalDevice) { d.Spec.Detections = nil }); err == nil || !strings.Contains(err.Error(), "spec.detections is a risk input") {
		t.Errorf("a namespace editor dropped a detection: %v", err)
	}
	if err := update(editor, func(d *v1alpha1.MedicalDevice) { d.Spec.Identity.FirmwareVersion = "4.3.0" }); err != nil {
		t.Errorf("the editor must still edit the rest of the device: %v", err)
	}
	if err := update(scanner, lowerRisk); err != nil {
		t.Errorf("the scanner must be able to write vulnerabilities: %v", err)
	}
	if err := update(scanner, func(d *v1alpha1.MedicalDevice) { d.Spec.Detections[0].Status = v1alpha1.DetectionResolved }); err != nil {
		t.Errorf("monitoring must be able to resolve a detection: %v", err)
	}

	// Commissioning: only commissioners approve flows, on update and on create.
	commission := func(d *v1alpha1.MedicalDevice) {
		d.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: "biomed-lead", ApprovedAt: metav1.Now(), Ticket: "CHG-9", FlowsHash: v1alpha1.FlowsHash(d.Spec.Flows)}
	}
	const commissionDenied = "spec.commissioning approves the device's flows for clinical use: only the configured commissioners may set or change it"
	if err := update(editor, commission); err == nil || !strings.Contains(err.Error(), commissionDenied) {
		t.Errorf("a namespace editor commissioned a device: %v", err)
	}
	if err := update(scanner, commission); err == nil || !strings.Contains(err.Error(), commissionDenied) {
		t.Errorf("a scanner commissioned a device: %v", err)
	}
	if err := update(commissioner, commission); err != nil {
		t.Errorf("a commissioner must be able to commission: %v", err)
	}
	if err := update(editor, func(d *v1alpha1.MedicalDevice) { d.Spec.Commissioning.FlowsHash = v1alpha1.FlowsHash(nil) }); err == nil || !strings.Contains(err.Error(), commissionDenied) {
		t.Errorf("a namespace editor re-approved changed flows: %v", err)
	}
	if err := update(editor, func(d *v1alpha1.MedicalDevice) { d.Spec.Commissioning = nil }); err == nil || !strings.Contains(err.Error(), commissionDenied) {
		t.Errorf("a namespace editor removed the commissioning record: %v", err)
	}
	// The editor may still change flows (the device then falls back to onboarding).
	if err := update(editor, func(d *v1alpha1.MedicalDevice) { d.Spec.Flows[0].GatewayPort = 8444 }); err != nil {
		t.Errorf("the editor must still be able to change flows: %v", err)
	}
	fresh := device("monitor", "inputs", "10.48.0.2")
	commission(fresh)
	if err := editor.Create(ctx, fresh.DeepCopy()); err == nil || !strings.Contains(err.Error(), commissionDenied) {
		t.Errorf("a namespace editor created a device already commissioned, skipping onboarding: %v", err)
	}
	fresh.Spec.Commissioning = nil
	fresh.Spec.Vulnerabilities = []v1alpha1.Vulnerability{{ID: "CVE-2026-2"}}
	if err := editor.Create(ctx, fresh); err != nil {
		t.Errorf("a namespace editor must be able to create an uncommissioned device with risk inputs: %v", err)
	}
}

// TestApprovedByIsTheRequester installs the medseg-approvals admission policy (with a GitOps
// identity configured) and acts, by impersonation, as an approver, as another approver, and as
// the GitOps controller: approvedBy must name the requesting user, a second approver who
// changes the window must put their own name, a label edit leaves it alone, and only the
// GitOps identity may name someone else (the Git review was the approval).
func TestApprovedByIsTheRequester(t *testing.T) {
	ctx := context.Background()
	objs, err := manifest.Read([]string{filepath.Join(testenv.RepoRoot(), "config", "admission", "protected-inputs.yaml")}, nil)
	must(t, err)
	const gitops = "system:serviceaccount:argocd:argocd-application-controller"
	for _, o := range objs {
		if o.Object.GetKind() != "ValidatingAdmissionPolicy" && o.Object.GetKind() != "ValidatingAdmissionPolicyBinding" || o.Object.GetName() != "medseg-approvals" {
			continue
		}
		if o.Object.GetKind() == "ValidatingAdmissionPolicy" {
			vars, _, _ := unstructured.NestedSlice(o.Object.Object, "spec", "variables")
			v := vars[0].(map[string]any)
			v["expression"] = strings.Replace(v["expression"].(string), "request.userInfo.username in []", "request.userInfo.username in ['"+gitops+"']", 1)
			must(t, unstructured.SetNestedSlice(o.Object.Object, vars, "spec", "variables"))
		}
		must(t, env.Client.Create(ctx, o.Object))
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o.Object) })
	}
	must(t, env.Client.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test-approvers"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"medseg.io"}, Resources: []string{"segmentexceptions", "accessgrants"}, Verbs: []string{"get", "create", "update", "patch"}}}}))
	must(t, env.Client.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-approvers"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "test-approvers"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "dr-okafor"}, {Kind: "User", Name: "dr-chen"}, {Kind: "User", Name: gitops}}}))
	as := func(user string) client.Client {
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
		c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
		must(t, err)
		return c
	}
	okafor, chen, argo := as("dr-okafor"), as("dr-chen"), as(gitops)
	exception := func(name, approvedBy string) *v1alpha1.SegmentException {
		now := time.Now().UTC().Truncate(time.Second)
		return &v1alpha1.SegmentException{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.SegmentExceptionSpec{MaxMode: v1alpha1.ModeRestricted,
			Approval: v1alpha1.Approval{Device: v1alpha1.ObjectRef{Namespace: "icu", Name: "pump"}, ApprovedBy: approvedBy, Ticket: "CAB-1", Justification: "feed needed",
				NotBefore: metav1.NewTime(now), NotAfter: metav1.NewTime(now.Add(time.Hour))}}}
	}
	const denied = "spec.approvedBy must be you, as the API server knows you (dr-okafor)"
	deadline := time.Now().Add(30 * time.Second)
	for { // the policy takes effect once the API server loaded it (this version of it)
		err := okafor.Create(ctx, exception("probe", "someone-else"), client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), denied) && argo.Create(ctx, exception("probe", "someone-else"), client.DryRunAll) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want a denial naming approvedBy, got %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	mine := exception("okafor-feed", "dr-okafor")
	if err := okafor.Create(ctx, mine); err != nil {
		t.Fatalf("an approver must be able to approve in their own name: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), mine) })
	if err := okafor.Create(ctx, exception("chief-feed", "Dr. Chief")); err == nil || !strings.Contains(err.Error(), denied) {
		t.Errorf("an approver approved in someone else's name: %v", err)
	}
	update := func(c client.Client, mutate func(*v1alpha1.SegmentException)) error {
		var cur v1alpha1.SegmentException
		if err := c.Get(ctx, types.NamespacedName{Name: "okafor-feed"}, &cur); err != nil {
			return err
		}
		mutate(&cur)
		return c.Update(ctx, &cur)
	}
	extend := func(e *v1alpha1.SegmentException) { e.Spec.NotAfter = metav1.NewTime(e.Spec.NotAfter.Add(time.Hour)) }
	if err := update(chen, extend); err == nil || !strings.Contains(err.Error(), "spec.approvedBy must be you, as the API server knows you (dr-chen)") {
		t.Errorf("a second approver extended the window under the first one's name: %v", err)
	}
	if err := update(chen, func(e *v1alpha1.SegmentException) { extend(e); e.Spec.ApprovedBy = "dr-chen" }); err != nil {
		t.Errorf("a second approver must be able to extend the window in their own name: %v", err)
	}
	if err := update(okafor, func(e *v1alpha1.SegmentException) { e.Labels = map[string]string{"ward": "nicu"} }); err != nil {
		t.Errorf("a label edit leaves the approval alone and must pass: %v", err)
	}
	fromGit := exception("git-feed", "Dr. Chief (reviewed in MR !42)")
	if err := argo.Create(ctx, fromGit); err != nil {
		t.Errorf("the GitOps identity applies what Git review approved: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), fromGit) })
}
