package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/medseg/medseg/api/v1alpha1"
)

// Metrics are medseg's Prometheus metrics, registered with controller-runtime's registry.
type Metrics struct {
	devices      *prometheus.GaugeVec
	driftRepairs *prometheus.CounterVec
	applyErrors  *prometheus.CounterVec
	writes       *prometheus.CounterVec

	mu    sync.Mutex
	state map[string][2]string // device key → mode, priority
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		devices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "medseg_devices", Help: "MedicalDevices by segmentation mode and SSVC priority (mode is empty when no SegmentPolicy governs the device).",
		}, []string{"mode", "priority"}),
		driftRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medseg_drift_repairs_total", Help: "Owned Cilium policies put back after a hand edit or deletion.",
		}, []string{"kind"}),
		applyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medseg_apply_errors_total", Help: "Failed writes of Cilium policies.",
		}, []string{"kind"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medseg_policy_writes_total", Help: "Writes of Cilium policies by outcome (created, updated, repaired, pruned).",
		}, []string{"kind", "outcome"}),
		state: map[string][2]string{},
	}
	if reg != nil {
		reg.MustRegister(m.devices, m.driftRepairs, m.applyErrors, m.writes)
	}
	return m
}

func (m *Metrics) observeDevice(key string, seg *v1alpha1.SegmentationStatus, risk *v1alpha1.RiskStatus) {
	var v [2]string
	if seg != nil && seg.Policy != "" {
		v[0] = string(seg.Mode)
	}
	if risk != nil {
		v[1] = string(risk.Priority)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.state[key]; ok {
		if old == v {
			return
		}
		m.devices.WithLabelValues(old[0], old[1]).Dec()
	}
	m.state[key] = v
	m.devices.WithLabelValues(v[0], v[1]).Inc()
}

func (m *Metrics) forgetDevice(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.state[key]; ok {
		m.devices.WithLabelValues(old[0], old[1]).Dec()
		delete(m.state, key)
	}
}
