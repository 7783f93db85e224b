package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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
	return report.Build(report.Input{Devices: devs, Policies: in.Policies, Now: now, Source: source, Offline: true}), nil
}

// LiveReport builds the report from the status medseg recorded in the cluster.
func LiveReport(ctx context.Context, c client.Client, now time.Time, source string) (*report.Report, error) {
	var devs v1alpha1.MedicalDeviceList
	if err := c.List(ctx, &devs); err != nil {
		return nil, fmt.Errorf("listing MedicalDevices: %w", err)
	}
	var pols v1alpha1.SegmentPolicyList
	if err := c.List(ctx, &pols); err != nil {
		return nil, fmt.Errorf("listing SegmentPolicies: %w", err)
	}
	return report.Build(report.Input{Devices: devs.Items, Policies: pols.Items, Now: now, Source: source}), nil
}

func runReport(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o offlineFlags
	o.register(fs)
	kubeconfig := fs.String("kubeconfig", "", "path to the kubeconfig (default: $KUBECONFIG or ~/.kube/config); used without -f")
	output := fs.String("o", "html", "output format: html, md or json")
	outFile := fs.String("out", "", "write to this file instead of standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var r *report.Report
	if len(o.files) > 0 {
		in, now, err := o.load(stdin, stderr)
		if err != nil {
			return err
		}
		if r, err = OfflineReport(in, now, "files: "+strings.Join(o.files, ", ")); err != nil {
			return err
		}
	} else {
		c, err := NewClient(*kubeconfig)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if r, err = LiveReport(ctx, c, time.Now(), "the live cluster"); err != nil {
			return err
		}
	}
	w := stdout
	if *outFile != "" {
		f, err := os.Create(*outFile)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		w = f
	}
	return report.Write(w, r, *output)
}
