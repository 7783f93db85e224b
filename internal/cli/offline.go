package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/manifest"
	"github.com/medseg/medseg/internal/plan"
	"github.com/medseg/medseg/internal/render"
	"github.com/medseg/medseg/internal/validate"
)

// Inputs are the objects read from files.
type Inputs struct {
	Devices    []v1alpha1.MedicalDevice
	Policies   []v1alpha1.SegmentPolicy
	Approvals  v1alpha1.Approvals
	Namespaces map[string]map[string]string
	// Warnings are notes for stderr (e.g. a device namespace not in the input).
	Warnings []string
}

var namespaceGVK = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}

// Load reads, validates and decodes medseg inputs. Every error names the file, the document,
// the object and the field.
func Load(paths []string, stdin io.Reader) (*Inputs, error) {
	objs, err := manifest.Read(paths, stdin)
	if err != nil {
		return nil, err
	}
	return decode(objs)
}

// decode validates and decodes objects read from files.
func decode(objs []manifest.Object) (*Inputs, error) {
	v, err := validate.New()
	if err != nil {
		return nil, err
	}
	in := &Inputs{Namespaces: map[string]map[string]string{}}
	var problems []string
	for _, o := range objs {
		u := o.Object
		gvk := u.GroupVersionKind()
		id := fmt.Sprintf("%s: %s %s", o.Source, gvk.Kind, v1alpha1.Qualified(u.GetNamespace(), u.GetName()))
		switch {
		case gvk == namespaceGVK:
			var ns corev1.Namespace
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &ns, true); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", id, err))
				continue
			}
			lbls := map[string]string{"kubernetes.io/metadata.name": ns.Name}
			for k, val := range ns.Labels {
				lbls[k] = val
			}
			in.Namespaces[ns.Name] = lbls
		case v.Knows(gvk):
			if errs := v.Validate(u); len(errs) > 0 {
				problems = append(problems, fmt.Sprintf("%s: %s", id, validate.Error(errs)))
				continue
			}
			var target any
			switch gvk.Kind {
			case "MedicalDevice":
				target = &v1alpha1.MedicalDevice{}
			case "SegmentException":
				target = &v1alpha1.SegmentException{}
			case "AccessGrant":
				target = &v1alpha1.AccessGrant{}
			default:
				target = &v1alpha1.SegmentPolicy{}
			}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, target, true); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", id, err))
				continue
			}
			switch t := target.(type) {
			case *v1alpha1.MedicalDevice:
				in.Devices = append(in.Devices, *t)
			case *v1alpha1.SegmentPolicy:
				in.Policies = append(in.Policies, *t)
			case *v1alpha1.SegmentException:
				in.Approvals.Exceptions = append(in.Approvals.Exceptions, *t)
			case *v1alpha1.AccessGrant:
				in.Approvals.Grants = append(in.Approvals.Grants, *t)
			}
		default:
			problems = append(problems, fmt.Sprintf("%s: unknown kind %s (kubectl-medseg reads MedicalDevice, SegmentPolicy, SegmentException and AccessGrant of medseg.io/v1alpha1, and v1 Namespace)", id, gvk.GroupKind()))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("invalid input:\n  %s", strings.Join(problems, "\n  "))
	}
	sort.Slice(in.Devices, func(i, j int) bool {
		return v1alpha1.Qualified(in.Devices[i].Namespace, in.Devices[i].Name) < v1alpha1.Qualified(in.Devices[j].Namespace, in.Devices[j].Name)
	})
	sort.Slice(in.Policies, func(i, j int) bool { return in.Policies[i].Name < in.Policies[j].Name })
	seen := map[string]bool{}
	for _, d := range in.Devices {
		if _, ok := in.Namespaces[d.Namespace]; !ok && !seen[d.Namespace] {
			seen[d.Namespace] = true
			in.Warnings = append(in.Warnings, fmt.Sprintf("namespace %s is not in the input: SegmentPolicy namespaceSelectors see it without labels", d.Namespace))
		}
	}
	return in, nil
}

