package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestOutputFormats: every -o format kubectl has, on objects (render) and on rows (assess).
func TestOutputFormats(t *testing.T) {
	cases := []struct {
		args  []string
		check func(t *testing.T, out string)
	}{
		{[]string{"render", "-o", "json"}, func(t *testing.T, out string) {
			var list struct {
				Kind  string           `json:"kind"`
				Items []map[string]any `json:"items"`
			}
			if err := json.Unmarshal([]byte(out), &list); err != nil || list.Kind != "List" || len(list.Items) != 7 {
				t.Errorf("a v1 List of 2 guards and 5 device policies: %v %s %d", err, list.Kind, len(list.Items))
			}
		}},
		{[]string{"render", "-o", "name"}, func(t *testing.T, out string) {
			if !strings.Contains(out, "ciliumclusterwidenetworkpolicy.cilium.io/medseg-guard-critical-care\n") ||
				!strings.Contains(out, "ciliumnetworkpolicy.cilium.io/medseg-infusion-pump-bed-12\n") || strings.Count(out, "\n") != 7 {
				t.Errorf("one kind/name per object:\n%s", out)
			}
		}},
		{[]string{"render", "-o", "jsonpath={.items[*].metadata.name}"}, func(t *testing.T, out string) {
			if len(strings.Fields(out)) != 7 || !strings.Contains(out, "medseg-guard-diagnostics") {
				t.Errorf("jsonpath over the List: %q", out)
			}
		}},
		{[]string{"render", "-o", "custom-columns=KIND:.kind,NAME:.metadata.name,NAMESPACE:.metadata.namespace"}, func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 8 || !strings.HasPrefix(lines[0], "KIND") || !strings.Contains(out, "<none>") {
				t.Errorf("a header and one row per object, <none> for a cluster-scoped namespace:\n%s", out)
			}
		}},
		{[]string{"assess", "-o", "wide"}, func(t *testing.T, out string) {
			if !strings.Contains(out, "EXPOSURE") || !strings.Contains(out, "HUMANIMPACT") {
				t.Errorf("wide adds the SSVC inputs:\n%s", out)
			}
		}},
		{[]string{"assess"}, func(t *testing.T, out string) {
			if strings.Contains(out, "EXPOSURE") || !strings.Contains(out, "PRIORITY") {
				t.Errorf("the default table is narrow:\n%s", out)
			}
		}},
		{[]string{"assess", "-o", "yaml"}, func(t *testing.T, out string) {
			var rows []Assessment
			if err := yaml.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 5 || rows[0].Priority == "" {
				t.Errorf("yaml rows: %v %+v", err, rows)
			}
		}},
		{[]string{"assess", "-o", "name"}, func(t *testing.T, out string) {
			if !strings.Contains(out, "icu/infusion-pump-bed-12\n") || strings.Count(out, "\n") != 5 {
				t.Errorf("namespace/name per row:\n%s", out)
			}
		}},
		{[]string{"assess", "-o", "jsonpath={.items[?(@.name==\"nicu-camera-bay-3\")].mode}"}, func(t *testing.T, out string) {
			if out != "Restricted" {
				t.Errorf("jsonpath over the rows: %q", out)
			}
		}},
		{[]string{"assess", "-o", "custom-columns=DEVICE:.name,PRIORITY:.priority"}, func(t *testing.T, out string) {
			if !strings.Contains(out, "nicu-camera-bay-3") || !strings.Contains(out, "OutOfCycle") || strings.Contains(out, "MODE") {
				t.Errorf("custom columns of the rows:\n%s", out)
			}
		}},
	}
	for _, c := range cases {
		args := append(append([]string(nil), c.args...), "-f", samples(), "--now", fixedNow)
		out, stderr, code := run(t, "", args...)
		if code != 0 {
			t.Errorf("%v: exit %d: %s", c.args, code, stderr)
			continue
		}
		t.Run(strings.Join(c.args, " "), func(t *testing.T) { c.check(t, out) })
	}
}

