package reliability

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/testenv"
)

// eventuallyCan waits until a permission that was just granted is visible to the API server's
// RBAC authorizer, which reads bindings from its own informer.
func eventuallyCan(t *testing.T, user string, groups []string, verb, group, resource, subresource, ns string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !can(t, user, groups, verb, group, resource, subresource, ns) {
		if time.Now().After(deadline) {
			t.Fatalf("%s may not %s %s/%s in %q", user, verb, group, resource, ns)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func can(t *testing.T, user string, groups []string, verb, group, resource, subresource, ns string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Subresource: subresource, Namespace: ns},
	}}
	must(t, env.Client.Create(context.Background(), sar))
	return sar.Status.Allowed
}

// TestOperatorRBACIsLeastPrivilege binds the generated ClusterRole (the chart's rules are the
// same, checked in test/packaging) to the operator's ServiceAccount and asks the API server's own
// authorizer what it may do.
func TestOperatorRBACIsLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	must(t, err)
	var role rbacv1.ClusterRole
	must(t, yaml.Unmarshal(raw, &role))
	role.Name = "medseg-manager-test"
	must(t, env.Client.Create(ctx, &role))
	must(t, env.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "medseg-manager-test"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "medseg", Namespace: "medseg-system"}},
	}))
	sa := "system:serviceaccount:medseg-system:medseg"
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:medseg-system", "system:authenticated"}
	eventuallyCan(t, sa, groups, "patch", "cilium.io", "ciliumnetworkpolicies", "", "icu")
	cases := []struct {
		verb, group, resource, sub, ns string
		want                           bool
	}{
		{"patch", "cilium.io", "ciliumnetworkpolicies", "", "icu", true},
		{"delete", "cilium.io", "ciliumclusterwidenetworkpolicies", "", "", true},
		{"update", "medseg.io", "medicaldevices", "status", "icu", true},
		{"list", "", "pods", "", "", true},
		// Not: secrets, config, workloads, RBAC, or the devices' and policies' specs.
		{"get", "", "secrets", "", "icu", false},
		{"list", "", "secrets", "", "", false},
		{"get", "", "configmaps", "", "icu", false},
		{"update", "medseg.io", "medicaldevices", "", "icu", false},
		{"update", "medseg.io", "segmentpolicies", "", "", false},
		{"delete", "medseg.io", "medicaldevices", "", "icu", false},
		{"delete", "", "pods", "", "icu", false},
		{"create", "apps", "deployments", "", "icu", false},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", false},
		{"create", "networking.k8s.io", "networkpolicies", "", "icu", false},
		{"delete", "", "namespaces", "", "", false},
	}
	for _, c := range cases {
		if got := can(t, sa, groups, c.verb, c.group, c.resource, c.sub, c.ns); got != c.want {
			t.Errorf("operator may %s %s/%s/%s in %q: %t, want %t", c.verb, c.group, c.resource, c.sub, c.ns, got, c.want)
		}
	}
}

// TestNamespaceEditorCannotGrantThemselvesAnException: a user who may edit MedicalDevices in
// their namespace cannot touch SegmentPolicies (where exceptions and ceilings live), and a flow
// they declare beyond the policy's ceilings is blocked and reported, not opened.
func TestNamespaceEditorCannotGrantThemselvesAnException(t *testing.T) {
	ctx := context.Background()
	keys := hospital(t, "editor", 1, 44)
	must(t, env.Client.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "device-editor", Namespace: "editor"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"medseg.io"}, Resources: []string{"medicaldevices"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}},
	}))
	must(t, env.Client.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "device-editor", Namespace: "editor"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "device-editor"},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: "nurse-manager"}},
	}))
	user, groups := "nurse-manager", []string{"system:authenticated"}
	eventuallyCan(t, user, groups, "update", "medseg.io", "medicaldevices", "", "editor")
	for _, verb := range []string{"update", "patch", "create"} {
		if can(t, user, groups, verb, "medseg.io", "segmentpolicies", "", "") {
			t.Errorf("a namespace editor may %s SegmentPolicies, where exceptions live", verb)
		}
	}
	if can(t, user, groups, "update", "medseg.io", "medicaldevices", "status", "editor") {
		t.Error("a namespace editor may write device status")
	}

	// The editor declares a flow to the internet; the policy allows no external peers.
	op := start(t, false)
	defer op.stop(t)
	var d v1alpha1.MedicalDevice
	must(t, env.Client.Get(ctx, keys[0], &d))
	d.Spec.Flows = append(d.Spec.Flows, v1alpha1.Flow{Name: "exfil", Direction: v1alpha1.DirectionFromDevice, Tier: v1alpha1.TierEssential,
		GatewayPort: 9999, PeerPort: 443, Peers: []v1alpha1.Peer{{CIDR: "198.51.100.0/24"}}})
	must(t, env.Client.Update(ctx, &d))
	deadline := time.Now().Add(30 * time.Second)
	for {
		must(t, env.Client.Get(ctx, types.NamespacedName{Namespace: "editor", Name: keys[0].Name}, &d))
		if s := d.Status.Segmentation; s != nil && d.Status.ObservedGeneration == d.Generation {
			blocked := false
			for _, b := range s.BlockedFlows {
				blocked = blocked || (b.Name == "exfil" && b.Reason == v1alpha1.BlockCeiling)
			}
			if blocked && meta.IsStatusConditionTrue(d.Status.Conditions, v1alpha1.ConditionReady) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flow beyond the ceiling is not reported blocked: %+v", d.Status.Segmentation)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range cnps(t, "editor") {
		for _, r := range p.Spec.Ingress {
			if len(r.ToPorts) > 0 && r.ToPorts[0].Ports[0].Port == "9999" {
				t.Fatal("the flow beyond the ceiling was rendered")
			}
		}
	}
}
