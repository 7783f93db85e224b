// Package cli implements kubectl-medseg on cobra and k8s.io/cli-runtime, as kubectl and the best
// krew plugins are built: kubectl's global flags mean what they mean in kubectl (--kubeconfig,
// --context, -n, --as, --request-timeout, ...), flags may come before or after arguments, an
// unexpected argument is an error, writes take --dry-run=none|client|server, and output takes
// -o table|wide|json|yaml|name|jsonpath=...|custom-columns=.... Offline commands read
// MedicalDevice and SegmentPolicy YAML from files (-f, -R, -k, URLs, -) and validate it exactly
// as the API server would.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Run executes kubectl-medseg with args (without the program name) and returns the exit code:
// 0, 1 on error, 2 when an audit does not pass.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := NewCommand(genericiooptions.IOStreams{In: stdin, Out: stdout, ErrOut: stderr})
	cmd.SetArgs(args)
	err := cmd.Execute()
	switch {
	case errors.Is(err, errAuditFailed):
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	return 0
}

// options are what every command shares: kubectl's connection flags and the streams.
type options struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
	// contexts are the --context flags: kubectl's single context, or a fleet report's sites.
	contexts []string
}

// NewCommand builds the kubectl-medseg command tree.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{flags: genericclioptions.NewConfigFlags(true), streams: streams}
	root := &cobra.Command{
		Use:   "kubectl-medseg",
		Short: "medseg's kubectl plugin: segmentation of legacy medical devices",
		Long: `kubectl medseg renders, assesses, audits, explains and reports medseg's segmentation of
networked medical devices, and records approvals (commissioning).

Offline commands read MedicalDevice, SegmentPolicy, SegmentException and AccessGrant files
(-f PATH, -R, -k DIR, URLs, -):
  render, assess, report -f, migrate -f
Online commands use the current kubeconfig context and kubectl's flags (--context, -n, --as, ...):
  audit, explain, commission, report, migrate, version
discover proposes devices' flows from Hubble's flow records (files or Hubble Relay), for
devices read from the cluster or from files.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl medseg"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	// --context is kubectl's, except that report takes it more than once (a fleet report): the
	// plugin registers it, and hands a single one to cli-runtime.
	o.flags.Context = nil
	o.flags.AddFlags(root.PersistentFlags())
	root.PersistentFlags().StringArrayVar(&o.contexts, "context", nil, "The name of the kubeconfig context to use (report: repeat it for one report of several clusters)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch {
		case len(o.contexts) > 1 && cmd.Name() != "report":
			return fmt.Errorf("--context is given %d times: only report reads several clusters", len(o.contexts))
		case len(o.contexts) >= 1:
			c := o.contexts[0]
			o.flags.Context = &c
		}
		return nil
	}
	root.AddCommand(newFeedCommand(o), newRenderCommand(o), newAssessCommand(o), newReportCommand(o), newAuditCommand(o),
		newExplainCommand(o), newCommissionCommand(o), newDiscoverCommand(o), newMigrateCommand(o), newVersionCommand(o))
	root.CompletionOptions.HiddenDefaultCmd = false
	return root
}

// NewClient builds the client of the online commands from kubectl's flags; tests replace it.
var NewClient = func(flags *genericclioptions.ConfigFlags) (client.Client, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{v1alpha1.AddToScheme, authenticationv1.AddToScheme, appsv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return client.New(cfg, client.Options{Scheme: s})
}

// client connects to the cluster; errors name the server and the context.
func (o *options) client() (client.Client, error) {
	c, err := NewClient(o.flags)
	if err != nil {
		return nil, o.unreachable(err)
	}
	return c, nil
}

// namespace is -n, else the kubeconfig context's namespace, else "default", as in kubectl.
func (o *options) namespace() (ns string, explicit bool, err error) {
	if o.flags.Namespace != nil && *o.flags.Namespace != "" {
		return *o.flags.Namespace, true, nil
	}
	ns, explicit, err = o.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", false, fmt.Errorf("reading the namespace of the kubeconfig context: %w", err)
	}
	return ns, explicit, nil
}

// where names the server and context the commands talk to.
func (o *options) where() string {
	ctxName := ""
	if o.flags.Context != nil && *o.flags.Context != "" {
		ctxName = *o.flags.Context
	} else if raw, err := o.flags.ToRawKubeConfigLoader().RawConfig(); err == nil {
		ctxName = raw.CurrentContext
	}
	host := ""
	if cfg, err := o.flags.ToRESTConfig(); err == nil {
		host = cfg.Host
	}
	switch {
	case host != "" && ctxName != "":
		return fmt.Sprintf("server %s (context %s)", host, ctxName)
	case host != "":
		return "server " + host
	case ctxName != "":
		return "context " + ctxName
	}
	return "the cluster (no kubeconfig context)"
}

// unreachable says which server and context could not be reached, for errors that are about
// the connection rather than the request.
func (o *options) unreachable(err error) error {
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) || strings.Contains(err.Error(), "kubeconfig") ||
		strings.Contains(err.Error(), "no configuration has been provided") {
		return fmt.Errorf("cannot reach %s: %w", o.where(), err)
	}
	return err
}

// apiError adds where the request went to connection failures.
func (o *options) apiError(err error) error {
	if err == nil || apierrors.ReasonForError(err) != "" && !apierrors.IsUnexpectedServerError(err) {
		return err
	}
	return o.unreachable(err)
}

// context bounds a command's API calls: --request-timeout bounds each request (kubectl's
// meaning); the command as a whole gets at most two minutes.
func (o *options) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// dryRun is kubectl's --dry-run: none, client or server.
type dryRun string

const (
	dryRunNone   dryRun = "none"
	dryRunClient dryRun = "client"
	dryRunServer dryRun = "server"
	// dryRunBare is what a bare --dry-run parses to: an error, never "none". On a command that
	// records a clinical approval, a dry run that is silently ignored would write the approval.
	dryRunBare = "unchanged"
)

func addDryRunFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVar(v, "dry-run", string(dryRunNone), `Must be "none", "server", or "client". If client, only print what would be written, without sending it. If server, submit the write to the API server as a dry run: admission runs (a denial by the protected-inputs policy shows up) and nothing is persisted.`)
	cmd.Flags().Lookup("dry-run").NoOptDefVal = dryRunBare
}

func parseDryRun(v string) (dryRun, error) {
	switch dryRun(v) {
	case dryRunNone, dryRunClient, dryRunServer:
		return dryRun(v), nil
	case dryRunBare:
		return "", errors.New(`--dry-run flag without a value was specified: a value must be set, "none", "server", or "client"`)
	}
	return "", fmt.Errorf(`invalid --dry-run value %q: must be "none", "server", or "client"`, v)
}
