package drift

import (
	"net/netip"
	"strings"
	"testing"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	slimmetav1 "github.com/cilium/cilium/pkg/k8s/slim/k8s/apis/meta/v1"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/medseg/medseg/api/v1alpha1"
)

var (
	icuLabels = map[string]string{"kubernetes.io/metadata.name": "icu", v1alpha1.LabelGatewayNamespace: "true"}
	nets      = []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}
	pump      = Device{
		Namespace: "icu", Name: "pump", UID: "uid-pump",
		Gateways:     []Workload{{Namespace: "icu", NamespaceLabels: icuLabels, Labels: map[string]string{"app": "pump-gateway", v1alpha1.LabelGateway: "true"}}},
		GatewayPorts: []int32{8443, 2575},
		Addresses:    []netip.Addr{netip.MustParseAddr("10.20.1.12")},
	}
)

func es(kv ...string) policyapi.EndpointSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return policyapi.EndpointSelector{LabelSelector: &slimmetav1.LabelSelector{MatchLabels: m}}
}

func cnp(name, ns string, r policyapi.Rule) ciliumv2.CiliumNetworkPolicy {
	return ciliumv2.CiliumNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: &r}
}

func port(p string) policyapi.PortRules {
	return policyapi.PortRules{{Ports: []policyapi.PortProtocol{{Port: p, Protocol: policyapi.ProtoTCP}}}}
}

