package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/discover"
	"github.com/medseg/medseg/internal/ssa"
)

// DiscoverFieldManager is the field manager of `discover --apply`.
const DiscoverFieldManager = "kubectl-medseg-discover"

type discoverOptions struct {
	off            offline
	flowFiles      []string
	relay          discover.RelayOptions
	since, until   string
	tiers          []string
	tierFile       string
	includeDropped bool
	pairWindow     time.Duration
	apply          bool
	dry            string
	fieldManager   string
	all            bool
}

func newDiscoverCommand(o *options) *cobra.Command {
	var do discoverOptions
	var out *output
	cmd := &cobra.Command{
		Use:   "discover (--flows FILE | --server RELAY) [-f DEVICES]",
		Short: "Propose each device's flows from the traffic Hubble observed",
		Long: `Learn MedicalDevices' flows from Hubble flow records and propose them for review.

Records come from files written by 'hubble observe -o jsonpb' (--flows, repeatable, - for
standard input) or live from Hubble Relay's Observer API (--server, with --since/--until and
the hubble CLI's TLS flags). Devices come from the cluster (every namespace unless -n) or,
with -f, from files.

Each device's traffic crosses its gateway pods (spec.gateway.podSelector): a peer connects to
a gateway, which connects on to the device (ToDevice), or the reverse (FromDevice). discover
pairs the two hops each gateway pod makes, and proposes a flow per direction, protocol,
gateway port and device or peer port, naming each peer as narrowly as a flow can: its pod
labels and namespace, or its address as a /32 (/128) for peers outside the cluster. It
never guesses: traffic that bypassed the gateway, reached an address two devices claim, or
came from a peer no flow can name (the node, a NAT'd source) is reported, not proposed.

Tiers are proposed as Support unless --tier or --tier-file maps the peer: a clinician or
clinical engineer must set each flow's tier before the device is commissioned. Nothing is
written without --apply, which adds only the new flows with server-side apply under its own
field manager and never changes an existing flow. Adding flows to a commissioned device puts it
back in onboarding until it is commissioned again.`,
		Example: `  # From a capture: hubble observe --since 24h -o jsonpb > flows.jsonpb
  kubectl medseg discover --flows flows.jsonpb
  kubectl medseg discover --flows flows.jsonpb -n radiology -o yaml > proposed-flows.yaml

  # Live from Hubble Relay (kubectl -n kube-system port-forward svc/hubble-relay 4245:80)
  kubectl medseg discover --server localhost:4245 --since 24h --tier app=alarm-server=Essential

  # Review, then write the new flows (server dry run first)
  kubectl medseg discover --flows flows.jsonpb -n radiology --apply --dry-run=server
  kubectl medseg discover --flows flows.jsonpb -n radiology --apply`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			return runDiscover(cmd.Context(), o, &do, out)
		},
	}
	addFileFlags(cmd, &do.off.files, "MedicalDevices (default: read them from the cluster)")
	f := cmd.Flags()
	f.StringArrayVar(&do.flowFiles, "flows", nil, "Hubble flow records as written by 'hubble observe -o jsonpb'; repeatable; - reads standard input.")
	f.StringVar(&do.relay.Address, "server", "", "Hubble Relay address (host:port; tls:// turns TLS on), e.g. localhost:4245 after a port-forward.")
	f.BoolVar(&do.relay.TLS, "tls", false, "Connect to Relay with TLS.")
	f.StringVar(&do.relay.ServerName, "tls-server-name", "", "Server name to verify (Relay's certificate is for *.hubble-relay.cilium.io).")
	f.StringSliceVar(&do.relay.CAFiles, "tls-ca-cert-files", nil, "CA certificates to verify Relay with.")
	f.StringVar(&do.relay.CertFile, "tls-client-cert-file", "", "Client certificate for mTLS.")
	f.StringVar(&do.relay.KeyFile, "tls-client-key-file", "", "Client key for mTLS.")
	f.BoolVar(&do.relay.InsecureSkipVerify, "tls-allow-insecure", false, "Do not verify Relay's certificate.")
	f.StringVar(&do.since, "since", "", "With --server: flows since this time (RFC3339) or this long ago (e.g. 24h). Default: all Relay holds.")
	f.StringVar(&do.until, "until", "", "With --server: flows until this time (RFC3339) or this long ago. Default: now.")
	f.StringArrayVar(&do.tiers, "tier", nil, "Map peers to a tier: SELECTOR=TIER, where SELECTOR is a pod label selector (app=alarm-server) or a CIDR; repeatable, first match wins.")
	f.StringVar(&do.tierFile, "tier-file", "", "YAML file of tier rules: tiers: [{namespace, podSelector, cidr, tier}], first match wins.")
	f.BoolVar(&do.includeDropped, "include-dropped", false, "Also propose flows whose every connection was dropped.")
	f.DurationVar(&do.pairWindow, "pair-window", 2*time.Second, "How soon after a connection into a gateway pod its connection on to a device counts as the same flow.")
	f.BoolVar(&do.apply, "apply", false, "Write the new flows into the devices (server-side apply; existing flows are never changed).")
	f.StringVar(&do.fieldManager, "field-manager", DiscoverFieldManager, "Field manager of --apply.")
	f.BoolVarP(&do.all, "all-namespaces", "A", false, "Discover for devices in every namespace (the default unless -n is given).")
	addDryRunFlag(cmd, &do.dry)
	out = addOutputFlag(cmd, "table", "table", "wide")
	return cmd
}

