// Package ssa reads server-side apply's bookkeeping: which list entries a field manager owns.
package ssa

import (
	"encoding/json"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AppliedKeys are the keys (the value of key) of the entries of spec.<list> that manager owns
// through server-side apply.
func AppliedKeys(obj metav1.Object, manager, list, key string) map[string]bool {
	out := map[string]bool{}
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager != manager || mf.Operation != metav1.ManagedFieldsOperationApply || mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal(mf.FieldsV1.GetRawBytes(), &fields); err != nil {
			continue
		}
		spec, _ := fields["f:spec"].(map[string]any)
		entries, _ := spec["f:"+list].(map[string]any)
		for k := range entries {
			if !strings.HasPrefix(k, "k:") {
				continue
			}
			var m map[string]any
			if json.Unmarshal([]byte(k[2:]), &m) == nil {
				if n, ok := m[key].(string); ok {
					out[n] = true
				}
			}
		}
	}
	return out
}
