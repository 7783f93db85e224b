package plan_test

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/render"
)

// benchHospital is test/bench's hospital: n devices in n/100 namespaces, 10 gateways per
// namespace, one enforced policy per 2,000 devices.
func benchHospital(n int) plan.Hospital {
	h := plan.Hospital{Namespaces: map[string]map[string]string{}}
	nss, pols := max(2, n/100), max(1, n/2000)
	for i := range nss {
		ns := fmt.Sprintf("ward-%03d", i)
		h.Namespaces[ns] = map[string]string{"kubernetes.io/metadata.name": ns, v1alpha1.LabelGatewayNamespace: "true", "bench/zone": fmt.Sprintf("z%d", i%pols)}
	}
	for i := range pols {
		h.Policies = append(h.Policies, v1alpha1.SegmentPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("zone-%d", i)},
			Spec: v1alpha1.SegmentPolicySpec{Enforcement: v1alpha1.EnforcementEnforce, DeviceNetworks: []string{"10.64.0.0/10"},
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bench/zone": fmt.Sprintf("z%d", i)}}}})
	}
	for i := range n {
		d := &v1alpha1.MedicalDevice{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("dev-%05d", i), Namespace: fmt.Sprintf("ward-%03d", i%nss)}}
		d.Spec.Network.Addresses = []string{fmt.Sprintf("10.%d.%d.%d", 64+i/65025, (i/255)%255, i%255+1)}
		d.Spec.Gateway.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("gw-%d", (i/nss)/10)}}
		h.Devices = append(h.Devices, d)
	}
	return h
}

// BenchmarkGuardMembers10000Devices is one SegmentPolicy reconcile's guard work at 10,000
// devices: select the members among every device, then render the guard.
func BenchmarkGuardMembers10000Devices(b *testing.B) {
	h := benchHospital(10000)
	b.ReportAllocs()
	for b.Loop() {
		m := plan.GuardMembers(&h.Policies[0], h)
		if _, err := render.Guard(&h.Policies[0], m); err != nil {
			b.Fatal(err)
		}
	}
}
