// Package schema generates the JSON Schema (draft 2020-12) of the report's JSON form, the Go
// type Report of package internal/report as encoding/json writes it, from that package's Go
// source: every struct reachable from Report becomes a definition with its fields' JSON names,
// types and doc comments, required unless tagged omitempty, and closed (additionalProperties:
// false), so a field added to the Go model without regenerating fails validation.
//
// It understands only what the model uses: Go basic types, slices, pointers and the package's
// own named types. Anything else (a type from another package, a map, an interface, an
// embedded field, a custom MarshalJSON) is an error naming the type, never a guess.
package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

const (
	// Draft is the JSON Schema dialect of the generated schema.
	Draft = "https://json-schema.org/draft/2020-12/schema"
	// ID is the generated schema's $id.
	ID = "https://medseg.io/schemas/report/v1.json"

	rootType     = "Report"
	versionConst = "SchemaVersion"
	versionField = "schemaVersion"
	title        = "medseg report"
	contract     = "Schema of the JSON form of the auditor's report, `kubectl medseg report -o json`. " +
		"It is a stable contract: fields may be added within v1, but none is removed or changes meaning; " +
		"that takes a new schemaVersion."
)

// Generate reads the Go source of the report package in pkgDir and returns its JSON Schema,
// indented by two spaces and ending in a newline. The output depends only on the source.
func Generate(pkgDir string) ([]byte, error) {
	p, err := load(pkgDir)
	if err != nil {
		return nil, err
	}
	g := &generator{pkg: p, defs: map[string]object{}}
	root, err := g.structDef(rootType)
	if err != nil {
		return nil, err
	}
	version, ok := p.consts[versionConst]
	if !ok {
		return nil, fmt.Errorf("%s: no string constant %s", pkgDir, versionConst)
	}
	// Report is the document itself: its definition is the root, with schemaVersion pinned.
	props, _ := root.get("properties").(object)
	vprop, ok := props.get(versionField).(object)
	if !ok {
		return nil, fmt.Errorf("%s: type %s has no field with JSON name %q", pkgDir, rootType, versionField)
	}
	if vprop.get("description") == nil && version.doc != "" {
		vprop = append(object{{"description", version.doc}}, vprop...)
	}
	props = props.set(versionField, vprop.set("const", version.value))
	root = root.set("properties", props)

	doc := object{
		{"$schema", Draft},
		{"$id", ID},
		{"title", title},
		{"description", strings.TrimSpace(contract + " " + root.str("description"))},
	}
	for _, m := range root {
		if m.key != "description" {
			doc = append(doc, m)
		}
	}
	names := make([]string, 0, len(g.defs))
	for name := range g.defs {
		if name != rootType {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	defs := object{}
	for _, name := range names {
		defs = append(defs, member{name, g.defs[name]})
	}
	doc = append(doc, member{"$defs", defs})

	var b bytes.Buffer
	if err := write(&b, doc, ""); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// pkg is what the generator needs from the package's source.
type pkg struct {
	fset    *token.FileSet
	types   map[string]typeDecl
	consts  map[string]constant
	methods map[string][]string // type name → method names
}

type typeDecl struct {
	spec *ast.TypeSpec
	doc  string
}

type constant struct{ value, doc string }

// load parses the package's non-test Go files.
func load(dir string) (*pkg, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	p := &pkg{fset: token.NewFileSet(), types: map[string]typeDecl{}, consts: map[string]constant{}, methods: map[string][]string{}}
	name := ""
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(p.fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		if name != "" && f.Name.Name != name {
			return nil, fmt.Errorf("%s: files of packages %s and %s", dir, name, f.Name.Name)
		}
		name = f.Name.Name
		p.collect(f)
	}
	if name == "" {
		return nil, fmt.Errorf("%s: no Go files", dir)
	}
	return p, nil
}

func (p *pkg) collect(f *ast.File) {
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv != nil && len(d.Recv.List) == 1 {
				if n := receiverName(d.Recv.List[0].Type); n != "" {
					p.methods[n] = append(p.methods[n], d.Name.Name)
				}
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					doc := s.Doc
					if doc == nil && len(d.Specs) == 1 {
						doc = d.Doc
					}
					p.types[s.Name.Name] = typeDecl{spec: s, doc: text(doc)}
				case *ast.ValueSpec:
					if d.Tok != token.CONST {
						continue
					}
					doc := s.Doc
					if doc == nil && len(d.Specs) == 1 {
						doc = d.Doc
					}
					for i, n := range s.Names {
						if i >= len(s.Values) {
							continue
						}
						if lit, ok := s.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							if v, err := strconv.Unquote(lit.Value); err == nil {
								p.consts[n.Name] = constant{value: v, doc: text(doc)}
							}
						}
					}
				}
			}
		}
	}
}

