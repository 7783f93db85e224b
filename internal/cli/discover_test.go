package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleCapture() string { return filepath.Join(samples(), "discovery", "capture.jsonpb") }

// TestDiscoverSampleCapture reads the recorded Hubble capture against the sample hospital from
// files: the table and the apply configurations are golden; the tier mapping sets tiers; JSON is
// the proposal.
func TestDiscoverSampleCapture(t *testing.T) {
	base := []string{"discover", "--flows", sampleCapture(), "-f", samples(), "-f", filepath.Join(samples(), "discovery"), "-n", "radiology"}
	for _, format := range []string{"table", "yaml"} {
		out, stderr, code := run(t, "", append(base, "-o", format)...)
		if code != 0 {
			t.Fatalf("-o %s: exit %d: %s", format, code, stderr)
		}
		// The capture is a real file path: keep the golden file independent of the checkout.
		checkGolden(t, "discover-sample."+format, out)
		if !strings.Contains(stderr, "Hubble reported 2 lost events") {
			t.Errorf("-o %s: the capture's lost events are not warned about: %q", format, stderr)
		}
	}

	out, stderr, code := run(t, "", append(base, "-o", "json", "--tier", "app=pacs=Clinical", "--tier", "app=ris=Essential")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var p struct {
		Devices []struct {
			Name string `json:"name"`
			Rows []struct {
				Status string `json:"status"`
				Flow   struct {
					Name string `json:"name"`
					Tier string `json:"tier"`
				} `json:"flow"`
			} `json:"rows"`
			Bypass []struct {
				Port int32 `json:"port"`
			} `json:"bypass"`
		} `json:"devices"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	tiers := map[string]string{}
	bypass := 0
	for _, d := range p.Devices {
		for _, r := range d.Rows {
			tiers[d.Name+"/"+r.Flow.Name+"/"+r.Status] = r.Flow.Tier
		}
		bypass += len(d.Bypass)
	}
	want := map[string]string{
		"ultrasound-3/out-tcp-11114-104/new": "Clinical",  // app=pacs
		"ultrasound-3/in-tcp-11115-4006/new": "Essential", // app=ris
		"ultrasound-3/out-tcp-8443-443/new":  "Support",   // unmapped: the default
	}
	for k, v := range want {
		if tiers[k] != v {
			t.Errorf("%s: tier %q, want %q (all: %v)", k, tiers[k], v, tiers)
		}
	}
	// Declared flows keep their declared tiers whatever the mapping says.
	if got := tiers["ct-scanner-1/modality-worklist/already declared"]; got != "Clinical" {
		t.Errorf("the CT scanner's declared worklist flow shows tier %q, want its declared Clinical", got)
	}
	if bypass != 1 {
		t.Errorf("want the debug shell's connection to the ultrasound reported as bypass once, got %d", bypass)
	}
}

// TestDiscoverBadInput: every refusal names what is wrong and exits non-zero; malformed records
// are skipped and counted as long as something could be read.
func TestDiscoverBadInput(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.jsonpb")
	if err := os.WriteFile(garbage, []byte("not json\n{\"flow\": 12}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(sampleCapture())
	if err != nil {
		t.Fatal(err)
	}
	mixed := filepath.Join(dir, "mixed.jsonpb")
	if err := os.WriteFile(mixed, append([]byte("{truncated\n"), good...), 0o600); err != nil {
		t.Fatal(err)
	}
	files := []string{"-f", samples(), "-f", filepath.Join(samples(), "discovery")}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no source", append([]string{"discover"}, files...), "give the flow records"},
		{"both sources", append([]string{"discover", "--flows", sampleCapture(), "--server", "127.0.0.1:4245"}, files...), "one of them"},
		{"apply from files", append([]string{"discover", "--flows", sampleCapture(), "--apply"}, files...), "read them from the cluster"},
		{"since on a file", append([]string{"discover", "--flows", sampleCapture(), "--since", "1h"}, files...), "--since and --until"},
		{"dry run without apply", append([]string{"discover", "--flows", sampleCapture(), "--dry-run=server"}, files...), "--dry-run applies to --apply"},
		{"bad tier", append([]string{"discover", "--flows", sampleCapture(), "--tier", "app=pacs=Critical"}, files...), "Critical"},
		{"missing file", append([]string{"discover", "--flows", filepath.Join(dir, "absent.jsonpb")}, files...), "absent.jsonpb"},
		{"nothing readable", append([]string{"discover", "--flows", garbage}, files...), "garbage.jsonpb"},
	} {
		_, stderr, code := run(t, "", c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want a failure naming %q", c.name, code, stderr, c.want)
		}
	}
	out, stderr, code := run(t, "", append([]string{"discover", "--flows", mixed, "-n", "radiology"}, files...)...)
	if code != 0 {
		t.Fatalf("a capture with one malformed record: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "1 malformed") || !strings.Contains(out, "out-tcp-11114-104") {
		t.Errorf("the malformed record is not counted, or the rest was not read:\nstderr %s\nout %s", stderr, out)
	}
}
