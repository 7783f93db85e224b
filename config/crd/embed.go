// Package crd embeds the generated medseg CRDs (config/crd/bases) so the kubectl plugin can
// validate objects offline exactly as the API server does.
package crd

import "embed"

// Bases holds bases/*.yaml, as written by `make manifests`.
//
//go:embed bases/*.yaml
var Bases embed.FS
