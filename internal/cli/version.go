package cli

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/medseg/medseg/internal/version"
)

// Version is the plugin's version (internal/version, stamped at build time). Tests may set it.
var Version = version.Version

// VersionInfo is what `kubectl medseg version` reports.
type VersionInfo struct {
	Client ClientVersion `json:"clientVersion"`
	// Operators are the medseg Deployments found in the cluster, with their versions.
	Operators []OperatorVersion `json:"operators,omitempty"`
	// Unreachable says why the cluster could not be asked, "" when it was.
	Unreachable string `json:"unreachable,omitempty"`
}

// ClientVersion describes the plugin binary.
type ClientVersion struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Commit    string `json:"commit,omitempty"`
}

// OperatorVersion is one medseg Deployment.
type OperatorVersion struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	Image     string `json:"image"`
}

func clientVersion() ClientVersion {
	v := ClientVersion{Version: Version}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
	}
	return v
}

func newVersionCommand(o *options) *cobra.Command {
	var format string
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version and, when the cluster is reachable, the operator's",
		Long: `Print the plugin's version and the version of every medseg operator Deployment in the
cluster (label app.kubernetes.io/name=medseg; its app.kubernetes.io/version label, else its
image tag). An unreachable cluster is reported, not an error: the client version still prints.`,
		Example: `  kubectl medseg version
  kubectl medseg version --client -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := VersionInfo{Client: clientVersion()}
			if !clientOnly {
				info.Operators, info.Unreachable = o.operatorVersions()
			}
			switch format {
			case "json":
				raw, err := json.MarshalIndent(info, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintln(o.streams.Out, string(raw))
			case "yaml":
				raw, err := yaml.Marshal(info)
				if err != nil {
					return err
				}
				fmt.Fprint(o.streams.Out, string(raw))
			case "", "text":
				fmt.Fprintf(o.streams.Out, "Client Version: %s (%s%s)\n", info.Client.Version, info.Client.GoVersion, suffixed(", commit ", info.Client.Commit))
				for _, op := range info.Operators {
					fmt.Fprintf(o.streams.Out, "Operator Version: %s (Deployment %s/%s, image %s)\n", op.Version, op.Namespace, op.Name, op.Image)
				}
				if !clientOnly && len(info.Operators) == 0 && info.Unreachable == "" {
					fmt.Fprintln(o.streams.Out, "Operator Version: no medseg Deployment found (label app.kubernetes.io/name=medseg)")
				}
				if info.Unreachable != "" {
					fmt.Fprintf(o.streams.Out, "Operator Version: unknown (%s)\n", info.Unreachable)
				}
			default:
				return fmt.Errorf("-o %s: version prints text, json or yaml", format)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "text", "Output format: text, json or yaml.")
	cmd.Flags().BoolVar(&clientOnly, "client", false, "Print the client version only; do not contact the cluster.")
	return cmd
}

// operatorVersions finds medseg's Deployments in every namespace the user may list.
func (o *options) operatorVersions() ([]OperatorVersion, string) {
	c, err := o.client()
	if err != nil {
		return nil, err.Error()
	}
	ctx, cancel := o.context()
	defer cancel()
	var deps appsv1.DeploymentList
	if err := c.List(ctx, &deps, client.MatchingLabels{"app.kubernetes.io/name": "medseg"}); err != nil {
		return nil, o.apiError(err).Error()
	}
	var out []OperatorVersion
	for _, d := range deps.Items {
		v := OperatorVersion{Namespace: d.Namespace, Name: d.Name, Version: d.Labels["app.kubernetes.io/version"]}
		for _, ctr := range d.Spec.Template.Spec.Containers {
			if ctr.Name == "manager" || v.Image == "" {
				v.Image = ctr.Image
			}
		}
		if v.Version == "" {
			if i := strings.LastIndex(v.Image, ":"); i > 0 && !strings.Contains(v.Image[i:], "/") {
				v.Version = v.Image[i+1:]
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+out[i].Name < out[j].Namespace+out[j].Name })
	return out, ""
}

func suffixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
