package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/report"
)

// CommissionOptions are the inputs of Commission.
type CommissionOptions struct {
	// Ticket is the change or commissioning ticket (required).
	Ticket string
	// ApprovedBy names the approver; empty means the user the API server authenticates
	// (SelfSubjectReview).
	ApprovedBy string
	// DryRun: client prints what would be approved and sends nothing; server sends the write as
	// a server-side dry run (admission runs, nothing is persisted).
	DryRun dryRun
	// Now is the approval time.
	Now time.Time
}

// Commission approves a device's current flows: it reads the device, prints the flows being
// approved, and writes spec.commissioning with their hash. The write carries the resourceVersion
// it read, so flows changed in between are never approved unseen (the API server refuses it
// with a conflict). The protected-inputs admission policy decides who may do this.
func Commission(ctx context.Context, c client.Client, w io.Writer, key types.NamespacedName, o CommissionOptions) error {
	if strings.TrimSpace(o.Ticket) == "" {
		return errors.New("--ticket is required: commissioning records the change that approved the flows")
	}
	var d v1alpha1.MedicalDevice
	if err := c.Get(ctx, key, &d); err != nil {
		return fmt.Errorf("reading MedicalDevice %s: %w", key, err)
	}
	approver := o.ApprovedBy
	if approver == "" {
		ssr := &authenticationv1.SelfSubjectReview{}
		if err := c.Create(ctx, ssr); err != nil {
			return fmt.Errorf("finding out who you are (SelfSubjectReview): %w; pass --approved-by", err)
		}
		approver = ssr.Status.UserInfo.Username
	}
	hash := v1alpha1.FlowsHash(d.Spec.Flows)
	fmt.Fprintf(w, "MedicalDevice %s/%s: %s %s\n", d.Namespace, d.Name, d.Spec.Identity.Manufacturer, d.Spec.Identity.Model)
	if len(d.Spec.Flows) == 0 {
		fmt.Fprintln(w, "  no flows: the device will be isolated behind its gateway")
	}
	for _, f := range d.Spec.Flows {
		fmt.Fprintf(w, "  flow %s\n", describeFlow(f))
	}
	if cur := d.Spec.Commissioning; cur != nil && cur.FlowsHash == hash {
		fmt.Fprintf(w, "already commissioned by %s (ticket %s, %s) for exactly these flows; nothing to do\n",
			cur.ApprovedBy, cur.Ticket, cur.ApprovedAt.UTC().Format(time.RFC3339))
		return nil
	}
	var opts []client.PatchOption
	switch o.DryRun {
	case dryRunClient:
		fmt.Fprintf(w, "would commission (dry run, client): %d flow(s), approved by %s, ticket %s, flowsHash %s; nothing was sent\n", len(d.Spec.Flows), approver, o.Ticket, hash)
		return nil
	case dryRunServer:
		opts = append(opts, client.DryRunAll)
	}
	// The patch carries the resourceVersion it was computed from. medseg's own status writes also
	// move the resourceVersion, so on a conflict read again and retry as long as the flows still
	// hash to what was shown; if they changed, approve nothing.
	first := true
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			d = v1alpha1.MedicalDevice{}
			if err := c.Get(ctx, key, &d); err != nil {
				return fmt.Errorf("reading MedicalDevice %s: %w", key, err)
			}
			if now := v1alpha1.FlowsHash(d.Spec.Flows); now != hash {
				return fmt.Errorf("%w of %s changed while you were approving them (%s, now %s): nothing was approved; run commission again to see them", errFlowsChanged, key, hash, now)
			}
		}
		first = false
		orig := d.DeepCopy()
		d.Spec.Commissioning = &v1alpha1.Commissioning{ApprovedBy: approver, ApprovedAt: metav1.NewTime(o.Now.UTC().Truncate(time.Second)), Ticket: o.Ticket, FlowsHash: hash}
		return c.Patch(ctx, &d, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), opts...)
	})
	if errors.Is(err, errFlowsChanged) {
		return err
	}
	if err != nil {
		return fmt.Errorf("writing spec.commissioning: %w", err)
	}
	verb := "commissioned"
	if o.DryRun == dryRunServer {
		verb = "would commission (dry run, server: admission allowed it, nothing was persisted)"
	}
	fmt.Fprintf(w, "%s: %d flow(s) approved by %s, ticket %s, flowsHash %s\n", verb, len(d.Spec.Flows), approver, o.Ticket, hash)
	return nil
}

var errFlowsChanged = errors.New("the flows")

// describeFlow is one line per flow for people approving it.
func describeFlow(f v1alpha1.Flow) string {
	proto := f.Protocol
	if proto == "" {
		proto = v1alpha1.ProtocolTCP
	}
	var peers []string
	for _, p := range f.Peers {
		peers = append(peers, report.PeerLabel(p))
	}
	path := fmt.Sprintf("peers [%s] → gateway:%d → device:%d", strings.Join(peers, "; "), f.GatewayPort, f.DevicePort)
	if f.Direction == v1alpha1.DirectionFromDevice {
		path = fmt.Sprintf("device → gateway:%d → peers [%s]:%d", f.GatewayPort, strings.Join(peers, "; "), f.PeerPort)
	}
	access := ""
	if f.Access == v1alpha1.AccessGranted {
		access = ", only inside access grants"
	}
	return fmt.Sprintf("%s (%s, %s%s): %s", f.Name, f.Tier, proto, access, path)
}
