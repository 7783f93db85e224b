package cli

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/report"
)

// offline are the flags of the commands that read files: -f/-R/-k and --now.
type offline struct {
	files fileOptions
	now   string
}

func (off *offline) add(cmd *cobra.Command) {
	addFileFlags(cmd, &off.files, "MedicalDevices, SegmentPolicies and Namespaces")
	cmd.Flags().StringVar(&off.now, "now", "", "Evaluate at this time (RFC3339) instead of the current time, for reproducible output.")
}

// load reads, validates and decodes the files; warnings go to stderr.
func (off *offline) load(o *options) (*Inputs, time.Time, error) {
	now := time.Now().UTC()
	if off.now != "" {
		t, err := time.Parse(time.RFC3339, off.now)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("--now: %w", err)
		}
		now = t
	}
	objs, err := off.files.read(o.streams.In)
	if err != nil {
		return nil, time.Time{}, err
	}
	in, err := decode(objs)
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, w := range in.Warnings {
		fmt.Fprintln(o.streams.ErrOut, "warning:", w)
	}
	return in, now, nil
}

func newRenderCommand(o *options) *cobra.Command {
	var off offline
	var out *output
	cmd := &cobra.Command{
		Use:   "render -f PATH",
		Short: "Print the Cilium policies medseg would write for the files, without a cluster",
		Long: `Print the Cilium objects medseg would own for the MedicalDevices and SegmentPolicies in the
files, as it would write them into a cluster that has none yet: a guard per enforced
SegmentPolicy, a CiliumNetworkPolicy per enforced device, and the allow-only policies of
unenforced devices whose gateways enforced devices share. The output is deterministic, for
review in GitOps CI. Include the Namespace objects so namespaceSelectors see their labels.`,
		Example: `  kubectl medseg render -f config/samples
  kubectl medseg render -f config/samples -o name
  kubectl medseg render -k overlays/icu -o json
  cat hospital.yaml | kubectl medseg render -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			in, now, err := off.load(o)
			if err != nil {
				return err
			}
			objs, err := RenderObjects(in, now)
			if err != nil {
				return err
			}
			return out.printObjects(o.streams.Out, objs)
		},
	}
	off.add(cmd)
	out = addOutputFlag(cmd, "yaml")
	return cmd
}

func newAssessCommand(o *options) *cobra.Command {
	var off offline
	var out *output
	cmd := &cobra.Command{
		Use:   "assess -f PATH",
		Short: "Print each device's SSVC priority, mode and allowed and blocked flows, from files",
		Example: `  kubectl medseg assess -f config/samples
  kubectl medseg assess -f config/samples -o wide
  kubectl medseg assess -f config/samples -o json --now 2026-11-23T12:00:00Z
  kubectl medseg assess -f config/samples -o custom-columns=DEVICE:.name,PRIORITY:.priority`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			in, now, err := off.load(o)
			if err != nil {
				return err
			}
			rows, err := Assessments(in, now)
			if err != nil {
				return err
			}
			names := make([]string, len(rows))
			for i, r := range rows {
				names[i] = v1alpha1.Qualified(r.Namespace, r.Name)
			}
			return out.printRows(o.streams.Out, assessTable(rows), rows, names)
		},
	}
	off.add(cmd)
	out = addOutputFlag(cmd, "table", "table", "wide")
	return cmd
}

func newAuditCommand(o *options) *cobra.Command {
	var out *output
	var all bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Audit the live cluster: every device segmented, no device network flat",
		Long: `Read what medseg recorded in the cluster: per device its priority, mode, whether it is
segmented and why, repairs and widening foreign policies; per SegmentPolicy its enforcement,
devices and flatness. Exits 2 when a device is not segmented or a policy's networks are flat,
so it can gate a pipeline.

The audit covers every namespace unless -n is given: a gate that silently audited only the
context's namespace would pass an unsegmented hospital. SegmentPolicies are cluster-scoped and
always all listed.`,
		Example: `  kubectl medseg audit
  kubectl medseg audit -n icu -o json
  kubectl --context site-b medseg audit -o jsonpath='{.passed}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ns := ""
			if !all && o.flags.Namespace != nil && *o.flags.Namespace != "" {
				ns = *o.flags.Namespace
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.context()
			defer cancel()
			r, err := ReadAudit(ctx, c, ns)
			if err != nil {
				return o.apiError(err)
			}
			if err := printAudit(o.streams.Out, out, r); err != nil {
				return err
			}
			if !r.Passed {
				return errAuditFailed
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "Audit every namespace (the default unless -n is given).")
	out = addOutputFlag(cmd, "table", "table", "wide")
	return cmd
}

func newExplainCommand(o *options) *cobra.Command {
	var out *output
	cmd := &cobra.Command{
		Use:   "explain DEVICE",
		Short: "Explain the decision medseg recorded for one device",
		Long: `Print the decision medseg recorded in a MedicalDevice's status: SSVC inputs with their
sources, priority, mode and why, commissioning, open access grants, allowed and blocked flows,
applied policies, conditions, foreign policies and history. -o yaml|json prints the device.`,
		Example: `  kubectl medseg explain infusion-pump-bed-12 -n icu
  kubectl medseg explain -n icu infusion-pump-bed-12 -o yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: o.completeDevices,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ns, _, err := o.namespace()
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.context()
			defer cancel()
			var d v1alpha1.MedicalDevice
			key := types.NamespacedName{Namespace: ns, Name: args[0]}
			if err := c.Get(ctx, key, &d); err != nil {
				return fmt.Errorf("reading MedicalDevice %s: %w", key, o.apiError(err))
			}
			if out.is("text") {
				return o.apiError(explainDevice(ctx, c, o.streams.Out, &d))
			}
			d.ManagedFields = nil
			d.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("MedicalDevice"))
			return out.printObjects(o.streams.Out, []runtime.Object{&d})
		},
	}
	out = addOutputFlag(cmd, "text", "text")
	return cmd
}

func newCommissionCommand(o *options) *cobra.Command {
	var co CommissionOptions
	var dry string
	cmd := &cobra.Command{
		Use:   "commission DEVICE --ticket TICKET",
		Short: "Approve a device's current flows for clinical use (writes spec.commissioning)",
		Long: `Print the device's flows and approve exactly those: write spec.commissioning with their hash,
guarded by the resourceVersion read, so flows changed in between are never approved unseen.
The approver defaults to the user the API server authenticates (SelfSubjectReview). Only
commissioners may do this (the protected-inputs admission policy; see the chart value
protectedInputs.commissioners). --dry-run=server sends the write through admission without
persisting it, so a denial shows before the real write.`,
		Example: `  kubectl medseg commission ventilator-bed-14 -n icu --ticket CHG-2026-0412
  kubectl medseg commission -n icu --ticket CHG-2026-0412 ventilator-bed-14 --dry-run=server`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: o.completeDevices,
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, err := parseDryRun(dry)
			if err != nil {
				return err
			}
			co.DryRun = mode
			ns, _, err := o.namespace()
			if err != nil {
				return err
			}
			if strings.TrimSpace(co.Ticket) == "" {
				return fmt.Errorf("--ticket is required: commissioning records the change that approved the flows")
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.context()
			defer cancel()
			co.Now = time.Now()
			return o.apiError(Commission(ctx, c, o.streams.Out, types.NamespacedName{Namespace: ns, Name: args[0]}, co))
		},
	}
	cmd.Flags().StringVar(&co.Ticket, "ticket", "", "Change or commissioning ticket (required).")
	cmd.Flags().StringVar(&co.ApprovedBy, "approved-by", "", "Approver (default: the user the API server authenticates).")
	addDryRunFlag(cmd, &dry)
	return cmd
}

func newReportCommand(o *options) *cobra.Command {
	var off offline
	var out *output
	var outFile string
	var fleet fleetOptions
	cmd := &cobra.Command{
		Use:   "report [-f PATH]",
		Short: "Write the auditor's report (HTML, Markdown or JSON) of the live cluster, of several clusters, or of files",
		Long: `Write the auditor's report: a first screen of what an auditor asks (how many devices are
segmented, which are not and why, what is in Audit, the Immediate and OutOfCycle devices,
approvals ending soon, flatness per zone), zones and conduits (inline SVG), and every device
by zone, most urgent first; one self-contained file. Without -f it reads what medseg recorded
in the live cluster (every namespace unless -n is given); with -f it reports what medseg would
decide for the files.

A health system runs one cluster per site: give --context more than once, or --all-contexts
(with --context-filter), for one fleet report with a per-site breakdown. A site that cannot be
read is named as unreachable in the report, never dropped; the command then exits 1 after
writing the report.

The JSON form (-o json) is the stable contract: its schema is docs/report.schema.json
(schemaVersion medseg.io/report/v1).`,
		Example: `  kubectl medseg report -o html --out segmentation-report.html
  kubectl medseg report -o md > report.md
  kubectl medseg report -f config/samples -o json
  kubectl medseg report --context north --context south -o html --out fleet.html
  kubectl medseg report --all-contexts --context-filter 'site-*' -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !out.is("html") && !out.is("md") && !out.is("json") {
				return fmt.Errorf("-o %s: the report is html, md or json", out.format)
			}
			var r *report.Report
			var unreachable []string
			sites, err := fleet.sites(o)
			switch {
			case err != nil:
				return err
			case off.files.given() && len(sites) > 0:
				return errors.New("-f reports files: it takes no --context list or --all-contexts")
			case off.files.given():
				in, now, err := off.load(o)
				if err != nil {
					return err
				}
				if r, err = OfflineReport(in, now, "files: "+strings.Join(off.files.sources(), ", ")); err != nil {
					return err
				}
			case len(sites) > 0:
				r, unreachable = FleetReport(o, sites, fleet.timeout, time.Now())
			default:
				c, err := o.client()
				if err != nil {
					return err
				}
				ctx, cancel := o.context()
				defer cancel()
				ns := ""
				if o.flags.Namespace != nil {
					ns = *o.flags.Namespace
				}
				if r, err = LiveReport(ctx, c, time.Now(), "the live cluster", ns); err != nil {
					return o.apiError(err)
				}
			}
			w := o.streams.Out
			if outFile != "" {
				f, err := os.Create(outFile)
				if err != nil {
					return err
				}
				defer func() { _ = f.Close() }()
				w = f
			}
			if err := report.Write(w, r, out.format); err != nil {
				return err
			}
			if len(unreachable) > 0 {
				return fmt.Errorf("the report names %d unreachable sites: %s", len(unreachable), strings.Join(unreachable, "; "))
			}
			return nil
		},
	}
	off.add(cmd)
	out = &output{format: "html"}
	cmd.Flags().StringVarP(&out.format, "output", "o", "html", "Output format: html, md or json.")
	cmd.Flags().StringVar(&outFile, "out", "", "Write to this file instead of standard output.")
	cmd.Flags().BoolVar(&fleet.all, "all-contexts", false, "Report every context of the kubeconfig (see --context-filter) as one fleet report.")
	cmd.Flags().StringVar(&fleet.filter, "context-filter", "", "With --all-contexts: only contexts whose name matches this glob (e.g. 'site-*').")
	cmd.Flags().DurationVar(&fleet.timeout, "site-timeout", 60*time.Second, "How long to wait for each site of a fleet report before naming it unreachable.")
	return cmd
}

// completeDevices completes a device name in the namespace of -n or the context.
func (o *options) completeDevices(_ *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ns, _, err := o.namespace()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	c, err := o.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	ctx, cancel := o.context()
	defer cancel()
	var devs v1alpha1.MedicalDeviceList
	if err := c.List(ctx, &devs, client.InNamespace(ns)); err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, d := range devs.Items {
		if strings.HasPrefix(d.Name, prefix) {
			out = append(out, d.Name)
		}
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}
