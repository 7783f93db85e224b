// Package manifest reads Kubernetes objects from multi-document YAML or JSON files,
// directories and standard input, keeping where each object came from so errors can name the
// file and the document.
package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Object is one decoded object and where it came from.
type Object struct {
	// Source is "file.yaml#2" (the second document of file.yaml) or "-#1" for stdin.
	Source string
	Object *unstructured.Unstructured
}

// MaxDocumentBytes bounds one YAML document, so hostile input cannot exhaust memory.
const MaxDocumentBytes = 4 << 20

// Read reads every object from the paths. A path is a file, a directory (its *.yaml, *.yml
// and *.json files, not recursive, in name order) or "-" for stdin. List kinds (v1 List,
// FooList) are expanded.
func Read(paths []string, stdin io.Reader) ([]Object, error) {
	var out []Object
	for _, p := range paths {
		if p == "-" {
			objs, err := Decode("-", stdin)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
			continue
		}
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				return nil, err
			}
			objs, err := Decode(f, fh)
			_ = fh.Close()
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

func expand(p string) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if e.IsDir() || e.Name() == "kustomization.yaml" {
			continue
		}
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
			files = append(files, filepath.Join(p, e.Name()))
		}
	}
	sort.Strings(files)
	return files, nil
}

// Decode reads every document from r. Empty documents are skipped; a document without
// apiVersion or kind is an error naming its source.
func Decode(name string, r io.Reader) ([]Object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReaderSize(r, 64<<10))
	var out []Object
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s#%d: reading YAML: %w", name, doc, err)
		}
		if len(raw) > MaxDocumentBytes {
			return nil, fmt.Errorf("%s#%d: document is larger than %d bytes", name, doc, MaxDocumentBytes)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		src := fmt.Sprintf("%s#%d", name, doc)
		obj := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(raw, &obj.Object); err != nil {
			return nil, fmt.Errorf("%s: invalid YAML: %w", src, err)
		}
		if obj.Object == nil {
			continue
		}
		if obj.GetAPIVersion() == "" || obj.GetKind() == "" {
			return nil, fmt.Errorf("%s: object has no apiVersion or kind", src)
		}
		if strings.HasSuffix(obj.GetKind(), "List") && obj.IsList() {
			list, err := obj.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src, err)
			}
			for i := range list.Items {
				item := Object{Source: fmt.Sprintf("%s[%d]", src, i), Object: &list.Items[i]}
				if item.Object.GetAPIVersion() == "" || item.Object.GetKind() == "" {
					return nil, fmt.Errorf("%s: list item has no apiVersion or kind", item.Source)
				}
				out = append(out, item)
			}
			continue
		}
		out = append(out, Object{Source: src, Object: obj})
	}
}

func stripComments(b []byte) []byte {
	var keep [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			keep = append(keep, line)
		}
	}
	return bytes.Join(keep, []byte("\n"))
}

// SplitSource splits an Object's Source, "file.yaml#2", into the file and the document number;
// ok is false for standard input and List items.
func SplitSource(src string) (file string, doc int, ok bool) {
	i := strings.LastIndex(src, "#")
	if i <= 0 || strings.HasPrefix(src, "-#") || strings.Contains(src[i:], "[") {
		return "", 0, false
	}
	n, err := strconv.Atoi(src[i+1:])
	if err != nil {
		return "", 0, false
	}
	return src[:i], n, true
}

