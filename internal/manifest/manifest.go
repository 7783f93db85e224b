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

// ReplaceDocuments rewrites a multi-document YAML file with some documents (numbered from 1 as
// Decode numbers them) replaced; the others are kept byte for byte. The file is replaced
// atomically.
func ReplaceDocuments(path string, docs map[int][]byte) error {
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
		if r, ok := docs[doc]; ok {
			raw = r
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
