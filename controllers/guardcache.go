package controllers

import (
	"hash/fnv"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/medseg/medseg/api/v1alpha1"
)

// guardCache remembers, per SegmentPolicy, the guard last decided and the inputs it was decided
// from, so a reconcile that only recounts (a device's status moved, thousands of times on a cold
// start) does not select the members among every device and render the guard again. The guard
// is decided afresh whenever an input changed, or the guard in the cluster is not the one medseg
// wrote (resourceVersion), so drift repair is unaffected.
type guardCache struct {
	mu sync.Mutex
	m  map[string]guardEntry
}

type guardEntry struct {
	inputs   uint64
	decision guardDecision
	// rv is the resourceVersion of the guard as medseg left it.
	rv string
}

func (c *guardCache) get(policy string) (guardEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[policy]
	return e, ok
}

func (c *guardCache) put(policy string, e guardEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]guardEntry{}
	}
	c.m[policy] = e
}

func (c *guardCache) forget(policy string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, policy)
}

// guardInputs fingerprints everything a guard depends on (plan.GuardMembers): the policy, every
// policy's selectors and enforcement, every namespace's labels, and every device's spec and
// labels, plus, for a device whose address is contested or whose policy is kept in place, what
// is applied for it. Items are combined by addition, so list order does not matter.
func guardInputs(pol *v1alpha1.SegmentPolicy, pols []v1alpha1.SegmentPolicy, namespaces map[string]map[string]string, devs []v1alpha1.MedicalDevice) uint64 {
	sum := item(string(pol.UID), strconv.FormatInt(pol.Generation, 10))
	for i := range pols {
		sum += item("policy", pols[i].Name, strconv.FormatInt(pols[i].Generation, 10))
	}
	for ns, l := range namespaces {
		sum += item("namespace", ns) + labelsSum(l)
	}
	for i := range devs {
		d := &devs[i]
		sum += item("device", d.Namespace, d.Name, strconv.FormatInt(d.Generation, 10)) + labelsSum(d.Labels)
		if c := meta.FindStatusCondition(d.Status.Conditions, v1alpha1.ConditionSegmented); c != nil &&
			(c.Reason == v1alpha1.ReasonAddressConflict || c.Reason == v1alpha1.ReasonNoSegmentPolicy) && d.Status.Segmentation != nil {
			for _, a := range d.Status.Segmentation.AppliedObjects {
				sum += item("applied", d.Namespace, d.Name, a.Hash)
			}
		}
	}
	return sum
}

func item(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	return h.Sum64()
}

func labelsSum(l map[string]string) uint64 {
	var s uint64
	for k, v := range l {
		s += item("label", k, v)
	}
	return item(strconv.FormatUint(s, 16))
}
