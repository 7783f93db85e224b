// Package cli implements kubectl-medseg. Offline commands read MedicalDevice and SegmentPolicy
// YAML from files (for GitOps CI and auditors) and validate it exactly as the API server would.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Run executes kubectl-medseg with args (without the program name) and returns the exit code.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	var err error
	switch args[0] {
	case "render":
		err = runRender(args[1:], stdin, stdout, stderr)
	case "assess":
		err = runAssess(args[1:], stdin, stdout, stderr)
	case "audit":
		err = runAudit(args[1:], stdout, stderr)
	case "explain":
		err = runExplain(args[1:], stdout, stderr)
	case "commission":
		err = runCommission(args[1:], stdout, stderr)
	case "report":
		err = runReport(args[1:], stdin, stdout, stderr)
	default:
		err = fmt.Errorf("unknown command %q", args[0])
		usage(stderr)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errAuditFailed) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "kubectl-medseg:", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `kubectl-medseg: medseg's kubectl plugin

Offline (files, no cluster):
  render -f PATH... [--now RFC3339]                 print the Cilium policies medseg would own
  assess -f PATH... [-o table|json] [--now RFC3339] print each device's SSVC priority and mode

Either (files with -f, or the live cluster without):
  report [-f PATH...] [-o html|md|json] [--out FILE] the auditor's report: summary, zones and
                                                     conduits (inline SVG), every device; one
                                                     self-contained file

Online (the current kubeconfig, or --kubeconfig):
  audit [-o table|json]                              devices (priority, mode, segmented, drift) and
                                                     SegmentPolicies (flatness); exit 2 when any
                                                     device is unsegmented or a policy is flat
  explain DEVICE -n NAMESPACE                        the decision medseg recorded for one device
  commission DEVICE -n NAMESPACE --ticket T         approve the device's current flows for clinical
    [--approved-by NAME] [--dry-run]                 use (writes spec.commissioning with their hash)

PATH is a file, a directory of *.yaml/*.yml/*.json, or - for standard input; -f repeats.
`)
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type offlineFlags struct {
	files stringList
	now   string
}

func (o *offlineFlags) register(fs *flag.FlagSet) {
	fs.Var(&o.files, "f", "file, directory or - (repeatable)")
	fs.Var(&o.files, "filename", "same as -f")
	fs.StringVar(&o.now, "now", "", "evaluate at this time (RFC3339) instead of the current time")
}

func (o *offlineFlags) load(stdin io.Reader, stderr io.Writer) (*Inputs, time.Time, error) {
	if len(o.files) == 0 {
		return nil, time.Time{}, errors.New("-f PATH is required")
	}
	now := time.Now().UTC()
	if o.now != "" {
		t, err := time.Parse(time.RFC3339, o.now)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("--now: %w", err)
		}
		now = t
	}
	in, err := Load(o.files, stdin)
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, w := range in.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	return in, now, nil
}

func runRender(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o offlineFlags
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	in, now, err := o.load(stdin, stderr)
	if err != nil {
		return err
	}
	return Render(stdout, in, now)
}

func runAssess(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("assess", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o offlineFlags
	o.register(fs)
	output := fs.String("o", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	in, now, err := o.load(stdin, stderr)
	if err != nil {
		return err
	}
	return Assess(stdout, in, now, *output)
}

// NewClient builds a client for the online commands; tests replace it.
var NewClient = func(kubeconfig string) (client.Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := authenticationv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: s})
}

func runAudit(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "path to the kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
	output := fs.String("o", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := NewClient(*kubeconfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return Audit(ctx, c, stdout, *output)
}

func runExplain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c, key, err := deviceCommand(fs, args, "usage: explain DEVICE -n NAMESPACE")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return Explain(ctx, c, stdout, key)
}

// deviceCommand parses the flags of a command about one device (the name before or after the
// flags, as kubectl takes it; -n; --kubeconfig) and connects to the cluster.
func deviceCommand(fs *flag.FlagSet, args []string, usage string) (client.Client, types.NamespacedName, error) {
	kubeconfig := fs.String("kubeconfig", "", "path to the kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
	ns := fs.String("n", "default", "namespace of the device")
	name, args := leadingName(args)
	if err := fs.Parse(args); err != nil {
		return nil, types.NamespacedName{}, err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	if name == "" {
		return nil, types.NamespacedName{}, errors.New(usage)
	}
	c, err := NewClient(*kubeconfig)
	return c, types.NamespacedName{Namespace: *ns, Name: name}, err
}
