// Package crd holds the ParserPlatform CRD inside the binary and applies its
// schema to a manifest exactly as the API server does at admission: unknown
// fields found (pruning), defaults filled in (structural defaulting), OpenAPI
// bounds and CEL rules checked. Commands that have no cluster, such as
// `parser-operator render`, see a platform as `kubectl apply` would store it.
//
// The CRD is a copy of config/crd/bases (TestEmbeddedCRDIsCurrent keeps it in
// step; `go generate ./internal/crd` refreshes it). It is copied rather than
// embedded from config/ because go:embed reads only below the package's own
// folder, and a Go package under config/ would be one the image build
// (Dockerfile: cmd/, api/, internal/) and kustomize never expected.
package crd

import (
	"context"
	_ "embed"
	"fmt"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

//go:generate cp ../../config/crd/bases/platform.vkparser.io_parserplatforms.yaml .

// ParserPlatformYAML is the CRD manifest as `make manifests` generates it.
//
//go:embed platform.vkparser.io_parserplatforms.yaml
var ParserPlatformYAML []byte

// Version is the one served version the schema is taken from.
const Version = "v1alpha1"

// Schema is the ParserPlatform schema, ready to prune, default and validate
// unstructured objects (maps as encoding/json decodes them, integers int64).
type Schema struct {
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator // nil when the schema has no CEL rules
}

// Load parses the embedded CRD once; the result is shared and read-only.
var Load = sync.OnceValues(func() (*Schema, error) { return parse(ParserPlatformYAML) })

func parse(manifest []byte) (*Schema, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(manifest, crd); err != nil {
		return nil, fmt.Errorf("reading the embedded CRD: %w", err)
	}
	var v1 *apiextensionsv1.CustomResourceValidation
	for _, v := range crd.Spec.Versions {
		if v.Name == Version {
			v1 = v.Schema
		}
	}
	if v1 == nil {
		return nil, fmt.Errorf("the embedded CRD has no schema for %s", Version)
	}
	internal := &apiextensions.CustomResourceValidation{}
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v1, internal, nil); err != nil {
		return nil, fmt.Errorf("converting the CRD schema: %w", err)
	}
	s, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("the CRD schema is not structural: %w", err)
	}
	// As the API server does: defaults that pruning would drop never apply.
	if err := structuraldefaulting.PruneDefaults(s); err != nil {
		return nil, fmt.Errorf("pruning the CRD's defaults: %w", err)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("building the CRD's validator: %w", err)
	}
	return &Schema{structural: s, validator: validator, cel: cel.NewValidator(s, true, celconfig.PerCallLimit)}, nil
}

// Prune drops the fields the schema does not know, as the API server does,
// and returns their paths (spec.servics, ...): `kubectl apply` refuses them
// under its default strict field validation.
func (s *Schema) Prune(obj map[string]any) []string {
	return pruning.PruneWithOptions(obj, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
}

// Default fills in the schema's defaults in place.
func (s *Schema) Default(obj map[string]any) {
	structuraldefaulting.Default(obj, s.structural)
}

// Validate checks a new object as the API server's create does: embedded
// object metadata, OpenAPI bounds, list-type invariants, then the CEL rules.
func (s *Schema) Validate(ctx context.Context, obj map[string]any) field.ErrorList {
	errs := schemaobjectmeta.Validate(ctx, nil, obj, s.structural, false)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, s.validator)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, s.structural, obj)...)
	if s.cel != nil && len(errs) == 0 {
		celErrs, _ := s.cel.Validate(ctx, nil, s.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return errs
}
