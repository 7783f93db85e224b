package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/medseg/medseg/internal/manifest"
)

// TestMigrateCarriesLegacyApprovalsOver: migrate turns the old lists into SegmentExceptions and
// AccessGrants that the API schema accepts, keeps the window, device, flow, mode and approver,
// says where each came from, and prefixes names two policies share.
func TestMigrateCarriesLegacyApprovalsOver(t *testing.T) {
	out, stderr, code := run(t, "", "migrate", "-f", filepath.Join("testdata", "legacy-policy.yaml"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	objs, err := manifest.Read([]string{"-"}, strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	in, err := decode(objs) // validates against the CRDs, as the API server would
	if err != nil {
		t.Fatalf("migrated objects rejected: %v\n%s", err, out)
	}
	if len(in.Approvals.Exceptions) != 1 || len(in.Approvals.Grants) != 2 {
		t.Fatalf("got %d exceptions and %d grants, want 1 and 2:\n%s", len(in.Approvals.Exceptions), len(in.Approvals.Grants), out)
	}
	e := in.Approvals.Exceptions[0]
	if e.Name != "nicu-camera-feed" || e.Spec.Device.Name != "nicu-camera-bay-3" || e.Spec.MaxMode != "Restricted" ||
		e.Spec.NotBefore.UTC().Format("2006-01-02T15") != "2026-11-20T09" || e.Spec.NotAfter.UTC().Format("2006-01-02T15") != "2026-12-18T09" ||
		e.Spec.ApprovedBy != "Dr. A. Okafor (NICU medical director)" || !strings.Contains(e.Spec.Ticket, "migrated from SegmentPolicy critical-care") ||
		len(e.Spec.CompensatingControls) != 1 || e.Annotations[AnnotationMigratedFrom] != "segmentpolicy/critical-care spec.exceptions[nicu-camera-feed]" {
		t.Errorf("exception carried over wrong: %+v", e)
	}
	names := []string{in.Approvals.Grants[0].Name, in.Approvals.Grants[1].Name}
	if names[0] != "critical-care-acme-firmware-check" || names[1] != "diagnostics-acme-firmware-check" {
		t.Errorf("grants sharing a name across policies must be prefixed with their policy: %v", names)
	}
	if g := in.Approvals.Grants[0]; g.Spec.Flow != "vendor-maintenance" || g.Spec.Ticket != "VND-7781" || !strings.Contains(g.Spec.Justification, "migrated from SegmentPolicy critical-care") {
		t.Errorf("grant carried over wrong: %+v", g)
	}
	if _, stderr, code := run(t, "", "migrate", "-f", filepath.Join(samples(), "segmentpolicies.yaml")); code != 0 || !strings.Contains(stderr, "nothing to migrate") {
		t.Errorf("policies without legacy approvals: exit %d, %q", code, stderr)
	}
}
