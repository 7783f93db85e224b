package cli

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/report"
)

// OfflineReport builds the report from files: each device's status is what medseg would write
// (risk and segmentation), without drift, flatness or history. Commissioning comes from the
// spec, as the report reads it for live devices too.
func OfflineReport(in *Inputs, now time.Time, source string) (*report.Report, error) {
	plans, err := in.Plans(now)
	if err != nil {
		return nil, err
	}
	devs := make([]v1alpha1.MedicalDevice, len(in.Devices))
	for i, p := range plans {
		d := in.Devices[i].DeepCopy()
		d.Status = v1alpha1.MedicalDeviceStatus{Risk: p.Assessment.Status()}
		if p.Render != nil {
			d.Status.Segmentation = p.Render.SegmentationStatus()
			for _, n := range p.SharedWith {
				if d.Status.Segmentation == nil {
					d.Status.Segmentation = &v1alpha1.SegmentationStatus{}
				}
				d.Status.Segmentation.SharedWith = append(d.Status.Segmentation.SharedWith, n.String())
			}
		}
		devs[i] = *d
	}
	approvals := DecideApprovals(in.Approvals, devs, in.Policies, now)
	return report.Build(report.Input{Devices: devs, Policies: in.Policies, Approvals: approvals, Now: now, Source: source, Offline: true}), nil
}

// LiveReport builds the report from the status medseg recorded in the cluster, for the devices
// of one namespace or (ns "") all.
func LiveReport(ctx context.Context, c client.Client, now time.Time, source, ns string) (*report.Report, error) {
	in, err := readLive(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	in.Now, in.Source = now, source
	return report.Build(*in), nil
}

// readLive reads what a report of one cluster is built from.
func readLive(ctx context.Context, c client.Client, ns string) (*report.Input, error) {
	var devs v1alpha1.MedicalDeviceList
	if err := c.List(ctx, &devs, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing MedicalDevices: %w", err)
	}
	var pols v1alpha1.SegmentPolicyList
	if err := c.List(ctx, &pols); err != nil {
		return nil, fmt.Errorf("listing SegmentPolicies: %w", err)
	}
	approvals, err := ListApprovals(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	return &report.Input{Devices: devs.Items, Policies: pols.Items, Approvals: approvals}, nil
}

// ListApprovals reads the SegmentExceptions and AccessGrants, those naming devices of one
// namespace or (ns "") all.
func ListApprovals(ctx context.Context, c client.Client, ns string) (v1alpha1.Approvals, error) {
	var a v1alpha1.Approvals
	var es v1alpha1.SegmentExceptionList
	if err := c.List(ctx, &es); err != nil {
		return a, fmt.Errorf("listing SegmentExceptions: %w", err)
	}
	var gs v1alpha1.AccessGrantList
	if err := c.List(ctx, &gs); err != nil {
		return a, fmt.Errorf("listing AccessGrants: %w", err)
	}
	for _, e := range es.Items {
		if ns == "" || e.Spec.Device.Namespace == ns {
			a.Exceptions = append(a.Exceptions, e)
		}
	}
	for _, g := range gs.Items {
		if ns == "" || g.Spec.Device.Namespace == ns {
			a.Grants = append(a.Grants, g)
		}
	}
	return a, nil
}
