package render

import (
	"net/netip"
	"strings"
	"testing"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/medseg/medseg/api/v1alpha1"
)

func TestGatewaysOverlap(t *testing.T) {
	req := func(k string, op metav1.LabelSelectorOperator, vs ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: k, Operator: op, Values: vs}
	}
	cases := []struct {
		name string
		a, b metav1.LabelSelector
		want bool
	}{
		{"the same app label selects the same pods", *sel("app", "hl7"), *sel("app", "hl7"), true},
		{"different app labels never select one pod", *sel("app", "hl7"), *sel("app", "dicom"), false},
		{"a narrower selector overlaps a wider one", *sel("app", "hl7"), *sel("app", "hl7", "role", "icu"), true},
		{"disjoint keys can both be on one pod", *sel("app", "hl7"), *sel("tier", "proxy"), true},
		{"In sets that do not meet", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req("app", metav1.LabelSelectorOpIn, "a", "b")}},
			metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req("app", metav1.LabelSelectorOpIn, "c")}}, false},
		{"In and NotIn leaving a value", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req("app", metav1.LabelSelectorOpIn, "a", "b")}},
			metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req("app", metav1.LabelSelectorOpNotIn, "a")}}, true},
		{"In fully excluded by NotIn", *sel("app", "a"),
			metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req("app", metav1.LabelSelectorOpNotIn, "a")}}, false},
		{"Exists against DoesNotExist", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req("role", metav1.LabelSelectorOpExists)}},
			metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req("role", metav1.LabelSelectorOpDoesNotExist)}}, false},
		{"NotIn is met by a pod without the key", *sel("app", "a"),
			metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req("role", metav1.LabelSelectorOpNotIn, "x")}}, true},
		{"a selector excluding the gateway label selects no gateway", *sel("app", "a"),
			metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req(v1alpha1.LabelGateway, metav1.LabelSelectorOpDoesNotExist)}}, false},
		{"a selector asking medseg.io/gateway=false selects no gateway", *sel("app", "a"), *sel("app", "a", v1alpha1.LabelGateway, "false"), false},
		{"an invalid selector overlaps nothing", *sel("app", "a"),
			metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req("app", "Near", "a")}}, false},
	}
	for _, c := range cases {
		if got := GatewaysOverlap(c.a, c.b); got != c.want {
			t.Errorf("%s: %t, want %t", c.name, got, c.want)
		}
		if got := GatewaysOverlap(c.b, c.a); got != c.want {
			t.Errorf("%s (reversed): %t, want %t", c.name, got, c.want)
		}
	}
}

func TestAggregateIsExact(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	n := netip.MustParsePrefix("10.20.0.0/16")
	cases := []struct {
		name string
		in   []netip.Addr
		want string
	}{
		{"a single host stays a host", addrs("10.20.1.4"), "10.20.1.4/32"},
		{"two siblings merge", addrs("10.20.1.4", "10.20.1.5"), "10.20.1.4/31"},
		{"non-siblings do not merge", addrs("10.20.1.5", "10.20.1.6"), "10.20.1.5/32,10.20.1.6/32"},
		{"a full /24 is one prefix", hostsOf("10.20.7.0/24"), "10.20.7.0/24"},
		{"a /24 less one host is exact", hostsOf("10.20.7.0/24")[1:], "10.20.7.1/32,10.20.7.2/31,10.20.7.4/30,10.20.7.8/29,10.20.7.16/28,10.20.7.32/27,10.20.7.64/26,10.20.7.128/25"},
		{"addresses outside the network are left out", addrs("10.20.1.4", "10.30.1.4"), "10.20.1.4/32"},
		{"duplicates count once", addrs("10.20.1.4", "10.20.1.4"), "10.20.1.4/32"},
	}
	for _, c := range cases {
		var got []string
		for _, p := range aggregate(c.in, n) {
			got = append(got, p.String())
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s: %s, want %s", c.name, strings.Join(got, ","), c.want)
		}
	}
	if got := aggregate(hostsOf("10.20.0.0/16"), netip.MustParsePrefix("10.20.0.0/17")); len(got) != 1 || got[0].String() != "10.20.0.0/17" {
		t.Errorf("merging stops at the network: %v", got)
	}
	v6 := aggregateAll(addrs("fd00:20::2", "fd00:20::3"))
	if len(v6) != 1 || v6[0].String() != "fd00:20::2/127" {
		t.Errorf("IPv6 siblings: %v", v6)
	}
}

func hostsOf(cidr string) []netip.Addr {
	p := netip.MustParsePrefix(cidr)
	var out []netip.Addr
	for a := p.Addr(); p.Contains(a); a = a.Next() {
		out = append(out, a)
	}
	return out
}

func TestNoWider(t *testing.T) {
	render := func(mode v1alpha1.Priority) *ciliumv2.CiliumNetworkPolicy {
		res, err := Device(Input{Device: commissioned(pump()), Policy: criticalCare(), Priority: mode, Namespaces: namespaces, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return res.CNP
	}
	standard, quarantine := render(v1alpha1.PriorityScheduled), render(v1alpha1.PriorityImmediate)
	companion, err := Companion(commissioned(pump()), "critical-care")
	if err != nil {
		t.Fatal(err)
	}
	otherGateway := standard.DeepCopy()
	otherGateway.Spec.EndpointSelector.MatchLabels["app"] = "other"
	noDefaultDeny := standard.DeepCopy()
	noDefaultDeny.Spec.EnableDefaultDeny.Egress = ptr.To(false)
	cases := []struct {
		name          string
		desired, live *ciliumv2.CiliumNetworkPolicy
		want          bool
	}{
		{"the same policy", standard, standard, true},
		{"tightening (risk rose: Standard → Quarantine)", quarantine, standard, true},
		{"opening (risk fell: Quarantine → Standard)", standard, quarantine, false},
		{"an allow-only companion in place of an enforcing policy", companion, standard, false},
		{"another gateway", otherGateway, standard, false},
		{"default deny dropped", noDefaultDeny, standard, false},
		{"nothing live to compare with", standard, nil, false},
	}
	for _, c := range cases {
		if got := NoWider(c.desired, c.live); got != c.want {
			t.Errorf("%s: %t, want %t", c.name, got, c.want)
		}
	}
	if !AllowsAddress(standard, "10.20.1.12") || AllowsAddress(standard, "10.20.1.13") || !AllowsAddress(quarantine, "::ffff:10.20.1.12") {
		t.Error("AllowsAddress must find the device address in the rules, in any spelling")
	}
	if IsCompanion(standard) || !IsCompanion(companion) {
		t.Error("IsCompanion")
	}
}
