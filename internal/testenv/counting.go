package testenv

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Counter counts the operator's API calls by verb and kind: writes (create, update, patch,
// apply, delete and status writes) and cache reads (get). It wraps the manager's client through
// operator.Config.NewClient.
type Counter struct {
	mu     sync.Mutex
	counts map[string]int
	scheme *runtime.Scheme
	first  time.Time // of the first call: when the first reconcile ran
}

// NewCounter returns an empty counter.
func NewCounter() *Counter { return &Counter{counts: map[string]int{}} }

// NewClient builds the manager's usual client and wraps it.
func (c *Counter) NewClient(config *rest.Config, options client.Options) (client.Client, error) {
	inner, err := client.New(config, options)
	if err != nil {
		return nil, err
	}
	c.scheme = options.Scheme
	return &countingClient{Client: inner, c: c}, nil
}

func (c *Counter) add(verb string, obj runtime.Object) {
	kind := ""
	if c.scheme != nil && obj != nil {
		if gvk, err := apiutil.GVKForObject(obj, c.scheme); err == nil {
			kind = gvk.Kind
		}
	}
	c.mu.Lock()
	if c.first.IsZero() {
		c.first = time.Now()
	}
	c.counts[verb+" "+kind]++
	c.counts[verb]++
	if o, ok := obj.(client.Object); ok && verb != "get" {
		c.counts[verb+" "+kind+" "+o.GetNamespace()+"/"+o.GetName()]++
	}
	c.mu.Unlock()
}

// Get returns the count for "verb" or "verb Kind".
func (c *Counter) Get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

// First returns when the first call was counted (zero if none was).
func (c *Counter) First() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first
}

// Writes returns all writes so far.
func (c *Counter) Writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts["create"] + c.counts["update"] + c.counts["patch"] + c.counts["apply"] + c.counts["delete"] + c.counts["status"]
}

// Snapshot copies the counts.
func (c *Counter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

type countingClient struct {
	client.Client
	c *Counter
}

func (w *countingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	w.c.add("get", obj)
	return w.Client.Get(ctx, key, obj, opts...)
}

func (w *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	w.c.add("create", obj)
	return w.Client.Create(ctx, obj, opts...)
}

func (w *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	w.c.add("update", obj)
	return w.Client.Update(ctx, obj, opts...)
}

func (w *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	w.c.add("patch", obj)
	return w.Client.Patch(ctx, obj, patch, opts...)
}

func (w *countingClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	var named client.Object
	if u, ok := obj.(interface{ UnstructuredContent() map[string]any }); ok {
		// client.ApplyConfigurationFromUnstructured, as medseg applies: count it by kind.
		named = &unstructured.Unstructured{Object: u.UnstructuredContent()}
	} else if u, ok := obj.(interface{ GetName() *string }); ok && u.GetName() != nil {
		named = &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: *u.GetName()}}
	}
	if named != nil {
		w.c.add("apply", named)
	} else {
		w.c.add("apply", nil)
	}
	return w.Client.Apply(ctx, obj, opts...)
}

func (w *countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	w.c.add("delete", obj)
	return w.Client.Delete(ctx, obj, opts...)
}

func (w *countingClient) Status() client.SubResourceWriter {
	return &countingStatus{SubResourceWriter: w.Client.Status(), c: w.c}
}

type countingStatus struct {
	client.SubResourceWriter
	c *Counter
}

func (s *countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s.c.add("status", obj)
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

func (s *countingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.c.add("status", obj)
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}
