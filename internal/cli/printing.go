package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"
)

// output is a command's -o flag: kubectl's formats (json, yaml, name, jsonpath=, jsonpath-file=,
// go-template=, go-template-file=, custom-columns=, custom-columns-file=) through cli-runtime's
// printers, plus table and wide for commands that have a table, and the command's own formats
// (report's html and md).
type output struct {
	format  string
	print   *genericclioptions.PrintFlags
	allowed []string // besides kubectl's
}

func addOutputFlag(cmd *cobra.Command, def string, extra ...string) *output {
	o := &output{format: def, print: genericclioptions.NewPrintFlags(""), allowed: extra}
	cmd.Flags().StringVarP(&o.format, "output", "o", def, fmt.Sprintf(
		"Output format: %s, json, yaml, name, jsonpath=..., jsonpath-file=..., go-template=..., go-template-file=..., custom-columns=..., custom-columns-file=...",
		strings.Join(extra, ", ")))
	return o
}

func (o *output) is(f string) bool { return o.format == f }

// kind names the format without its argument.
func (o *output) kind() string {
	k, _, _ := strings.Cut(o.format, "=")
	return k
}

// validate rejects an unknown format before anything is read or written.
func (o *output) validate() error {
	for _, a := range o.allowed {
		if o.format == a {
			return nil
		}
	}
	switch o.kind() {
	case "custom-columns", "custom-columns-file":
		_, err := o.columns()
		return err
	}
	_, err := o.printer()
	return err
}

func (o *output) printer() (printers.ResourcePrinter, error) {
	format := o.format
	o.print.OutputFormat = &format
	p, err := o.print.ToPrinter()
	if err != nil {
		return nil, fmt.Errorf("-o %s: %w (or %s, custom-columns=...)", o.format, err, strings.Join(o.allowed, ", "))
	}
	return p, nil
}

// printObjects prints Kubernetes objects: a multi-document YAML stream for yaml (GitOps
// friendly, one document per object), a v1 List for json and templates, one line per object
// for name, a column per JSONPath for custom-columns.
func (o *output) printObjects(w io.Writer, objs []runtime.Object) error {
	items := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return fmt.Errorf("converting %T: %w", obj, err)
		}
		// What the typed structs add that no API server would return: an empty status, a null
		// creationTimestamp.
		if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
			delete(m, "status")
		}
		if md, ok := m["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
			delete(md, "creationTimestamp")
		}
		items = append(items, &unstructured.Unstructured{Object: m})
	}
	switch o.kind() {
	case "yaml":
		for _, u := range items {
			raw, err := yaml.Marshal(u.Object)
			if err != nil {
				return err
			}
			fmt.Fprint(w, "---\n", string(raw))
		}
		return nil
	case "custom-columns", "custom-columns-file":
		rows := make([]any, len(items))
		for i, u := range items {
			rows[i] = u.Object
		}
		return o.printColumns(w, rows)
	case "name":
		p, err := o.printer()
		if err != nil {
			return err
		}
		for _, u := range items {
			if err := p.PrintObj(u, w); err != nil {
				return err
			}
		}
		return nil
	}
	p, err := o.printer()
	if err != nil {
		return err
	}
	list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List"}}
	for _, u := range items {
		list.Items = append(list.Items, *u)
	}
	if len(items) == 1 {
		return p.PrintObj(items[0], w)
	}
	return p.PrintObj(list, w)
}

// printRows prints a command's result rows (any JSON value: a list of rows, or one report):
// table and wide through cli-runtime's table printer (wide adds the columns of priority 1),
// json and yaml as the rows' own JSON (a stable contract), jsonpath and templates over it,
// custom-columns per row, name as namespace/name.
func (o *output) printRows(w io.Writer, table *metav1.Table, rows any, names []string) error {
	switch o.kind() {
	case "table", "wide":
		if table == nil {
			return fmt.Errorf("-o %s: this command has no table; use json or yaml", o.format)
		}
		return printers.NewTablePrinter(printers.PrintOptions{Wide: o.is("wide")}).PrintObj(table, w)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "yaml":
		raw, err := yaml.Marshal(rows)
		if err != nil {
			return err
		}
		_, err = w.Write(raw)
		return err
	case "name":
		for _, n := range names {
			fmt.Fprintln(w, n)
		}
		return nil
	case "custom-columns", "custom-columns-file":
		generic, err := toGeneric(rows)
		if err != nil {
			return err
		}
		list, ok := generic.([]any)
		if !ok {
			list = []any{generic}
		}
		return o.printColumns(w, list)
	}
	generic, err := toGeneric(rows)
	if err != nil {
		return err
	}
	return o.printTemplate(w, generic)
}

