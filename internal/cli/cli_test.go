package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medseg/medseg/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files")

const fixedNow = "2026-11-23T12:00:00Z"

func samples() string { return filepath.Join(testenv.RepoRoot(), "config", "samples") }

func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func checkGolden(t *testing.T, name, got string) { t.Helper(); testenv.Golden(t, name, got, *update) }

func TestAssessSampleHospital(t *testing.T) {
	for _, format := range []string{"table", "json"} {
		out, stderr, code := run(t, "", "assess", "-f", samples(), "-o", format, "--now", fixedNow)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		checkGolden(t, "assess-samples."+format, out)
	}
	out, _, _ := run(t, "", "assess", "-f", samples(), "-o", "json", "--now", fixedNow)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	want := []string{"allowedFlows", "automatable", "blockedFlows", "blockedReasons", "exploitation", "exposure", "humanImpact", "mode", "name", "namespace", "policy", "priority"}
	for _, r := range rows {
		if len(r) != len(want) {
			t.Fatalf("json row has keys %v, want exactly %v", r, want)
		}
		for _, k := range want {
			if _, ok := r[k]; !ok {
				t.Fatalf("json row lacks %q: %v", k, r)
			}
		}
	}
	byName := map[string]map[string]any{}
	for _, r := range rows {
		byName[r["name"].(string)] = r
	}
	cam := byName["nicu-camera-bay-3"]
	if cam["priority"] != "OutOfCycle" || cam["mode"] != "Restricted" {
		t.Errorf("the NICU camera should be OutOfCycle and capped at Restricted by its exception: %v", cam)
	}
}

func TestRenderSampleHospitalIsDeterministic(t *testing.T) {
	first, stderr, code := run(t, "", "render", "-f", samples(), "--now", fixedNow)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for range 3 {
		again, _, _ := run(t, "", "render", "-f", samples(), "--now", fixedNow)
		if again != first {
			t.Fatal("render output changed between runs")
		}
	}
	checkGolden(t, "render-samples.yaml", first)
	if n := strings.Count(first, "kind: CiliumNetworkPolicy"); n != 5 {
		t.Errorf("want 5 device policies, got %d", n)
	}
	if n := strings.Count(first, "kind: CiliumClusterwideNetworkPolicy"); n != 2 {
		t.Errorf("want 2 guards, got %d", n)
	}
}

func TestReadsStdin(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(samples(), "devices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, string(raw), "assess", "-f", "-", "-f", filepath.Join(samples(), "segmentpolicies.yaml"), "--now", fixedNow)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "infusion-pump-bed-12") {
		t.Errorf("stdin devices missing from output:\n%s", out)
	}
	// Without the namespaces, namespace selectors see no labels: every device is ungoverned,
	// and the user is told why.
	if !strings.Contains(stderr, "namespace icu is not in the input") || !strings.Contains(out, "NoSegmentPolicy") {
		t.Errorf("want an ungoverned result with a warning; stdout:\n%s\nstderr:\n%s", out, stderr)
	}
}

func TestInvalidInputNamesFileObjectAndField(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		body string
		want []string
	}{
		{"bad-address.yaml", `apiVersion: medseg.io/v1alpha1
kind: MedicalDevice
metadata: {name: pump, namespace: icu}
spec:
  identity: {manufacturer: A, model: B}
  clinical: {safetyImpact: Critical, missionImpact: Degraded}
  network: {addresses: ["10.0.0.0/24"]}
  gateway: {podSelector: {matchLabels: {app: gw}}}
`, []string{"bad-address.yaml", "MedicalDevice icu/pump", "spec.network.addresses[0]", "single IP address"}},
		{"unknown-kind.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", []string{"unknown-kind.yaml", "unknown kind Pod"}},
		{"bad-yaml.yaml", "apiVersion: medseg.io/v1alpha1\nkind: [\n", []string{"bad-yaml.yaml", "line 2"}},
		{"typo.yaml", `---
# a comment-only document is skipped
---
apiVersion: medseg.io/v1alpha1
kind: SegmentPolicy
metadata: {name: p}
spec: {enforcement: Enforce, deviceNetworks: ["10.0.0.0/8"], deviceNetwork: []}
`, []string{"typo.yaml", "SegmentPolicy p", "spec.deviceNetwork", "unknown field"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := write(tc.name, tc.body)
			for _, cmd := range []string{"render", "assess"} {
				_, stderr, code := run(t, "", cmd, "-f", p)
				if code == 0 {
					t.Fatalf("%s accepted invalid input", cmd)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("%s: error %q does not name %q", cmd, stderr, w)
					}
				}
			}
		})
	}
	if _, stderr, code := run(t, "", "assess", "-f", samples(), "-o", "xml"); code == 0 || !strings.Contains(stderr, "-o xml") {
		t.Errorf("unknown -o accepted: %s", stderr)
	}
	if _, _, code := run(t, "", "render"); code == 0 {
		t.Error("render without -f must fail")
	}
}
