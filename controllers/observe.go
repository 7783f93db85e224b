package controllers

import (
	"context"
	"fmt"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/internal/drift"
)

// Reads from the informer cache both reconcilers share. The lists are read-only (no deep copy).

// networkPolicies lists the cluster's network policies: CNPs, CCNPs and Kubernetes
// NetworkPolicies. With foreignOnly, only the Cilium policies medseg does not own (the
// indexForeign index): at hospital scale nearly every CNP is medseg's own, and a device's
// foreign-policy analysis must not touch them all.
func networkPolicies(ctx context.Context, c client.Reader, foreignOnly bool) (drift.Policies, error) {
	var pols drift.Policies
	var opts []client.ListOption
	opts = append(opts, client.UnsafeDisableDeepCopy)
	if foreignOnly {
		opts = append(opts, client.MatchingFields{indexForeign: "true"})
	}
	var cnps ciliumv2.CiliumNetworkPolicyList
	if err := c.List(ctx, &cnps, opts...); err != nil {
		return pols, fmt.Errorf("listing CiliumNetworkPolicies: %w", err)
	}
	var ccnps ciliumv2.CiliumClusterwideNetworkPolicyList
	if err := c.List(ctx, &ccnps, opts...); err != nil {
		return pols, fmt.Errorf("listing CiliumClusterwideNetworkPolicies: %w", err)
	}
	var nps networkingv1.NetworkPolicyList
	if err := c.List(ctx, &nps, client.UnsafeDisableDeepCopy); err != nil {
		return pols, fmt.Errorf("listing NetworkPolicies: %w", err)
	}
	pols.CNPs, pols.CCNPs, pols.NetworkPolicies = cnps.Items, ccnps.Items, nps.Items
	return pols, nil
}

// namespaceLabels maps every namespace to its labels.
func namespaceLabels(ctx context.Context, c client.Reader) (map[string]map[string]string, error) {
	var nss corev1.NamespaceList
	if err := c.List(ctx, &nss, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	out := make(map[string]map[string]string, len(nss.Items))
	for _, ns := range nss.Items {
		out[ns.Name] = ns.Labels
	}
	return out, nil
}

// observePodsAndPolicies reads every pod (metadata only) with its namespace's labels, and every
// network policy: the inputs of the flatness audit.
func observePodsAndPolicies(ctx context.Context, c client.Reader) ([]drift.Pod, drift.Policies, error) {
	nsLabels, err := namespaceLabels(ctx, c)
	if err != nil {
		return nil, drift.Policies{}, err
	}
	var podList metav1.PartialObjectMetadataList
	podList.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := c.List(ctx, &podList, client.UnsafeDisableDeepCopy); err != nil {
		return nil, drift.Policies{}, fmt.Errorf("listing pods: %w", err)
	}
	pods := make([]drift.Pod, 0, len(podList.Items))
	for _, p := range podList.Items {
		pods = append(pods, drift.Pod{Name: p.Name, Workload: drift.Workload{Namespace: p.Namespace, NamespaceLabels: nsLabels[p.Namespace], Labels: p.Labels}})
	}
	pols, err := networkPolicies(ctx, c, false)
	return pods, pols, err
}
