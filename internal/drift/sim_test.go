package drift

import "github.com/cilium/cilium/pkg/identity"

func idOf(v any) *identity.Identity { return v.(*identity.Identity) }
