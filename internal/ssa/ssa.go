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
	for k := range AppliedEntries(obj, manager, list, key) {
		out[k] = true
	}
	return out
}

// AppliedEntries are, for each entry of spec.<list> that manager owns through server-side
// apply (by its key), the fields of it the manager owns.
func AppliedEntries(obj metav1.Object, manager, list, key string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
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
		for k, v := range entries {
			if !strings.HasPrefix(k, "k:") {
				continue
			}
			var m map[string]any
			if json.Unmarshal([]byte(k[2:]), &m) != nil {
				continue
			}
			n, ok := m[key].(string)
			if !ok {
				continue
			}
			owned := out[n]
			if owned == nil {
				owned = map[string]bool{}
				out[n] = owned
			}
			set, _ := v.(map[string]any)
			for f := range set {
				if name, ok := strings.CutPrefix(f, "f:"); ok {
					owned[name] = true
				}
			}
		}
	}
	return out
}
