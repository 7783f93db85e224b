package controllers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/risk"
)

// RiskMemory remembers each device's last known priority above Defer, so that deleting and
// creating a device again does not reset its risk (risk.ApplyFloor). It lives in ConfigMaps in
// medseg's own namespace, which a device's owner cannot write: medseg-risk-memory-0 … -63,
// sharded by device, each entry "<namespace>_<name>: <priority> <uid> <RFC3339 time>". Only the
// leader writes; it reads each shard from the API server once and keeps its own copy, which
// reconciles read and change, and writes the shards that changed at most every FlushInterval
// (a cold start of 50,000 devices must not write a ConfigMap per device).
//
// A change not yet written when the leader dies is lost: the next leader reads what was written,
// at most FlushInterval older.
type RiskMemory struct {
	// Client writes the ConfigMaps; Reader reads them uncached (the manager's cache must not
	// watch every ConfigMap of the cluster).
	Client    client.Client
	Reader    client.Reader
	Namespace string

	// FlushInterval bounds how often a shard is written (default 5s).
	FlushInterval time.Duration

	mu     sync.Mutex
	shards map[int]*corev1.ConfigMap
	dirty  map[int]bool
}

// memoryShards spreads the entries so no ConfigMap nears its 1 MiB limit (about 70 bytes per
// device above Defer: 64 shards hold 900,000) and a write rewrites a small one.
const memoryShards = 64

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

// Remember records the device's priority in the leader's copy: above Defer it is kept (when it
// changed, or the object is a new one), at Defer the entry is removed. The shard is written by
// the next Flush; nothing is marked when nothing changed.
func (m *RiskMemory) Remember(ctx context.Context, dev *v1alpha1.MedicalDevice, p v1alpha1.Priority, now time.Time) error {
	if m == nil {
		return nil
	}
	i, key := memoryKey(dev.Namespace, dev.Name)
	m.mu.Lock()
	defer m.mu.Unlock()
	cm, err := m.shard(ctx, i)
	if err != nil {
		return err
	}
	old := parseFloor(cm.Data[key])
	if p.Rank() > v1alpha1.PriorityDefer.Rank() {
		if old != nil && old.Priority == p && old.UID == string(dev.UID) {
			return nil
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[key] = fmt.Sprintf("%s %s %s", p, dev.UID, now.UTC().Format(time.RFC3339))
	} else {
		if _, ok := cm.Data[key]; !ok {
			return nil
		}
		delete(cm.Data, key)
	}
	if m.dirty == nil {
		m.dirty = map[int]bool{}
	}
	m.dirty[i] = true
	return nil
}

// Flush writes the shards that changed since the last flush, from copies, so reconciles are not
// held up by the writes. The leader's copy wins a conflict: it is the only writer, so another
// version can only be a former leader's.
func (m *RiskMemory) Flush(ctx context.Context) error {
	if m == nil {
		return nil
	}
	type pending struct {
		i  int
		cm *corev1.ConfigMap
	}
	m.mu.Lock()
	var work []pending
	for i := range m.dirty {
		work = append(work, pending{i, m.shards[i].DeepCopy()})
		delete(m.dirty, i) // a Remember during the write marks it again
	}
	m.mu.Unlock()
	var errs []error
	for _, w := range work {
		err := m.write(ctx, w.cm)
		if apierrors.IsNotFound(err) { // deleted by hand: write the leader's copy again
			w.cm.ResourceVersion = ""
			err = m.write(ctx, w.cm)
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			latest := &corev1.ConfigMap{}
			if err = m.Reader.Get(ctx, client.ObjectKeyFromObject(w.cm), latest); err == nil {
				w.cm.ResourceVersion = latest.ResourceVersion
				err = m.write(ctx, w.cm)
			}
		}
		m.mu.Lock()
		if err != nil {
			m.dirty[w.i] = true
			errs = append(errs, fmt.Errorf("writing the risk memory %s/%s: %w", m.Namespace, w.cm.Name, err))
		} else {
			m.shards[w.i].ResourceVersion = w.cm.ResourceVersion
		}
		m.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (m *RiskMemory) write(ctx context.Context, cm *corev1.ConfigMap) error {
	if cm.ResourceVersion == "" {
		return m.Client.Create(ctx, cm, client.FieldOwner(v1alpha1.FieldOwner))
	}
	return m.Client.Update(ctx, cm, client.FieldOwner(v1alpha1.FieldOwner))
}

// Start flushes every FlushInterval until ctx ends, then once more. It runs only on the leader
// (NeedLeaderElection).
func (m *RiskMemory) Start(ctx context.Context) error {
	every := m.FlushInterval
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	log := ctrl.LoggerFrom(ctx).WithName("risk-memory")
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return m.Flush(flushCtx)
		case <-t.C:
			if err := m.Flush(ctx); err != nil {
				log.Error(err, "flushing the risk memory; retrying at the next tick")
			}
		}
	}
}

// NeedLeaderElection: only the leader writes the memory.
func (m *RiskMemory) NeedLeaderElection() bool { return true }
