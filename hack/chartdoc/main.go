// Command chartdoc writes the chart README from README.md.gotmpl and the "# --" comments of
// values.yaml, so the README lists every value. `make generate` runs it; `make verify` fails when
// the committed README differs.
//
// Usage: go run ./hack/chartdoc charts/medseg
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

type value struct{ Key, Type, Default, Description string }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chartdoc CHART_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "chartdoc:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	values, err := parse(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return err
	}
	tmpl, err := template.ParseFiles(filepath.Join(dir, "README.md.gotmpl"))
	if err != nil {
		return err
	}
	var table bytes.Buffer
	table.WriteString("| Key | Type | Default | Description |\n|---|---|---|---|\n")
	for _, v := range values {
		fmt.Fprintf(&table, "| `%s` | %s | `%s` | %s |\n", v.Key, v.Type, strings.ReplaceAll(v.Default, "|", "\\|"), v.Description)
	}
	health, err := argoHealth(filepath.Join(dir, "files", "health"))
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, map[string]string{"Values": table.String(), "ArgoHealth": health}); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "README.md"), out.Bytes(), 0o644)
}

// argoHealth is the argocd-cm snippet of the chart's health checks (files/health): one key per
// kind, the script indented under it.
func argoHealth(dir string) (string, error) {
	var b strings.Builder
	for _, k := range []struct{ kind, file string }{
		{"MedicalDevice", "conditions.lua"}, {"SegmentPolicy", "conditions.lua"},
		{"SegmentException", "approval.lua"}, {"AccessGrant", "approval.lua"},
	} {
		raw, err := os.ReadFile(filepath.Join(dir, k.file))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "resource.customizations.health.medseg.io_%s: |\n", k.kind)
		for _, line := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
			b.WriteString(strings.TrimRight("  "+line, " ") + "\n")
		}
	}
	return b.String(), nil
}

// parse reads values.yaml line by line: a "# -- text" comment documents the next key; nested
// keys are joined with dots; a key whose value is a block (nothing after the colon) is a
// parent, unless it is documented and followed by a map, where the map is its default.
func parse(path string) ([]value, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type frame struct {
		indent int
		key    string
	}
	var stack []frame
	var out []value
	doc := ""
	skipDeeperThan := -1 // inside a block documented as a whole
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			continue
		}
		if strings.HasPrefix(trimmed, "# --") {
			doc = strings.TrimSpace(strings.TrimPrefix(trimmed, "# --"))
			continue
		}
		if strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "- ") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if skipDeeperThan >= 0 {
			if indent > skipDeeperThan {
				continue
			}
			skipDeeperThan = -1
		}
		key, rest, ok := strings.Cut(trimmed, ":")
		if !ok {
			continue
		}
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		full := key
		if len(stack) > 0 {
			full = stack[len(stack)-1].key + "." + key
		}
		rest = strings.TrimSpace(rest)
		if rest == "" {
			// A block: its children are documented on their own.
			stack = append(stack, frame{indent: indent, key: full})
			if doc != "" && !childDocumented(lines[i+1:], indent) {
				def := blockDefault(lines[i+1:], indent)
				typ := "object"
				if strings.HasPrefix(def, "- ") {
					typ = "list"
				}
				out = append(out, value{Key: full, Type: typ, Default: def, Description: doc})
				skipDeeperThan = indent
			}
			doc = ""
			continue
		}
		if doc == "" {
			return nil, fmt.Errorf("%s: value %s has no \"# --\" description", path, full)
		}
		out = append(out, value{Key: full, Type: typeOf(rest), Default: rest, Description: doc})
		doc = ""
	}
	return out, sc.Err()
}

func childDocumented(lines []string, parent int) bool {
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" {
			continue
		}
		if len(l)-len(strings.TrimLeft(l, " ")) <= parent {
			return false
		}
		if strings.HasPrefix(t, "# --") {
			return true
		}
	}
	return false
}

func blockDefault(lines []string, parent int) string {
	var parts []string
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if len(l)-len(strings.TrimLeft(l, " ")) <= parent {
			break
		}
		parts = append(parts, strings.TrimSpace(l))
	}
	return strings.Join(parts, " ")
}

func typeOf(v string) string {
	switch {
	case v == "true" || v == "false":
		return "bool"
	case strings.HasPrefix(v, "{"):
		return "object"
	case strings.HasPrefix(v, "["):
		return "list"
	case strings.HasPrefix(v, "\""):
		return "string"
	}
	if _, err := fmt.Sscanf(v, "%d", new(int)); err == nil && !strings.ContainsAny(v, "abcdefghijklmnopqrstuvwxyz") {
		return "int"
	}
	return "string"
}
