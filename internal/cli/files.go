package cli

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/resource"

	"github.com/medseg/medseg/internal/manifest"
)

// fileOptions are kubectl's -f, -R and -k: files, directories, URLs (a hospital's internal
// mirror), "-" for standard input, and kustomizations, read by cli-runtime's resource.Builder.
type fileOptions struct {
	resource.FilenameOptions
}

func addFileFlags(cmd *cobra.Command, fo *fileOptions, what string) {
	cmd.Flags().StringSliceVarP(&fo.Filenames, "filename", "f", nil, what+": a file, a directory, a URL, or - for standard input (repeatable)")
	cmd.Flags().BoolVarP(&fo.Recursive, "recursive", "R", false, "Process the directories given with -f recursively.")
	cmd.Flags().StringVarP(&fo.Kustomize, "kustomize", "k", "", "Process a kustomization directory (build it in-process, as kubectl does).")
}

func (fo *fileOptions) given() bool { return len(fo.Filenames) > 0 || fo.Kustomize != "" }

// sources names the inputs: the -f paths and the -k directory.
func (fo *fileOptions) sources() []string {
	out := append([]string(nil), fo.Filenames...)
	if fo.Kustomize != "" {
		out = append(out, "-k "+fo.Kustomize)
	}
	return out
}

// read reads every object from the files, with where each came from. Standard input is the
// stream the command was given (not necessarily the process's).
func (fo *fileOptions) read(stdin io.Reader) ([]manifest.Object, error) {
	if !fo.given() {
		return nil, errors.New("no input: give -f PATH (a file, a directory, a URL or -) or -k DIR")
	}
	opts := fo.FilenameOptions
	useStdin := false
	var paths []string
	for _, f := range opts.Filenames {
		if f == "-" {
			useStdin = true
			continue
		}
		paths = append(paths, f)
	}
	opts.Filenames = paths
	b := resource.NewLocalBuilder().Unstructured().Flatten()
	if len(paths) > 0 || opts.Kustomize != "" {
		b = b.FilenameParam(false, &opts)
	}
	if useStdin {
		b = b.Stream(stdin, "-")
	}
	infos, err := b.Do().Infos()
	if err != nil {
		return nil, err
	}
	out := make([]manifest.Object, 0, len(infos))
	for _, info := range infos {
		u, ok := info.Object.(*unstructured.Unstructured)
		if !ok {
			return nil, fmt.Errorf("%s: %T is not a Kubernetes object", info.Source, info.Object)
		}
		if u.GroupVersionKind().Group == "kustomize.config.k8s.io" {
			continue // a kustomization.yaml next to the manifests (-k builds it)
		}
		out = append(out, manifest.Object{Source: info.Source, Object: u})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no objects in %s", strings.Join(fo.sources(), ", "))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out, nil
}