func receiverName(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.ParenExpr:
			e = t.X
		case *ast.Ident:
			return t.Name
		default:
			return ""
		}
	}
}

// text is a doc comment as one line.
func text(c *ast.CommentGroup) string {
	if c == nil {
		return ""
	}
	return strings.Join(strings.Fields(c.Text()), " ")
}

type generator struct {
	pkg  *pkg
	defs map[string]object // struct definitions by Go type name, once reached
}

// marshalers are methods that make encoding/json write a type differently from its fields.
var marshalers = []string{"MarshalJSON", "MarshalText"}

// structDef returns the definition of a struct type of the package, making it (and the
// definitions it refers to) the first time.
func (g *generator) structDef(name string) (object, error) {
	if d, ok := g.defs[name]; ok {
		return d, nil
	}
	td, ok := g.pkg.types[name]
	if !ok {
		return nil, fmt.Errorf("type %s is not declared in the package", name)
	}
	st, ok := td.spec.Type.(*ast.StructType)
	if !ok {
		return nil, fmt.Errorf("type %s is not a struct", name)
	}
	if err := g.plain(name, td); err != nil {
		return nil, err
	}
	g.defs[name] = object{} // a placeholder: recursive types refer to it by $ref
	props, required := object{}, []any{}
	seen := map[string]string{}
	for _, f := range st.Fields.List {
		if len(f.Names) == 0 {
			return nil, fmt.Errorf("%s: embedded field %s is not supported (encoding/json promotes its fields)", name, exprString(f.Type))
		}
		tag := ""
		if f.Tag != nil {
			raw, err := strconv.Unquote(f.Tag.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: tag %s: %w", name, f.Tag.Value, err)
			}
			tag = reflect.StructTag(raw).Get("json")
		}
		if tag == "-" {
			continue
		}
		jsonName, opts, _ := strings.Cut(tag, ",")
		optional := false
		for o := range strings.SplitSeq(opts, ",") {
			switch o {
			case "":
			case "omitempty", "omitzero":
				optional = true
			default:
				return nil, fmt.Errorf("%s: json tag option %q is not supported", name, o)
			}
		}
		for _, n := range f.Names {
			if !n.IsExported() {
				continue
			}
			key := jsonName
			if key == "" {
				key = n.Name
			}
			if other, dup := seen[key]; dup {
				return nil, fmt.Errorf("%s: fields %s and %s have the same JSON name %q", name, other, n.Name, key)
			}
			seen[key] = n.Name
			s, err := g.schemaOf(f.Type, name+"."+n.Name)
			if err != nil {
				return nil, err
			}
			if doc := text(f.Doc); doc != "" {
				s = append(object{{"description", doc}}, s...)
			}
			props = append(props, member{key, s})
			if !optional {
				required = append(required, key)
			}
		}
	}
	def := object{}
	if td.doc != "" {
		def = append(def, member{"description", td.doc})
	}
	def = append(def, member{"type", "object"}, member{"properties", props})
	if len(required) > 0 {
		def = append(def, member{"required", required})
	}
	def = append(def, member{"additionalProperties", false})
	g.defs[name] = def
	return def, nil
}

// plain fails for a type encoding/json does not write as its Go structure.
func (g *generator) plain(name string, td typeDecl) error {
	if td.spec.TypeParams != nil {
		return fmt.Errorf("type %s is generic: not supported", name)
	}
	for _, m := range g.pkg.methods[name] {
		for _, bad := range marshalers {
			if m == bad {
				return fmt.Errorf("type %s has a %s method: its JSON is not its Go structure, describe it by hand", name, m)
			}
		}
	}
	return nil
}

// basic are the Go predeclared types the schema maps, by JSON type.
var basic = map[string]object{
	"string":  {{"type", "string"}},
	"bool":    {{"type", "boolean"}},
	"int":     {{"type", "integer"}},
	"int8":    {{"type", "integer"}},
	"int16":   {{"type", "integer"}},
	"int32":   {{"type", "integer"}},
	"int64":   {{"type", "integer"}},
	"uint":    {{"type", "integer"}, {"minimum", 0}},
	"uint8":   {{"type", "integer"}, {"minimum", 0}},
	"uint16":  {{"type", "integer"}, {"minimum", 0}},
	"uint32":  {{"type", "integer"}, {"minimum", 0}},
	"uint64":  {{"type", "integer"}, {"minimum", 0}},
	"float32": {{"type", "number"}},
	"float64": {{"type", "number"}},
}

