package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/testenv"
)

// ApprovalResult is what the approval phases measured, at the run's device count.
type ApprovalResult struct {
	// Churn: ChurnGrants AccessGrants are created at once, open together ChurnOpenAfter later and
	// expire together ChurnCloseAfter after creation: 3 changes each (created, opened, expired).
	ChurnGrants     int     `json:"churnGrants"`
	ChurnChanges    int     `json:"churnChanges"`
	ChurnSeconds    float64 `json:"churnSeconds"`
	ChurnOpenAfter  float64 `json:"churnOpenAfterSeconds"`
	ChurnCloseAfter float64 `json:"churnCloseAfterSeconds"`
	// Per approval change: device reconciles (controller-runtime's reconcile count of the
	// medicaldevice controller), the device's writes (its CNP and its status), and the
	// approval's own status writes.
	ReconcilesPerChange     float64 `json:"deviceReconcilesPerChange"`
	DeviceWritesPerChange   float64 `json:"deviceWritesPerChange"`
	ApprovalStatusPerChange float64 `json:"approvalStatusWritesPerChange"`
	OtherWrites             int     `json:"otherWrites"`
	// OpenP50/P99: from a grant's notBefore to its flow in the device's CNP (watch event time).
	OpenP50Seconds  float64 `json:"openP50Seconds"`
	OpenP99Seconds  float64 `json:"openP99Seconds"`
	CloseP99Seconds float64 `json:"closeP99Seconds"`
	// Many: ManyExceptions SegmentExceptions created at once, one per device; ManySeconds until
	// all are Active, with the device reconciles and writes per exception.
	ManyExceptions            int     `json:"manyExceptions"`
	ManySeconds               float64 `json:"manySeconds"`
	ManyReconcilesPerApproval float64 `json:"manyDeviceReconcilesPerApproval"`
	ManyWritesPerApproval     float64 `json:"manyWritesPerApproval"`
}

// grantFlowPort is the gateway port of the benchmark devices' Granted flow.
const grantFlowPort = "2222"