// EditDocuments rewrites a multi-document YAML file: each document numbered in docs (from 1, as
// Decode numbers them) is replaced by what edit makes of it; the others are kept byte for byte.
// The file is replaced atomically.
func EditDocuments(path string, docs map[int][]byte, edit func(doc int, raw []byte) ([]byte, error)) error {
	in, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return err
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReaderSize(bytes.NewReader(in), 64<<10))
	var out bytes.Buffer
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s#%d: reading YAML: %w", path, doc, err)
		}
		if _, ok := docs[doc]; ok {
			if raw, err = edit(doc, raw); err != nil {
				return fmt.Errorf("%s#%d: %w", path, doc, err)
			}
			delete(docs, doc)
		}
		if doc > 1 {
			out.WriteString("---\n")
		}
		out.Write(raw)
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			out.WriteByte('\n')
		}
	}
	if len(docs) > 0 {
		return fmt.Errorf("%s changed since it was read: documents are missing", path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(out.Bytes()); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ListEdit changes the entries of a keyed list in a manifest's spec: for each entry (by key
// value) the fields to set (a nil value removes the field); entries not in Set and listed in
// Remove are removed; entries not yet in the list are appended in Order.
type ListEdit struct {
	List, Key string
	Set       map[string]map[string]any
	Order     []string
	Remove    map[string]bool
}

// EditSpecList edits a keyed list of a manifest's spec, keeping everything else of the document
// as written: key order, comments and styles.
func EditSpecList(raw []byte, e ListEdit) ([]byte, error) {
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(raw, &root); err != nil {
		return nil, err
	}
	if root.Kind != yamlv3.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yamlv3.MappingNode {
		return nil, errors.New("not a YAML mapping")
	}
	spec := mappingValue(root.Content[0], "spec")
	if spec == nil || spec.Kind != yamlv3.MappingNode {
		return nil, errors.New("no spec")
	}
	list := mappingValue(spec, e.List)
	if list != nil && list.Kind == yamlv3.ScalarNode && list.Tag == "!!null" {
		list.Kind, list.Tag, list.Value = yamlv3.SequenceNode, "!!seq", ""
	}
	if list == nil {
		list = &yamlv3.Node{Kind: yamlv3.SequenceNode, Tag: "!!seq"}
		spec.Content = append(spec.Content, &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: e.List}, list)
	}
	if list.Kind != yamlv3.SequenceNode {
		return nil, fmt.Errorf("spec.%s is not a list", e.List)
	}
	seen := map[string]bool{}
	kept := list.Content[:0]
	for _, item := range list.Content {
		k := mappingValue(item, e.Key)
		if k == nil {
			kept = append(kept, item)
			continue
		}
		if e.Remove[k.Value] {
			continue
		}
		seen[k.Value] = true
		fields := make([]string, 0, len(e.Set[k.Value]))
		for f := range e.Set[k.Value] {
			fields = append(fields, f)
		}
		sort.Strings(fields) // fields new to the entry are appended in a stable order
		for _, f := range fields {
			if err := setScalar(item, f, e.Set[k.Value][f]); err != nil {
				return nil, err
			}
		}
		kept = append(kept, item)
	}
	list.Content = kept
	for _, id := range e.Order {
		if seen[id] {
			continue
		}
		item := &yamlv3.Node{Kind: yamlv3.MappingNode, Tag: "!!map"}
		_ = setScalar(item, e.Key, id)
		fields := make([]string, 0, len(e.Set[id]))
		for f := range e.Set[id] {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		for _, f := range fields {
			if err := setScalar(item, f, e.Set[id][f]); err != nil {
				return nil, err
			}
		}
		list.Content = append(list.Content, item)
	}
	if len(list.Content) == 0 {
		for i := 0; i+1 < len(spec.Content); i += 2 {
			if spec.Content[i].Value == e.List {
				spec.Content = append(spec.Content[:i], spec.Content[i+2:]...)
				break
			}
		}
	}
	var out bytes.Buffer
	enc := yamlv3.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// setScalar sets (or, for nil, removes) a scalar field of a mapping node, keeping its place.
func setScalar(m *yamlv3.Node, key string, v any) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			continue
		}
		if v == nil {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return nil
		}
		var n yamlv3.Node
		if err := n.Encode(v); err != nil {
			return err
		}
		n.Style = m.Content[i+1].Style
		n.LineComment = m.Content[i+1].LineComment
		m.Content[i+1] = &n
		return nil
	}
	if v == nil {
		return nil
	}
	var n yamlv3.Node
	if err := n.Encode(v); err != nil {
		return err
	}
	m.Content = append(m.Content, &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: key}, &n)
	return nil
}

func mappingValue(m *yamlv3.Node, key string) *yamlv3.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
