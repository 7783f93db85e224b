package cli

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/medseg/medseg/api/v1alpha1"
)

// AnnotationMigratedFrom records, on an approval made by `kubectl medseg migrate`, the
// SegmentPolicy list entry it came from.
const AnnotationMigratedFrom = "medseg.io/migrated-from"

// Migrate turns the deprecated spec.exceptions and spec.accessGrants of SegmentPolicies into
// SegmentException and AccessGrant objects. The window, approver, device, flow and mode carry
// over unchanged; the fields the old entries lacked (an exception's ticket, a grant's
// justification) say where the approval came from. An approval keeps its name unless two
// policies use the same one; then both are prefixed with their policy's name.
func Migrate(pols []v1alpha1.SegmentPolicy) []runtime.Object {
	uses := map[string]int{}
	for _, p := range pols {
		for _, e := range p.Spec.Exceptions {
			uses["e/"+e.Name]++
		}
		for _, g := range p.Spec.AccessGrants {
			uses["g/"+g.Name]++
		}
	}
	sort.Slice(pols, func(i, j int) bool { return pols[i].Name < pols[j].Name })
	var out []runtime.Object
	for _, p := range pols {
		meta := func(kind, name, list string) metav1.ObjectMeta {
			m := metav1.ObjectMeta{Name: name, Annotations: map[string]string{
				AnnotationMigratedFrom: fmt.Sprintf("segmentpolicy/%s spec.%s[%s]", p.Name, list, name)}}
			if uses[kind+"/"+name] > 1 {
				m.Name = p.Name + "-" + name
			}
			return m
		}
		from := fmt.Sprintf("migrated from SegmentPolicy %s", p.Name)
		for _, e := range p.Spec.Exceptions {
			x := &v1alpha1.SegmentException{ObjectMeta: meta("e", e.Name, "exceptions"), Spec: v1alpha1.SegmentExceptionSpec{
				Approval: v1alpha1.Approval{Device: e.Device, NotBefore: e.ApprovedAt, NotAfter: e.ExpiresAt, ApprovedBy: e.ApprovedBy,
					Ticket: from + " (spec.exceptions recorded no ticket)", Justification: e.Justification},
				MaxMode: e.MaxMode, CompensatingControls: e.CompensatingControls}}
			x.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("SegmentException"))
			out = append(out, x)
		}
		for _, g := range p.Spec.AccessGrants {
			x := &v1alpha1.AccessGrant{ObjectMeta: meta("g", g.Name, "accessGrants"), Spec: v1alpha1.AccessGrantSpec{
				Approval: v1alpha1.Approval{Device: g.Device, NotBefore: g.NotBefore, NotAfter: g.NotAfter, ApprovedBy: g.ApprovedBy,
					Ticket: g.Ticket, Justification: from + " (spec.accessGrants recorded no justification)"},
				Flow: g.Flow}}
			x.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("AccessGrant"))
			out = append(out, x)
		}
	}
	return out
}

func newMigrateCommand(o *options) *cobra.Command {
	var files fileOptions
	var out *output
	cmd := &cobra.Command{
		Use:   "migrate [-f PATH]",
		Short: "Print the SegmentExceptions and AccessGrants to create from SegmentPolicies' old spec.exceptions and spec.accessGrants",
		Long: `Approvals used to live inside the SegmentPolicy (spec.exceptions, spec.accessGrants). They are
their own cluster-scoped kinds now, SegmentException and AccessGrant, and medseg no longer reads
the old lists (a policy that still holds them carries the LegacyApprovals condition). migrate
reads SegmentPolicies from files (-f) or, without -f, from the cluster, and prints the objects to
create. Apply them, then remove the old lists from the policies.

approvedBy carries over. The medseg-approvals admission policy accepts an approvedBy other
than the requesting user only from the configured GitOps identities: commit the output to the
Git repository your GitOps controller applies, or apply it as one of those identities.`,
		Example: `  kubectl medseg migrate > approvals.yaml
  kubectl medseg migrate -f policies/ -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			var pols []v1alpha1.SegmentPolicy
			if files.given() {
				objs, err := files.read(o.streams.In)
				if err != nil {
					return err
				}
				for _, obj := range objs {
					if obj.Object.GetKind() != "SegmentPolicy" {
						continue
					}
					var p v1alpha1.SegmentPolicy
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object.Object, &p); err != nil {
						return fmt.Errorf("%s: SegmentPolicy %s: %w", obj.Source, obj.Object.GetName(), err)
					}
					pols = append(pols, p)
				}
			} else {
				c, err := o.client()
				if err != nil {
					return err
				}
				ctx, cancel := o.context()
				defer cancel()
				var l v1alpha1.SegmentPolicyList
				if err := c.List(ctx, &l); err != nil {
					return o.apiError(fmt.Errorf("listing SegmentPolicies: %w", err))
				}
				pols = l.Items
			}
			objs := Migrate(pols)
			if len(objs) == 0 {
				fmt.Fprintln(o.streams.ErrOut, "no SegmentPolicy holds spec.exceptions or spec.accessGrants: nothing to migrate")
				return nil
			}
			return out.printObjects(o.streams.Out, objs)
		},
	}
	addFileFlags(cmd, &files, "SegmentPolicies")
	out = addOutputFlag(cmd, "yaml")
	return cmd
}