// schemaOf is the schema of a field's type; where names the field for errors.
func (g *generator) schemaOf(e ast.Expr, where string) (object, error) {
	switch t := e.(type) {
	case *ast.ParenExpr:
		return g.schemaOf(t.X, where)
	case *ast.Ident:
		if td, ok := g.pkg.types[t.Name]; ok {
			if _, isStruct := td.spec.Type.(*ast.StructType); isStruct && !td.spec.Assign.IsValid() {
				if _, err := g.structDef(t.Name); err != nil {
					return nil, err
				}
				return object{{"$ref", "#/$defs/" + t.Name}}, nil
			}
			// A named non-struct type (type Mode string) or an alias is written as what it is
			// defined from.
			if err := g.plain(t.Name, td); err != nil {
				return nil, err
			}
			if id, ok := td.spec.Type.(*ast.Ident); ok && !td.spec.Assign.IsValid() {
				if d, local := g.pkg.types[id.Name]; local {
					if _, isStruct := d.spec.Type.(*ast.StructType); isStruct {
						return nil, fmt.Errorf("%s: type %s is defined from struct %s: not supported", where, t.Name, id.Name)
					}
				}
			}
			return g.schemaOf(td.spec.Type, where)
		}
		if s, ok := basic[t.Name]; ok {
			return append(object{}, s...), nil
		}
		return nil, fmt.Errorf("%s: type %s is not supported", where, t.Name)
	case *ast.StarExpr:
		s, err := g.schemaOf(t.X, where)
		if err != nil {
			return nil, err
		}
		return nullable(s), nil
	case *ast.ArrayType:
		if id, ok := t.Elt.(*ast.Ident); ok && (id.Name == "byte" || id.Name == "uint8") {
			return nil, fmt.Errorf("%s: type %s is written as base64: not supported", where, exprString(t))
		}
		items, err := g.schemaOf(t.Elt, where)
		if err != nil {
			return nil, err
		}
		return object{{"type", "array"}, {"items", items}}, nil
	case *ast.SelectorExpr:
		return nil, fmt.Errorf("%s: type %s is from another package: the report's JSON model may use only its own types and Go basic types", where, exprString(t))
	}
	return nil, fmt.Errorf("%s: type %s is not supported (maps, interfaces, channels, functions and inline structs are not)", where, exprString(e))
}

// nullable is a schema that also allows null: a pointer that may be nil.
func nullable(s object) object {
	if len(s) >= 1 && s[0].key == "type" {
		if t, ok := s[0].value.(string); ok {
			return append(object{{"type", []any{t, "null"}}}, s[1:]...)
		}
	}
	return object{{"anyOf", []any{s, object{{"type", "null"}}}}}
}

func exprString(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.SelectorExpr:
		return exprString(t.X) + "." + t.Sel.Name
	case *ast.StarExpr:
		return "*" + exprString(t.X)
	case *ast.ArrayType:
		if t.Len != nil {
			return "[...]" + exprString(t.Elt)
		}
		return "[]" + exprString(t.Elt)
	case *ast.MapType:
		return "map[" + exprString(t.Key) + "]" + exprString(t.Value)
	case *ast.InterfaceType:
		return "interface{...}"
	case *ast.StructType:
		return "struct{...}"
	case *ast.ChanType:
		return "chan " + exprString(t.Value)
	case *ast.FuncType:
		return "func(...)"
	}
	return fmt.Sprintf("%T", e)
}

// member is one key of an object; object keeps its keys in the order they were added.
type member struct {
	key   string
	value any
}

type object []member

func (o object) get(key string) any {
	for _, m := range o {
		if m.key == key {
			return m.value
		}
	}
	return nil
}

func (o object) str(key string) string {
	s, _ := o.get(key).(string)
	return s
}

// set replaces a key's value, or appends the key.
func (o object) set(key string, value any) object {
	out := append(object{}, o...)
	for i := range out {
		if out[i].key == key {
			out[i].value = value
			return out
		}
	}
	return append(out, member{key, value})
}

// write writes v as indented JSON, as json.MarshalIndent(v, indent, "  ") would with objects'
// keys in order.
func write(b *bytes.Buffer, v any, indent string) error {
	inner := indent + "  "
	switch v := v.(type) {
	case object:
		if len(v) == 0 {
			b.WriteString("{}")
			return nil
		}
		b.WriteString("{\n")
		for i, m := range v {
			b.WriteString(inner)
			if err := scalar(b, m.key); err != nil {
				return err
			}
			b.WriteString(": ")
			if err := write(b, m.value, inner); err != nil {
				return err
			}
			if i < len(v)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "}")
	case []any:
		if len(v) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteString("[\n")
		for i, e := range v {
			b.WriteString(inner)
			if err := write(b, e, inner); err != nil {
				return err
			}
			if i < len(v)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "]")
	default:
		return scalar(b, v)
	}
	return nil
}

// scalar writes a string, number or boolean, without escaping <, > and &.
func scalar(b *bytes.Buffer, v any) error {
	var s bytes.Buffer
	enc := json.NewEncoder(&s)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Write(bytes.TrimSuffix(s.Bytes(), []byte("\n")))
	return nil
}