// printTemplate evaluates jsonpath or go-template output over any JSON value, with
// cli-runtime's printers (they print objects: the value is wrapped in one).
func (o *output) printTemplate(w io.Writer, v any) error {
	p, err := o.printer()
	if err != nil {
		return err
	}
	m, ok := v.(map[string]any)
	if !ok {
		m = map[string]any{"items": v}
	}
	return p.PrintObj(&unstructured.Unstructured{Object: m}, w)
}

// column is one custom column: a header and a JSONPath.
type column struct {
	header string
	path   *jsonpath.JSONPath
}

// columns parses custom-columns=HEADER:.json.path,... or a custom-columns-file (a header line
// and a path line), as kubectl does.
func (o *output) columns() ([]column, error) {
	k, spec, _ := strings.Cut(o.format, "=")
	if k == "custom-columns-file" {
		raw, err := os.ReadFile(spec)
		if err != nil {
			return nil, fmt.Errorf("-o custom-columns-file: %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 2 {
			return nil, fmt.Errorf("-o custom-columns-file=%s: want a header line and a JSONPath line", spec)
		}
		hs, ps := strings.Fields(lines[0]), strings.Fields(lines[1])
		if len(hs) != len(ps) {
			return nil, fmt.Errorf("-o custom-columns-file=%s: %d headers for %d paths", spec, len(hs), len(ps))
		}
		var parts []string
		for i := range hs {
			parts = append(parts, hs[i]+":"+ps[i])
		}
		spec = strings.Join(parts, ",")
	}
	if spec == "" {
		return nil, errors.New("-o custom-columns= needs HEADER:.json.path[,...]")
	}
	var out []column
	for _, part := range strings.Split(spec, ",") {
		header, path, ok := strings.Cut(part, ":")
		if !ok || header == "" || path == "" {
			return nil, fmt.Errorf("-o custom-columns: %q is not HEADER:.json.path", part)
		}
		expr := path
		if !strings.HasPrefix(expr, "{") {
			expr = "{" + strings.TrimPrefix(expr, "$") + "}"
		}
		jp := jsonpath.New(header).AllowMissingKeys(true)
		if err := jp.Parse(expr); err != nil {
			return nil, fmt.Errorf("-o custom-columns: column %s: %w", header, err)
		}
		out = append(out, column{header: header, path: jp})
	}
	return out, nil
}

func (o *output) printColumns(w io.Writer, rows []any) error {
	cols, err := o.columns()
	if err != nil {
		return err
	}
	tw := printers.GetNewTabWriter(w)
	headers := make([]string, len(cols))
	for i, c := range cols {
		headers[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range rows {
		cells := make([]string, len(cols))
		for i, c := range cols {
			var b bytes.Buffer
			if err := c.path.Execute(&b, r); err != nil {
				return fmt.Errorf("-o custom-columns: column %s: %w", c.header, err)
			}
			cells[i] = b.String()
			if cells[i] == "" {
				cells[i] = "<none>"
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// toGeneric turns a Go value into its JSON form (maps, slices, strings, float64, bool).
func toGeneric(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(raw, &out)
}

// table builds a metav1.Table for cli-runtime's table printer; a column whose name ends in "*"
// is shown only with -o wide (priority 1).
func table(columns []string, rows [][]any) *metav1.Table {
	t := &metav1.Table{}
	for _, c := range columns {
		def := metav1.TableColumnDefinition{Name: strings.TrimSuffix(c, "*"), Type: "string"}
		if strings.HasSuffix(c, "*") {
			def.Priority = 1
		}
		t.ColumnDefinitions = append(t.ColumnDefinitions, def)
	}
	for _, r := range rows {
		t.Rows = append(t.Rows, metav1.TableRow{Cells: r})
	}
	return t
}