func runDiscover(ctx context.Context, o *options, do *discoverOptions, out *output) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dry, err := parseDryRun(do.dry)
	if err != nil {
		return err
	}
	if dry != dryRunNone && !do.apply {
		return errors.New("--dry-run applies to --apply")
	}
	if (len(do.flowFiles) > 0) == (do.relay.Address != "") {
		return errors.New("give the flow records: --flows FILE (hubble observe -o jsonpb) or --server RELAY, one of them")
	}
	if do.apply && do.off.files.given() {
		return errors.New("--apply writes into the cluster's devices: read them from the cluster, not -f")
	}
	rules, err := tierRules(do.tiers, do.tierFile)
	if err != nil {
		return err
	}
	var since, until time.Time
	if do.relay.Address == "" && (do.since != "" || do.until != "") {
		return errors.New("--since and --until select what Relay sends; filter a file with hubble observe --input-file")
	}
	now := time.Now()
	if since, err = parseWhen(do.since, now, "--since"); err != nil {
		return err
	}
	if until, err = parseWhen(do.until, now, "--until"); err != nil {
		return err
	}

	var c client.Client
	var devs []*v1alpha1.MedicalDevice
	if do.off.files.given() {
		in, _, err := do.off.load(o)
		if err != nil {
			return err
		}
		devs = inNamespace(o, do.all, in.Devices)
	} else {
		if c, err = o.client(); err != nil {
			return err
		}
		if devs, err = listDevices(o, c, do.all); err != nil {
			return err
		}
	}
	if len(devs) == 0 {
		return errors.New("no MedicalDevices to discover flows for")
	}

	ix := discover.NewIndex(devs)
	agg := discover.NewAggregator(ix, discover.Options{PairWindow: do.pairWindow})
	if do.relay.Address != "" {
		if err := streamRelay(ctx, do, ix, agg, since, until); err != nil {
			return err
		}
	} else {
		for _, name := range do.flowFiles {
			if err := readFlowFile(o, agg, name); err != nil {
				return err
			}
		}
	}
	stats := agg.Stats()
	if err := stats.Check(); err != nil {
		return err
	}
	for _, w := range stats.Warnings() {
		fmt.Fprintln(o.streams.ErrOut, "warning:", w)
	}
	p := discover.Propose(agg.Result(), ix.Devices(), discover.ProposeOptions{Tiers: rules, IncludeDropped: do.includeDropped})

	if do.apply {
		if err := printDiscover(o.streams.Out, out, p); err != nil {
			return err
		}
		actx, cancel := o.context()
		defer cancel()
		return ApplyDiscovered(actx, c, o.streams.Out, p, do.fieldManager, dry)
	}
	if err := printDiscover(o.streams.Out, out, p); err != nil {
		return err
	}
	if out.is("table") || out.is("wide") {
		fmt.Fprintln(o.streams.Out, "\nNothing was written: review the proposal, then --apply (or -o yaml for GitOps).")
	}
	return nil
}

// asUnstructured turns an apply configuration into the object server-side apply sends.
func asUnstructured(v any) (*unstructured.Unstructured, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	return u, json.Unmarshal(raw, &u.Object)
}