// Plans plans every device.
func (in *Inputs) Plans(now time.Time) ([]*plan.Plan, error) {
	out := make([]*plan.Plan, 0, len(in.Devices))
	byNamespace := map[string][]*v1alpha1.MedicalDevice{}
	for i := range in.Devices {
		d := &in.Devices[i]
		byNamespace[d.Namespace] = append(byNamespace[d.Namespace], d)
	}
	nsl := in.namespaceLabels()
	approvals := in.Approvals.ByDevice()
	for i := range in.Devices {
		d := &in.Devices[i]
		p, err := plan.Device(plan.Input{Device: d, Policies: in.Policies, Namespaces: nsl, Neighbours: byNamespace[d.Namespace],
			Approvals: approvals[v1alpha1.ObjectRef{Namespace: d.Namespace, Name: d.Name}], Now: now})
		if err != nil {
			return nil, fmt.Errorf("MedicalDevice %s/%s: %w", d.Namespace, d.Name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// DecideApprovals returns the approvals with the status medseg would write, given the devices
// with the status it would write (or wrote) and the policies.
func DecideApprovals(a v1alpha1.Approvals, devs []v1alpha1.MedicalDevice, pols []v1alpha1.SegmentPolicy, now time.Time) v1alpha1.Approvals {
	byRef := map[v1alpha1.ObjectRef]*v1alpha1.MedicalDevice{}
	for i := range devs {
		byRef[v1alpha1.ObjectRef{Namespace: devs[i].Namespace, Name: devs[i].Name}] = &devs[i]
	}
	policyOf := func(d *v1alpha1.MedicalDevice) *v1alpha1.SegmentPolicy {
		if d == nil || d.Status.Segmentation == nil {
			return nil
		}
		for i := range pols {
			if pols[i].Name == d.Status.Segmentation.Policy {
				return &pols[i]
			}
		}
		return nil
	}
	status := func(s render.ApprovalState) v1alpha1.ApprovalStatus {
		return v1alpha1.ApprovalStatus{Phase: s.Phase, Reason: s.Reason, Message: s.Message, Policy: s.Policy}
	}
	out := v1alpha1.Approvals{}
	for _, e := range a.Exceptions {
		d := byRef[e.Spec.Device]
		e.Status = status(render.ExceptionState(&e, d, policyOf(d), now))
		out.Exceptions = append(out.Exceptions, e)
	}
	for _, g := range a.Grants {
		d := byRef[g.Spec.Device]
		g.Status = status(render.GrantState(&g, d, policyOf(d), now))
		out.Grants = append(out.Grants, g)
	}
	return out
}

// namespaceLabels are the namespaces of the input, plus every device namespace the input lacks
// (known by name only, as the API server labels every namespace).
func (in *Inputs) namespaceLabels() map[string]map[string]string {
	out := make(map[string]map[string]string, len(in.Namespaces))
	for k, v := range in.Namespaces {
		out[k] = v
	}
	for _, d := range in.Devices {
		if _, ok := out[d.Namespace]; !ok {
			out[d.Namespace] = map[string]string{"kubernetes.io/metadata.name": d.Namespace}
		}
	}
	return out
}

// RenderObjects returns the Cilium objects medseg would own, as it would write them into a
// cluster that has none yet: a guard per enforced SegmentPolicy, a CiliumNetworkPolicy per device
// governed by an enforced policy, and the allow-only policy of each unenforced device whose
// gateway pods enforced devices share. Devices with a contested address get nothing (conflicts
// fail closed).
func RenderObjects(in *Inputs, now time.Time) ([]runtime.Object, error) {
	d, err := plan.HospitalObjects(plan.Hospital{Devices: plan.Devices(in.Devices), Policies: in.Policies, Approvals: in.Approvals, Namespaces: in.namespaceLabels()}, now)
	if err != nil {
		return nil, err
	}
	var objs []runtime.Object
	for _, g := range d.Guards {
		objs = append(objs, g)
	}
	for _, p := range d.Policies {
		objs = append(objs, p)
	}
	return objs, nil
}

// Assessment is one device's row of `assess -o json`.
type Assessment struct {
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	Policy         string            `json:"policy"`
	Priority       string            `json:"priority"`
	Exposure       string            `json:"exposure"`
	Exploitation   string            `json:"exploitation"`
	Automatable    string            `json:"automatable"`
	HumanImpact    string            `json:"humanImpact"`
	Mode           string            `json:"mode"`
	AllowedFlows   []string          `json:"allowedFlows"`
	BlockedFlows   []string          `json:"blockedFlows"`
	BlockedReasons map[string]string `json:"blockedReasons"`
}

// Assessments is every device's decision, one row per device.
func Assessments(in *Inputs, now time.Time) ([]Assessment, error) {
	plans, err := in.Plans(now)
	if err != nil {
		return nil, err
	}
	rows := make([]Assessment, 0, len(plans))
	for i, p := range plans {
		d := &in.Devices[i]
		a := Assessment{
			Namespace: d.Namespace, Name: d.Name,
			Priority: string(p.Assessment.Priority), Exposure: p.Assessment.Exposure.Value,
			Exploitation: p.Assessment.Exploitation.Value, Automatable: p.Assessment.Automatable.Value,
			HumanImpact: p.Assessment.HumanImpact.Value, AllowedFlows: []string{}, BlockedFlows: []string{},
			BlockedReasons: map[string]string{},
		}
		if p.Render.NoPolicy {
			for _, f := range d.Spec.Flows {
				a.BlockedFlows = append(a.BlockedFlows, f.Name)
				a.BlockedReasons[f.Name] = v1alpha1.ReasonNoSegmentPolicy + ": no SegmentPolicy selects the device"
			}
		} else {
			a.Policy, a.Mode = p.Render.Policy, string(p.Render.Mode)
			a.AllowedFlows = append(a.AllowedFlows, p.Render.Allowed()...)
			for _, b := range p.Render.Blocked() {
				a.BlockedFlows = append(a.BlockedFlows, b.Name)
				a.BlockedReasons[b.Name] = string(b.Reason) + ": " + b.Message
			}
		}
		rows = append(rows, a)
	}
	return rows, nil
}

// assessTable is the assessments as a table; -o wide adds the SSVC inputs.
func assessTable(rows []Assessment) *metav1.Table {
	cells := make([][]any, 0, len(rows))
	for _, r := range rows {
		blocked := make([]string, 0, len(r.BlockedFlows))
		for _, b := range r.BlockedFlows {
			reason, _, _ := strings.Cut(r.BlockedReasons[b], ":")
			blocked = append(blocked, b+"("+reason+")")
		}
		cells = append(cells, []any{r.Namespace, r.Name, dash(r.Policy), r.Priority, r.Exposure, r.Exploitation, r.Automatable, r.HumanImpact,
			dash(r.Mode), dash(strings.Join(r.AllowedFlows, ",")), dash(strings.Join(blocked, ","))})
	}
	return table([]string{"NAMESPACE", "NAME", "POLICY", "PRIORITY", "EXPOSURE*", "EXPLOITATION*", "AUTOMATABLE*", "HUMANIMPACT*", "MODE", "ALLOWED", "BLOCKED"}, cells)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