// TestFileInput: -f takes files, directories, URLs (a hospital's mirror) and -; -R recurses; -k
// builds a kustomization; nothing given, or a path that does not exist, is an error.
func TestFileInput(t *testing.T) {
	want := func(t *testing.T, args []string, stdin string, devices int) {
		t.Helper()
		out, stderr, code := run(t, stdin, append(args, "-o", "name", "--now", fixedNow)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		if n := strings.Count(out, "\n"); n != devices {
			t.Errorf("%v: %d devices, want %d:\n%s", args, n, devices, out)
		}
	}
	want(t, []string{"assess", "-f", samples()}, "", 5)
	want(t, []string{"assess", "-f", filepath.Join(samples(), "devices.yaml"), "-f", filepath.Join(samples(), "segmentpolicies.yaml")}, "", 5)
	want(t, []string{"assess", "-k", samples()}, "", 5)
	nested := t.TempDir()
	for _, f := range []string{"devices.yaml", "segmentpolicies.yaml", "namespaces.yaml"} {
		raw, err := os.ReadFile(filepath.Join(samples(), f))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(nested, "a", strings.TrimSuffix(f, ".yaml"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want(t, []string{"assess", "-R", "-f", nested}, "", 5)
	if _, _, code := run(t, "", "assess", "-f", nested); code == 0 {
		t.Error("without -R a directory of directories holds no objects: that is an error")
	}
	raw, err := os.ReadFile(filepath.Join(samples(), "devices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want(t, []string{"assess", "-f", "-"}, string(raw), 5)
	mirror := httptest.NewServer(http.FileServer(http.Dir(samples())))
	defer mirror.Close()
	want(t, []string{"assess", "-f", mirror.URL + "/devices.yaml", "-f", mirror.URL + "/segmentpolicies.yaml", "-f", mirror.URL + "/namespaces.yaml"}, "", 5)
	for _, bad := range [][]string{{"render"}, {"render", "-f", filepath.Join(t.TempDir(), "nothing.yaml")}, {"assess", "-f", t.TempDir()}} {
		if out, stderr, code := run(t, "", bad...); code == 0 || stderr == "" || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q: want an error and no output", bad, code, out, stderr)
		}
	}
}

// TestArgumentsAreNeverIgnored: unknown flags, missing and extra arguments are errors with a
// non-zero exit and nothing printed to stdout; a bare --dry-run is an error, never "none".
func TestArgumentsAreNeverIgnored(t *testing.T) {
	for _, args := range [][]string{
		{"render", "-f", samples(), "--bogus"},
		{"render", "-f", samples(), "extra-arg"},
		{"report", "-f", samples(), "extra-arg"},
		{"assess", "-f", samples(), "-o", "xml"},
		{"explain"},
		{"explain", "a", "b"},
		{"commission", "--ticket", "T1"},
		{"commission", "a", "b", "--ticket", "T1"},
		{"commission", "pump", "--ticket", "T1", "--dry-run"},
		{"commission", "pump", "--ticket", "T1", "--dry-run=maybe"},
		{"nosuchcommand"},
	} {
		out, stderr, code := run(t, "", args...)
		if code == 0 || out != "" || !strings.HasPrefix(stderr, "error: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q: want an error", args, code, out, stderr)
		}
	}
	if _, stderr, _ := run(t, "", "commission", "pump", "--ticket", "T1", "--dry-run"); !strings.Contains(stderr, `"none", "server", or "client"`) {
		t.Errorf("a bare --dry-run must say which values it takes: %s", stderr)
	}
}

// TestHelpCompletionAndVersion: every command has help with examples; completion scripts for
// bash, zsh and fish; version works without a cluster.
func TestHelpCompletionAndVersion(t *testing.T) {
	for _, cmd := range []string{"render", "assess", "report", "audit", "explain", "commission", "version"} {
		out, stderr, code := run(t, "", cmd, "--help")
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--kubeconfig") {
			t.Errorf("%s --help: exit %d, %s%s", cmd, code, out, stderr)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out, _, code := run(t, "", "completion", shell); code != 0 || !strings.Contains(out, "kubectl-medseg") {
			t.Errorf("completion %s: exit %d", shell, code)
		}
	}
	out, stderr, code := run(t, "", "version", "--client", "-o", "json")
	var v VersionInfo
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Client.Version == "" || v.Client.GoVersion == "" {
		t.Errorf("version --client: exit %d %s %s", code, out, stderr)
	}
}
