package drift

import (
	"strings"

	slimmetav1 "github.com/cilium/cilium/pkg/k8s/slim/k8s/apis/meta/v1"
)

// Workload is a pod as policies see it: its namespace, the namespace's labels and its labels.
type Workload struct {
	Namespace       string
	NamespaceLabels map[string]string
	Labels          map[string]string
}

const (
	keyNamespace       = "k8s:io.kubernetes.pod.namespace"
	prefixNSLabels     = "k8s:io.cilium.k8s.namespace.labels."
	sourceK8s          = "k8s:"
	sourceAny          = "any:"
	rawNSLabels        = "io.cilium.k8s.namespace.labels."
	rawNamespace       = "io.kubernetes.pod.namespace"
	ciliumReservedPref = "io.cilium.k8s."
)

// ciliumLabels flattens a workload into the k8s-source labels Cilium gives its identity. Pod
// labels starting with io.cilium.k8s are dropped, as the agent does, so a pod cannot fake its
// namespace's labels.
func ciliumLabels(w Workload) map[string]string {
	out := make(map[string]string, len(w.Labels)+len(w.NamespaceLabels)+1)
	for k, v := range w.Labels {
		if strings.HasPrefix(k, ciliumReservedPref) {
			continue
		}
		out[sourceK8s+k] = v
	}
	for k, v := range w.NamespaceLabels {
		out[prefixNSLabels+k] = v
	}
	out[keyNamespace] = w.Namespace
	return out
}

// normalizeKey maps a selector key to the k8s-source key it can match on a pod, or "" when it
// names another source (reserved:, cidr:, ...) that no pod carries.
func normalizeKey(k string) string {
	switch {
	case strings.HasPrefix(k, sourceK8s):
		return k
	case strings.HasPrefix(k, sourceAny):
		return sourceK8s + strings.TrimPrefix(k, sourceAny)
	case strings.Contains(strings.SplitN(k, "/", 2)[0], ":"):
		return ""
	default:
		return sourceK8s + k
	}
}

// scope says how Cilium completes a selector that names no namespace.
type scope struct {
	// namespace is the policy's namespace for a CNP (selectors without a namespace constraint
	// are confined to it), or "" for a clusterwide policy.
	namespace string
}

// constrainsNamespace reports whether a selector names the namespace or namespace labels.
func constrainsNamespace(s *slimmetav1.LabelSelector) (byName, byLabels bool) {
	if s == nil {
		return false, false
	}
	check := func(k string) {
		nk := normalizeKey(k)
		if nk == keyNamespace {
			byName = true
		}
		if strings.HasPrefix(nk, prefixNSLabels) {
			byLabels = true
		}
	}
	for k := range s.MatchLabels {
		check(k)
	}
	for _, r := range s.MatchExpressions {
		check(r.Key)
	}
	return byName, byLabels
}

// matches evaluates a Cilium endpoint selector against a workload with Cilium's semantics,
// including the namespace confinement the agent adds to selectors of namespaced policies.
func matches(s *slimmetav1.LabelSelector, w Workload, sc scope) bool {
	if s == nil {
		return false
	}
	byName, byLabels := constrainsNamespace(s)
	if sc.namespace != "" && !byName && !byLabels && w.Namespace != sc.namespace {
		return false
	}
	lbls := ciliumLabels(w)
	for k, v := range s.MatchLabels {
		nk := normalizeKey(k)
		if nk == "" || lbls[nk] != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		nk := normalizeKey(r.Key)
		val, has := lbls[nk]
		if nk == "" {
			has = false
		}
		switch r.Operator {
		case slimmetav1.LabelSelectorOpIn:
			if !has || !contains(r.Values, val) {
				return false
			}
		case slimmetav1.LabelSelectorOpNotIn:
			if has && contains(r.Values, val) {
				return false
			}
		case slimmetav1.LabelSelectorOpExists:
			if !has {
				return false
			}
		case slimmetav1.LabelSelectorOpDoesNotExist:
			if has {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// spansAllNamespaces reports whether a peer selector can match pods of every namespace.
func spansAllNamespaces(s *slimmetav1.LabelSelector, sc scope) bool {
	if s == nil {
		return false
	}
	if sc.namespace != "" {
		byName, byLabels := constrainsNamespace(s)
		if !byName && !byLabels {
			return false // confined to the policy's namespace
		}
	}
	for k := range s.MatchLabels {
		nk := normalizeKey(k)
		if nk == keyNamespace || strings.HasPrefix(nk, prefixNSLabels) {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		nk := normalizeKey(r.Key)
		if (nk == keyNamespace || strings.HasPrefix(nk, prefixNSLabels)) && r.Operator != slimmetav1.LabelSelectorOpExists {
			return false
		}
	}
	return true
}

func contains(vals []string, v string) bool {
	for _, x := range vals {
		if x == v {
			return true
		}
	}
	return false
}