func TestForeignPolicyShapes(t *testing.T) {
	gw := es("app", "pump-gateway")
	cases := []struct {
		name    string
		pol     Policies
		listed  bool
		widens  bool
		because string
	}{
		{"a policy that allows the world into the gateway widens",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("open", "icu", policyapi.Rule{EndpointSelector: gw,
				Ingress: []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEntities: policyapi.EntitySlice{policyapi.EntityWorld}}}}})}},
			true, true, "opens the gateway to world"},
		{"fromCIDR 0.0.0.0/0 into the gateway widens",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("cidr", "icu", policyapi.Rule{EndpointSelector: gw,
				Ingress: []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromCIDR: policyapi.CIDRSlice{"0.0.0.0/0"}}, ToPorts: port("9090")}}})}},
			true, true, "to the world"},
		{"pods of every namespace into the gateway widens",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("allns", "icu", policyapi.Rule{EndpointSelector: gw,
				Ingress: []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEndpoints: []policyapi.EndpointSelector{{LabelSelector: &slimmetav1.LabelSelector{
					MatchExpressions: []slimmetav1.LabelSelectorRequirement{{Key: "k8s:io.kubernetes.pod.namespace", Operator: slimmetav1.LabelSelectorOpExists}}}}}}, ToPorts: port("9090")}}})}},
			true, true, "every namespace"},
		{"an empty selector in a clusterwide policy means every pod and widens",
			Policies{CCNPs: []ciliumv2.CiliumClusterwideNetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "ccnp-all"}, Spec: &policyapi.Rule{EndpointSelector: es("medseg.io/gateway", "true"),
				Ingress: []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEndpoints: []policyapi.EndpointSelector{es()}}, ToPorts: port("9090")}}}}}},
			true, true, "every namespace"},
		{"a device port opened to an undeclared peer widens",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("port", "icu", policyapi.Rule{EndpointSelector: gw,
				Ingress: []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEndpoints: []policyapi.EndpointSelector{es("app", "debug")}}, ToPorts: port("8443")}}})}},
			true, true, "port 8443"},
		{"gateway egress to the world widens (device networks are world to Cilium)",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("egress-world", "icu", policyapi.Rule{EndpointSelector: gw,
				Egress: []policyapi.EgressRule{{EgressCommonRule: policyapi.EgressCommonRule{ToEntities: policyapi.EntitySlice{policyapi.EntityAll}}}}})}},
			true, true, "reach all"},
		{"gateway egress toCIDRSet into a device network widens",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("egress-cidr", "icu", policyapi.Rule{EndpointSelector: gw,
				Egress: []policyapi.EgressRule{{EgressCommonRule: policyapi.EgressCommonRule{ToCIDRSet: policyapi.CIDRRuleSlice{{Cidr: "10.20.5.0/24"}}}}}})}},
			true, true, "device network 10.20.0.0/16"},
		{"an ordinary pod allowed to reach the device address widens",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("billing", "finance", policyapi.Rule{EndpointSelector: es("app", "billing"),
				Egress: []policyapi.EgressRule{{EgressCommonRule: policyapi.EgressCommonRule{ToCIDR: policyapi.CIDRSlice{"10.20.0.0/16"}}}}})}},
			true, true, "non-gateway pods to reach device address 10.20.1.12"},
		{"a metrics scrape from one namespace is listed but does not widen",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("metrics", "icu", policyapi.Rule{EndpointSelector: gw,
				Ingress: []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEndpoints: []policyapi.EndpointSelector{
					es("k8s:io.kubernetes.pod.namespace", "monitoring", "app", "prometheus")}}, ToPorts: port("9090")}}})}},
			true, false, "without widening"},
		{"a deny selecting the gateway is listed but does not widen",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("deny", "icu", policyapi.Rule{EndpointSelector: gw,
				IngressDeny: []policyapi.IngressDenyRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEntities: policyapi.EntitySlice{policyapi.EntityWorld}}}}})}},
			true, false, "without widening"},
		{"a policy that selects other pods is not flagged",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("other", "icu", policyapi.Rule{EndpointSelector: es("app", "other"),
				Ingress: []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEntities: policyapi.EntitySlice{policyapi.EntityWorld}}}}})}},
			false, false, ""},
		{"a policy in another namespace does not select the gateway",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("elsewhere", "lab", policyapi.Rule{EndpointSelector: gw,
				Ingress: []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEntities: policyapi.EntitySlice{policyapi.EntityWorld}}}}})}},
			false, false, ""},
		{"world egress from ordinary pods is left to the guard, not flagged",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{cnp("internet", "web", policyapi.Rule{EndpointSelector: es("app", "web"),
				Egress: []policyapi.EgressRule{{EgressCommonRule: policyapi.EgressCommonRule{ToEntities: policyapi.EntitySlice{policyapi.EntityWorld}}}}})}},
			false, false, ""},
		{"medseg's own policy for the device is not foreign",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{func() ciliumv2.CiliumNetworkPolicy {
				c := cnp("medseg-pump", "icu", policyapi.Rule{EndpointSelector: gw,
					Ingress: []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEndpoints: []policyapi.EndpointSelector{es("app", "x")}}, ToPorts: port("8443")}}})
				c.Labels = map[string]string{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}
				c.OwnerReferences = []metav1.OwnerReference{{APIVersion: "medseg.io/v1alpha1", Kind: "MedicalDevice", Name: "pump", UID: "uid-pump", Controller: ptr.To(true)}}
				return c
			}()}},
			false, false, ""},
		{"a policy that only claims medseg's label is still foreign",
			Policies{CNPs: []ciliumv2.CiliumNetworkPolicy{func() ciliumv2.CiliumNetworkPolicy {
				c := cnp("sneaky", "icu", policyapi.Rule{EndpointSelector: gw,
					Ingress: []policyapi.IngressRule{{IngressCommonRule: policyapi.IngressCommonRule{FromEntities: policyapi.EntitySlice{policyapi.EntityWorld}}}}})
				c.Labels = map[string]string{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}
				return c
			}()}},
			true, true, "world"},
		{"a NetworkPolicy allowing every source into the gateway widens",
			Policies{NetworkPolicies: []networkingv1.NetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "allow-all", Namespace: "icu"},
				Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "pump-gateway"}},
					Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}}}},
			true, true, "every source"},
		{"a NetworkPolicy with an empty selector selects the gateway too",
			Policies{NetworkPolicies: []networkingv1.NetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "ns-wide", Namespace: "icu"},
				Spec: networkingv1.NetworkPolicySpec{
					Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}},
						Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(9090))}}}}}}}},
			true, true, "every namespace"},
		{"a NetworkPolicy ipBlock to the device from another namespace widens",
			Policies{NetworkPolicies: []networkingv1.NetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "migration", Namespace: "it"},
				Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
					Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.20.1.0/24"}}}}}}}}},
			true, true, "device address 10.20.1.12"},
		{"a narrow NetworkPolicy for metrics is listed without widening",
			Policies{NetworkPolicies: []networkingv1.NetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "scrape", Namespace: "icu"},
				Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "pump-gateway"}},
					Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}},
						Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(9090))}}}}}}}},
			true, false, "without widening"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := ForDevice(pump, tc.pol, nets)
			if !tc.listed {
				if len(fs) != 0 {
					t.Fatalf("flagged: %+v", fs)
				}
				return
			}
			if len(fs) != 1 {
				t.Fatalf("want one finding, got %+v", fs)
			}
			if fs[0].Widens != tc.widens || !strings.Contains(fs[0].Reason, tc.because) {
				t.Errorf("finding %+v, want widens=%t because %q", fs[0], tc.widens, tc.because)
			}
			if tc.widens && Widening(fs) == "" {
				t.Error("Widening should explain the finding")
			}
		})
	}
}

func TestPodsCannotFakeTheirNamespaceLabels(t *testing.T) {
	fake := Workload{Namespace: "guest", NamespaceLabels: map[string]string{}, Labels: map[string]string{
		"io.cilium.k8s.namespace.labels.medseg.io/gateway-namespace": "true", "app": "x"}}
	sel := &slimmetav1.LabelSelector{MatchLabels: map[string]string{"k8s:io.cilium.k8s.namespace.labels.medseg.io/gateway-namespace": "true"}}
	if matches(sel, fake, scope{}) {
		t.Fatal("a pod label must not stand in for a namespace label")
	}
}
