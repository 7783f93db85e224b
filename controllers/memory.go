package controllers

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/risk"
)

// RiskMemory remembers each device's last known priority above Defer, so that deleting and
// creating a device again does not reset its risk (risk.ApplyFloor). It lives in ConfigMaps in
// medseg's own namespace, which a device's owner cannot write: medseg-risk-memory-0 … -15,
// sharded by device, each entry "<namespace>_<name>: <priority> <uid> <RFC3339 time>". Only the
// leader writes; it reads each shard from the API server once and keeps its own copy.
type RiskMemory struct {
	// Client writes the ConfigMaps; Reader reads them uncached (the manager's cache must not
	// watch every ConfigMap of the cluster).
	Client    client.Client
	Reader    client.Reader
	Namespace string

	mu     sync.Mutex
	shards map[int]*corev1.ConfigMap
}

// memoryShards spreads the entries so no ConfigMap nears its 1 MiB limit: only devices above
// Defer are remembered, a few percent of a hospital, about 70 bytes each.
const memoryShards = 16

// MemoryConfigMapPrefix names the shards.
const MemoryConfigMapPrefix = "medseg-risk-memory-"

func memoryKey(ns, name string) (int, string) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(ns + "/" + name))
	return int(h.Sum32() % memoryShards), ns + "_" + name
}

// shard returns the shard's ConfigMap, read once from the API server; a missing one is empty.
// Callers hold m.mu.
func (m *RiskMemory) shard(ctx context.Context, i int) (*corev1.ConfigMap, error) {
	if m.shards == nil {
		m.shards = map[int]*corev1.ConfigMap{}
	}
	if cm := m.shards[i]; cm != nil {
		return cm, nil
	}
	cm := &corev1.ConfigMap{}
	err := m.Reader.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: fmt.Sprintf("%s%d", MemoryConfigMapPrefix, i)}, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: fmt.Sprintf("%s%d", MemoryConfigMapPrefix, i),
			Labels: map[string]string{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}}}
	case err != nil:
		return nil, fmt.Errorf("reading the risk memory %s/%s%d: %w", m.Namespace, MemoryConfigMapPrefix, i, err)
	}
	m.shards[i] = cm
	return cm, nil
}

// Recall returns the remembered priority of the device's name, nil when there is none.
func (m *RiskMemory) Recall(ctx context.Context, ns, name string) (*risk.Floor, error) {
	if m == nil {
		return nil, nil
	}
	i, key := memoryKey(ns, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	cm, err := m.shard(ctx, i)
	if err != nil {
		return nil, err
	}
	return parseFloor(cm.Data[key]), nil
}

func parseFloor(v string) *risk.Floor {
	f := strings.Fields(v)
	if len(f) != 3 {
		return nil
	}
	at, err := time.Parse(time.RFC3339, f[2])
	if err != nil {
		return nil
	}
	return &risk.Floor{Priority: v1alpha1.Priority(f[0]), UID: f[1], At: at}
}

// Remember records the device's priority: above Defer it is written (when it changed, or the
// object is a new one), at Defer the entry is removed. Nothing is written when nothing changed.
func (m *RiskMemory) Remember(ctx context.Context, dev *v1alpha1.MedicalDevice, p v1alpha1.Priority, now time.Time) error {
	if m == nil {
		return nil
	}
	i, key := memoryKey(dev.Namespace, dev.Name)
	m.mu.Lock()
	defer m.mu.Unlock()
	for attempt := 0; ; attempt++ {
		cm, err := m.shard(ctx, i)
		if err != nil {
			return err
		}
		old := parseFloor(cm.Data[key])
		want := ""
		if p.Rank() > v1alpha1.PriorityDefer.Rank() {
			if old != nil && old.Priority == p && old.UID == string(dev.UID) {
				return nil
			}
			want = fmt.Sprintf("%s %s %s", p, dev.UID, now.UTC().Format(time.RFC3339))
		} else if _, ok := cm.Data[key]; !ok {
			return nil
		}
		next := cm.DeepCopy()
		if want == "" {
			delete(next.Data, key)
		} else {
			if next.Data == nil {
				next.Data = map[string]string{}
			}
			next.Data[key] = want
		}
		if next.ResourceVersion == "" {
			err = m.Client.Create(ctx, next, client.FieldOwner(v1alpha1.FieldOwner))
		} else {
			err = m.Client.Update(ctx, next, client.FieldOwner(v1alpha1.FieldOwner))
		}
		if err == nil {
			m.shards[i] = next
			return nil
		}
		delete(m.shards, i) // another leader wrote meanwhile, or it is gone: read it again
		retryable := apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err)
		if attempt > 0 || !retryable {
			return fmt.Errorf("writing the risk memory %s/%s: %w", m.Namespace, next.Name, err)
		}
	}
}
