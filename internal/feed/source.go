// Package feed reads the vulnerability feeds hospitals get (CISA KEV, FIRST EPSS, manufacturers'
// CSAF 2.0 and CycloneDX VEX) and plans, per MedicalDevice, the change each makes to its risk
// inputs. It is pure apart from reading its sources: the CLI applies the plans.
package feed

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Document is one input file: its name (path or URL, for messages) and content, decompressed.
type Document struct {
	Name string
	Data []byte
}

// MaxDocument bounds one document (EPSS's daily file is about 10 MB uncompressed... 20 times
// that is a corrupt or hostile input).
const MaxDocument = 256 << 20

// Read reads the documents a -f argument names: a file, a directory (its regular files, not
// recursive, in name order), "-" for stdin, or an http(s) URL (a hospital's mirror). Gzip is
// recognised by its magic bytes, whatever the name.
func Read(ctx context.Context, arg string, stdin io.Reader) ([]Document, error) {
	switch {
	case arg == "-":
		data, err := readAll(stdin, "stdin")
		if err != nil {
			return nil, err
		}
		return []Document{{Name: "stdin", Data: data}}, nil
	case strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://"):
		data, err := fetch(ctx, arg)
		if err != nil {
			return nil, err
		}
		return []Document{{Name: arg, Data: data}}, nil
	}
	st, err := os.Stat(arg)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		data, err := readFile(arg)
		if err != nil {
			return nil, err
		}
		return []Document{{Name: arg, Data: data}}, nil
	}
	entries, err := os.ReadDir(arg)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []Document
	for _, n := range names {
		p := filepath.Join(arg, n)
		data, err := readFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, Document{Name: p, Data: data})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no files in the directory", arg)
	}
	return out, nil
}

func readFile(p string) ([]byte, error) {
	f, err := os.Open(filepath.Clean(p))
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return readAll(f, p)
}

func fetch(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s", url, res.Status)
	}
	return readAll(res.Body, url)
}

// readAll reads up to MaxDocument bytes, gunzipping when the content is gzip.
func readAll(r io.Reader, name string) ([]byte, error) {
	br := bufio.NewReader(r)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: corrupt gzip: %w", name, err)
		}
		defer func() { _ = zr.Close() }()
		data, err := io.ReadAll(io.LimitReader(zr, MaxDocument+1))
		if err != nil {
			return nil, fmt.Errorf("%s: corrupt or truncated gzip: %w", name, err)
		}
		return limit(data, name)
	}
	data, err := io.ReadAll(io.LimitReader(br, MaxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return limit(data, name)
}

func limit(data []byte, name string) ([]byte, error) {
	if len(data) > MaxDocument {
		return nil, fmt.Errorf("%s: larger than %d MiB", name, MaxDocument>>20)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: empty", name)
	}
	return data, nil
}

// Problem is something wrong in an input: the document, where in it, and what.
type Problem struct {
	Document string `json:"document"`
	Where    string `json:"where,omitempty"`
	Message  string `json:"message"`
}

func (p Problem) String() string {
	if p.Where == "" {
		return p.Document + ": " + p.Message
	}
	return p.Document + ": " + p.Where + ": " + p.Message
}

// Problems is a list of problems as one error.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(ps)-10)
			break
		}
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// ErrWrongFormat marks a document that is not of the format the subcommand reads.
var ErrWrongFormat = errors.New("wrong format")

func errorAs[T error](err error, target *T) bool { return errors.As(err, target) }