// inNamespace keeps the devices read from files in the namespace -n names (all without -n or
// with -A).
func inNamespace(o *options, all bool, in []v1alpha1.MedicalDevice) []*v1alpha1.MedicalDevice {
	ns := ""
	if o.flags.Namespace != nil && !all {
		ns = *o.flags.Namespace
	}
	var out []*v1alpha1.MedicalDevice
	for i := range in {
		if ns == "" || in[i].Namespace == ns {
			out = append(out, &in[i])
		}
	}
	return out
}

// listDevices lists the cluster's devices in the namespace -n names (all without -n or with -A).
func listDevices(o *options, c client.Client, all bool) ([]*v1alpha1.MedicalDevice, error) {
	ns := ""
	if !all && o.flags.Namespace != nil {
		ns = *o.flags.Namespace
	}
	lctx, cancel := o.context()
	defer cancel()
	var list v1alpha1.MedicalDeviceList
	if err := c.List(lctx, &list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing MedicalDevices: %w", o.apiError(err))
	}
	out := make([]*v1alpha1.MedicalDevice, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// DiscoverRecords is discover --flows on one reader of hubble observe -o jsonpb records, for
// devs, with tier rules such as "app=pacs=Clinical"; it returns the proposal and the read's
// warnings. The demo and tests use it.
func DiscoverRecords(r io.Reader, name string, devs []*v1alpha1.MedicalDevice, tiers []string) (*discover.Proposal, []string, error) {
	rules, err := tierRules(tiers, "")
	if err != nil {
		return nil, nil, err
	}
	ix := discover.NewIndex(devs)
	agg := discover.NewAggregator(ix, discover.Options{})
	if err := agg.ReadJSONPB(r, name); err != nil {
		return nil, nil, err
	}
	stats := agg.Stats()
	if err := stats.Check(); err != nil {
		return nil, nil, err
	}
	return discover.Propose(agg.Result(), ix.Devices(), discover.ProposeOptions{Tiers: rules}), stats.Warnings(), nil
}

// PrintDiscovered writes a proposal as discover -o table does, notes included.
func PrintDiscovered(w io.Writer, p *discover.Proposal) error {
	return printDiscover(w, &output{format: "table", print: genericclioptions.NewPrintFlags("")}, p)
}

// ApplyDiscoveredFlows is discover --apply under the command's default field manager.
func ApplyDiscoveredFlows(ctx context.Context, c client.Client, w io.Writer, p *discover.Proposal) error {
	return ApplyDiscovered(ctx, c, w, p, DiscoverFieldManager, dryRunNone)
}

func streamRelay(ctx context.Context, do *discoverOptions, ix *discover.Index, agg *discover.Aggregator, since, until time.Time) error {
	conn, err := discover.Dial(do.relay)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	req := discover.Request(ix.Devices(), nil, since, until, false)
	return discover.Stream(ctx, conn, req, func(r *observerpb.GetFlowsResponse) error {
		agg.AddResponse(r.GetFlow(), r.GetLostEvents())
		return nil
	})
}

func readFlowFile(o *options, agg *discover.Aggregator, name string) error {
	if name == "-" {
		return agg.ReadJSONPB(o.streams.In, "stdin")
	}
	f, err := os.Open(filepath.Clean(name))
	if err != nil {
		return fmt.Errorf("--flows: %w", err)
	}
	defer func() { _ = f.Close() }()
	return agg.ReadJSONPB(f, name)
}

// parseWhen reads an RFC3339 time or a duration ago; empty is the zero time.
func parseWhen(s string, now time.Time, flag string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want RFC3339 (2026-11-30T08:00:00Z) or a duration (24h)", flag, s)
	}
	return t, nil
}

// tierFile is the --tier-file format.
type tierFile struct {
	Tiers []struct {
		Namespace   string                `json:"namespace,omitempty"`
		PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
		CIDR        string                `json:"cidr,omitempty"`
		Tier        v1alpha1.Tier         `json:"tier"`
	} `json:"tiers"`
}

func parseTier(s string) (v1alpha1.Tier, error) {
	switch t := v1alpha1.Tier(s); t {
	case v1alpha1.TierEssential, v1alpha1.TierClinical, v1alpha1.TierSupport:
		return t, nil
	}
	return "", fmt.Errorf("tier %q: must be Essential, Clinical or Support", s)
}

// tierRules reads --tier SELECTOR=TIER flags, then the --tier-file rules.
func tierRules(flags []string, file string) ([]discover.TierRule, error) {
	var out []discover.TierRule
	for _, f := range flags {
		i := strings.LastIndex(f, "=")
		if i <= 0 {
			return nil, fmt.Errorf("--tier %q: want SELECTOR=TIER, e.g. app=alarm-server=Essential", f)
		}
		tier, err := parseTier(f[i+1:])
		if err != nil {
			return nil, fmt.Errorf("--tier %q: %w", f, err)
		}
		rule := discover.TierRule{Tier: tier, Source: "--tier " + f}
		if pfx, err := netip.ParsePrefix(f[:i]); err == nil {
			rule.CIDR = pfx.Masked()
		} else {
			sel, err := labels.Parse(f[:i])
			if err != nil {
				return nil, fmt.Errorf("--tier %q: %q is neither a label selector nor a CIDR: %w", f, f[:i], err)
			}
			rule.Selector = sel
		}
		out = append(out, rule)
	}
	if file == "" {
		return out, nil
	}
	raw, err := os.ReadFile(filepath.Clean(file))
	if err != nil {
		return nil, fmt.Errorf("--tier-file: %w", err)
	}
	var tf tierFile
	if err := yaml.UnmarshalStrict(raw, &tf); err != nil {
		return nil, fmt.Errorf("--tier-file %s: %w", file, err)
	}
	for i, r := range tf.Tiers {
		where := fmt.Sprintf("--tier-file %s: tiers[%d]", file, i)
		tier, err := parseTier(string(r.Tier))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		rule := discover.TierRule{Tier: tier, Namespace: r.Namespace, Source: where}
		switch {
		case r.CIDR != "" && (r.Namespace != "" || r.PodSelector != nil):
			return nil, fmt.Errorf("%s: a rule names a CIDR or pods (namespace, podSelector), not both", where)
		case r.CIDR != "":
			pfx, err := netip.ParsePrefix(r.CIDR)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			rule.CIDR = pfx.Masked()
		case r.Namespace == "" && r.PodSelector == nil:
			return nil, fmt.Errorf("%s: name a namespace, a podSelector or a cidr", where)
		}
		if r.PodSelector != nil {
			sel, err := metav1.LabelSelectorAsSelector(r.PodSelector)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			rule.Selector = sel
		}
		out = append(out, rule)
	}
	return out, nil
}

// applyDevice is the apply configuration discover writes: only spec.flows, keyed by name.
type applyDevice struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name            string `json:"name"`
		Namespace       string `json:"namespace"`
		ResourceVersion string `json:"resourceVersion,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Flows []v1alpha1.Flow `json:"flows"`
	} `json:"spec"`
}

func applyConfig(dp discover.DeviceProposal, flows []v1alpha1.Flow) applyDevice {
	var a applyDevice
	a.APIVersion, a.Kind = v1alpha1.GroupVersion.String(), "MedicalDevice"
	a.Metadata.Name, a.Metadata.Namespace = dp.Name, dp.Namespace
	a.Spec.Flows = flows
	return a
}

const proposalHeader = `# Flows proposed by kubectl medseg discover from observed traffic, for review.
# Tiers are proposed (Support unless a tier mapping matched): a clinician or clinical engineer
# must set each flow's tier before the device is commissioned. Apply with server-side apply
# (kubectl apply --server-side --field-manager=kubectl-medseg-discover -f FILE) or merge the
# flows into the devices' manifests; adding flows to a commissioned device puts it back in
# onboarding until it is commissioned again.
`

func printDiscover(w io.Writer, out *output, p *discover.Proposal) error {
	switch out.kind() {
	case "yaml":
		fmt.Fprint(w, proposalHeader)
		for _, dp := range p.Devices {
			flows := dp.NewFlows()
			if len(flows) == 0 {
				continue
			}
			raw, err := yaml.Marshal(applyConfig(dp, flows))
			if err != nil {
				return err
			}
			fmt.Fprint(w, "---\n", string(raw))
		}
		return nil
	case "table", "wide":
		if err := out.printRows(w, discoverTable(p), p, nil); err != nil {
			return err
		}
		writeDiscoverNotes(w, p)
		return nil
	}
	var names []string
	for _, dp := range p.Devices {
		names = append(names, v1alpha1.Qualified(dp.Namespace, dp.Name))
	}
	return out.printRows(w, nil, p, names)
}

func discoverTable(p *discover.Proposal) *metav1.Table {
	var rows [][]any
	for _, dp := range p.Devices {
		for _, r := range dp.Rows {
			port := r.Flow.DevicePort
			if r.Flow.Direction == v1alpha1.DirectionFromDevice {
				port = r.Flow.PeerPort
			}
			proto := r.Flow.Protocol
			if proto == "" {
				proto = v1alpha1.ProtocolTCP
			}
			peers := make([]string, 0, len(r.Peers))
			for _, pc := range r.Peers {
				peers = append(peers, pc.Peer)
			}
			if len(r.Peers) == 0 {
				for _, fp := range r.Flow.Peers {
					peers = append(peers, peerText(fp))
				}
			}
			peerCol := strings.Join(peers, " ")
			if len(peers) > 3 {
				peerCol = strings.Join(peers[:3], " ") + fmt.Sprintf(" +%d", len(peers)-3)
			}
			name, tier, seen, first := dash(r.Flow.Name), dash(string(r.Flow.Tier)), "-", "-"
			if r.Connections > 0 {
				seen, first = r.LastSeen.Format(time.RFC3339), r.FirstSeen.Format(time.RFC3339)
			}
			rows = append(rows, []any{v1alpha1.Qualified(dp.Namespace, dp.Name), string(r.Status), name, string(r.Flow.Direction),
				string(proto), fmt.Sprint(r.Flow.GatewayPort), fmt.Sprint(port), peerCol, tier, fmt.Sprint(r.Connections), seen,
				first, fmt.Sprint(r.Dropped), dash(r.Note)})
		}
	}
	return table([]string{"DEVICE", "STATUS", "FLOW", "DIRECTION", "PROTOCOL", "GATEWAY-PORT", "PORT", "PEERS", "TIER",
		"CONNECTIONS", "LAST-SEEN", "FIRST-SEEN*", "DROPPED*", "NOTE*"}, rows)
}

func peerText(p v1alpha1.Peer) string {
	if p.CIDR != "" {
		return p.CIDR
	}
	ns := "(own namespace)"
	if p.NamespaceSelector != nil {
		if name, ok := p.NamespaceSelector.MatchLabels[corev1.LabelMetadataName]; ok && len(p.NamespaceSelector.MatchLabels) == 1 && len(p.NamespaceSelector.MatchExpressions) == 0 {
			ns = name
		} else if s, err := metav1.LabelSelectorAsSelector(p.NamespaceSelector); err == nil {
			ns = "{" + s.String() + "}"
		}
	}
	pods := "*"
	if p.PodSelector != nil {
		if s, err := metav1.LabelSelectorAsSelector(p.PodSelector); err == nil && !s.Empty() {
			pods = s.String()
		}
	}
	return ns + "/" + pods
}

// writeDiscoverNotes lists, after the table, what was seen that no flow can be proposed for.
func writeDiscoverNotes(w io.Writer, p *discover.Proposal) {
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n", title)
		for _, l := range lines {
			fmt.Fprintln(w, "  "+l)
		}
	}
	var bypass, unpaired, unnamed, commissioned []string
	for _, dp := range p.Devices {
		q := v1alpha1.Qualified(dp.Namespace, dp.Name)
		for _, b := range dp.Bypass {
			arrow := fmt.Sprintf("%s → %s %d/%s", b.Peer, q, b.Port, b.Protocol)
			if b.Direction == v1alpha1.DirectionFromDevice {
				arrow = fmt.Sprintf("%s → %s %d/%s", q, b.Peer, b.Port, b.Protocol)
			}
			bypass = append(bypass, fmt.Sprintf("%s: %d connections (%d dropped), last %s", arrow, b.Connections, b.Dropped, b.LastSeen.Format(time.RFC3339)))
		}
		for _, u := range dp.Unpaired {
			unpaired = append(unpaired, fmt.Sprintf("%s %s %d/%s: %d connections with no peer behind the gateway", q, u.Direction, u.Port, u.Protocol, u.Connections))
		}
		for _, u := range dp.Unnamed {
			unnamed = append(unnamed, fmt.Sprintf("%s: %s, %d connections", q, u.Peer, u.Connections))
		}
		if dp.Commissioned && len(dp.NewFlows()) > 0 {
			commissioned = append(commissioned, q)
		}
	}
	var shared, unattributed []string
	for _, s := range p.Shared {
		shared = append(shared, fmt.Sprintf("%s claimed by %s: %d connections not attributed", s.Address, strings.Join(s.Devices, ", "), s.Connections))
	}
	for _, u := range p.Unattributed {
		unattributed = append(unattributed, fmt.Sprintf("%s %s %d/%s from %s: %d connections", u.Gateway, u.Direction, u.Port, u.Protocol, u.Peer, u.Connections))
	}
	section("Traffic that bypassed the gateway (flatness evidence, not proposed):", bypass)
	section("Addresses more than one device claims (not attributed; fix the addresses):", shared)
	section("Peers no flow can name (node, NAT'd or reserved identities):", unnamed)
	section("Gateway traffic that led to no device (not proposed):", unattributed)
	section("Gateway-to-device traffic with no peer behind it (not proposed):", unpaired)
	section("Commissioned devices that would leave commissioning if the new flows are added:", commissioned)
	fmt.Fprintf(w, "\nRecords: %d read, %d flows, %d duplicates, %d replies, %d skipped, %d unrelated, %d malformed.\n",
		p.Stats.Records, p.Stats.Flows, p.Stats.Duplicates, p.Stats.Replies, p.Stats.Skipped, p.Stats.Unrelated, p.Stats.Malformed)
	fmt.Fprintln(w, "Tiers are proposed (Support unless a tier mapping matched): a clinician or clinical engineer must set them before commissioning.")
}

// ApplyDiscovered adds each device's new flows with server-side apply under manager, guarded by
// the resourceVersion discovery read, so a device edited in between is not written. The apply
// configuration also carries the flows the manager applied before, unchanged, because server-side
// apply removes what a manager stops applying; every other flow, and every tier, is left alone.
func ApplyDiscovered(ctx context.Context, c client.Client, w io.Writer, p *discover.Proposal, manager string, dry dryRun) error {
	wrote := 0
	for _, dp := range p.Devices {
		fresh := dp.NewFlows()
		if len(fresh) == 0 {
			continue
		}
		q := v1alpha1.Qualified(dp.Namespace, dp.Name)
		names := make([]string, len(fresh))
		for i, f := range fresh {
			names[i] = f.Name
		}
		if dry == dryRunClient {
			fmt.Fprintf(w, "would add to %s (dry run, client): %s\n", q, strings.Join(names, ", "))
			continue
		}
		var live v1alpha1.MedicalDevice
		// The apply is guarded by the resourceVersion of a read whose spec generation is the one
		// discovery compared against: a spec edited since discovery is refused, while the
		// operator's status writes in between only cost a retry.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := c.Get(ctx, client.ObjectKey{Namespace: dp.Namespace, Name: dp.Name}, &live); err != nil {
				return fmt.Errorf("reading MedicalDevice %s: %w", q, err)
			}
			if dp.Generation != 0 && live.Generation != dp.Generation {
				return fmt.Errorf("MedicalDevice %s: its spec changed since discovery read it (generation %d, now %d); run discover again", q, dp.Generation, live.Generation)
			}
			owned := ssa.AppliedKeys(&live, manager, "flows", "name")
			var flows []v1alpha1.Flow
			for _, f := range live.Spec.Flows {
				if owned[f.Name] {
					flows = append(flows, f)
				}
			}
			flows = append(flows, fresh...)
			cfg := applyConfig(dp, flows)
			cfg.Metadata.ResourceVersion = live.ResourceVersion
			u, err := asUnstructured(cfg)
			if err != nil {
				return err
			}
			opts := []client.ApplyOption{client.FieldOwner(manager)}
			if dry == dryRunServer {
				opts = append(opts, client.DryRunAll)
			}
			return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...)
		})
		if err != nil {
			return fmt.Errorf("adding flows to %s: %w", q, err)
		}
		verb := "added to"
		if dry == dryRunServer {
			verb = "would add to (dry run, server: admission allowed it, nothing was persisted)"
		}
		fmt.Fprintf(w, "%s %s: %s\n", verb, q, strings.Join(names, ", "))
		if live.Spec.Commissioning != nil {
			fmt.Fprintf(w, "  %s was commissioned: its flows changed, so it runs in onboarding until it is commissioned again (kubectl medseg commission)\n", q)
		}
		wrote++
	}
	if wrote == 0 && dry != dryRunClient {
		fmt.Fprintln(w, "no new flows to add")
	}
	return nil
}
