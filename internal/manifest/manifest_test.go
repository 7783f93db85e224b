package manifest

import (
	"strings"
	"testing"
)

// FuzzDecode: arbitrary input never panics; every object returned has apiVersion and kind.
func FuzzDecode(f *testing.F) {
	f.Add("apiVersion: v1\nkind: Namespace\nmetadata: {name: icu}\n")
	f.Add("---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Namespace, metadata: {name: a}}]\n")
	f.Add("{\"apiVersion\": \"medseg.io/v1alpha1\", \"kind\": \"MedicalDevice\"}")
	f.Add("kind: [\n")
	f.Add("apiVersion: v1\nkind: List\nitems: 7\n")
	// Found by the fuzzer: an object that is not a List but has items, and a List item without kind.
	f.Add("apiVersion: A0\nkind: A\nitems: [{}] ")
	f.Add("apiVersion: v1\nkind: List\nitems: [{}]\n")
	f.Fuzz(func(t *testing.T, in string) {
		objs, err := Decode("fuzz", strings.NewReader(in))
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz#") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		for _, o := range objs {
			if o.Object.GetAPIVersion() == "" || o.Object.GetKind() == "" {
				t.Fatalf("object without apiVersion or kind from %q", in)
			}
		}
	})
}

func TestDecodeNamesDocuments(t *testing.T) {
	_, err := Decode("f.yaml", strings.NewReader("apiVersion: v1\nkind: Namespace\n---\nmetadata: {}\n"))
	if err == nil || !strings.Contains(err.Error(), "f.yaml#2") {
		t.Fatalf("want an error naming f.yaml#2, got %v", err)
	}
}
