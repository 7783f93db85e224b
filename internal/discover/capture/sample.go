package capture

import (
	"io"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// SampleStart is when the sample capture begins.
var SampleStart = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

// Sample writes the recorded capture of config/samples/discovery: a day of radiology traffic
// through the DICOM gateway, as `hubble observe --since 24h -o jsonpb` would have written it.
// The CT scanner's declared flows, a new ultrasound's flows (images to PACS, worklist from
// the RIS, the vendor's cloud), a debug pod reaching the ultrasound directly (dropped by the
// guard), the kubelet's probes of the gateway and one lost-events record.
func Sample(w io.Writer) error {
	radiology := map[string]string{"medseg.io/gateway-namespace": "true", "medseg.io/zone": "diagnostics"}
	gw := &Pod{Namespace: "radiology", Name: "dicom-gateway-7f9c6d5b8-x2kqp", IP: "10.244.1.20", Node: "worker-a",
		NamespaceLabels: radiology, Labels: map[string]string{"app": "dicom-gateway", "medseg.io/gateway": "true"}}
	apps := map[string]string{"medseg.io/clinical-apps": "true"}
	pacs := &Pod{Namespace: "clinical-apps", Name: "pacs-0", IP: "10.244.2.30", Node: "worker-b", NamespaceLabels: apps,
		Labels: map[string]string{"app": "pacs"}}
	ris := &Pod{Namespace: "clinical-apps", Name: "ris-5d8f7c9b6-7tq2m", IP: "10.244.2.31", Node: "worker-b", NamespaceLabels: apps,
		Labels: map[string]string{"app": "ris"}}
	debug := &Pod{Namespace: "radiology", Name: "debug-shell", IP: "10.244.1.99", Node: "worker-a", NamespaceLabels: radiology,
		Labels: map[string]string{"app": "debug-shell"}}
	const ct, us, vendor = "10.30.1.10", "10.30.1.23", "203.0.113.50"
	b := NewBuilder(SampleStart, 7*time.Minute)
	out := NewWriter(w)
	b.Emit = func(f *flowpb.Flow) { _ = out.Write(Response(f)) }
	for i := 0; i < 24; i++ {
		// The CT scanner, as declared: images to PACS, worklist from the RIS.
		b.Proxied(PodEndpoint(pacs), gw, 11112, ct, 104, "TCP", false, Forwarded)
		if i%2 == 0 {
			b.Proxied(PodEndpoint(ris), gw, 11113, ct, 4006, "TCP", true, Forwarded)
		}
		// The new ultrasound: images to PACS, worklist from the RIS.
		b.Proxied(PodEndpoint(pacs), gw, 11114, us, 104, "TCP", false, Forwarded)
		if i%3 == 0 {
			b.Proxied(PodEndpoint(ris), gw, 11115, us, 4006, "TCP", true, Forwarded)
		}
		// Its vendor cloud, a few times a day.
		if i%8 == 0 {
			b.Proxied(External(vendor), gw, 8443, us, 443, "TCP", false, Forwarded)
		}
		// A debug pod straight to the ultrasound: the diagnostics guard drops it.
		if i%12 == 5 {
			b.Connection(PodEndpoint(debug), External(us), "TCP", 22, Dropped)
		}
		// The kubelet probes the gateway.
		b.Connection(Endpoint{Reserved: "host", IP: "10.0.0.11"}, PodEndpoint(gw), "TCP", 8080, Forwarded)
		if i == 17 {
			if err := out.Write(Lost(2, b.Now())); err != nil {
				return err
			}
		}
	}
	return nil
}
