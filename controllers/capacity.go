package controllers

import (
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/discover"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/render"
)

// gatewayPod is a labelled gateway pod of the device.
type gatewayPod struct {
	name   string
	labels map[string]string
}

// gatewayLoad is the estimated policy map of one gateway pod: the entries of every device
// behind it whose policy is in place, with the device being reconciled counted as planned.
type gatewayLoad struct {
	Namespace, Pod             string
	Devices, Entries, Capacity int
}

func (l *gatewayLoad) String() string {
	return fmt.Sprintf("gateway %s/%s would hold %s policy map entries (estimated) for %d devices, against Cilium's %s (bpf-policy-map-max)",
		l.Namespace, l.Pod, discover.Thousands(int64(l.Entries)), l.Devices, discover.Thousands(int64(l.Capacity)))
}

// over reports whether the load exceeds the policy map.
func (l *gatewayLoad) over() bool { return l.Entries > l.Capacity }

// selectorCache parses each device's gateway selector once per generation: a reconcile reads
// the selectors of every device in the namespace.
type selectorCache struct{ m sync.Map }

type cachedSelector struct {
	uid types.UID
	gen int64
	sel labels.Selector
}

func (c *selectorCache) of(d *v1alpha1.MedicalDevice) labels.Selector {
	key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
	if v, ok := c.m.Load(key); ok && v.(cachedSelector).uid == d.UID && v.(cachedSelector).gen == d.Generation {
		return v.(cachedSelector).sel
	}
	sel, err := metav1.LabelSelectorAsSelector(&d.Spec.Gateway.PodSelector)
	if err != nil || sel.Empty() {
		sel = labels.Nothing()
	}
	c.m.Store(key, cachedSelector{uid: d.UID, gen: d.Generation, sel: sel})
	return sel
}

// forgetName drops a deleted device's selector.
func (c *selectorCache) forgetName(req ctrl.Request) { c.m.Delete(req.NamespacedName) }

// ownEntries is what the device's plan puts in its gateways' policy maps: its enforced policy
// or its allow-only companion; nothing under Audit alone.
func ownEntries(p *plan.Plan) int {
	if p == nil || p.Render == nil || (!p.Enforced && p.Companion == nil) {
		return 0
	}
	return p.Render.PolicyMapEntries
}

// mostLoadedGateway is the most loaded of the device's gateway pods: own entries plus those of
// every neighbour whose gateway selector selects the pod and whose policy is in place. nil when
// the device has no gateway pod or no capacity is configured.
func (c *selectorCache) mostLoadedGateway(dev *v1alpha1.MedicalDevice, own int, neighbours []*v1alpha1.MedicalDevice, pods []gatewayPod, capacity int) *gatewayLoad {
	if capacity <= 0 || len(pods) == 0 {
		return nil
	}
	var best *gatewayLoad
	for _, pod := range pods {
		l := &gatewayLoad{Namespace: dev.Namespace, Pod: pod.name, Entries: own, Capacity: capacity}
		if own > 0 {
			l.Devices = 1
		}
		for _, n := range neighbours {
			seg := n.Status.Segmentation
			if seg == nil || seg.PolicyMapEntries == 0 || len(seg.AppliedObjects) == 0 || !c.of(n).Matches(labels.Set(pod.labels)) {
				continue
			}
			l.Devices++
			l.Entries += int(seg.PolicyMapEntries)
		}
		if best == nil || l.Entries > best.Entries {
			best = l
		}
	}
	return best
}

// setGatewayCapacity records the device's GatewayCapacity condition: a warning at 75% of the
// policy map, and above it the refusal to add flows (DecideObject, Plan.GatewayFull).
func setGatewayCapacity(s *v1alpha1.MedicalDeviceStatus, gen int64, l *gatewayLoad) {
	if l == nil || l.Devices == 0 {
		meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionGatewayCapacity)
		return
	}
	// Within capacity, no numbers: they move with every neighbour, and a status that changed
	// on each resync would be written on each resync. The SegmentPolicy lists the loads.
	within := fmt.Sprintf("its gateway pods are below %.0f%% of Cilium's policy map (%s entries); SegmentPolicy status.gateways lists the most loaded",
		100*render.CapacityWarnRatio, discover.Thousands(int64(l.Capacity)))
	setCapacityCondition(&s.Conditions, gen, l.Entries, l.Capacity, l.String(),
		"medseg adds no flows to it (the policy in place stays) rather than let Cilium fail to regenerate the gateway's policy; split the devices over more gateway deployments", within)
}

// setCapacityCondition sets GatewayCapacity from a load of entries against capacity: False
// OverCapacity above it (load, then over), False NearCapacity from 75% (load and the ratio),
// else True WithinCapacity (within).
func setCapacityCondition(conds *[]metav1.Condition, gen int64, entries, capacity int, load, over, within string) {
	switch {
	case entries > capacity:
		setCondition(conds, gen, v1alpha1.ConditionGatewayCapacity, false, v1alpha1.ReasonOverCapacity, load+": "+over)
	case float64(entries) >= render.CapacityWarnRatio*float64(capacity):
		setCondition(conds, gen, v1alpha1.ConditionGatewayCapacity, false, v1alpha1.ReasonNearCapacity,
			load+fmt.Sprintf(": at %.0f%% of the policy map or more", 100*render.CapacityWarnRatio))
	default:
		setCondition(conds, gen, v1alpha1.ConditionGatewayCapacity, true, v1alpha1.ReasonWithinCapacity, within)
	}
}