// deviceReconciles reads controller-runtime's reconcile counter of the device controller.
func deviceReconciles(t *testing.T) float64 {
	mfs, err := ctrlmetrics.Registry.Gather()
	must(t, err)
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "medicaldevice" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// vendorOpen reports whether a device's CNP lets the vendor in on the Granted flow's port.
func vendorOpen(cnp *ciliumv2.CiliumNetworkPolicy) bool {
	if cnp.Spec == nil {
		return false
	}
	for _, in := range cnp.Spec.Ingress {
		for _, p := range in.ToPorts {
			for _, pp := range p.Ports {
				if pp.Port == grantFlowPort {
					return true
				}
			}
		}
	}
	return false
}

// benchApprovals measures approvals against the running operator: grant churn, then many
// exceptions at once. granted are devices whose vendor flow is access: Granted.
func benchApprovals(t *testing.T, c client.Client, wc client.WithWatch, counter *testenv.Counter, granted, all []types.NamespacedName, churn, many int) ApprovalResult {
	ctx := context.Background()
	var r ApprovalResult
	r.ChurnGrants = min(churn, len(granted))
	r.ChurnChanges = 3 * r.ChurnGrants
	r.ChurnOpenAfter, r.ChurnCloseAfter = 15, 45
	t0 := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	notBefore, notAfter := t0.Add(time.Duration(r.ChurnOpenAfter)*time.Second), t0.Add(time.Duration(r.ChurnCloseAfter)*time.Second)
	reconciles, before := deviceReconciles(t), counter.Snapshot()
	start := time.Now()
	byCNP := map[types.NamespacedName]int{}
	parallel(r.ChurnGrants, func(i int) {
		k := granted[i]
		must(t, c.Create(ctx, &v1alpha1.AccessGrant{ObjectMeta: metav1.ObjectMeta{Name: "churn-" + k.Namespace + "-" + k.Name},
			Spec: v1alpha1.AccessGrantSpec{Flow: "vendor", Approval: v1alpha1.Approval{Device: v1alpha1.ObjectRef{Namespace: k.Namespace, Name: k.Name},
				NotBefore: metav1.NewTime(notBefore), NotAfter: metav1.NewTime(notAfter), ApprovedBy: "bench", Ticket: "VND-1", Justification: "churn"}}}))
	})
	for i := range r.ChurnGrants {
		byCNP[types.NamespacedName{Namespace: granted[i].Namespace, Name: "medseg-" + granted[i].Name}] = i
	}
	opened, closed := make([]float64, r.ChurnGrants), make([]float64, r.ChurnGrants)
	open := map[int]bool{}
	done := 0
	watchUntil(t, wc, &ciliumv2.CiliumNetworkPolicyList{}, notAfter.Add(2*time.Minute), func(o client.Object, at time.Time) bool {
		i, ok := byCNP[client.ObjectKeyFromObject(o)]
		if !ok {
			return false
		}
		switch isOpen := vendorOpen(o.(*ciliumv2.CiliumNetworkPolicy)); {
		case isOpen && !open[i] && opened[i] == 0:
			open[i], opened[i] = true, at.Sub(notBefore).Seconds()
		case !isOpen && open[i]:
			open[i], closed[i] = false, at.Sub(notAfter).Seconds()
			done++
		}
		return done == r.ChurnGrants
	})
	// Every grant's status says Expired, and nothing more is written.
	waitPhase(t, c, &v1alpha1.AccessGrantList{}, "churn-", v1alpha1.ApprovalExpired, r.ChurnGrants, time.Minute)
	time.Sleep(2 * time.Second)
	r.ChurnSeconds = time.Since(start).Seconds()
	after := counter.Snapshot()
	delta := func(key string) int { return after[key] - before[key] }
	changes := float64(r.ChurnChanges)
	r.ReconcilesPerChange = (deviceReconciles(t) - reconciles) / changes
	deviceWrites := delta("apply CiliumNetworkPolicy") + delta("status MedicalDevice")
	r.DeviceWritesPerChange = float64(deviceWrites) / changes
	r.ApprovalStatusPerChange = float64(delta("status AccessGrant")) / changes
	r.OtherWrites = (after["create"] + after["update"] + after["patch"] + after["apply"] + after["delete"] + after["status"]) -
		(before["create"] + before["update"] + before["patch"] + before["apply"] + before["delete"] + before["status"]) - deviceWrites - delta("status AccessGrant")
	sort.Float64s(opened)
	sort.Float64s(closed)
	r.OpenP50Seconds, r.OpenP99Seconds = opened[len(opened)/2], opened[min(len(opened)-1, len(opened)*99/100)]
	r.CloseP99Seconds = closed[min(len(closed)-1, len(closed)*99/100)]

	// Many exceptions at once, one per device (no cap on their number).
	r.ManyExceptions = min(many, len(all))
	reconciles, before = deviceReconciles(t), counter.Snapshot()
	start = time.Now()
	now := time.Now().UTC()
	parallel(r.ManyExceptions, func(i int) {
		k := all[i]
		must(t, c.Create(ctx, &v1alpha1.SegmentException{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("many-%s-%s", k.Namespace, k.Name)},
			Spec: v1alpha1.SegmentExceptionSpec{MaxMode: v1alpha1.ModeRestricted, Approval: v1alpha1.Approval{Device: v1alpha1.ObjectRef{Namespace: k.Namespace, Name: k.Name},
				NotBefore: metav1.NewTime(now.Add(-time.Minute)), NotAfter: metav1.NewTime(now.Add(24 * time.Hour)), ApprovedBy: "bench", Ticket: "CAB-1", Justification: "many"}}}))
	})
	waitPhase(t, c, &v1alpha1.SegmentExceptionList{}, "many-", v1alpha1.ApprovalActive, r.ManyExceptions, time.Duration(r.ManyExceptions/10+120)*time.Second)
	excepted := map[types.NamespacedName]bool{}
	for _, k := range all[:r.ManyExceptions] {
		excepted[k] = true
	}
	waitAll(t, wc, len(all), func(d *v1alpha1.MedicalDevice) bool {
		return !excepted[client.ObjectKeyFromObject(d)] || d.Status.Segmentation != nil && d.Status.Segmentation.ActiveException != nil
	})
	time.Sleep(2 * time.Second)
	r.ManySeconds = time.Since(start).Seconds()
	after = counter.Snapshot()
	r.ManyReconcilesPerApproval = (deviceReconciles(t) - reconciles) / float64(r.ManyExceptions)
	writes := (after["create"] + after["update"] + after["patch"] + after["apply"] + after["delete"] + after["status"]) -
		(before["create"] + before["update"] + before["patch"] + before["apply"] + before["delete"] + before["status"])
	r.ManyWritesPerApproval = float64(writes) / float64(r.ManyExceptions)
	return r
}

// waitPhase polls a kind of approval until want of those whose name has the prefix are in the
// phase.
func waitPhase(t *testing.T, c client.Client, list client.ObjectList, prefix string, phase v1alpha1.ApprovalPhase, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l := list.DeepCopyObject().(client.ObjectList)
		must(t, c.List(context.Background(), l))
		items, err := meta.ExtractList(l)
		must(t, err)
		n := 0
		for _, it := range items {
			a := it.(interface {
				client.Object
				GetApprovalStatus() *v1alpha1.ApprovalStatus
			})
			if strings.HasPrefix(a.GetName(), prefix) && a.GetApprovalStatus().Phase == phase {
				n++
			}
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d %T %s", n, want, list, phase)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
