// Package validate checks medseg objects offline against the project's own CRDs, with the same
// steps the API server takes for a custom resource: defaulting, unknown-field detection
// (kubectl's strict field validation), the OpenAPI schema, list-type uniqueness and the CEL
// x-kubernetes-validations. So `kubectl-medseg` rejects exactly what the server would.
package validate

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"strings"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/medseg/medseg/config/crd"
)

type kindSchema struct {
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *cel.Validator
	namespaced bool
}

// Validator validates objects of the kinds whose CRDs it was built from.
type Validator struct {
	kinds map[schema.GroupVersionKind]*kindSchema
}

// New builds a validator from the embedded medseg CRDs.
func New() (*Validator, error) {
	v := &Validator{kinds: map[schema.GroupVersionKind]*kindSchema{}}
	files, err := fs.Glob(crd.Bases, "bases/*.yaml")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		raw, err := fs.ReadFile(crd.Bases, f)
		if err != nil {
			return nil, err
		}
		var c apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(raw, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if err := v.AddCRD(&c); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return v, nil
}

// AddCRD registers every served version of a CRD.
func (v *Validator) AddCRD(c *apiextensionsv1.CustomResourceDefinition) error {
	for _, ver := range c.Spec.Versions {
		if ver.Schema == nil || ver.Schema.OpenAPIV3Schema == nil {
			continue
		}
		internal := &apiextensionsinternal.JSONSchemaProps{}
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(ver.Schema.OpenAPIV3Schema, internal, nil); err != nil {
			return err
		}
		s, err := structuralschema.NewStructural(internal)
		if err != nil {
			return err
		}
		sv, _, err := apiservervalidation.NewSchemaValidator(internal)
		if err != nil {
			return err
		}
		gvk := schema.GroupVersionKind{Group: c.Spec.Group, Version: ver.Name, Kind: c.Spec.Names.Kind}
		v.kinds[gvk] = &kindSchema{
			structural: s, schema: sv,
			cel:        cel.NewValidator(s, true, celconfig.PerCallLimit),
			namespaced: c.Spec.Scope == apiextensionsv1.NamespaceScoped,
		}
	}
	return nil
}

// Knows reports whether the validator has a schema for the object's kind.
func (v *Validator) Knows(gvk schema.GroupVersionKind) bool { return v.kinds[gvk] != nil }

// Validate defaults obj in place (as the server stores it) and returns every problem, each
// naming its field. Unknown fields are errors, as with kubectl's default strict validation.
func (v *Validator) Validate(obj *unstructured.Unstructured) field.ErrorList {
	ks := v.kinds[obj.GroupVersionKind()]
	if ks == nil {
		return field.ErrorList{field.NotSupported(field.NewPath("kind"), obj.GetKind(), v.kindNames())}
	}
	// The API server decodes JSON integers as int64; some YAML decoders give float64, which the
	// CEL rules on integer fields would reject with a type error rather than a message.
	obj.Object = normalizeNumbers(obj.Object).(map[string]any)
	var errs field.ErrorList
	if ks.namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace("default")
	}
	if obj.GetName() == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), "name is required"))
	}
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj.Object, ks.structural)
	structuraldefaulting.Default(obj.Object, ks.structural)
	unknown := pruning.PruneWithOptions(obj.DeepCopy().Object, ks.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range unknown {
		errs = append(errs, field.Forbidden(field.NewPath(p), "unknown field"))
	}
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj.Object, ks.schema)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, ks.structural, obj.Object)...)
	if len(errs) == 0 {
		// Like the server, CEL rules run only on objects that pass the schema.
		celErrs, _ := ks.cel.Validate(context.Background(), nil, ks.structural, obj.Object, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return errs
}

func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
		return x
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	default:
		return v
	}
}

func (v *Validator) kindNames() []string {
	var out []string
	for gvk := range v.kinds {
		out = append(out, gvk.Kind)
	}
	return out
}

// Error formats an error list on one line per problem.
func Error(errs field.ErrorList) string {
	parts := make([]string, 0, len(errs))
	for _, e := range errs {
		parts = append(parts, e.Error())
	}
	return strings.Join(parts, "; ")
}
